"""The owner of a running trial: the process that holds it (pid, host, process start time), and whether it is still
alive on this host (a trial whose owner died is stale: :meth:`nas.control.engine.Engine.recover_stale`)."""
from __future__ import annotations

import os
import socket
from typing import Any

OWNER_ATTR = "worker"  # the user attr of a trial that names its owner


def process_start_time(pid: int) -> str | None:
    """The process start time (clock ticks since boot, field 22 of /proc/PID/stat), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()[19]


def owner() -> dict[str, Any]:
    """This process as the owner of a trial."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "started": process_start_time(pid)}


def owner_alive(record: Any, *, other_hosts: bool = False) -> bool:
    """Whether the process that recorded ``record`` (see :func:`owner`) still runs on this host. A process on
    another host cannot be checked from here: taken as dead, or with ``other_hosts`` as alive (a shared storage,
    where heartbeats decide)."""
    if isinstance(record, dict) and record.get("host") != socket.gethostname():
        return other_hosts
    if not isinstance(record, dict):
        return False
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    started = record.get("started")
    if started is not None:
        now_started = process_start_time(pid)
        if now_started is not None and now_started != started:
            return False  # the pid was reused by another process
    try:  # a zombie (dead, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
        if text[text.rfind(")") + 2:].split()[0] in ("Z", "X"):
            return False
    except OSError:
        pass
    return True


__all__ = ["OWNER_ATTR", "owner", "owner_alive", "process_start_time"]
