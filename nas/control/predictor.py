"""``predictor``: predictor-guided local search over the grammar, with candidates screened before they are trials.

A trial is a training, the expensive thing; sampling and counting are cheap. So for each trial this sampler looks at
many candidates and spends the trial on the most promising one:

1. **Candidates**: ``candidates`` specs (default 16) are ranked per trial. New ones are one-choice mutations
   (:meth:`nas.grammar.Space.mutate`) of the current Pareto front (a ``mutate_share`` of them, default all; the rest
   are drawn at random from the grammar). Half of the mutations (``end_share``) start from an end of the front, the
   best trial in one objective (the objective drawn at random), the others from any front member: beyond its ends a
   front can still grow into area no trial covers (on NAS-Bench-201 the fastest cell alone holds 1.5% of the
   latency front's hypervolume), and otherwise a member in the middle is as likely a parent as one at an end. Once
   the front's one-choice neighbours run out (all evaluated: a small space, a tight limit), random samples fill the
   trial's candidates. A spec already evaluated in the study is skipped (the engine would only reuse its result and
   count a trial). With ``fresh_candidates`` below ``candidates`` the unpicked candidates are kept for the next
   trials (a pool, oldest dropped first, less what has been evaluated since) and only that many new ones are
   screened per trial: the screening below is most of this sampler's cost.
2. **Screening**: params and FLOPs of each candidate are counted (at the run's input first where the run constrains
   or optimises them, so a breaker of the run's limits costs no more; then at the space's reference input; cached
   per spec). The count adds up the network's parts (:func:`nas.builder.network_costs`), each distinct part
   counted once: a mutation shares most of its parts with its parent, so its count costs a fifth or less of a
   whole build and count (a few ms on a CPU), a random candidate's about two thirds. A
   candidate that breaks the space's constraints or the run's ``max_params`` / ``max_flops``, or that does not
   build, is dropped: it never becomes a trial. (``max_latency_ms`` needs a measurement: it is handled by the
   reference point below, and the engine still checks it; with a latency table, ``latency_source: table``, the
   candidate's predicted latency is screened and used here as its params are.)
3. **Prediction**: one model per objective that is not known exactly (accuracy, latency unless a latency table
   gives it, ...) is fitted on the study's COMPLETE trials (refitted every trial up to 31 of them, then once they
   grew by a sixteenth): a random forest, or for a cost that adds up over the network's parts (latency, memory)
   that or an additive (linear) model of the choices, whichever has the smaller held-out error on those trials
   (:mod:`nas.control.surrogate`; an additive model extrapolates to cheaper networks than any seen, which a forest
   cannot). Features: log params and log FLOPs (at the reference input)
   and every grammar choice (for the forest categorical choices by index, inactive ones as -1; for the additive
   model one-hot). ``params`` / ``flops`` objectives are known exactly from the count. The model's spread (the
   trees' or the Bayesian posterior's) is the uncertainty.
4. **Acquisition**: expected hypervolume improvement over the current front, by Monte Carlo (32 draws from a normal
   with the model's mean and spread per objective). The reference point is the run's limit where one applies to
   an objective (``max_latency_ms`` for latency, ...) and otherwise the worst value seen, widened by a tenth of
   the range (two objectives: vectorised, :func:`nas.pareto.hypervolume_improvements`). If no candidate is
   expected to improve the front, the one closest to it is taken.

Until ``startup`` trials (the run's ``population_size``, else at most 10) are complete there is nothing to learn
from: each trial is then the first random candidate that passes the screening. With ``zero_cost_warmup: N`` (a run
config key) they are instead the best of N screened random candidates by the run's ``warmup_proxy`` (naswot on the
run's proxy batch, or synflow), scored once (the "zero-cost warmup" of Abdelfattah et al., 2021). Every trial
records what the sampler expected (user attr ``predictor``: how the spec was proposed, the predicted mean and spread
per objective, the model kind per objective, candidates screened out), so a run shows how well the predictor did.
Deterministic for a seed. Works for any number of objectives (the Monte Carlo hypervolume is exact per draw, so more
than three objectives get slow).

Related work: BANANAS (White et al., 2021) and NPENAS (Wei et al., 2022) guide the search with a predictor trained
on the evaluated architectures and a mutation-based acquisition optimiser; this is that idea with a small random
forest, multi-objective (expected hypervolume improvement) and with the exact cost of a candidate as features.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.catalog import DAG_OPS, DAG_WEIGHTED_OPS, dag_live_paths
from nas.control import surrogate
from nas.control.replay import ReplaySampler
from nas.grammar import RandomSuggest
from nas.objectives import additive as is_additive
from nas.pareto import hypervolume_improvements, pareto_mask, to_minimization
from nas.spec import scaled_depth

EXACT = ("params", "flops")  # objectives that the count gives exactly, before any training
LIMIT_OF = {"latency_ms": "max_latency_ms", "params": "max_params", "flops": "max_flops"}
DRAWS = 32
MAX_TRAIN_ROWS = 1000  # the forest learns from the most recent trials only: bounded cost per trial in long runs
# the forests are refitted once the trials they learn from have grown by this share (at least one trial): every trial
# up to 31 rows, then every 2nd, ..., every 62nd at 1,000. A few percent more rows barely move a forest, and the
# front the acquisition improves on is always the current one
REFIT_GROWTH = 1 / 16
# new candidates: this share are one-choice mutations of the Pareto front (the rest random samples of the grammar),
# and of those mutations this share start from an end of the front (the best trial in one objective, the objective
# drawn), the rest from any front member. Measured on NAS-Bench-201, accuracy against latency, 10 seeds, median
# hypervolume ratio after 100 trials: 0.968 with 0.5 / 0 (half random, any front member), 0.968 with 64 candidates
# instead of 16, 0.980 with 0.8 / 0, 0.987 with 0.5 / 0.5, 0.988 with 0.8 / 0.75, 0.991 with 1.0 / 0.5 and
# 1.0 / 0.75; 20 seeds: 0.989 with 1.0 / 0.5 (docs/benchmarks.md, "Two objectives on NAS-Bench-201"). The run
# config's mutate_share / end_share default to these
MUTATE_SHARE = 1.0
END_SHARE = 0.5


@dataclass
class Candidate:
    spec: Any
    spec_hash: str
    costs: dict[str, int]
    origin: str


class PredictorSampler(ReplaySampler):
    """Predictor-guided local search; candidates that break a counted constraint never become trials."""

    ATTR = "predictor"

    def __init__(self, space, *, objectives: Sequence[str], directions: Sequence[str],
                 limits: dict[str, float] | None = None, input: tuple[Sequence[int], int] | None = None,
                 candidates: int = 16, fresh: int | None = None, startup: int = 8,
                 mutate_share: float = MUTATE_SHARE, end_share: float = END_SHARE, seed: int | None = None,
                 warmup: int = 0, scorer: Callable[[Any], float] | None = None, warmup_seed: int | None = None,
                 count: Callable[..., dict[str, int]],
                 latency: Callable[[Any], float] | None = None):
        super().__init__(seed)
        self.space = space
        self.count = count  # count(space, spec, input_shape=None, num_classes=None, *, what): params / FLOPs
        # latency(spec) -> ms at the run's input, from a latency table: then latency is known before training too
        self.latency = latency
        self.exact = EXACT + (("latency_ms",) if latency is not None else ())
        self.objectives = list(objectives)
        self.directions = list(directions)
        self.limits = dict(limits or {})
        shape, classes = input if input is not None else space.reference_input
        self.shape, self.classes = tuple(int(d) for d in shape), int(classes)
        ref_shape, ref_classes = space.reference_input
        self.same_input = (self.shape, self.classes) == (tuple(ref_shape), int(ref_classes))
        self.n_candidates = max(1, int(candidates))
        self.n_fresh = self.n_candidates if fresh is None else max(1, min(int(fresh), self.n_candidates))
        self.startup = max(1, int(startup))
        self.mutate_share = float(mutate_share)
        self.end_share = float(end_share)
        self.choice_params = space.choices()
        self.dag = writes_dag(space)  # then the forest's rows also hold the DAG cells' path statistics
        self._hash_of: dict[int, str] = {}  # trial number -> spec hash (trials that are no longer running)
        self._spec_of: dict[str, Any] = {}
        self._features: dict[str, tuple[list[float], list[float]]] = {}  # spec hash -> (ordinal, one-hot) rows
        self._pool: dict[str, Candidate] = {}  # screened, unpicked candidates kept for later trials, oldest first
        self._models: tuple[int, list] | None = None  # (complete trials when fitted, a Surrogate per objective or None)
        # zero-cost warm-up: the startup trials are taken from ``warmup`` screened random candidates in the order of
        # ``scorer`` (best first). Drawn from ``warmup_seed`` (the run's seed, not the resumed sampler's): a resumed
        # run ranks the same candidates again and goes on down the list
        self.warmup = int(warmup) if scorer is not None else 0
        self.scorer = scorer
        self.warmup_seed = seed if warmup_seed is None else warmup_seed
        self._ranked: list[tuple[Candidate, float]] | None = None

    # -- one trial -------------------------------------------------------------------------------------------------
    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs:  # an enqueued trial (e.g. a re-run of a stale one): keep it
            return
        rng = random.Random(f"predictor:{self.seed}:{trial.number}")
        trials = study.get_trials(deepcopy=False)
        seen = {h for h in (self._hash(t) for t in trials if t.number != trial.number and t.params) if h}
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None
                    and all(math.isfinite(v) for v in t.values) and self._hash(t)]
        guided = len(complete) >= self.startup
        if guided:
            pool, dropped, fresh = self._refill(rng, self._front(complete), seen)
        else:  # startup: the best-ranked warm-up candidate not evaluated yet, if there is a warm-up
            pool, dropped = self._warmup_pick(seen) if self.warmup else ([], 0)
            if not pool:  # else (no warm-up, or its list is used up) the first random one that passes the screening
                pool, more = self._candidates(rng, [], seen, 1)
                dropped += more
            fresh = len(pool)
        if not pool:
            return  # nothing feasible found: the trial is sampled at random and the engine checks it
        note: dict[str, Any] = {"dropped": dropped, "pool": len(pool), "fresh": fresh}
        pick = pool[0]
        if guided and len(pool) > 1:
            i, mean, sd = self._acquire(pool, complete, trial.number)
            pick = pool[i]
            note["predicted"] = {o: [round(float(m), 6), round(float(s), 6)]
                                 for o, m, s in zip(self.objectives, mean, sd)}
            note["models"] = {o: m.kind for o, m in zip(self.objectives, self._models[1]) if m is not None}
        self._pool.pop(pick.spec_hash, None)
        note["origin"] = pick.origin
        self._children[trial._trial_id] = self.space.assignment(pick.spec)
        study._storage.set_trial_user_attr(trial._trial_id, self.ATTR, note)

    # -- candidates ------------------------------------------------------------------------------------------------
    def _warmup_pick(self, seen: set[str]) -> tuple[list[Candidate], int]:
        """([the best-scored warm-up candidate not in ``seen``], or [] once all are used; candidates screened out).
        The first call screens ``warmup`` random candidates and scores each (Abdelfattah et al. 2021, "zero-cost
        warmup"); a candidate whose score fails or is not finite ranks last."""
        dropped = 0
        if self._ranked is None:
            rng = random.Random(f"predictor-warmup:{self.warmup_seed}")
            # a tight limit drops most random samples: the warm-up, done once, tries harder than a trial does
            pool, dropped = self._candidates(rng, [], set(), self.warmup, attempts=16 * self.warmup + 8)
            scored = []
            for c in pool:
                try:
                    value = float(self.scorer(c.spec))
                except Exception:  # noqa: BLE001 - a proxy that fails on a candidate only ranks it last
                    value = math.nan
                scored.append((c, value))
            # best first; ties and unscored ones keep their drawing order (sorted is stable)
            self._ranked = sorted(scored, key=lambda cv: -cv[1] if math.isfinite(cv[1]) else math.inf)
        name = getattr(self.scorer, "__name__", "score")
        for rank, (c, value) in enumerate(self._ranked):
            if c.spec_hash not in seen:
                origin = f"zero-cost warm-up: {name} {value:.6g}, rank {rank + 1} of {len(self._ranked)}"
                return [replace(c, origin=origin)], dropped
        return [], dropped

    def _refill(self, rng: random.Random, parents: list[FrozenTrial],
                seen: set[str]) -> tuple[list[Candidate], int, int]:
        """The candidates ranked this trial: the pool kept from earlier trials (less what has been evaluated since,
        here or by another worker) topped up with ``fresh`` new screened ones (all ``candidates`` of them when the
        pool is empty: the first guided trial, or the first after a resume), the oldest dropped beyond
        ``candidates``. With ``fresh == candidates`` nothing is kept: every trial ranks new candidates only."""
        for h in [h for h in self._pool if h in seen]:
            del self._pool[h]
        want = max(self.n_fresh, self.n_candidates - len(self._pool))
        new, dropped = self._candidates(rng, parents, seen, want)
        for c in new:  # a candidate proposed again is kept as new
            self._pool.pop(c.spec_hash, None)
            self._pool[c.spec_hash] = c
        while len(self._pool) > self.n_candidates:
            del self._pool[next(iter(self._pool))]
        return list(self._pool.values()), dropped, len(new)

    def _candidates(self, rng: random.Random, parents: list[FrozenTrial], seen: set[str],
                    want: int, attempts: int | None = None) -> tuple[list[Candidate], int]:
        pool: list[Candidate] = []
        hashes: set[str] = set()
        dropped = 0
        ends = self._ends(parents)
        tries = 4 * want + 8 if attempts is None else attempts
        # then, if the front's one-choice neighbours ran out (all evaluated or drawn already: a small space, a tight
        # limit, a front of one), random samples fill the rest
        for k in range(tries + (4 * want + 8 if parents and self.mutate_share > 0 else 0)):
            if len(pool) >= want:
                break
            origin = "random"
            try:
                if parents and k < tries and rng.random() < self.mutate_share:
                    parent = rng.choice(ends if ends and self.end_share and rng.random() < self.end_share else parents)
                    spec = self.space.mutate(self._spec_of[self._hash(parent)], rng)
                    origin = f"mutation of #{parent.number}"
                else:
                    spec = self.space.sample(RandomSuggest(rng))
            except Exception:  # noqa: BLE001 - a space with nothing to mutate: a random sample instead
                spec = self.space.sample(RandomSuggest(rng))
            h = spec.hash()
            if h in seen or h in hashes:
                continue
            hashes.add(h)
            costs = self._feasible_costs(spec)
            if costs is None:
                dropped += 1
                continue
            self._spec_of[h] = spec
            pool.append(Candidate(spec, h, costs, origin))
        return pool, dropped

    def _ends(self, front: list[FrozenTrial]) -> list[FrozenTrial]:
        """The ends of the front: for each objective its best member (the first such trial on a tie), once each."""
        ends: list[FrozenTrial] = []
        for j, direction in enumerate(self.directions):
            pick = (max if direction == "maximize" else min)(front, key=lambda t: t.values[j], default=None)
            if pick is not None and all(pick.number != t.number for t in ends):
                ends.append(pick)
        return ends

    def _feasible_costs(self, spec) -> dict[str, int] | None:
        """The candidate's exact objectives (params / FLOPs at the run's input, those the run needs), or None if it
        breaks a counted constraint or does not build. The run's limits are checked first, at the run's input (a
        breaker then costs no more); then its params and FLOPs at the space's reference input (the predictor's
        features, and where the space's own constraints are checked) are counted, and cached."""
        need = [n for n in EXACT if f"max_{n}" in self.limits or n in self.objectives]
        try:
            if not self.same_input:
                costs = self.count(self.space, spec, self.shape, self.classes, what=need) if need else {}
                if self._breaks_limits(costs, need):
                    return None
            ref = self.count(self.space, spec, what=EXACT)
            if self.space.constraints and self.space.violations(ref):
                return None
        except Exception:  # noqa: BLE001 - a spec that does not build would only fail as a trial
            return None
        if self.same_input:
            costs = ref
            if self._breaks_limits(costs, need):
                return None
        if self.latency is not None and ("latency_ms" in self.objectives or "max_latency_ms" in self.limits):
            costs = {**costs, "latency_ms": self.latency(spec)}  # predicted by the run's table, no timing
            need = need + ["latency_ms"]
            if self._breaks_limits(costs, ["latency_ms"]):
                return None
        return {name: costs[name] for name in need}

    def _breaks_limits(self, costs: dict[str, int], names: list[str]) -> bool:
        return any(self.limits.get(f"max_{n}") is not None and costs[n] > self.limits[f"max_{n}"] for n in names)

    # -- prediction ------------------------------------------------------------------------------------------------
    def _hash(self, t: FrozenTrial) -> str | None:
        if t.number not in self._hash_of:
            try:
                spec = self.space.replay(dict(t.params))
            except Exception:  # noqa: BLE001 - params of another space version, or a trial still being sampled
                return None
            if t.state == TrialState.RUNNING:
                return spec.hash()  # its params may not be complete yet: do not cache
            self._hash_of[t.number] = spec.hash()
            self._spec_of[self._hash_of[t.number]] = spec
        return self._hash_of[t.number]

    def _front(self, complete: list[FrozenTrial]) -> list[FrozenTrial]:
        import numpy as np

        mask = pareto_mask(np.array([t.values for t in complete], dtype=float), self.directions)
        return [t for t, keep in zip(complete, mask) if keep]

    def _rows(self, spec_hash: str) -> tuple[list[float], list[float]]:
        """The spec's features: (the forest's row: a categorical choice by its index; the additive model's: one-hot),
        both led by log params and log FLOPs at the reference input; an inactive choice is -1 / all zeros. In a space
        that writes DAG cells the forest's row ends with the cells' path statistics (:func:`dag_features`); the
        additive model's does not (on NB201's latency they cost it accuracy: surrogate_nb201.md)."""
        rows = self._features.get(spec_hash)
        if rows is None:
            spec = self._spec_of[spec_hash]
            costs = self.count(self.space, spec, what=EXACT)  # at the reference input (cached)
            values = self.space.assignment(spec)
            lead = [math.log1p(costs["params"]), math.log1p(costs["flops"])]
            ordinal, onehot = list(lead), list(lead)
            for p in self.choice_params:
                ordinal.append(_encode(p, values.get(p.name)))
                onehot.extend(_one_hot(p, values.get(p.name)))
            if self.dag:  # the forest's only: latency adds up over the edges, not over paths
                ordinal.extend(dag_features(spec))
            rows = self._features[spec_hash] = (ordinal, onehot)
        return rows

    def _acquire(self, pool: list[Candidate], complete: list[FrozenTrial], number: int):
        """(index of the pick, its predicted means, its predicted spreads) by expected hypervolume improvement."""
        import numpy as np

        history = sorted(complete, key=lambda t: t.number)[-MAX_TRAIN_ROWS:]
        y = np.array([t.values for t in history], dtype=float)
        n = len(complete)  # not len(history): that stops growing at MAX_TRAIN_ROWS
        if refit_due(self._models[0] if self._models else None, n):
            rows = [self._rows(self._hash(t)) for t in history]  # the training rows: only for a refit
            models = []
            for j, objective in enumerate(self.objectives):
                if objective in self.exact:
                    models.append(None)
                    continue
                # sklearn takes a seed in [0, 2**32): a resumed run's sampler seed is up to 2**31, times 7919 above
                models.append(surrogate.fit([r[0] for r in rows], [r[1] for r in rows], y[:, j],
                                            seed=((self.seed or 0) * 7919 + number + j) % 2**32,
                                            additive=is_additive(objective)))
            self._models = (n, models)
        candidates = [self._rows(c.spec_hash) for c in pool]
        x_forest = np.array([r[0] for r in candidates])  # built once for every objective's model
        x_additive = np.array([r[1] for r in candidates])
        mean = np.zeros((len(pool), len(self.objectives)))
        sd = np.zeros_like(mean)
        for j, (objective, model) in enumerate(zip(self.objectives, self._models[1])):
            if model is None:
                mean[:, j] = [c.costs[objective] for c in pool]
                continue
            mean[:, j], sd[:, j] = model.predict(x_forest, x_additive)
        minimize = ["minimize"] * len(self.objectives)
        seen = to_minimization(y, self.directions)
        pred = to_minimization(mean, self.directions)
        front = seen[pareto_mask(seen, minimize)]
        span = np.maximum(seen.max(axis=0) - seen.min(axis=0), 1e-9)
        ref = seen.max(axis=0) + 0.1 * span
        for j, objective in enumerate(self.objectives):
            limit = self.limits.get(LIMIT_OF.get(objective, ""))
            if limit is not None and self.directions[j] == "minimize":
                ref[j] = float(limit)
        draws = np.random.default_rng((self.seed or 0) * 1_000_003 + number).standard_normal(
            (DRAWS, len(self.objectives)))
        points = pred[:, None, :] + draws[None, :, :] * sd[:, None, :]  # (candidates, draws, objectives)
        gains = hypervolume_improvements(front, points.reshape(-1, len(self.objectives)), minimize, ref)
        gains = gains.reshape(len(pool), DRAWS).mean(axis=1)
        if gains.max() > 0:
            best = int(np.argmax(gains))
        else:  # nothing expected to improve the front: the candidate predicted closest to it
            gap = ((pred[:, None, :] - front[None, :, :]) / span).max(axis=2).min(axis=1)
            best = int(np.argmin(gap))
        return best, mean[best], sd[best]


def refit_due(fitted: int | None, complete: int) -> bool:
    """Whether forests fitted when ``fitted`` trials were complete are refitted now that ``complete`` are."""
    return fitted is None or complete >= fitted + max(1, int(fitted * REFIT_GROWTH))


def writes_dag(space) -> bool:
    """Whether ``space`` can write a DAG cell: one of its mixer choices (a parameter named ``...mixer``) may be
    ``dag``."""
    return any(p.name.rsplit(".", 1)[-1] == "mixer" and "dag" in (getattr(p.domain, "choices", None) or ())
               for p in space.params)


DAG_FEATURES = ("live paths", *(f"live {op}" for op in DAG_OPS[1:]), *(f"most {op} on a path" for op in DAG_OPS[1:]),
                "most weighted ops on a path")


def dag_features(spec) -> list[float]:
    """The DAG cells' path statistics (:data:`DAG_FEATURES`), summed over the spec's blocks: live paths from input to
    output; per operation, the live edges (those on such a path) that use it and the most of it on one path; and the
    most operations with weights on one path (the cell's learned depth). The raw edge choices cannot tell a forest
    that a ``none`` edge cuts a whole branch off; these can. On NAS-Bench-201's accuracy, 100 training cells: a
    forest's Kendall tau on held-out cells rises from 0.55 to 0.71 with them (experiments/surrogate_nb201.py). Each
    stage counts once per cell it builds (its depth scaled by the spec's depth multiplier)."""
    total = [0.0] * len(DAG_FEATURES)
    for stage in spec.stages:
        if stage.mixer.type != "dag":
            continue
        options = stage.mixer.options
        edge_paths = dag_live_paths(options)
        paths = [[options[e] for e in path] for path in edge_paths]
        live = {e for path in edge_paths for e in path}
        row = [float(len(paths))]
        row += [float(sum(1 for e in live if options[e] == op)) for op in DAG_OPS[1:]]
        row += [float(max((p.count(op) for p in paths), default=0)) for op in DAG_OPS[1:]]
        row.append(float(max((sum(1 for o in p if o in DAG_WEIGHTED_OPS) for p in paths), default=0)))
        blocks = scaled_depth(stage.depth, spec.depth_multiplier)  # the cells the network has, as built
        total = [t + blocks * v for t, v in zip(total, row)]
    return total


def _one_hot(param, value: Any) -> list[float]:
    """A categorical choice as one indicator per option (all zero when inactive); any other choice as its number
    (0 when inactive)."""
    if param.domain.kind == "categorical":
        return [1.0 if value is not None and choice == value else 0.0 for choice in param.domain.choices]
    code = _encode(param, value)
    return [0.0 if value is None else code]


def _encode(param, value: Any) -> float:
    if value is None:
        return -1.0
    domain = param.domain
    if domain.kind == "categorical":
        for i, choice in enumerate(domain.choices):
            if choice == value:
                return float(i)
        return -1.0
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return -1.0
