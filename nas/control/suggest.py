"""Optuna adapter for the grammar's Suggest interface (define-by-run: only active parameters are suggested)."""
from __future__ import annotations

from typing import Any, Sequence


class OptunaSuggest:
    """Drives :meth:`nas.grammar.Space.sample` from an ``optuna.Trial``."""

    def __init__(self, trial: Any):
        self.trial = trial

    def categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.trial.suggest_categorical(name, list(choices))

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self.trial.suggest_int(name, low, high, step=step, log=log)

    def real(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        return self.trial.suggest_float(name, low, high, step=step, log=log)
