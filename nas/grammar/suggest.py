"""Who picks the values of a space's choices: the ``Suggest`` interface (define-by-run, as Optuna's trial) and the
suggesters of the engine's own (random, replay of recorded values, the smallest value of every choice)."""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Protocol, Sequence


class Suggest(Protocol):
    """Picks a value for one named parameter. An Optuna trial, a seeded RNG or a replay all fit."""

    def categorical(self, name: str, choices: Sequence[Any]) -> Any: ...

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def real(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float: ...


class RandomSuggest:
    """Seeded uniform sampling (log-uniform where the domain says log)."""

    def __init__(self, seed_or_rng: int | random.Random | None = None):
        self.rng = seed_or_rng if isinstance(seed_or_rng, random.Random) else random.Random(seed_or_rng)

    def categorical(self, name, choices):
        return choices[self.rng.randrange(len(choices))]

    def integer(self, name, low, high, *, step=1, log=False):
        if log:
            value = math.exp(self.rng.uniform(math.log(low), math.log(high + 1)))
            value = min(high, max(low, int(value)))
            return low + (value - low) // step * step
        return low + self.rng.randrange((high - low) // step + 1) * step

    def real(self, name, low, high, *, step=None, log=False):
        if step:
            return low + self.rng.randrange(int(round((high - low) / step)) + 1) * step
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)


class ReplaySuggest:
    """Replays stored values by name; a name with no stored value goes to ``fallback`` (or is an error)."""

    def __init__(self, values: dict[str, Any], fallback: Suggest | None = None):
        self.values = values
        self.fallback = fallback

    def _get(self, name: str, ask: Callable[[Suggest], Any]):
        if name in self.values:
            return self.values[name]
        if self.fallback is None:
            raise KeyError(f"no stored value for parameter {name!r}")
        return ask(self.fallback)

    def categorical(self, name, choices):
        return self._get(name, lambda s: s.categorical(name, choices))

    def integer(self, name, low, high, *, step=1, log=False):
        return self._get(name, lambda s: s.integer(name, low, high, step=step, log=log))

    def real(self, name, low, high, *, step=None, log=False):
        return self._get(name, lambda s: s.real(name, low, high, step=step, log=log))


class SmallestSuggest:
    """Picks the first choice and the low end of every range: a cheap end of the space for feasibility checks."""

    def categorical(self, name, choices):
        numeric = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        return min(numeric) if len(numeric) == len(choices) else choices[0]

    def integer(self, name, low, high, *, step=1, log=False):
        return low

    def real(self, name, low, high, *, step=None, log=False):
        return low
