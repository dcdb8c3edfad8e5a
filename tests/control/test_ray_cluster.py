"""A Ray cluster of two nodes (a head on 127.0.0.2, a node on 127.0.0.3): a node lost mid-trial, then resume.

Kept apart from test_ray.py, whose tests share one in-process Ray runtime, so that the two files run in parallel."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from control_helpers import ENV, NAS, REPO, counted, journal_study, nas, read_trials, write_config

ray = pytest.importorskip("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_node(ray_cmd: str, env: dict, *args: str) -> subprocess.Popen:
    """`ray start --block ...` in a process group of its own (ended by id: no other Ray on the machine is touched)."""
    return subprocess.Popen([ray_cmd, "start", "--block", "--num-cpus=1", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def _end_group(proc: subprocess.Popen, sig=None) -> None:
    import os
    import signal

    try:
        os.killpg(proc.pid, sig or signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def _trial_processes(session: int) -> list[int]:
    """Ray worker processes of the node in ``session`` that are running a trial (process title ray::ImplicitFunc)."""
    import os

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) != session:
                continue
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except (OSError, ProcessLookupError):
            continue
        if title.startswith(b"ray::ImplicitFunc") or title.startswith(b"ray::_trainable"):
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_two_node_cluster_survives_a_node_loss_and_resumes(tmp_path):
    """A head on 127.0.0.2 and a second node on 127.0.0.3 (one CPU each, temp dirs of their own), joined by
    `nas search --ray-address`; a search with a 10-epoch budget and rungs whose trials land on both nodes; the second
    node is SIGKILLed while it trains a trial, which Ray runs again on the head: the count is exact; then `nas
    resume` to a higher target, and the report."""
    import os
    import signal
    import tempfile

    ray_cmd = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray_cmd is None:
        pytest.skip("no `ray` command")
    try:
        socket.create_connection(("127.0.0.2", 9), timeout=0.2).close()
    except ConnectionRefusedError:
        pass
    except OSError:
        pytest.skip("127.0.0.2 is not a loopback address here")
    port = _free_port()
    head_temp = tempfile.mkdtemp(prefix="nrh", dir="/tmp")  # AF_UNIX socket paths must stay under 107 bytes
    node_temp = tempfile.mkdtemp(prefix="nrn", dir="/tmp")
    env = {**ENV, "RAY_AUTH_MODE": "disabled"}
    address = f"127.0.0.2:{port}"
    quick = {**env, "RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
             "RAY_health_check_failure_threshold": "3"}  # the head notices a lost node in seconds
    head = _ray_node(ray_cmd, quick, "--head", f"--port={port}", "--include-dashboard=false",
                     "--node-ip-address=127.0.0.2", f"--temp-dir={head_temp}")
    node = None
    try:
        deadline = time.time() + 60
        while True:
            assert head.poll() is None, "ray start --head exited"
            try:
                socket.create_connection(("127.0.0.2", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "the Ray head did not come up"
                time.sleep(0.5)
        node = _ray_node(ray_cmd, env, f"--address={address}", "--node-ip-address=127.0.0.3",
                         f"--temp-dir={node_temp}")
        # 360 steps an epoch (0.7 s here, more on a loaded machine) and the first rung at epoch 8 of 10: the node
        # is lost after a trial's first validation there (which the driver records a second or two late) and
        # seconds before that trial could end or be stopped
        cfg = write_config(tmp_path, "two", trials=5, train_subset=1600, rungs=[0.8], rung_keep=0.5,
                           budget={"epochs": 10, "batch_size": 4})
        run_dir = tmp_path / "runs" / "two"
        search = subprocess.Popen([*NAS, "search", str(cfg), "--backend", "ray", "--ray-address", address, "-q",
                                   "--runs-dir", str(tmp_path / "runs")], cwd=REPO, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def training_on_second_node() -> list:  # a running trial that reported a validation from 127.0.0.3
                return [t.number for t in read_trials(run_dir) if t.state.name == "RUNNING"
                        and [n["ip"] for n in t.user_attrs.get("ray_nodes", [])] == ["127.0.0.3"]]

            deadline = time.time() + 150
            while not (lost := training_on_second_node()):
                assert search.poll() is None, search.communicate()[1][-3000:]
                assert time.time() < deadline, "no trial ran on the second node"
                time.sleep(0.1)
            os.killpg(node.pid, signal.SIGKILL)  # the node, its raylet and its workers at once, mid-trial
            node.wait(timeout=30)
            out, err = search.communicate(timeout=300)
        finally:
            if search.poll() is None:
                search.kill()
        assert search.returncode == 0, err[-3000:]
        trials = journal_study(run_dir).trials
        assert counted(trials) == 5 and len(trials) == 5
        assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), [t.user_attrs for t in trials]
        retried = trials[lost[0]]  # Ray ran the lost node's trial again on the head, to the end
        assert [n["ip"] for n in retried.user_attrs["ray_nodes"]] == ["127.0.0.3", "127.0.0.2"]
        assert retried.user_attrs["ray_node"]["ip"] == "127.0.0.2" and "curve" in retried.user_attrs
        trained = [t for t in trials if "reused_from" not in t.user_attrs]
        assert {n["ip"] for t in trained for n in t.user_attrs["ray_nodes"]} == {"127.0.0.2", "127.0.0.3"}

        resumed = subprocess.run([*NAS, "resume", str(run_dir), "--trials", "6", "--ray-address", address, "-q"],
                                 cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert counted(journal_study(run_dir).trials) == 6
        report = nas("report", str(run_dir), "--no-baselines")
        assert report.returncode == 0, report.stderr
        assert (run_dir / "report" / "report.html").is_file()
    finally:
        if node is not None:
            _end_group(node)
        _end_group(head)
        shutil.rmtree(head_temp, ignore_errors=True)
        shutil.rmtree(node_temp, ignore_errors=True)
