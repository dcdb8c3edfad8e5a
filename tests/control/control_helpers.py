"""Helpers for the search-controller tests: a tiny space, tiny run configs, the `nas` command. Imported by this
module's own name (``from control_helpers import ...``), never as ``conftest``: several conftest modules share that
name, and which one ``import conftest`` finds depends on the order the test files load."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TINY_SPACE = HERE / "tiny_space.yaml"
SCRIPT = Path(sys.executable).with_name("nas")
NAS = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "nas.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMEOUT = 120

# Seconds, not minutes: 8x8 digits, a 200-example pool, half an epoch, two latency repeats, no zero-cost proxies.
TINY = {
    "space": str(TINY_SPACE),
    "dataset": "digits",
    "train_subset": 200,
    "objectives": ["accuracy", "latency_ms"],
    "budget": {"epochs": 0.5, "batch_size": 32},
    "sampler": "random",
    "trials": 4,
    "seed": 0,
    "device": "cpu",
    "latency_repeats": 2,
    "latency_warmup": 0,
    "train_threads": 1,
    "zero_cost": False,
}


def write_config(folder: Path, name: str = "tiny", **changes) -> Path:
    data = {**TINY, **changes}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def nas(*args: str, cwd: Path | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([*NAS, *args], cwd=cwd or REPO, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def _default_sigint() -> None:
    # A shell without job control starts background commands (`make test &`) with SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored: the search under test gets Ctrl-C's default, as in a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([*NAS, *args], cwd=cwd or REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def journal_study(run_dir: Path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(run_dir / "journal.log")))
    return optuna.load_study(study_name=run_dir.name, storage=storage)


def read_trials(run_dir: Path) -> list:
    """The run's trials as its journal holds them now ([] before the study exists or while it is being created)."""
    if not (run_dir / "journal.log").exists():
        return []
    try:
        return journal_study(run_dir).get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001 - the study is being created
        return []


def child_pids(parent: int) -> list[int]:
    """Processes whose parent is ``parent`` (a search's worker processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def signal_when(proc: subprocess.Popen, run_dir: Path, ready: Callable[[list], bool], sig: int = signal.SIGKILL, *,
                workers: bool = False, timeout: float = 90, interval: float = 0.02) -> list | None:
    """Poll a running search's journal until ``ready(trials)``; then send ``sig`` to it (and to its worker processes
    with ``workers``) and return the trials as they were at that moment.

    No race with a trial that finishes between the look and the signal: the processes are frozen first (SIGSTOP),
    the journal is read again and the signal is sent only if ``ready`` still holds; then they go on (SIGCONT), and a
    signal other than SIGKILL lands where they were frozen. None when the search ended or ``timeout`` passed first.
    The process is not reaped."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready(read_trials(run_dir)):
            os.kill(proc.pid, signal.SIGSTOP)  # first the parent: it cannot start new workers while stopped
            pids = [proc.pid] + (child_pids(proc.pid) if workers else [])
            _signal(pids[1:], signal.SIGSTOP)
            trials = read_trials(run_dir)
            if ready(trials):
                _signal(pids, sig)
                _signal(pids, signal.SIGCONT)
                return trials
            _signal(pids, signal.SIGCONT)
        time.sleep(interval)
    return None


def kill_9_when(proc: subprocess.Popen, run_dir: Path, ready: Callable[[list], bool], *,
                workers: bool = False, timeout: float = 90, interval: float = 0.02) -> list | None:
    """:func:`signal_when` with SIGKILL; the process is reaped either way."""
    try:
        return signal_when(proc, run_dir, ready, signal.SIGKILL, workers=workers, timeout=timeout, interval=interval)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def running_after_done(done: int) -> Callable[[list], bool]:
    """``ready`` for :func:`kill_9_when`: at least ``done`` trials COMPLETE and one RUNNING with parameters."""
    def ready(trials) -> bool:
        return (sum(t.state.name == "COMPLETE" for t in trials) >= done
                and any(t.state.name == "RUNNING" and t.params for t in trials))

    return ready


def counted(trials) -> int:
    """COMPLETE + PRUNED + FAIL, less the stale FAILs (marked ``stale``, or failed by a heartbeat: no ``status``)."""
    return sum(1 for t in trials if t.state.name in ("COMPLETE", "PRUNED")
               or (t.state.name == "FAIL" and not t.user_attrs.get("stale") and "status" in t.user_attrs))
