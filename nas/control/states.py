"""Which trials count toward a run's target: read by the engine, the worker and Ray backends, and ``nas runs``."""
from __future__ import annotations

COUNTED = ("COMPLETE", "PRUNED", "FAIL")


def counted(trial) -> bool:
    """Whether ``trial`` counts toward the run's target: COMPLETE, PRUNED, and FAIL unless stale. A stale FAIL is
    marked ``stale`` (a process that was stopped, found by a resume) or was told by no engine at all (no ``status``:
    Optuna's heartbeat failed it, :mod:`nas.control.shared`); either way its parameters were enqueued again."""
    if trial.state.name == "FAIL":
        return not stale(trial)
    return trial.state.name in COUNTED


def in_use(trials) -> int:
    """How much of a run's target ``trials`` take: the counted ones and those running (a process's, or Ray's)."""
    return sum(1 for t in trials if counted(t) or t.state.name == "RUNNING")


def stale(trial) -> bool:
    """A FAIL trial whose process stopped before it ended (see :func:`counted`)."""
    attrs = trial.user_attrs
    return trial.state.name == "FAIL" and (bool(attrs.get("stale")) or "status" not in attrs)
