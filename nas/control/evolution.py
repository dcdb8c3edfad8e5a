"""``evolution``: regularized (aging) evolution (Real et al., 2019) as an Optuna sampler.

The population is the ``population_size`` most recent COMPLETE trials; a child is made by picking ``tournament_size``
of them at random, taking the best (for several objectives: a random member of the sample's non-dominated set) and
changing exactly one of its choices with :meth:`nas.grammar.Space.mutate`; a child that an earlier trial already had
(same spec hash) is drawn again, up to ``NOVELTY_TRIES`` tournaments, so the budget goes to new architectures.
Until the population is full, trials are sampled at random. ``before_trial`` decides the child,
``sample_independent`` replays the child's values (the :class:`~nas.control.replay.ReplaySampler` base, shared with
``predictor``).
"""
from __future__ import annotations

import random

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.control.novelty import evaluated_hashes
from nas.control.replay import ReplaySampler
from nas.errors import ConfigError
from nas.pareto import pareto_mask


class EvolutionSampler(ReplaySampler):
    """Aging evolution with tournament selection; a child changes exactly one choice of its parent."""

    PARENT_ATTR = "evolution_parent"
    NOVELTY_TRIES = 20  # tournaments + mutations tried for a child whose spec no trial has had yet

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
        seen = evaluated_hashes(study)
        for _ in range(self.NOVELTY_TRIES):  # a child not evaluated before, if a few tournaments find one
            sample = rng.sample(population, self.tournament_size)
            parent = self._best(sample, rng)
            try:
                child = self.space.mutate(self.space.replay(parent.params), rng)
            except Exception:  # noqa: BLE001 - a parent that no longer replays: fall back to random sampling
                return
            if child.hash() not in seen:
                break
        self._children[trial._trial_id] = self.space.assignment(child)
        study._storage.set_trial_user_attr(trial._trial_id, self.PARENT_ATTR, parent.number)

    def _best(self, sample: list[FrozenTrial], rng: random.Random) -> FrozenTrial:
        if len(self.directions) == 1:
            pick = max if self.directions[0] == "maximize" else min
            return pick(sample, key=lambda t: t.values[0])
        mask = pareto_mask(np.array([t.values for t in sample], dtype=float), self.directions)
        front = [t for t, keep in zip(sample, mask) if keep] or sample
        return rng.choice(front)
