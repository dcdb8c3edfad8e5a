"""The samplers registry: the Optuna sampler a run config names. Built in: tpe, nsga2, random, gp, ``evolution``
(aging evolution over the grammar: :mod:`nas.control.evolution`) and ``predictor`` (predictor-guided local search with
screened candidates: :mod:`nas.control.predictor`). This module imports neither optuna nor the samplers it names
until a sampler is made, so that a run config is validated against the registry without them.

Every sampler is seeded. A sampler sees the define-by-run parameters of :meth:`nas.grammar.Space.sample`: those a
relative sampler cannot model jointly (conditional on another choice) are sampled independently.

"""
from __future__ import annotations

import warnings
from typing import Any, Callable

from nas.errors import ConfigError
from nas.registry import Registry


def default_population(trials: int | None) -> int:
    """A population / startup size that leaves room for guided trials in a short run."""
    if trials is None:
        return 20
    return max(4, min(50, trials // 2))


def startup_trials(config) -> int:
    """How many first trials the run's sampler draws before it learns from results: NSGA-II's and evolution's first
    population, the random startup of TPE and GP (at most 10), the predictor's (``population_size``, else at most
    10); random search: as TPE. ``zero_cost_warmup`` replaces these trials."""
    population = config.population_size or default_population(config.trials)
    if config.sampler_name in ("nsga2", "evolution"):
        return population
    if config.sampler_name == "predictor":
        return config.population_size or min(10, population)
    return min(10, population)


# A factory: (config, space, *, seed, population, input, scorer) -> an Optuna sampler. ``population`` is the
# startup / population size the run's trial count allows (:func:`default_population` unless the config sets it).
SamplerFactory = Callable[..., Any]  # -> optuna.samplers.BaseSampler
SAMPLERS: Registry[SamplerFactory] = Registry("sampler", error=ConfigError, key="sampler")


def make_sampler(config, space, *, seed: int | None = None, input: tuple[tuple[int, ...], int] | None = None,
                 scorer=None, count=None, latency=None):
    """The sampler a run config names (``seed`` defaults to the config's). ``input``: the run's (input shape,
    number of classes), at which ``predictor`` counts a candidate's params and FLOPs (default: the space's
    reference input). ``scorer(spec) -> float``: the zero-cost score of ``predictor``'s warm-up (config
    ``zero_cost_warmup``; without a scorer there is no warm-up). ``count``: how ``predictor`` counts a candidate's
    params and FLOPs (:func:`nas.evaluate.costs.constraint_costs`; the engine passes it). ``latency(spec) -> ms``:
    a candidate's latency from the run's latency table, which ``predictor`` then screens and ranks on as on its
    counts (``max_latency_ms`` never costs a trial)."""
    import optuna

    factory = SAMPLERS.get(config.sampler_name)
    seed = config.seed if seed is None else seed
    population = config.population_size or default_population(config.trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return factory(config, space, seed=seed, population=population, input=input, scorer=scorer, count=count,
                       latency=latency)


@SAMPLERS.register("tpe")
def tpe(config, space, *, seed, population, **_):
    import optuna

    from nas.control.novelty import NoveltySampler  # heavy: optuna

    tpe = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=min(10, population),
                                     constant_liar=False)
    return NoveltySampler(tpe, space, seed=seed)


@SAMPLERS.register("nsga2")
def nsga2(config, space, *, seed, population, **_):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)


@SAMPLERS.register("random")
def random_sampler(config, space, *, seed, **_):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("gp")
def gp(config, space, *, seed, population, **_):
    import optuna

    try:
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=min(10, population),
                                         warn_independent_sampling=False)
    except ImportError as e:  # GPSampler needs torch and scipy
        raise ConfigError(f"sampler gp is not available: {e}", key="sampler") from None


@SAMPLERS.register("evolution")
def evolution(config, space, *, seed, population, **_):
    from nas.control.evolution import EvolutionSampler  # heavy: optuna

    return EvolutionSampler(space, directions=config.directions, population_size=population,
                            tournament_size=config.tournament_size or max(2, population // 4), seed=seed)


@SAMPLERS.register("predictor")
def predictor(config, space, *, seed, population, input=None, scorer=None, count=None, latency=None):
    from nas.control.predictor import PredictorSampler  # heavy: optuna, scikit-learn

    return PredictorSampler(space, objectives=config.objectives, directions=config.directions,
                            limits=config.constraints.active(), input=input, candidates=config.candidates,
                            fresh=config.fresh_candidates, mutate_share=config.mutate_share,
                            end_share=config.end_share, seed=seed,
                            startup=config.population_size or min(10, population),
                            warmup=config.zero_cost_warmup_n, scorer=scorer, warmup_seed=config.seed, count=count,
                            latency=latency)
