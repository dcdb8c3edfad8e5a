"""PostgreSQL for real: a throwaway cluster on loopback, `nas search --workers 2` into it, read back by Optuna's CLI.

Skipped cleanly where the PostgreSQL server binaries (``/usr/lib/postgresql/*/bin/initdb``, Debian's
``postgresql`` package) or SQLAlchemy's PostgreSQL driver are missing (psycopg 3 for SQLAlchemy >= 2.1, psycopg2
before; both are in the test extra).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import signal
import time

from control_helpers import ENV, counted, nas, start, write_config


def _driver_missing() -> str | None:
    """SQLAlchemy's driver for a plain postgresql:// URL (psycopg 3 from SQLAlchemy 2.1, psycopg2 before)."""
    try:
        from sqlalchemy.engine.url import make_url

        make_url("postgresql://x@127.0.0.1/x").get_dialect().import_dbapi()
    except ImportError as e:
        return f"no PostgreSQL driver for SQLAlchemy ({e}; pip install 'psycopg[binary]' psycopg2-binary)"
    return None


if _driver_missing():
    pytest.skip(_driver_missing(), allow_module_level=True)

INITDB = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
if not INITDB and shutil.which("initdb"):
    INITDB = [shutil.which("initdb")]
if not INITDB:
    pytest.skip("PostgreSQL server binaries (initdb) are not installed", allow_module_level=True)
BIN = Path(INITDB[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    """initdb / pg_ctl refuse to run as root: run them as the `postgres` user then."""
    if os.geteuid() != 0:
        return args
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *args]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{a}'" for a in args)]


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server on 127.0.0.1:<free port> with an empty database ``nas``; stopped and removed after."""
    root = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = _free_port()
    env = {**ENV, "LC_ALL": "C"}
    run = lambda args: subprocess.run(_as_postgres(args), capture_output=True, text=True, env=env, timeout=120)  # noqa: E731
    result = run([str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
    if result.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {result.stderr[-2000:]}")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    result = run([str(BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"])
    if result.returncode != 0:
        text = log.read_text() if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {result.stderr[-1000:]} {text[-1000:]}")
    try:
        created = subprocess.run([str(BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                  "-d", "postgres", "-c", "CREATE DATABASE nas"],
                                 capture_output=True, text=True, env=env, timeout=60)
        assert created.returncode == 0, created.stderr
        yield f"postgresql://postgres@127.0.0.1:{port}/nas"
    finally:
        run([str(BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_on_postgresql_read_back_by_optuna_cli(tmp_path, postgres_url):
    config = write_config(tmp_path, "pg", trials=5)
    result = nas("search", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet", "--workers", "2",
                 "--max-trials-per-worker", "2", "--storage", postgres_url, timeout=300)
    assert result.returncode == 0, result.stderr
    run = json.loads((tmp_path / "runs" / "pg" / "run.json").read_text())
    assert run["storage"] == postgres_url and not (tmp_path / "runs" / "pg" / "journal.log").exists()

    import optuna

    trials = optuna.load_study(study_name="pg", storage=postgres_url).get_trials()
    numbers = [t.number for t in trials]
    assert numbers == sorted(set(numbers)) == list(range(len(trials)))
    assert counted(trials) == 5
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) >= 3  # two workers, recycled

    optuna_cli = Path(sys.executable).with_name("optuna")
    listed = subprocess.run([str(optuna_cli), "trials", "--storage", postgres_url, "--study-name", "pg", "-f", "json"],
                            capture_output=True, text=True, env=ENV, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["number"] for r in rows) == numbers
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert complete and all(set(r["values"]) == {"accuracy", "latency_ms"} for r in complete)
    for r in complete:
        assert {"spec_hash", "spec", "objectives", "worker"} <= set(r["user_attrs"])

    # a second search into the same database under the same study name is refused before anything is written
    again = nas("search", str(config), "--runs-dir", str(tmp_path / "other"), "--storage", postgres_url)
    assert again.returncode == 2 and "already holds a study named 'pg'" in again.stderr
    assert not (tmp_path / "other").exists()


def _study(url: str, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError:
        return None


def _wait_for(what: str, check, timeout: float = 120.0, procs=()):
    end = time.time() + timeout
    while time.time() < end:
        value = check()
        if value:
            return value
        for proc in procs:
            assert proc.poll() is None, f"{proc.args} exited early: {proc.communicate()}"
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_independent_workers_join_one_run_and_a_killed_worker_is_retried(tmp_path, postgres_url):
    """`nas worker` from a separate run folder joins a run on PostgreSQL, reading its settings from the storage; the
    worker is SIGKILLed mid-trial, its heartbeat stops, the other process fails that trial and runs its retry: the
    target is counted exactly and no architecture is trained twice."""
    # 12 trials of seconds each: the search must still be running when the worker (a fresh process importing torch)
    # claims its first trial, also on a loaded machine
    config = write_config(tmp_path, "joined", space="vision", trials=12, train_subset=400,
                          budget={"epochs": 1, "batch_size": 32})
    creator = start("search", str(config), "--runs-dir", str(tmp_path / "host-a"), "--storage", postgres_url,
                    "--heartbeat", "1", "--quiet")
    try:
        _wait_for("the run's settings in the storage",
                  lambda: (s := _study(postgres_url, "joined")) is not None and "nas_run" in s.user_attrs,
                  procs=[creator])
        worker = start("worker", postgres_url, "--study", "joined", "--runs-dir", str(tmp_path / "host-b"), "-q")
        try:
            def worker_trial():
                study = _study(postgres_url, "joined")
                return [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"
                        and t.user_attrs.get("worker", {}).get("pid") == worker.pid and "spec_hash" in t.user_attrs]

            running = _wait_for("a trial of the worker", worker_trial, procs=[creator, worker])
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(30)
        finally:
            if worker.poll() is None:
                worker.kill()
        out, err = creator.communicate(timeout=300)
        assert creator.returncode == 0, err[-3000:]
    finally:
        if creator.poll() is None:
            creator.kill()

    trials = _study(postgres_url, "joined").get_trials()
    assert counted(trials) == 12
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    killed = next(t for t in trials if t.number == running[0].number)
    assert killed.state.name == "FAIL" and "status" not in killed.user_attrs  # failed by the heartbeat, not told
    retries = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params and retries[0].state.name != "FAIL"
    assert retries[0].user_attrs["worker"]["pid"] == creator.pid
    trained = [t.user_attrs["spec_hash"] for t in trials
               if t.state.name == "COMPLETE" and "reused_from" not in t.user_attrs]
    assert len(trained) == len(set(trained))  # no architecture trained twice
    assert {t.user_attrs["worker"]["pid"] for t in trials} == {creator.pid, worker.pid}

    # the worker's own folder: the run's settings from the storage; joining a finished run takes nothing
    folder = tmp_path / "host-b" / f"joined-{socket.gethostname()}"
    meta = json.loads((folder / "run.json").read_text())
    assert meta["storage"] == postgres_url and meta["study_name"] == "joined" and meta["role"] == "worker"
    assert (folder / "config.yaml").read_text() == (tmp_path / "host-a" / "joined" / "config.yaml").read_text()
    again = nas("worker", str(folder), "-q")
    assert again.returncode == 0, again.stderr
    assert len(_study(postgres_url, "joined").get_trials()) == len(trials)


def test_worker_refuses_what_it_cannot_join(tmp_path, postgres_url):
    missing = nas("worker", postgres_url, "--study", "nothing-here")
    assert missing.returncode == 2 and "study 'nothing-here' is not in the storage" in missing.stderr
    file_url = nas("worker", f"sqlite:///{tmp_path / 'x.db'}")
    assert file_url.returncode == 2 and "need a database server" in file_url.stderr
    heartbeat = nas("search", str(write_config(tmp_path, "hb")), "--runs-dir", str(tmp_path / "runs"),
                    "--heartbeat", "2")
    assert heartbeat.returncode == 2 and "--heartbeat" in heartbeat.stderr and not (tmp_path / "runs").exists()
