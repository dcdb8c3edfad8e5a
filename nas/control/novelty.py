"""A sampler wrapper that keeps a joint proposal from repeating an architecture the run already had.

A model-based sampler (TPE) that models the parameters jointly proposes them all at the start of a trial
(``sample_relative``). On a small space it often proposes an architecture the run has evaluated before: on
NAS-Bench-201 about 15 of the first 100 TPE trials are repeats, which the engine reuses without training but which
still count toward the run's target. :class:`NoveltySampler` draws the joint proposal again, up to ``REDRAWS``
times; once the sampler's model has settled it keeps proposing its favourite, so then the proposal's nearest new
architecture is taken: a one-choice change (:meth:`nas.grammar.Space.mutate`), up to ``NEIGHBOURS`` tried. A
proposal that does not decide the whole architecture (a conditional space, the sampler's random start-up) is taken
as it is.
"""
from __future__ import annotations

import random
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.errors import NasError


def evaluated_hashes(study: Study) -> set[str]:
    """The spec hashes of every trial of the run so far (what a new proposal should not repeat)."""
    return {t.user_attrs.get("spec_hash") for t in study.get_trials(deepcopy=False)} - {None}


class NoveltySampler(BaseSampler):
    """``sampler``, with joint proposals new to the run where a redraw or a neighbour gives one."""

    REDRAWS = 5
    NEIGHBOURS = 20

    def __init__(self, sampler: BaseSampler, space, *, seed: int | None = None):
        self.sampler = sampler
        self.space = space
        self.seed = seed

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict:
        params = self.sampler.sample_relative(study, trial, search_space)
        spec = self._spec(params)
        if spec is None:
            return params
        seen = evaluated_hashes(study)
        for _ in range(self.REDRAWS):
            if spec is None or spec.hash() not in seen:
                return params
            params = self.sampler.sample_relative(study, trial, search_space)
            spec = self._spec(params)
        if spec is None or spec.hash() not in seen:
            return params
        rng = random.Random(f"novelty:{self.seed}:{trial.number}")
        for _ in range(self.NEIGHBOURS):
            values = self.space.assignment(self.space.mutate(spec, rng))
            child = {k: v for k, v in values.items() if k in search_space}
            child_spec = self._spec(child)
            if child_spec is not None and child_spec.hash() not in seen:
                return child
        return params

    def _spec(self, params: dict[str, Any]):
        """The spec of a joint proposal that decides the whole architecture; None if it leaves any choice open."""
        if not params:
            return None
        try:
            return self.space.replay(params)
        except (NasError, KeyError, ValueError, TypeError):
            return None

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values) -> None:
        self.sampler.after_trial(study, trial, state, values)
