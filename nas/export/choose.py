"""Choosing the trial to export from a run: by number, the knee of the front, the most accurate within a latency
cap / the fastest above an accuracy floor, or the best mean rank under the first objective and a zero-cost proxy."""
from __future__ import annotations

import numpy as np

from nas import pareto
from nas.control.pick import complete_trials, ranked_trial, recorded_proxies
from nas.errors import ExportError
from nas.objectives import direction


def select_trial(study, objectives: list[str], *, max_latency_ms: float | None = None,
                 min_accuracy: float | None = None, knee: bool = False, where: str | None = None,
                 remeasured: dict | None = None, rank_with: str | None = None):
    """Pick a COMPLETE trial by a rule: the most accurate within a latency bound, the fastest reaching an accuracy,
    the knee of the Pareto front, or (``rank_with``, a zero-cost proxy the trials recorded) the best mean of each
    trial's ranks under the first objective and that proxy. A bound that no trial meets is an error saying what the
    closest trial offers.

    ``remeasured``: the run's ``nas measure`` record (``latency.json``). When latency is an objective and the record
    timed every member of the front, the knee is taken on the front with those latencies (the members timed
    together, in one process), and the reason says so."""
    complete = complete_trials(study)
    if not complete:
        raise ExportError("the run has no complete trial to export yet", file=where)

    def measured(t, name):
        if name in objectives:
            return float(t.values[objectives.index(name)])
        value = (t.user_attrs.get("objectives") or {}).get(name)
        if value is None:
            raise ExportError(f"trial #{t.number} has no measured {name}", file=where)
        return float(value)

    if rank_with is not None:
        return _by_mean_rank(complete, objectives, rank_with, where)
    if knee:
        values = np.array([t.values for t in complete], dtype=float)
        directions = [direction(o) for o in objectives]
        mask = pareto.pareto_mask(values, directions)
        front = [t for t, on in zip(complete, mask) if on]
        timed = {m.get("number"): m for m in ((remeasured or {}).get("models") or {}).values()
                 if m.get("kind") == "trial"}
        if "latency_ms" in objectives and front and all(t.number in timed for t in front):
            j = objectives.index("latency_ms")
            values = np.array([t.values for t in front], dtype=float)
            values[:, j] = [timed[t.number]["median_ms"] for t in front]
            keep = pareto.pareto_mask(values, directions)
            members = [t for t, on in zip(front, keep) if on]
            index = pareto.knee_point(values[keep], directions)
            return members[index], (f"knee of the Pareto front with its latencies timed together (nas measure, "
                                    f"{remeasured.get('measured_at')}: {len(members)} of {len(front)} members stay "
                                    "on it)")
        index = pareto.knee_point(np.array([t.values for t in front], dtype=float), directions)
        return front[index], f"knee of the Pareto front ({len(front)} members)"
    if max_latency_ms is not None or min_accuracy is not None:
        fits = [t for t in complete
                if (max_latency_ms is None or measured(t, "latency_ms") <= max_latency_ms)
                and (min_accuracy is None or measured(t, "accuracy") >= min_accuracy)]
        if not fits:
            def offers(t) -> str:
                return f"trial #{t.number} with {measured(t, 'latency_ms'):.3g} ms at accuracy " \
                       f"{measured(t, 'accuracy'):.4f}"

            fast = [t for t in complete if max_latency_ms is not None and measured(t, "latency_ms") <= max_latency_ms]
            good = [t for t in complete if min_accuracy is not None and measured(t, "accuracy") >= min_accuracy]
            if max_latency_ms is not None and not fast:
                closest = min(complete, key=lambda t: measured(t, "latency_ms"))
                key, what = "--max-latency-ms", f"no trial runs within {max_latency_ms:g} ms"
            elif min_accuracy is not None and not good:
                closest = max(complete, key=lambda t: measured(t, "accuracy"))
                key, what = "--min-accuracy", f"no trial reaches accuracy {min_accuracy:g}"
            else:  # each bound is met by some trial, both by none
                best = max(fast, key=lambda t: measured(t, "accuracy"))
                quickest = min(good, key=lambda t: measured(t, "latency_ms"))
                raise ExportError(f"no trial both runs within {max_latency_ms:g} ms and reaches accuracy "
                                  f"{min_accuracy:g}: the most accurate of the {len(fast)} within "
                                  f"{max_latency_ms:g} ms is {offers(best)}; the fastest of the {len(good)} "
                                  f"reaching {min_accuracy:g} is {offers(quickest)}", file=where,
                                  key="--max-latency-ms/--min-accuracy")
            raise ExportError(f"{what}; the closest is {offers(closest)}", file=where, key=key)
        if max_latency_ms is not None:
            chosen = max(fits, key=lambda t: (measured(t, "accuracy"), -measured(t, "latency_ms")))
            return chosen, f"most accurate of {len(fits)} trials within {max_latency_ms:g} ms"
        chosen = min(fits, key=lambda t: (measured(t, "latency_ms"), -measured(t, "accuracy")))
        return chosen, f"fastest of {len(fits)} trials reaching accuracy {min_accuracy:g}"
    raise ValueError("select_trial needs a rule")


def _by_mean_rank(complete: list, objectives: list[str], proxy: str, where: str | None):
    """``--rank-with``: :func:`nas.control.pick.ranked_trial`; a proxy that no trial recorded is an error naming the
    ones recorded."""
    found = ranked_trial(complete, objectives, [direction(o) for o in objectives], proxy)
    if found is None:
        recorded = recorded_proxies(complete)
        raise ExportError(f"no complete trial recorded the zero-cost proxy {proxy!r}; recorded: "
                          f"{', '.join(recorded) or 'none (the run was configured with zero_cost: [])'}",
                          file=where, key="--rank-with")
    return found
