"""The search engine: one trial at a time, Optuna ask/tell around the run's evaluator, for every backend.

One trial:

1. ``study.ask()``; the spec is sampled define-by-run (:class:`~nas.control.suggest.OptunaSuggest`), so only the
   parameters a choice activates exist in the trial.
2. **No repeats**: if a COMPLETE trial of this study has the same spec hash and budget, its values are told again
   (user attr ``reused_from``) and nothing is trained.
   **Confirmation** (``confirm_best``, one objective): when the leading architecture has fewer evaluations than asked,
   its parameters are enqueued first and that trial trains it again from another seed (user attrs ``repeat_of``,
   ``repeat``; :mod:`nas.control.confirm`); it is not a reuse.
3. **Constraints**: the space's own constraints (at its reference input) and the config's ``max_params`` /
   ``max_flops`` / ``max_latency_ms`` (at the dataset's input) are checked first, inside ``evaluate`` (its
   ``precheck``: params and FLOPs are counted by parts without building the network,
   :func:`nas.evaluate.costs.network_costs`; a ``max_latency_ms`` check builds the model then measured and trained,
   and the latency it measures is the objective). A violating spec is
   told **PRUNED** with ``status: infeasible``, the reason, and Optuna constraint values (``trial.set_constraint``:
   relative excess, so TPE ranks infeasible trials by how far off they are); it is never trained.
4. ``evaluate`` builds, measures, scores (zero-cost) and trains the candidate. With ``rungs``, validation accuracy is
   checked at each rung (a fraction of ``budget.epochs``; checked at the first validation at or after it, i.e.
   after a whole epoch): a trial below the ``1 - rung_keep`` quantile of the earlier trials at that rung (once
   ``rung_min_trials`` have reached it) is stopped and told PRUNED.
5. ``study.tell``: COMPLETE with the objective values in the config's order; a candidate whose status is not ok
   (diverged, oom, error, build failure) is told FAIL with ``status`` / ``reason`` in its user attrs.

User attrs of a trial: ``spec`` (JSON), ``spec_hash``, ``summary``, ``budget_key``, ``status``, ``reason``,
``objectives`` (every measured one), ``cost``, ``curve``, ``zero_cost``, ``training`` (with ``val_size``), ``wall_s``
and, where they apply, ``val_correct`` (which validation examples the last evaluation got right, packed bits:
:mod:`nas.significance`), ``reused_from``, ``rungs``, ``precheck``, ``retry_of``, ``stale``, ``worker`` (the process
that holds a running trial: :func:`owner`).

**Counting and resume.** A run's target is a number of *counted* trials: COMPLETE + PRUNED + FAIL, leaving out
FAIL trials marked ``stale``. A process that is killed leaves its trial RUNNING; the next ``nas resume`` (which
holds the run's lock, so no live process owns that trial) marks it FAIL + ``stale`` and enqueues its parameters
again (``retry_of``), so the count ends exact. Ctrl-C does the same at once.
"""
from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from nas.builder import lazy_model
from nas.control.confirm import KEPT_ON_RETRY, REPEAT, REPEAT_OF, Confirmations
from nas.control.config import RunConfig, load_config, locate, resolve_space_path
from nas.control.owners import OWNER_ATTR, owner, owner_alive
from nas.control.progress import Progress, Tally, front_report, resume_hint
from nas.control.rundir import RunDir
from nas.control.samplers import make_sampler, startup_trials
from nas.control.shared import Heartbeat, claim_lock, fail_stale, is_server, publish
from nas.control.states import in_use, stale
from nas.control.suggest import OptunaSuggest
from nas.control.warmstart import enqueue, resolve, zero_cost_warm_up
from nas.errors import BudgetError, BuildError, ConfigError, DataError, NasError, RunError, SpecError
from nas.evaluate import latency_table
from nas.evaluate.costs import constraint_costs, violations
from nas.evaluate.evaluate import EvalConfig, check_input_kind, load_data, measure_latency_for, proxy_batch
from nas.evaluate.train import step_progress
from nas.evaluate.evaluators import EVALUATORS, check_reports
from nas.evaluate.zero_cost import PROXIES
from nas.grammar import COST_OF, Space
from nas.io import now, read_text
from nas.significance import wilson_interval

COPIED_ATTRS = ("status", "reason", "objectives", "cost", "curve", "zero_cost", "training", "wall_s", "rungs",
                "input_shape", "val_correct")
LATENCY_RETIMES = 2  # more timings of a network over max_latency_ms before it is declared infeasible
WAIT = "wait"  # Engine.claim_next: the target is taken, but not all of it is finished
@dataclass
class Prepared:
    config: RunConfig
    config_file: Path | None
    space: Any
    space_text: str
    space_source: str
    overrides: Mapping[str, Any] | None = None
    warm: list = field(default_factory=list)  # nas.control.warmstart.WarmStart: trials a new run enqueues first


def prepare(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *,
            space_file: Path | None = None, warm: bool = True) -> Prepared:
    """Load the config and its space (``space_file`` replaces the config's space: a run's own copy). ``warm``:
    also resolve the config's ``warm_start`` entries (:func:`add_warm_starts`; never for a run's own copy)."""
    config, file = load_config(source, overrides)
    try:
        path = space_file or resolve_space_path(config.space, file)
    except ConfigError as e:  # name the line of `space:`, or the override that set it
        raise locate(e, file, overrides) from None
    text = read_text(path, error=ConfigError, what="space file", key="space")
    space = Space.from_text(text, file=str(path))
    prepared = Prepared(config, file, space, text, str(path), dict(overrides or {}))
    if warm and space_file is None:  # a run's own copy: a resume, which enqueues nothing
        add_warm_starts(prepared)
    return prepared


def add_warm_starts(prepared: Prepared) -> None:
    """Resolve the config's ``warm_start`` entries into ``prepared.warm`` (the trials a NEW run enqueues first).
    Only a new run needs them: ``search --resume`` of an existing run skips this, so a warm-start file deleted since
    the run began cannot stop its resume. A bad entry is a ConfigError naming its config line."""
    config, file = prepared.config, prepared.config_file
    if not config.warm_start:
        return

    try:
        prepared.warm = resolve(config.warm_start, prepared.space, Path(prepared.space_source), file)
    except ConfigError as e:
        raise locate(e, file, prepared.overrides) from None


def copied_attrs(previous: dict[str, Any]) -> dict[str, Any]:
    """The user attrs a reused trial copies from the trial it reuses: the result's, and the evaluator's own
    (``extra_attrs`` names them, e.g. ``nb201_index``)."""
    keys = [*COPIED_ATTRS, *(previous.get("extra_attrs") or []), "extra_attrs"]
    return {k: previous[k] for k in keys if k in previous}


def clean_attrs(value: Any) -> Any:
    """JSON-safe copy (non-finite floats -> None, tuples -> lists)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean_attrs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_attrs(v) for v in value]
    return value


@dataclass
class Claimed:
    """A trial asked for this process: its spec (None: sampling failed, told FAIL) and its heartbeat (shared)."""

    trial: Any
    spec: Any
    beat: Any = None


class Engine:
    """Everything one process needs to run trials of one run: data, eval config, space, study."""

    def __init__(self, prepared: Prepared, *, quiet: bool = False):
        try:
            self._setup(prepared, quiet)
        except BudgetError as e:
            e.key = f"budget.{e.key}" if e.key else "budget"
            raise locate(e, prepared.config_file, prepared.overrides) from None
        except (ConfigError, DataError) as e:  # name the config line of the key at fault
            raise locate(e, prepared.config_file, prepared.overrides) from None

    def _setup(self, prepared: Prepared, quiet: bool) -> None:
        self.config = prepared.config
        self.space = prepared.space
        self.quiet = quiet
        self.eval_config = EvalConfig.from_options(**self.config.eval_options())
        self.evaluator = EVALUATORS.get(self.config.evaluator)  # the run's evaluator (default: proxy training)
        check_reports(self.config.evaluator, self.config.objectives)
        for name in self.eval_config.zero_cost:
            PROXIES.get(name)  # an unknown proxy: one line naming the known ones (key zero_cost)
        self.device = self.eval_config.resolved_device()
        self.eval_config.check_latency_device()
        self.proxy_data = None  # the images zero_cost_warmup scores candidates on (the training data, if any)
        self.warmup_input: tuple[int, ...] | None = None  # the input it scores at (default: the run's input)
        table_input = getattr(self.evaluator, "table_input", None)
        if table_input is not None:  # a tabular evaluator (nb201): looked up, not trained; no data set to load
            self.data = None
            shape, classes = table_input(self.config.dataset)
            getattr(self.evaluator, "check_space", lambda space: None)(self.space)
            self.input_shape, self.num_classes = tuple(shape), int(classes)
            if self.config.zero_cost_warmup_n and self.config.warmup_proxy_name == "naswot":  # scored on the data
                self.proxy_data = load_data(self.eval_config, self.device)  # set's images, at the budget's resolution
                self.warmup_input = tuple(self.eval_config.budget.input_shape(self.proxy_data.input_shape))
        else:
            self.data = load_data(self.eval_config, self.device)
            check_input_kind(self.data, self.space.input, self.config.dataset, what=f"space {self.space.name!r}",
                             key="dataset")
            budget = self.eval_config.budget
            per_epoch = budget.examples_per_epoch(self.data.size("train"))
            if per_epoch < 2:  # batches of one break BatchNorm
                raise ConfigError(f"leaves {per_epoch} training example(s) of {self.data.size('train')} per epoch; "
                                  "at least 2 are needed", key="budget.data_fraction")
            self.input_shape = tuple(budget.input_shape(self.data.input_shape))
            self.num_classes = int(self.data.num_classes)
            self.proxy_data = self.data
        if self.eval_config.latency_source == "table":  # a missing or mismatched table: said before any training
            latency_table.for_run(self.eval_config.latency_table, self.space, self.input_shape)
        self.budget_key = self.config.budget_key()
        self.study = None
        self.run_dir: RunDir | None = None
        self.shared = self.recount = False
        self.heartbeat_s = 1
        self.claim = None  # the run's claim lock (nas.control.shared.claim_lock), opened on first use
        self.warm = list(prepared.warm)

    # -- study -----------------------------------------------------------------------------------------------------
    def attach(self, run: RunDir, *, create: bool) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.run_dir = run
        self.storage = run.storage(create=create)
        self.shared = is_server(run.storage_url)  # other hosts may take trials: heartbeats, the server's claim lock
        self.recount = self.shared  # count in the storage before each ask (worker processes set it too)
        self.heartbeat_s = run.heartbeat_s
        if create:
            self.study = optuna.create_study(study_name=run.study_name, storage=self.storage,
                                             directions=self.config.directions, load_if_exists=False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.study.set_metric_names(list(self.config.objectives))
            self.study.set_user_attr("objectives", list(self.config.objectives))
            self.study.set_user_attr("run_dir", str(run.path.resolve()))
            if self.shared:  # what `nas worker` on another host reads
                publish(self.study, config_text=run.config_text(), space_text=run.space_text(),
                        space_source=run.meta.get("space_source", ""), fingerprint=run.meta.get("fingerprint", {}),
                        heartbeat_s=self.heartbeat_s, backend=run.meta.get("backend", "optuna"))
        else:
            try:
                self.study = optuna.load_study(study_name=run.study_name, storage=self.storage)
            except KeyError:
                raise RunError(f"study {run.study_name!r} is not in the run's storage {run.storage_url}",
                               file=str(run.path)) from None
        self.study.sampler = self.new_sampler()  # a new study: the config's seed (before any trial is enqueued)
        if create and self.warm:
            enqueue(self.study, self.warm)  # the search header names them
        if create and self.config.zero_cost_warmup_n and self.config.sampler_name != "predictor":
            # the predictor ranks its own startup candidates; another sampler's first trials are enqueued
            enqueue(self.study, zero_cost_warm_up(self.space, self.warmup_scorer(), self.config.zero_cost_warmup_n,
                                                  startup_trials(self.config), seed=self.config.seed))

    def new_sampler(self, seed: int | None = None):
        """The run's sampler, counting candidates at this run's input. The default seed is the config's for a new
        study and otherwise depends on the trials stored: a resumed run must not replay the sampler's random stream
        from the start (that repeats old trials)."""
        if seed is None:
            n = len(self.study.get_trials(deepcopy=False))
            seed = self.config.seed if n == 0 else (self.config.seed * 1_000_003 + n) % (2**31 - 1)
        scorer = self.warmup_scorer() if self.config.zero_cost_warmup_n else None
        latency = None
        if self.eval_config.latency_source == "table":
            table = latency_table.cached(self.eval_config.latency_table)
            latency = lambda spec: table.predict(spec, fill=True)  # noqa: E731 - the table's, at the run's input
        return make_sampler(self.config, self.space, seed=seed, input=(self.input_shape, self.num_classes),
                            count=constraint_costs, scorer=scorer, latency=latency)

    def warmup_scorer(self):
        """``proxy(spec)`` for ``zero_cost_warmup``: the zero-cost score (``warmup_proxy``) of a spec built at this
        run's input with the run's seed. ``naswot`` scores the fixed proxy batch the evaluator scores trials on: the
        same number as the trial's own ``naswot`` where the run computes it; a tabular run, which trains nothing,
        loads the data set's images for it and scores at its budget's resolution (``budget.resolution: 0.5``: a
        quarter of the pixels). ``synflow`` needs no data: it scores an all-ones input of the run's shape. The
        global torch RNG is left as it was."""
        import torch

        shape = self.warmup_input or self.input_shape
        seed, classes = self.eval_config.seed, self.num_classes
        proxy = self.config.warmup_proxy_name
        if proxy == "synflow":
            batch = (torch.ones(1, *shape), torch.zeros(1, dtype=torch.long))
        else:
            batch = proxy_batch(self.proxy_data, self.eval_config, shape)
        score = PROXIES.get(proxy)

        def scorer(spec) -> float:
            with torch.random.fork_rng(devices=[]):
                model = lazy_model(spec, shape, classes, seed=seed)()  # the initial weights the trial trains
            return score(model, batch, seed=seed)

        scorer.__name__ = proxy  # the warm-up trials are labelled by it
        return scorer

    def recover_stale(self) -> list[int]:
        """Mark trials left RUNNING (by a process that died) FAIL + stale and enqueue their parameters again. On a
        shared storage only this host's trials are judged here, by their process; another host's trial is failed
        when its heartbeat has stopped for the grace period (:mod:`nas.control.shared`)."""
        from optuna.trial import TrialState

        stale = []
        if self.shared:
            fail_stale(self.study)  # trials of stopped processes anywhere, once their heartbeat is over
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if owner_alive(t.user_attrs.get(OWNER_ATTR), other_hosts=self.shared):  # a live worker's trial
                continue
            self.storage.set_trial_user_attr(t._trial_id, "stale", True)
            self.storage.set_trial_user_attr(t._trial_id, "status", "stale")
            self.storage.set_trial_user_attr(t._trial_id, "reason", "left RUNNING by a stopped process; re-enqueued")
            self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            kept = {k: t.user_attrs[k] for k in KEPT_ON_RETRY if k in t.user_attrs}  # a repeat stays a repeat
            self.study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number, **kept})
            stale.append(t.number)
        return stale

    def load_tally(self, trials: list | None = None) -> Tally:
        tally = Tally()
        self.done: dict[tuple[str, str], Any] = {}
        self.rung_peers: list[list[float]] = [[] for _ in (self.config.rungs or [])]
        trials_read = self.study.get_trials(deepcopy=False) if trials is None else trials
        for t in trials_read:
            attrs = t.user_attrs
            state = t.state.name
            if state == "COMPLETE":
                tally.complete += 1
                if "reused_from" in attrs:
                    tally.reused += 1
                else:
                    tally.values.append(list(t.values))
                if "spec_hash" in attrs and "reused_from" not in attrs:
                    self.done.setdefault((attrs["spec_hash"], attrs.get("budget_key", "")), t)
            elif state == "PRUNED":
                tally.pruned += 1
                tally.infeasible += attrs.get("status") == "infeasible"
            elif state == "FAIL" and not stale(t):
                tally.failed += 1
            if "reused_from" not in attrs and attrs.get("budget_key") == self.budget_key:
                for i, point in (attrs.get("rungs") or {}).items():
                    if int(i) < len(self.rung_peers) and point.get("accuracy") is not None:
                        self.rung_peers[int(i)].append(point["accuracy"])
        self.confirm = Confirmations.from_trials(trials_read, self.config.confirm_best_n, self.config.confirm_share,
                                                 self.config.directions[0])
        return tally

    def data_text(self) -> str:
        """For a new search's first line: the split sizes, and with an accuracy objective what the validation size
        lets it tell apart (the Wilson 95% interval at an accuracy of 0.9): a small split makes close verdicts noise."""
        if self.data is None:
            return f"; NAS-Bench-201 table of {self.config.dataset} (looked up, not trained)"
        train, val = self.data.size("train"), self.data.size("val")
        text = f"; data: {train} training / {val} validation examples"
        if "accuracy" in self.config.objectives and val:
            low, high = wilson_interval(0.9, val)
            text += f" (an accuracy of 0.90 is known to {low:.3f}-{high:.3f}, 95%)"
        return text

    # -- the loop ----------------------------------------------------------------------------------------------------
    def run(self, *, trials: int | None, time_budget_s: float | None, header: str) -> None:
        self.tally = self.load_tally()
        self.progress = Progress(objectives=self.config.objectives, directions=self.config.directions,
                                 target=trials, time_budget_s=time_budget_s, quiet=self.quiet,
                                 log=self.run_dir.log, tally=self.tally)
        start = time.perf_counter()
        self.progress.begin(header)
        reason = "done"
        import torch

        threads = torch.get_num_threads()
        if self.config.train_threads:  # also for the zero-cost proxies: more threads than free cores thrash
            torch.set_num_threads(self.config.train_threads)
        try:
            while True:
                if time_budget_s is not None and time.perf_counter() - start >= time_budget_s:
                    reason = "time budget reached"
                    break
                claimed = self.claim_next(trials)
                if claimed is None:
                    break
                if claimed is WAIT:  # the target is taken, but another process's trial may yet go stale
                    time.sleep(self.poll_s)
                    continue
                self.one_trial(claimed)
        except KeyboardInterrupt:
            reason = "interrupted"
            raise
        finally:
            torch.set_num_threads(threads)
            hint = resume_hint(self.run_dir.path) if reason == "interrupted" else ""
            self.progress.end(f"{now()} stop ({reason}): {self.tally.counted} trials counted, "
                              f"{self.tally.complete} complete, front {self.progress.front_size()}{hint}")
        self.progress.print_block(front_report(self.study, self.config.objectives, self.config.directions,
                                                 self.config.rank_with))

    @property
    def poll_s(self) -> float:
        """How often a process waiting on others' trials looks again."""
        return float(self.heartbeat_s) if self.shared else 1.0

    def claim_next(self, target: int | None):
        """The next trial to run, as a :class:`Claimed` (asked, owned, its heartbeat beating, its spec sampled), or
        None when the target is reached, or :data:`WAIT` when the trials that would reach it are running elsewhere
        (one may yet go stale). With ``recount`` (other processes take trials of this run) this happens under the
        run's claim lock, counting in the storage: two processes never take the last slot, and a spec sampled here
        is visible to every later claim (:meth:`running_peer`)."""
        if not self.recount:
            if target is not None and self.tally.counted >= target:
                return None
            return self._ask()
        if self.claim is None:
            self.claim = claim_lock(self.run_dir)
        with self.claim():
            if self.shared:
                fail_stale(self.study)
            trials = self.study.get_trials(deepcopy=False)
            self.refresh_tally(trials)
            if target is not None and in_use(trials) >= target:
                return WAIT if self.shared and self.tally.counted < target else None
            return self._ask()

    def refresh_tally(self, trials: list | None = None) -> None:
        """The tally, the no-repeat table and the rung peers read again from the storage: what other processes
        finished since."""
        self.tally = self.load_tally(trials)
        self.progress.tally = self.tally

    def _ask(self) -> "Claimed":
        repeat = self.confirm.next(self.tally.counted, self.config.confirm_start)  # the leader again, or None
        if repeat is not None:
            group, k = repeat
            self.study.enqueue_trial(group.params, user_attrs={REPEAT_OF: group.number, REPEAT: k})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Heartbeat ... supposed to be used with Study.optimize": beaten below
            trial = self.study.ask()
        try:
            trial.set_user_attr(OWNER_ATTR, owner())
            spec = self.sample(trial)
        except BaseException as e:  # Ctrl-C while sampling: nothing trained, nothing to enqueue again
            self._abandon(trial, e, requeue=False)
            raise
        beat = Heartbeat(self.storage, self.study.study_name, trial.number, self.heartbeat_s) if self.shared else None
        return Claimed(trial, spec, beat)

    def sample(self, trial):
        """Sample the spec of ``trial`` (recorded in its user attrs); None when sampling failed (told FAIL)."""
        try:
            spec = self.space.sample(OptunaSuggest(trial))
        except NasError as e:
            self._tell(trial, "FAIL", status="error", reason=e.one_line())
            self.tally.failed += 1
            return None
        for key, value in (("spec", spec.to_json(indent=None)), ("spec_hash", spec.hash()),
                           ("summary", spec.summary()), ("budget_key", self.budget_key)):
            trial.set_user_attr(key, value)
        return spec

    def one_trial(self, claimed: "Claimed | None" = None) -> None:
        claimed = claimed or self._ask()
        trial = claimed.trial
        t0 = time.perf_counter()
        try:
            if claimed.spec is None:
                state, values, note = "failed", None, trial.user_attrs.get("reason", "")
            else:
                state, values, note = self._trial(trial, claimed.spec)
        except BaseException as e:
            self._abandon(trial, e)
            raise
        finally:
            if claimed.beat is not None:
                claimed.beat.stop()
        summary = trial.user_attrs.get("summary", "")
        self.progress.finished(trial.number, state, values, time.perf_counter() - t0, summary, note)

    def _tell(self, trial, state: str, values: list[float] | None = None, **attrs) -> None:
        from optuna.trial import TrialState

        try:
            for key, value in attrs.items():
                trial.set_user_attr(key, clean_attrs(value))
            self.study.tell(trial, values=values, state=getattr(TrialState, state))
        except Exception:
            if not self.shared or not self.taken_as_stale(trial.number):
                raise
            self.run_dir.log(f"{now()} trial #{trial.number} was taken as stale by another process (no heartbeat for "
                             "the grace period); its result is dropped, the retry counts")

    def taken_as_stale(self, number: int) -> bool:
        """Whether trial ``number`` was failed by another process since this one asked for it (heartbeat stale)."""
        return any(t.number == number and t.state.name == "FAIL" for t in self.study.get_trials(deepcopy=False))

    def _trial(self, trial, spec) -> tuple[str, list[float] | None, str]:
        spec_hash = spec.hash()
        self.progress.running(trial.number, spec.summary())
        group = self.confirm.group(trial.user_attrs.get(REPEAT_OF))
        if group is not None and group.spec_hash == spec_hash:  # the leader again: trained from another seed
            return self._evaluate(trial, spec, spec_hash, repeat=(group, int(trial.user_attrs.get(REPEAT, 1))))
        if self.recount and (spec_hash, self.budget_key) not in self.done:
            self.wait_for_peer(trial.number, spec_hash)  # the same spec is training elsewhere: take its result
        previous = self.done.get((spec_hash, self.budget_key))
        if previous is not None:
            copied = copied_attrs(previous.user_attrs)
            values = list(previous.values)
            self._tell(trial, "COMPLETE", values, reused_from=previous.number, **copied)
            self.tally.complete += 1
            self.tally.reused += 1  # its values are already in the tally (front sizes count distinct specs)
            return "reused", values, f"= #{previous.number}"
        return self._evaluate(trial, spec, spec_hash)

    def _evaluate(self, trial, spec, spec_hash: str,
                  repeat: tuple | None = None) -> tuple[str, list[float] | None, str]:
        """Evaluate ``spec`` for ``trial`` and tell the outcome; ``repeat``: (the architecture's group, k) when the
        trial is the k-th repeat of a leader (:mod:`nas.control.confirm`)."""
        eval_config = self.eval_config if repeat is None else dataclasses.replace(self.eval_config, repeat=repeat[1])
        rungs: dict[str, dict] = {}
        try:  # the constraint check runs first inside evaluate, on the model it then evaluates
            with step_progress(lambda step, total, loss: self.progress.step(trial.number, step, total, loss)):
                result = self.evaluator(spec, eval_config, data=self.data,
                                        callback=self._rung_callback(trial, rungs), precheck=self.check_constraints)
        except (BuildError, SpecError) as e:
            self._tell(trial, "FAIL", status="error", reason=e.one_line())
            self.tally.failed += 1
            return "failed", None, e.one_line()
        state, values, attrs, excess = outcome(result, self.config.objectives, rungs)
        for key, amount in excess.items():
            trial.set_constraint(key, amount)
        if state == "PRUNED":
            self._tell(trial, "PRUNED", **attrs)
            self.tally.pruned += 1
            if attrs["status"] == "infeasible":
                self.tally.infeasible += 1
                return "pruned", None, "infeasible: " + (attrs["reason"] or "")
            return "pruned", None, attrs["reason"] or ""
        if state == "FAIL":
            self._tell(trial, "FAIL", **attrs)
            self.tally.failed += 1
            return "failed", None, f"{attrs['status']}: {attrs['reason']}"
        self._tell(trial, "COMPLETE", values, **attrs)
        self.tally.complete += 1
        self.tally.values.append(values)
        if repeat is not None:
            group, k = repeat
            self.confirm.repeated(group.number, values[0])
            return "complete", values, (f"evaluation {k + 1} of #{group.number}: mean {self.config.objectives[0]} "
                                        f"{group.mean:.4g} over {len(group.values)}")
        self.done.setdefault((spec_hash, self.budget_key), _Frozen(trial.number, values, clean_attrs(attrs)))
        self.confirm.first(trial.number, trial.params, spec_hash, values[0])
        return "complete", values, ""

    def running_peer(self, number: int, spec_hash: str):
        """Another RUNNING trial of this study with the same spec and budget (sampled before this one), or None."""
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            attrs = t.user_attrs
            same = attrs.get("spec_hash") == spec_hash and attrs.get("budget_key") == self.budget_key
            if t.number != number and same:
                return t
        return None

    def wait_for_peer(self, number: int, spec_hash: str) -> None:
        """While another process trains the same spec, wait for it (it was claimed first), then take its result into
        the no-repeat table: a spec is trained once however many processes sample it. A peer that fails or whose
        process stops (stale, on a shared storage) leaves nothing, and this trial trains the spec itself."""
        peer = self.running_peer(number, spec_hash)
        if peer is None:
            return
        self.run_dir.log(f"{now()} trial #{number}: the same architecture is training as #{peer.number}; waiting")
        while peer is not None:
            time.sleep(self.poll_s)
            if self.shared:
                fail_stale(self.study)
            peer = self.running_peer(number, spec_hash)
        self.refresh_tally()  # the peer's result (if it completed) is in the no-repeat table now

    def _rung_callback(self, trial, rungs: dict):
        if not self.config.rungs:
            return None
        epochs = self.config.budget.epochs
        milestones = [r * epochs for r in self.config.rungs]
        keep, minimum = self.config.rung_keep, self.config.rung_min_trials
        state = {"next": 0}

        def callback(stats) -> bool:
            import numpy as np

            stop = False
            while state["next"] < len(milestones) and stats.epoch >= milestones[state["next"]] - 1e-9:
                i = state["next"]
                state["next"] += 1
                peers = self.rung_peers[i]
                acc = float(stats.val_accuracy)
                threshold = float(np.quantile(peers, 1 - keep)) if len(peers) >= minimum else None
                rungs[str(i)] = {"epoch": stats.epoch, "accuracy": acc, "threshold": threshold}
                peers.append(acc)
                if threshold is not None and acc < threshold and stats.epoch < epochs - 1e-9:
                    stop = True
                    break
            return stop

        return callback

    def check_constraints(self, spec, get_model=None) -> tuple[list[str], dict[str, float], dict[str, Any]]:
        """(violations, relative excess per constraint, what was measured at the evaluation input) before any
        training; :func:`nas.evaluate.evaluate.evaluate` calls it first (its ``precheck``).

        ``get_model()`` returns the model at the evaluation (dataset) input, built on first call; it is built here
        only for a latency limit (params and FLOPs are counted without a build). The space's constraints are
        checked at its reference input, the config's at the dataset's input. When both inputs are the same, one
        count serves both checks and the evaluation; params and FLOPs are cached per spec and per part
        (:meth:`nas.grammar.Space.constraint_costs`), so a spec sampled again is not counted again."""
        if get_model is None:
            get_model = lazy_model(spec, self.input_shape, self.num_classes)

        problems: list[str] = []
        amounts: dict[str, float] = {}
        measured: dict[str, Any] = {}
        limits = self.config.constraints.active()
        # counted: what the run's limits check, and an objective of the run (a tabular evaluator counts nothing)
        wanted = [name for name, key in (("params", "max_params"), ("flops", "max_flops"))
                  if key in limits or name in self.config.objectives]
        shape = tuple(self.input_shape)
        ref_shape, ref_classes = tuple(self.space.reference_input[0]), int(self.space.reference_input[1])
        same_input = (shape, self.num_classes) == (ref_shape, ref_classes)
        costs: dict[str, Any] = {}
        if self.space.constraints:
            space_wanted = [COST_OF[k] for k in self.space.constraints]
            # at the evaluation input both come from one count: evaluate takes them both
            costs = constraint_costs(
                self.space, spec, ref_shape, ref_classes, what=("params", "flops") if same_input else space_wanted)
            for text in violations(self.space, spec, ref_shape, ref_classes, costs=costs):
                problems.append(f"space constraint: {text}")
                amounts["space"] = 1.0
            if same_input:
                measured.update(costs)  # measured at the evaluation input: evaluate does not count them again
        if wanted and not (same_input and self.space.constraints):
            costs = constraint_costs(self.space, spec, shape, self.num_classes, what=wanted)
        measured.update({name: costs[name] for name in wanted})
        if not limits:
            return problems, amounts, measured
        checks = [(name, f"max_{name}", lambda name=name: costs[name]) for name in wanted if f"max_{name}" in limits]
        if "max_latency_ms" in limits:
            def latency_ms() -> float:
                """Timed again (up to LATENCY_RETIMES times) while over the cap, keeping the fastest timing: a
                machine busy for a moment does not make a network infeasible; one over the cap every time is. With
                a latency table the spec's prediction: nothing built or timed, and nothing to time again."""
                model = None if self.eval_config.latency_source == "table" else get_model()
                stats = measure_latency_for(model, self.input_shape, self.eval_config, spec)
                timings = [stats.median_ms]
                while (stats.source == "measured" and stats.median_ms > limits["max_latency_ms"]
                       and len(timings) <= LATENCY_RETIMES):
                    again = measure_latency_for(model, self.input_shape, self.eval_config, spec)
                    timings.append(again.median_ms)
                    stats = min(stats, again, key=lambda s: s.median_ms)
                measured["latency"] = stats.to_dict()  # evaluate's latency objective: not measured twice
                if len(timings) > 1:
                    measured["latency"]["timings_ms"] = timings
                return stats.median_ms

            checks.append(("latency_ms", "max_latency_ms", latency_ms))
        for name, key, get in checks:
            value = get()
            measured[name] = value
            limit = limits[key]
            if value > limit:
                problems.append(f"{name} {value:,.4g} > {key} {limit:,.4g}")
                amounts[key] = value / limit - 1.0
        return problems, amounts, measured

    def _abandon(self, trial, error: BaseException, *, requeue: bool = True) -> None:
        """A trial that an exception (Ctrl-C, a bad config) cut short: FAIL + stale, parameters enqueued again
        (``requeue``; not for a trial cut short while its spec was being sampled)."""
        try:
            why = "interrupted" if isinstance(error, KeyboardInterrupt) else f"{type(error).__name__}: {error}"
            again = "; re-enqueued" if requeue else ""
            self._tell(trial, "FAIL", stale=True, status="stale", reason=f"{why}{again}"[:500])
            if requeue:
                self.study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
            self.run_dir.log(f"{now()} trial #{trial.number} abandoned ({why}){again}")
        except Exception:  # noqa: BLE001 - the original error matters more
            pass


def outcome(result, objectives: list[str], rungs: dict | None = None
            ) -> tuple[str, list[float] | None, dict[str, Any], dict[str, float]]:
    """What a trial records for an :func:`~nas.evaluate.evaluate.evaluate` result, in both backends: (Optuna state
    COMPLETE / PRUNED / FAIL, objective values, user attrs, relative excess per violated constraint)."""
    if result.status == "infeasible":
        return "PRUNED", None, {"status": "infeasible", "reason": result.reason,
                                "precheck": result.precheck}, dict(result.constraint_excess)
    attrs = {"status": result.status, "reason": result.reason, "objectives": result.objectives,
             "cost": result.cost, "curve": result.curve, "zero_cost": result.zero_cost,
             "training": result.training, "wall_s": result.wall_s, "input_shape": list(result.input_shape)}
    if result.val_correct:
        attrs["val_correct"] = result.val_correct
    if rungs:
        attrs["rungs"] = rungs
    if result.precheck:
        attrs["precheck"] = result.precheck
    if result.status == "pruned":
        return "PRUNED", None, attrs, {}
    values = [result.objectives.get(o) for o in objectives]
    if result.status == "ok" and not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        attrs["status"], attrs["reason"] = "error", f"non-finite objective values {values}"
    extra = getattr(result, "attrs", None) or {}
    if extra:  # the evaluator's own attributes, named so that a reuse copies them too
        attrs.update(extra, extra_attrs=sorted(extra))
    if attrs["status"] != "ok":
        return "FAIL", None, attrs, {}
    return "COMPLETE", [float(v) for v in values], attrs, {}


@dataclass
class _Frozen:
    """The part of a finished trial the no-repeat table needs (saves re-reading the storage)."""

    number: int
    values: list[float]
    user_attrs: dict[str, Any]
