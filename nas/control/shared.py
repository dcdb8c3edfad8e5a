"""A run's storage shared by processes that know nothing of each other: worker processes on other hosts
(``nas worker``) that take trials of a run from one PostgreSQL or MySQL database.

Three things make that safe, all kept in the database itself, so a second host needs only the package, the storage
URL and the data:

**The run's settings** are a study user attribute (:data:`RUN_ATTR`: the config and space snapshots, the
fingerprint, the heartbeat), written when the run is made (:func:`publish`) and read by a joining worker
(:func:`published`).

**The claim.** Before a process asks for a trial it takes the run's claim lock, counts the trials in the storage and
asks only when the count is below the target, so the last slot is never taken twice. On a database server the lock
is the server's own (PostgreSQL ``pg_advisory_lock``, MySQL ``GET_LOCK``), held on a connection of its own: a
process that dies lets go of it with its connection. On a journal or SQLite file (one host) it is ``flock`` on the
run folder's ``claim`` file (:func:`claim_lock`).

**Heartbeats.** On a server every running trial records a heartbeat every ``heartbeat_s`` seconds (Optuna's
``RDBStorage`` heartbeat, timed by the database's clock, so hosts need not agree on the time). A trial whose
heartbeat stopped for ``GRACE_FACTOR`` x ``heartbeat_s`` (its process was killed, its host lost) is failed by the next
process that claims (``optuna.storages.fail_stale_trials``) and its parameters are enqueued again
(:func:`retry_stale`, ``retry_of``); such a FAIL, which no engine told, is not counted
(:func:`nas.control.states.counted`), so the count ends exact.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from nas.control.confirm import KEPT_ON_RETRY
from nas.errors import RunError
from nas.version import __version__

RUN_ATTR = "nas_run"
SERVER_SCHEMES = ("postgresql", "mysql")
DEFAULT_HEARTBEAT_S = 10
GRACE_FACTOR = 3
CLAIM_FILE = "claim"


def is_server(url: str | None) -> bool:
    """Whether ``url`` names a database server (PostgreSQL, MySQL: shared across hosts), not a file."""
    if not url or "://" not in url:
        return False
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    return scheme in SERVER_SCHEMES


def check_heartbeat(value: Any) -> int:
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        seconds = 0
    if seconds < 1 or seconds != value:
        raise RunError(f"must be a whole number of seconds >= 1, got {value!r}", key="--heartbeat")
    return seconds


# -- the run's settings in the storage -------------------------------------------------------------------------------
def publish(study, *, config_text: str, space_text: str, space_source: str, fingerprint: dict,
            heartbeat_s: int, backend: str = "optuna") -> None:
    """Keep what a joining worker needs in the study (user attribute :data:`RUN_ATTR`)."""
    study.set_user_attr(RUN_ATTR, {"config": config_text, "space": space_text, "space_source": space_source,
                                   "fingerprint": fingerprint, "heartbeat_s": heartbeat_s, "backend": backend,
                                   "version": __version__})


def published(url: str, study_name: str | None) -> tuple[str, dict]:
    """(study name, the run's settings) kept in the storage at ``url``; ``study_name`` None: the storage's only run."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        studies = optuna.storages.RDBStorage(url).get_all_studies()
    except Exception as e:  # noqa: BLE001 - bad URL, missing driver, unreachable server
        raise RunError(f"cannot open storage {url!r}: {type(e).__name__}: {e}", key="storage") from None
    names = [summary.study_name for summary in studies]
    runs = {summary.study_name: summary.user_attrs[RUN_ATTR] for summary in studies
            if isinstance(summary.user_attrs.get(RUN_ATTR), dict)}
    if study_name is None:
        if len(runs) != 1:
            listed = ", ".join(sorted(runs)) or "none"
            raise RunError(f"the storage holds {len(runs)} runs ({listed}); name one with --study", key="--study")
        study_name = next(iter(runs))
    if study_name not in runs:
        why = ("was not made by `nas search` (it keeps no run settings)" if study_name in names
               else f"is not in the storage (runs there: {', '.join(sorted(runs)) or 'none'})")
        raise RunError(f"study {study_name!r} {why}", key="--study")
    settings = runs[study_name]
    for key in ("config", "space", "fingerprint"):
        if key not in settings:
            raise RunError(f"the run settings of study {study_name!r} have no {key!r} (damaged)", key="--study")
    return study_name, settings


# -- the claim -------------------------------------------------------------------------------------------------------
class ServerLock:
    """The database server's own named lock, on a connection of its own (a dead process releases it)."""

    def __init__(self, url: str, study_name: str):
        self.url = url
        self.postgres = url.split("://", 1)[0].startswith("postgresql")
        digest = hashlib.sha256(f"patternnas-claim:{study_name}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self.name = "patternnas:" + digest.hex()[:40]
        self.connection = None

    def _connect(self):
        if self.connection is None:
            import sqlalchemy
            from sqlalchemy.pool import NullPool

            engine = sqlalchemy.create_engine(self.url, poolclass=NullPool)
            self.connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self.connection

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        import sqlalchemy

        connection = self._connect()
        if self.postgres:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
        else:
            connection.execute(sqlalchemy.text("SELECT GET_LOCK(:n, -1)"), {"n": self.name})
        try:
            yield
        finally:
            if self.postgres:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            else:
                connection.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:n)"), {"n": self.name})


class FileLock:
    """``flock`` on a file of the run folder (the processes of one host)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        import fcntl

        if self.fd is None:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


def claim_lock(run):
    """The claim lock of ``run`` (a :class:`nas.control.rundir.RunDir`): the server's lock on a database server, the
    run folder's ``claim`` file otherwise."""
    if is_server(run.storage_url):
        return ServerLock(run.storage_url, run.study_name)
    return FileLock(run.path / CLAIM_FILE)


# -- heartbeats ------------------------------------------------------------------------------------------------------
def retry_stale(study, trial) -> None:
    """Optuna's heartbeat-stale callback: enqueue the parameters of ``trial`` (failed by
    ``fail_stale_trials``: its process stopped beating) again, as a retry of it."""
    kept = {k: trial.user_attrs[k] for k in KEPT_ON_RETRY if k in trial.user_attrs}  # a repeat stays a repeat
    study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number, **kept})


def fail_stale(study) -> None:
    """Fail the running trials whose heartbeat stopped, and enqueue them again (a no-op without heartbeats)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning
        optuna.storages.fail_stale_trials(study)


class Heartbeat:
    """Records the heartbeat of one running trial every ``interval`` seconds, in a thread, until stopped."""

    def __init__(self, storage, study_name: str, number: int, interval: float):
        study_id = storage.get_study_id_from_name(study_name)
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        self.storage = storage
        self.interval = interval
        self.stop_event = threading.Event()
        self.storage.record_heartbeat(self.trial_id)  # the first one at once: a trial killed now is found stale
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{number}", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop_event.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # noqa: BLE001 - a lost connection: the next beat tries again
                pass

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=5)


def heartbeat_storage(url: str, heartbeat_s: int):
    """Optuna's ``RDBStorage`` for a server run: heartbeats every ``heartbeat_s`` s, a grace period of
    ``GRACE_FACTOR`` x that, and :func:`retry_stale` for the trials it fails."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning: heartbeat_interval
        return optuna.storages.RDBStorage(url, heartbeat_interval=int(heartbeat_s),
                                          grace_period=int(heartbeat_s) * GRACE_FACTOR,
                                          heartbeat_stale_trial_callback=retry_stale)


__all__ = ["RUN_ATTR", "DEFAULT_HEARTBEAT_S", "GRACE_FACTOR", "is_server", "check_heartbeat", "publish", "published",
           "claim_lock", "retry_stale", "fail_stale", "Heartbeat", "heartbeat_storage"]
