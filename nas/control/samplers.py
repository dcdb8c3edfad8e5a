"""Optuna samplers for a run config: tpe, nsga2, random, gp, ``evolution`` (aging evolution over the grammar) and
``predictor`` (predictor-guided local search with screened candidates: :mod:`nas.control.predictor`).

Every sampler is seeded. A sampler sees the define-by-run parameters of :meth:`nas.grammar.Space.sample`: those a
relative sampler cannot model jointly (conditional on another choice) are sampled independently.

``evolution`` is regularized (aging) evolution (Real et al., 2019): the population is the ``population_size`` most
recent COMPLETE trials; a child is made by picking ``tournament_size`` of them at random, taking the best (for
several objectives: a random member of the sample's non-dominated set) and changing exactly one of its choices with
:meth:`nas.grammar.Space.mutate`. Until the population is full, trials are sampled at random. It is an Optuna
``BaseSampler``: ``before_trial`` decides the child, ``sample_independent`` replays the child's values (the
:class:`ReplaySampler` base, shared with ``predictor``).
"""
from __future__ import annotations

import random
import warnings
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.errors import ConfigError


def default_population(trials: int | None) -> int:
    """A population / startup size that leaves room for guided trials in a short run."""
    if trials is None:
        return 20
    return max(4, min(50, trials // 2))


def make_sampler(config, space, *, seed: int | None = None, input: tuple[tuple[int, ...], int] | None = None,
                 scorer=None) -> BaseSampler:
    """The sampler a run config names (``seed`` defaults to the config's). ``input``: the run's (input shape,
    number of classes), at which ``predictor`` counts a candidate's params and FLOPs (default: the space's
    reference input). ``scorer(spec) -> float``: the zero-cost score of ``predictor``'s warm-up (config
    ``zero_cost_warmup``; without a scorer there is no warm-up)."""
    name = config.sampler_name
    seed = config.seed if seed is None else seed
    population = config.population_size or default_population(config.trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return RandomSampler(seed=seed)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                              n_startup_trials=min(10, population), constant_liar=False)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
        if name == "gp":
            try:
                return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, population),
                                                 warn_independent_sampling=False)
            except ImportError as e:  # GPSampler needs torch and scipy
                raise ConfigError(f"sampler gp is not available: {e}", key="sampler") from None
        if name == "evolution":
            return EvolutionSampler(space, directions=config.directions, population_size=population,
                                    tournament_size=config.tournament_size or max(2, population // 4), seed=seed)
        if name == "predictor":
            from nas.control.predictor import PredictorSampler

            return PredictorSampler(space, objectives=config.objectives, directions=config.directions,
                                    limits=config.constraints.active(), input=input,
                                    candidates=config.candidates, fresh=config.fresh_candidates, seed=seed,
                                    startup=config.population_size or min(10, population),
                                    warmup=config.zero_cost_warmup, scorer=scorer, warmup_seed=config.seed)
    raise ConfigError(f"unknown sampler {name!r}", key="sampler")


class ReplaySampler(BaseSampler):
    """A sampler that decides a whole spec in ``before_trial`` (``self._children[trial_id]``: the spec's parameter
    values) and replays it through ``sample_independent``; a parameter it did not decide is sampled at random."""

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._random = RandomSampler(seed=seed)
        self._children: dict[int, dict[str, Any]] = {}

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict:
        return {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        values = self._children.get(trial._trial_id)
        if values is not None and param_name in values:
            value = values[param_name]
            try:
                if param_distribution._contains(param_distribution.to_internal_repr(value)):
                    return value
            except (ValueError, TypeError):
                pass
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self._children.pop(trial._trial_id, None)


class EvolutionSampler(ReplaySampler):
    """Aging evolution with tournament selection; a child changes exactly one choice of its parent."""

    PARENT_ATTR = "evolution_parent"

    def __init__(self, space, *, directions: list[str], population_size: int = 20, tournament_size: int = 5,
                 seed: int | None = None):
        if population_size < 2:
            raise ConfigError("population_size must be >= 2 for evolution", key="population_size")
        super().__init__(seed)
        self.space = space
        self.directions = list(directions)
        self.population_size = population_size
        self.tournament_size = max(1, min(tournament_size, population_size))

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs:  # an enqueued trial (a warm start, a re-run of a stale one)
            return
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < self.population_size:
            return
        population = sorted(complete, key=lambda t: t.number)[-self.population_size:]
        rng = random.Random(f"evolution:{self.seed}:{trial.number}")
        sample = rng.sample(population, self.tournament_size)
        parent = self._best(sample, rng)
        try:
            child = self.space.mutate(self.space.replay(parent.params), rng)
            values = self.space.assignment(child)
        except Exception:  # noqa: BLE001 - a parent that no longer replays: fall back to random sampling
            return
        self._children[trial._trial_id] = values
        study._storage.set_trial_user_attr(trial._trial_id, self.PARENT_ATTR, parent.number)

    def _best(self, sample: list[FrozenTrial], rng: random.Random) -> FrozenTrial:
        if len(self.directions) == 1:
            pick = max if self.directions[0] == "maximize" else min
            return pick(sample, key=lambda t: t.values[0])
        import numpy as np

        from nas.pareto import pareto_mask

        mask = pareto_mask(np.array([t.values for t in sample], dtype=float), self.directions)
        front = [t for t, keep in zip(sample, mask) if keep] or sample
        return rng.choice(front)
