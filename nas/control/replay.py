"""A sampler base that decides a whole spec before the trial and replays it, parameter by parameter, to Optuna's
define-by-run sampling (evolution and the predictor are built on it)."""
from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState


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
