"""The trial a run picks as its result: what ``nas export RUN`` exports without a rule, ``nas show`` names and the
report marks.

A run's config key ``rank_with`` sets the rule, resolved when the run is created and stored in its config snapshot
(:attr:`nas.control.config.RunConfig.rank_with_name`):

- ``none`` (and a run stored without the key): the best value of the first objective;
- a zero-cost proxy the trials record (e.g. ``naswot``): the best mean of each trial's ranks under the first
  objective (its direction respected) and that proxy, over the trials with a finite value of both. The default of a
  one-objective run of proxy training that records naswot: a short training ranks architectures poorly on its own,
  and the mean rank with NASWOT ranks them better on every space measured (docs/benchmarks.md, "Which trial a run
  picks").

An architecture evaluated more than once (config ``confirm_best``: :mod:`nas.control.confirm`) counts once, by the mean
of its evaluations.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from nas.control.confirm import evaluations_of, merged

NO_RANK = "none"  # rank_with: the best first objective alone


def mean_rank(*columns: Sequence[float]) -> list[float]:
    """Each item's mean rank over the columns, higher values ranking higher (average ranks for ties; NaN where any
    column is NaN, the others ranked among themselves)."""
    from scipy.stats import rankdata

    keep = [k for k in range(len(columns[0])) if all(c[k] == c[k] for c in columns)]
    out = [float("nan")] * len(columns[0])
    ranks = [rankdata([c[k] for k in keep]) for c in columns]
    for n, k in enumerate(keep):
        out[k] = sum(float(r[n]) for r in ranks) / len(columns)
    return out


def complete_trials(study) -> list:
    """The run's COMPLETE trials that have values and an architecture (the ones a pick can name), one per
    architecture evaluation: less the trials that reused an earlier trial's result (a repeat of the same
    architecture would count its ranks twice), and with the re-evaluations of ``confirm_best`` folded into the
    architecture's first trial, its first objective their mean (:func:`nas.control.confirm.merged`)."""
    return merged([t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.values
                   and "spec" in t.user_attrs and "reused_from" not in t.user_attrs])


def mean_note(trial) -> str:
    """``" (the mean of its k evaluations)"`` for an architecture evaluated k > 1 times, else nothing."""
    k = evaluations_of(trial)
    return f" (the mean of its {k} evaluations)" if k > 1 else ""


def pool_text(complete: Sequence) -> str:
    """What the pick chose among: ``N complete trials``, or ``N architectures`` where some were evaluated again."""
    if any(evaluations_of(t) > 1 for t in complete):
        return f"{len(complete)} architectures"
    return f"{len(complete)} complete trials"


def proxy_value(trial, proxy: str) -> float:
    """The trial's recorded zero-cost score ``proxy`` (NaN when it has none: not recorded, or not finite)."""
    value = (trial.user_attrs.get("zero_cost") or {}).get(proxy)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else float("nan")


def recorded_proxies(complete: Sequence) -> list[str]:
    """The zero-cost proxies with a finite value in at least one of the trials."""
    return sorted({k for t in complete for k in (t.user_attrs.get("zero_cost") or {})
                   if math.isfinite(proxy_value(t, k))})


def best_trial(complete: Sequence, objectives: Sequence[str], directions: Sequence[str]) -> tuple[Any, str]:
    """The trial with the best first objective (ties: the earlier trial)."""
    sign = 1.0 if directions[0] == "maximize" else -1.0
    chosen = max(complete, key=lambda t: (sign * t.values[0], -t.number))
    return chosen, f"best {objectives[0]}{mean_note(chosen)} of {pool_text(complete)}"


def ranked_trial(complete: Sequence, objectives: Sequence[str], directions: Sequence[str],
                 proxy: str) -> tuple[Any, str] | None:
    """The trial with the best mean of its ranks under the first objective and ``proxy`` (higher is better), over
    the trials with a finite value of both; ties go to the better first objective, then the earlier trial. None when
    no trial has both."""
    sign = 1.0 if directions[0] == "maximize" else -1.0
    scored = [(t, sign * float(t.values[0]), proxy_value(t, proxy)) for t in complete]
    scored = [row for row in scored if math.isfinite(row[1]) and math.isfinite(row[2])]
    if not scored:
        return None
    mean = mean_rank([row[1] for row in scored], [row[2] for row in scored])
    best = max(range(len(scored)), key=lambda k: (mean[k], scored[k][1], -scored[k][0].number))
    left = len(complete) - len(scored)
    note = f"; {left} without a finite {proxy} left out" if left else ""
    return scored[best][0], (f"best mean rank under {objectives[0]}{mean_note(scored[best][0])} and the zero-cost "
                             f"proxy {proxy} of {pool_text([row[0] for row in scored])}{note}")


def run_pick(complete: Sequence, objectives: Sequence[str], directions: Sequence[str],
             rank_with: str | None) -> tuple[Any, str] | None:
    """The trial the run's rule picks and why (None: no complete trial). A ``rank_with`` proxy that no trial
    recorded falls back to the best first objective, and the reason says so."""
    if not complete:
        return None
    if rank_with in (None, NO_RANK):
        return best_trial(complete, objectives, directions)
    found = ranked_trial(complete, objectives, directions, rank_with)
    if found is not None:
        return found
    chosen, reason = best_trial(complete, objectives, directions)
    return chosen, f"{reason} (no trial recorded a finite {rank_with}, the run's rank_with)"


__all__ = ["NO_RANK", "mean_rank", "complete_trials", "mean_note", "pool_text", "proxy_value", "recorded_proxies",
           "best_trial", "ranked_trial", "run_pick"]
