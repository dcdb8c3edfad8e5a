"""Confirming the leader (run config ``confirm_best``): a noisy evaluation is not taken at its word.

One training of an architecture is one draw: another seed gives another accuracy, and the best single draw of a
search is often a lucky one (on NAS-Bench-201's table a run that evaluated the best cell picks it in only about a third
of the seeds when picking by one draw each; docs/benchmarks.md). With ``confirm_best: N`` (N > 1, one objective) the
engine re-evaluates the **leader**, the architecture with the best mean first objective so far, until it has N
evaluations; a leader whose mean falls behind another architecture's gives way, and that one is confirmed next. A run
picks by the mean of an architecture's evaluations (:func:`merged`, used by :func:`nas.control.pick.complete_trials`).

A repeat is a trial of its own: the first trial's parameters enqueued again with user attrs ``repeat_of`` (the
first trial's number) and ``repeat`` (k = 1, 2, ...: :attr:`nas.evaluate.evaluate.EvalConfig.repeat`, an independent
training seed). It is counted like any trial; at most ``confirm_share`` of the counted trials are repeats, so the
search keeps exploring, and they begin once ``confirm_after`` of the run's trial target is counted (default half:
the first half explores undisturbed). Everything is read back from the storage (:meth:`Confirmations.from_trials`):
a resumed run, or a worker process, continues where the last one stopped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from nas.control.states import stale

REPEAT_OF = "repeat_of"  # user attr of a repeat: the number of the architecture's first trial
REPEAT = "repeat"  # user attr of a repeat: k, the repeat's index (1, 2, ...)
KEPT_ON_RETRY = (REPEAT_OF, REPEAT)  # a repeat left RUNNING by a stopped process is retried as the same repeat


@dataclass
class Group:
    """One architecture's evaluations: its first trial and the repeats of it."""

    number: int  # the first trial
    params: dict[str, Any]
    spec_hash: str
    values: list[float] = field(default_factory=list)  # first objective of the COMPLETE evaluations
    taken: int = 1  # evaluations taken: the first, and the repeats in any state but stale (waiting, running included)

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)


class Confirmations:
    """The leader and its repeats (see the module docstring). ``evaluations``: ``confirm_best``; ``share``:
    ``confirm_share``; ``direction``: the first (only) objective's."""

    def __init__(self, evaluations: int, share: float, direction: str):
        self.evaluations = evaluations
        self.share = share
        self.sign = 1.0 if direction == "maximize" else -1.0
        self.groups: dict[int, Group] = {}
        self.repeats = 0  # repeat trials taken, in any state but stale

    @classmethod
    def from_trials(cls, trials: Iterable, evaluations: int, share: float, direction: str) -> "Confirmations":
        """The state stored in a study's trials (FrozenTrials)."""
        found = cls(evaluations, share, direction)
        repeats = []
        for t in trials:
            attrs = t.user_attrs
            if REPEAT_OF in attrs:
                if not stale(t):
                    repeats.append(t)
            elif (t.state.name == "COMPLETE" and t.values and "spec_hash" in attrs and "reused_from" not in attrs):
                found.first(t.number, dict(t.params), attrs["spec_hash"], float(t.values[0]))
        for t in repeats:
            found.repeats += 1
            group = found.groups.get(int(t.user_attrs[REPEAT_OF]))
            if group is not None:
                group.taken += 1
                if t.state.name == "COMPLETE" and t.values:
                    group.values.append(float(t.values[0]))
        return found

    def first(self, number: int, params: dict[str, Any], spec_hash: str, value: float) -> None:
        """A first evaluation finished (COMPLETE) with first objective ``value``."""
        if math.isfinite(value):
            self.groups.setdefault(number, Group(number, dict(params), spec_hash, [value]))

    def group(self, number: Any) -> Group | None:
        return self.groups.get(number) if isinstance(number, int) else None

    def repeated(self, number: int, value: float | None) -> None:
        """A repeat of trial ``number`` finished: COMPLETE with ``value``, or not (None)."""
        group = self.groups.get(number)
        if group is not None and value is not None and math.isfinite(value):
            group.values.append(value)

    def leader(self) -> Group | None:
        """The architecture with the best mean first objective (ties: more evaluations, then the earlier)."""
        if not self.groups:
            return None
        return max(self.groups.values(), key=lambda g: (self.sign * g.mean, len(g.values), -g.number))

    def next(self, counted: int, start: int = 0) -> tuple[Group, int] | None:
        """The repeat the next trial should be, as (the leader, k), and taken as such; None before ``start`` trials
        are counted, when the leader has its evaluations (or has them under way), or when one more repeat would
        exceed ``share`` of the counted trials."""
        if self.evaluations <= 1 or counted < start or self.repeats + 1 > self.share * (counted + 1):
            return None
        lead = self.leader()
        if lead is None or lead.taken >= self.evaluations:
            return None
        lead.taken += 1
        self.repeats += 1
        return lead, lead.taken - 1


class Confirmed:
    """A trial whose architecture was evaluated more than once: it reads as the trial, with its first objective the
    mean of the evaluations (``evaluations`` of them)."""

    def __init__(self, trial, firsts: Sequence[float]):
        self.trial = trial
        self.evaluations = len(firsts)
        self.values = [sum(firsts) / len(firsts), *list(trial.values)[1:]]

    def __getattr__(self, name: str):
        return getattr(self.trial, name)


def merged(trials: Sequence) -> list:
    """COMPLETE trials (reused ones left out) with each architecture's repeats folded into its first trial: a
    :class:`Confirmed` where it has COMPLETE repeats, the trial itself otherwise. Repeats of a trial not among
    ``trials`` are left out."""
    firsts = [t for t in trials if REPEAT_OF not in t.user_attrs]
    more: dict[int, list[float]] = {}
    for t in trials:
        if REPEAT_OF in t.user_attrs:
            more.setdefault(int(t.user_attrs[REPEAT_OF]), []).append(float(t.values[0]))
    return [Confirmed(t, [float(t.values[0]), *more[t.number]]) if t.number in more else t for t in firsts]


def evaluations_of(trial) -> int:
    """How many evaluations the (merged) trial's first objective is the mean of."""
    return getattr(trial, "evaluations", 1)


__all__ = ["REPEAT_OF", "REPEAT", "KEPT_ON_RETRY", "Group", "Confirmations", "Confirmed", "merged", "evaluations_of"]
