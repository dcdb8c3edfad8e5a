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
from conftest import ENV, counted, nas, write_config


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
