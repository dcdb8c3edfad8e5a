"""A run directory ``runs/<name>/``: what a search writes and what ``nas resume`` reads back.

    config.yaml   the validated run config (overrides applied): the snapshot resume uses
    space.yaml    a copy of the search space file, so the run does not depend on the file it came from
    run.json      study name, storage URL, the fingerprint of the settings that must not change, timestamps
    journal.log   the Optuna storage (JournalFileBackend) unless --storage names another
    search.log    one plain line per trial and per start / resume
    lock          held (flock) by the process searching, so two processes never drive one run

A directory without ``run.json`` is not a run; nothing is written into it.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.control.config import load_config
from nas.control.shared import DEFAULT_HEARTBEAT_S, heartbeat_storage, is_server
from nas.errors import RunError
from nas.grammar import Space
from nas.io import make_dir, now, write_atomic

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
SPACE_FILE = "space.yaml"
JOURNAL_FILE = "journal.log"
RUN_VERSION = 1  # run.json's layout version: a run folder of a later version is refused, not misread
LOG_FILE = "search.log"
LOCK_FILE = "lock"
FORMAT = "patternnas-run"
BASELINES_FILE = "baselines.json"  # the space's baselines evaluated under the run's budget (nas.control.baselines)


def check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("-"):
        raise RunError(f"run name {name!r} must be a plain folder name (no slashes)", key="--name")
    return name


def normalize_storage(url: str) -> str:
    """Make a relative sqlite path absolute so that the run can be resumed from any working directory. An in-memory
    database is refused: a run's trials must outlive the process (resume, report, export read them later)."""
    prefix = "sqlite:///"
    if "://" not in url:
        raise RunError(f"storage {url!r} is not a URL (e.g. sqlite:///runs/nas.db, postgresql://...)",
                       key="--storage")
    path = url[len(prefix):].split("?")[0] if url.startswith(prefix) else ""
    if url.startswith("sqlite:") and (not path or path == ":memory:" or "mode=memory" in url):
        raise RunError(f"storage {url!r} is an in-memory database, gone when the process ends; name a file "
                       "(sqlite:///runs/nas.db) or a server", key="--storage")
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str(Path(url[len(prefix):]).expanduser().resolve())
    return url


def journal_damage(path: Path) -> str | None:
    """The first complete line of a journal file that is not a JSON record, said in one line (None: none is). A
    half-written last line (no newline: a process killed mid-write) is not damage; :meth:`RunDir.repair_journal`
    drops it."""
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                if not line.endswith(b"\n"):
                    break
                try:
                    json.loads(line)
                except ValueError:
                    return (f"line {number} is not a journal record: the journal is damaged (restore it from a "
                            "backup, or delete that line and every trial it breaks)")
    except OSError:
        return None
    return None


def _journal_tail(f, size: int, chunk: int = 1 << 16) -> tuple[int, bytes]:
    """(offset, bytes) of the end of an open journal file of ``size`` bytes: enough to hold its last complete line
    whole (and whatever follows it), read backwards in ``chunk``-sized steps."""
    start = size
    while start > 0:
        start = max(0, start - chunk)
        f.seek(start)
        data = f.read(size - start)
        end = data.rfind(b"\n")
        if start == 0 or (end != -1 and data.rfind(b"\n", 0, end) != -1):
            return start, data
    return 0, b""


# Journal records written while a trial runs (a parameter, a user / system attribute, an intermediate value): their
# append is not fsync-ed; every other record (study and trial creation, a state change such as the tell) is.
# optuna.storages.journal._storage.JournalOperation: SET_TRIAL_PARAM 5, SET_TRIAL_INTERMEDIATE_VALUE 7,
# SET_TRIAL_USER_ATTR 8, SET_TRIAL_SYSTEM_ATTR 9 (a test checks these against the installed Optuna).
UNSYNCED_OPS = frozenset({5, 7, 8, 9})


def journal_backend(path: str):
    """Optuna's ``JournalFileBackend`` for ``path`` (same file format, same symlink lock, so Optuna's own tools and
    any other Optuna process read and write it as usual) that fsyncs only the records that matter after a power cut.

    Optuna fsyncs every record: with ~38 ``suggest_*`` and ~15 user attributes a trial made ~54 fsyncs, about
    13 ms of a trial's controller overhead on this machine (experiments/results/bench_controller_overhead.md).
    Here the records written while a trial runs (:data:`UNSYNCED_OPS`) are written (``write`` + ``flush``: in the
    kernel's page cache, so a SIGKILL of the process loses none of them) but not fsync-ed; the next fsync-ed record
    of the file (at the latest the trial's tell: ``SET_TRIAL_STATE_VALUES``) flushes them too, since ``fsync``
    writes out all of a file's data. So a *finished* trial is on disk with all its parameters and attributes once
    its tell returns, as before; a power cut can lose only the unflushed tail of a trial that was still RUNNING,
    which ``nas resume`` marks stale and re-enqueues anyway (the same state a kill in mid-sampling leaves).
    """
    return _backend_class()(path)


_BACKEND_CLASS = None
_shield = {"depth": 0, "pending": None}


@contextlib.contextmanager
def shielded():
    """A journal write that a stop signal must not cut: a signal handler that calls :func:`defer` meanwhile runs
    its action when the write is done. (Optuna's file lock, interrupted inside its own release, unlinks the lock
    twice and turns the stop into a FileNotFoundError traceback.)"""
    _shield["depth"] += 1
    try:
        yield
    finally:
        _shield["depth"] -= 1
        action = _shield["pending"]
        if _shield["depth"] == 0 and action is not None:
            _shield["pending"] = None
            action()


def defer(action: Callable[[], None]) -> bool:
    """Inside a :func:`shielded` write: keep ``action`` for its end and say True; else False (run it now)."""
    if _shield["depth"] == 0:
        return False
    _shield["pending"] = action
    return True


def _backend_class():
    """The backend class, made on first use (optuna is imported lazily); picklable as ``rundir.JournalBackend``."""
    global _BACKEND_CLASS
    if _BACKEND_CLASS is None:
        from optuna.storages.journal import JournalFileBackend

        class JournalBackend(JournalFileBackend):
            def append_logs(self, logs):
                with shielded():
                    lock = getattr(self, "_lock", None)
                    path = getattr(self, "_file_path", None)
                    if lock is None or path is None or any(log.get("op_code") not in UNSYNCED_OPS for log in logs):
                        return super().append_logs(logs)
                    text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
                    lock.acquire()
                    try:
                        with open(path, "ab") as f:
                            f.write(text.encode("utf-8"))
                            f.flush()
                    finally:
                        lock.release()

        JournalBackend.__module__ = __name__
        JournalBackend.__qualname__ = "JournalBackend"
        _BACKEND_CLASS = JournalBackend
    return _BACKEND_CLASS


def __getattr__(name: str):  # pickle finds ``nas.control.rundir.JournalBackend`` here (PEP 562)
    if name == "JournalBackend":
        return _backend_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class RunDir:
    path: Path
    meta: dict[str, Any]

    # -- opening ------------------------------------------------------------------------------------------------
    @staticmethod
    def is_run(path: Path) -> bool:
        return (path / RUN_FILE).is_file()

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        path = Path(path)
        if not path.is_dir():
            raise RunError("no such run directory", file=str(path))
        meta_path = path / RUN_FILE
        if not meta_path.is_file():
            raise RunError(f"not a run directory (no {RUN_FILE}; runs are made by `nas search`)", file=str(path))
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise RunError(f"unreadable {RUN_FILE}: {e}", file=str(meta_path)) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise RunError(f"{RUN_FILE} is not a patternnas run file", file=str(meta_path))
        version = meta.get("version", 1)
        if not isinstance(version, int) or version > RUN_VERSION:
            raise RunError(f"{RUN_FILE} has version {version!r}; this patternnas reads run folders up to version "
                           f"{RUN_VERSION} (a newer patternnas made it?)", file=str(meta_path), key="version")
        for key, default in (("study_name", None), ("storage", JOURNAL_FILE)):
            if not isinstance(meta.get(key, default), str) or not meta.get(key, default):
                raise RunError(f"{RUN_FILE} has no {key} (a damaged run file)", file=str(meta_path), key=key)
        for name in (CONFIG_FILE, SPACE_FILE):
            if not (path / name).is_file():
                raise RunError(f"run directory is missing {name}", file=str(path))
        return cls(path, meta)

    @classmethod
    def create(cls, path: Path, *, study_name: str, storage: str | None, config_text: str, space_text: str,
               space_source: str, fingerprint: dict) -> "RunDir":
        make_dir(path, "--runs-dir")
        (path / CONFIG_FILE).write_text(config_text)
        (path / SPACE_FILE).write_text(space_text)
        meta = {"format": FORMAT, "version": RUN_VERSION, "study_name": study_name, "storage": storage or JOURNAL_FILE,
                "space_source": space_source, "fingerprint": fingerprint, "created": now()}
        run = cls(path, meta)
        run.save_meta()
        return run

    def save_meta(self) -> None:
        write_atomic(self.path / RUN_FILE, json.dumps(self.meta, indent=2) + "\n")

    # -- pieces ---------------------------------------------------------------------------------------------------
    @property
    def study_name(self) -> str:
        return self.meta["study_name"]

    @property
    def storage_url(self) -> str:
        """The storage as a URL or file path that ``optuna`` (and its CLI's --storage) understands."""
        storage = self.meta.get("storage", JOURNAL_FILE)
        return str(self.path / storage) if "://" not in storage else storage

    @property
    def heartbeat_s(self) -> int:
        """Seconds between the heartbeats of a running trial on a database server (:mod:`nas.control.shared`)."""
        return int(self.meta.get("heartbeat_s", DEFAULT_HEARTBEAT_S))

    def config_text(self) -> str:
        return (self.path / CONFIG_FILE).read_text()

    def space_text(self) -> str:
        return (self.path / SPACE_FILE).read_text()

    @property
    def uses_journal(self) -> bool:
        return "://" not in self.meta.get("storage", JOURNAL_FILE)

    def storage(self, *, create: bool = False):
        """The run's Optuna storage. A journal file is created only with ``create`` (a new run): a run whose journal
        is gone is refused, in one line, instead of reading as a run with no trial (and leaving an empty file)."""
        import optuna
        from optuna.storages import JournalStorage

        if self.uses_journal:
            if not create and not Path(self.storage_url).is_file():
                raise RunError("the run's journal is missing: its trials are gone (restore the file from a backup)",
                               file=self.storage_url)
            try:
                return JournalStorage(journal_backend(self.storage_url))
            except ValueError as e:  # json.JSONDecodeError or Optuna's "Invalid log format." for a line inside
                raise RunError(journal_damage(Path(self.storage_url)) or f"unreadable journal: {e}",
                               file=self.storage_url) from None
        try:
            if is_server(self.storage_url):  # shared with other hosts: heartbeats find their stopped trials
                return heartbeat_storage(self.storage_url, self.heartbeat_s)
            return optuna.storages.RDBStorage(self.storage_url)
        except Exception as e:  # noqa: BLE001 - bad URL, missing driver, unreachable server
            raise RunError(f"cannot open storage {self.storage_url!r}: {type(e).__name__}: {e}",
                           key="storage") from None

    def load_study(self):
        """The run's Optuna study; a storage without it (nothing started yet, or another run's) is one line."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            return optuna.load_study(study_name=self.study_name, storage=self.storage())
        except KeyError:
            raise RunError(f"the run's storage holds no study {self.study_name!r} yet (no trial has started)",
                           file=str(self.path)) from None

    def log(self, line: str) -> None:
        with open(self.path / LOG_FILE, "a") as f:
            f.write(line.rstrip("\n") + "\n")

    # -- one process at a time ------------------------------------------------------------------------------------
    def lock(self) -> "RunDir":
        import fcntl

        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                owner = os.pread(fd, 32, 0).decode().strip() or "?"
            finally:
                os.close(fd)
            raise RunError(f"run is in use by another process (pid {owner})", file=str(self.path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd
        return self

    def holder(self) -> int | None:
        """The pid of the process that holds the run now (a search, resume or measure going on), else None. Reads
        only: the lock is tried shared and released at once."""
        import fcntl

        path = self.path / LOCK_FILE
        if not path.is_file():
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                text = os.pread(fd, 32, 0).decode(errors="replace").strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def repair_journal(self) -> list[str]:
        """After a process was killed mid-write: drop the journal's leftover lock file (Optuna would wait 30 s
        for it) and a half-written last record. Only safe while holding the run's lock (no other writer)."""
        if not self.uses_journal or getattr(self, "_lock_fd", None) is None:
            return []
        journal = Path(self.storage_url)
        done = []
        stale_lock = Path(str(journal) + ".lock")  # optuna.storages.journal._file.LOCK_FILE_SUFFIX
        if stale_lock.exists() or stale_lock.is_symlink():
            stale_lock.unlink()
            done.append("removed a stale journal lock")
        size = journal.stat().st_size if journal.is_file() else 0
        if size:  # only the end of the file is read: Optuna's own load refuses a bad line anywhere before it
            with open(journal, "rb+") as f:
                start, tail = _journal_tail(f, size)
                end = tail.rfind(b"\n")  # the end of the last complete line
                if end != -1:
                    try:
                        json.loads(tail[tail.rfind(b"\n", 0, end) + 1:end + 1])
                    except ValueError:  # Optuna skips a bad LAST line, but a record appended after it would break
                        raise RunError(journal_damage(journal) or "the last journal line is not a record",
                                       file=str(journal)) from None  # every later read
                if end + 1 < len(tail):
                    f.truncate(start + end + 1)
                    done.append(f"dropped a half-written journal record ({len(tail) - end - 1} bytes)")
        return done

    def unlock(self) -> None:
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            os.close(fd)  # releases the flock
            self._lock_fd = None


def open_run(run_dir: str | Path):
    """A finished or running run, opened for reading: ``(run, study, config, space)``."""
    run = RunDir.open(run_dir)
    study = run.load_study()
    config, _ = load_config(run.path / CONFIG_FILE)
    space = Space.load(run.path / SPACE_FILE, with_baselines=False)
    return run, study, config, space


def read_baselines_cache(run_path: Path) -> dict[str, dict]:
    """The run's cache of baseline evaluations (``{}`` before the first); a damaged one is a one-line error that
    says how to rebuild it, never silently replaced."""
    path = Path(run_path) / BASELINES_FILE
    if not path.exists():
        return {}
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        cache = e
    if not isinstance(cache, dict):
        raise RunError(f"the baselines cache is damaged ({type(cache).__name__}); delete it to evaluate the "
                       "baselines again", file=str(path))
    return cache
