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
from typing import Callable

import optuna
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.control.predictor import PredictorSampler
from nas.control.replay import ReplaySampler
from nas.errors import ConfigError
from nas.pareto import pareto_mask
from nas.registry import Registry


def default_population(trials: int | None) -> int:
    """A population / startup size that leaves room for guided trials in a short run."""
    if trials is None:
        return 20
    return max(4, min(50, trials // 2))


# A factory: (config, space, *, seed, population, input, scorer) -> an Optuna sampler. ``population`` is the
# startup / population size the run's trial count allows (:func:`default_population` unless the config sets it).
SamplerFactory = Callable[..., BaseSampler]
SAMPLERS: Registry[SamplerFactory] = Registry("sampler", error=ConfigError, key="sampler")


def make_sampler(config, space, *, seed: int | None = None, input: tuple[tuple[int, ...], int] | None = None,
                 scorer=None, count=None) -> BaseSampler:
    """The sampler a run config names (``seed`` defaults to the config's). ``input``: the run's (input shape,
    number of classes), at which ``predictor`` counts a candidate's params and FLOPs (default: the space's
    reference input). ``scorer(spec) -> float``: the zero-cost score of ``predictor``'s warm-up (config
    ``zero_cost_warmup``; without a scorer there is no warm-up). ``count``: how ``predictor`` counts a candidate's
    params and FLOPs (:func:`nas.evaluate.costs.constraint_costs`; the engine passes it)."""
    factory = SAMPLERS.get(config.sampler_name)
    seed = config.seed if seed is None else seed
    population = config.population_size or default_population(config.trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return factory(config, space, seed=seed, population=population, input=input, scorer=scorer, count=count)


@SAMPLERS.register("tpe")
def tpe(config, space, *, seed, population, **_) -> BaseSampler:
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=min(10, population),
                                      constant_liar=False)


@SAMPLERS.register("nsga2")
def nsga2(config, space, *, seed, population, **_) -> BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


@SAMPLERS.register("random")
def random_sampler(config, space, *, seed, **_) -> BaseSampler:
    return RandomSampler(seed=seed)


@SAMPLERS.register("gp")
def gp(config, space, *, seed, population, **_) -> BaseSampler:
    try:
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, population),
                                         warn_independent_sampling=False)
    except ImportError as e:  # GPSampler needs torch and scipy
        raise ConfigError(f"sampler gp is not available: {e}", key="sampler") from None


@SAMPLERS.register("evolution")
def evolution(config, space, *, seed, population, **_) -> BaseSampler:
    return EvolutionSampler(space, directions=config.directions, population_size=population,
                            tournament_size=config.tournament_size or max(2, population // 4), seed=seed)


@SAMPLERS.register("predictor")
def predictor(config, space, *, seed, population, input=None, scorer=None, count=None) -> BaseSampler:
    return PredictorSampler(space, objectives=config.objectives, directions=config.directions,
                            limits=config.constraints.active(), input=input, candidates=config.candidates,
                            fresh=config.fresh_candidates, seed=seed,
                            startup=config.population_size or min(10, population),
                            warmup=config.zero_cost_warmup, scorer=scorer, warmup_seed=config.seed, count=count)


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

        mask = pareto_mask(np.array([t.values for t in sample], dtype=float), self.directions)
        front = [t for t, keep in zip(sample, mask) if keep] or sample
        return rng.choice(front)
