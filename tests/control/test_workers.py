"""`--workers N`: worker processes sharing one storage, recycled; exact counts; kill -9 of all, then resume."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from control_helpers import (TINY_SPACE, counted, journal_study, kill_9_when, nas, running_after_done, start,
                             write_config)

from nas.control.owners import OWNER_ATTR, owner, owner_alive

SLOW = {"train_subset": 1000, "budget": {"epochs": 3, "batch_size": 16}}  # ~0.7 s per trained trial


def _study(run: Path, storage: str | None):
    if storage is None:
        return journal_study(run)
    return optuna.load_study(study_name=run.name, storage=storage)


def _check_exact(trials, target: int) -> None:
    numbers = [t.number for t in trials]
    assert numbers == sorted(set(numbers)) == list(range(len(trials)))  # no duplicate trial numbers
    assert counted(trials) == target  # the shared target, exactly
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    for t in trials:
        if t.state.name == "COMPLETE":  # every result is present
            assert len(t.values) == 2 and "spec_hash" in t.user_attrs and "objectives" in t.user_attrs
        if not t.user_attrs.get("stale"):
            assert t.user_attrs[OWNER_ATTR]["host"] == socket.gethostname()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_two_workers_share_the_storage(tmp_path, backend):
    from nas.grammar import Space

    warm = [Space.load(TINY_SPACE).sample(seed) for seed in (0, 1)]  # each warm start trained once, first
    assert warm[0].hash() != warm[1].hash()
    for i, spec in enumerate(warm):
        spec.save(tmp_path / f"warm{i}.json")
    config = write_config(tmp_path, "w", trials=7, sampler="random", warm_start=["warm0.json", "warm1.json"])
    storage = f"sqlite:///{tmp_path / 'nas.db'}" if backend == "sqlite" else None
    args = ["search", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet", "--workers", "2",
            "--max-trials-per-worker", "2"]
    result = nas(*args, *(["--storage", storage] if storage else []), timeout=300)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "w"
    trials = _study(run, storage).get_trials()
    _check_exact(trials, 7)
    assert [t.user_attrs.get("warm_start") for t in trials].count("warm0.json") == 1
    assert {t.user_attrs["spec_hash"] for t in trials[:2]} == {w.hash() for w in warm}
    assert sum("warm_start" in t.user_attrs for t in trials) == 2
    pids = {t.user_attrs[OWNER_ATTR]["pid"] for t in trials}
    assert len(pids) >= 4  # 7 trials, 2 per worker: recycled at least twice
    assert "2 worker processes" in result.stdout and "Pareto front" in result.stdout
    # a later resume with a higher target goes on from the count in the storage
    more = nas("resume", str(run), "--quiet", "--trials", "9", "--workers", "2", timeout=300)
    assert more.returncode == 0, more.stderr
    _check_exact(_study(run, storage).get_trials(), 9)


@pytest.mark.slow
def test_kill_9_of_parent_and_workers_then_resume_is_exact(tmp_path):
    config = write_config(tmp_path, "k", trials=8, **SLOW)
    run = tmp_path / "runs" / "k"
    proc = start("search", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet", "--workers", "2",
                 "--max-trials-per-worker", "4")
    at_kill = kill_9_when(proc, run, running_after_done(2), workers=True, timeout=150)
    assert at_kill is not None, "never saw a RUNNING trial"
    victims = [t.number for t in at_kill if t.state.name == "RUNNING" and t.params]
    time.sleep(0.5)  # let the kernel reap the workers (PR_SET_PDEATHSIG kills any that were missed)
    killed = {t.number: t for t in journal_study(run).get_trials()}
    left_running = [n for n, t in killed.items() if t.state.name == "RUNNING"]
    assert set(victims) <= set(left_running)
    resumed = nas("resume", str(run), "--quiet", "--workers", "2", timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    trials = journal_study(run).get_trials()
    _check_exact(trials, 8)
    stale = sorted(t.number for t in trials if t.user_attrs.get("stale"))
    assert stale == sorted(left_running)
    for number in left_running:
        retries = [t for t in trials if t.user_attrs.get("retry_of") == number]
        assert len(retries) == 1 and retries[0].state.is_finished()
    for number, before in killed.items():  # finished trials are untouched
        if before.state.is_finished():
            after = trials[number]
            assert (after.state, after.values, after.params) == (before.state, before.values, before.params)


def test_owner_alive():
    me = owner()
    assert owner_alive(me)
    assert not owner_alive({**me, "host": me["host"] + "-elsewhere"})
    assert not owner_alive({**me, "started": "1"})  # the pid now belongs to another process
    assert not owner_alive(None) and not owner_alive({"pid": "x"})
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert not owner_alive({"pid": dead.pid, "host": me["host"], "started": None})


def test_resume_leaves_a_live_workers_trial_running(tmp_path):
    """Stale detection re-enqueues RUNNING trials of dead processes only."""
    from nas.control.engine import Engine, prepare
    from nas.control.rundir import RunDir
    from nas.control.search import search

    search(write_config(tmp_path, trials=1), runs_dir=tmp_path / "runs", quiet=True)
    run = RunDir.open(tmp_path / "runs" / "tiny")
    study = journal_study(run.path)
    live = study.ask({"x": optuna.distributions.IntDistribution(0, 3)})
    live.set_user_attr(OWNER_ATTR, owner())
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = study.ask({"x": optuna.distributions.IntDistribution(0, 3)})
    dead.set_user_attr(OWNER_ATTR, {"pid": gone.pid, "host": socket.gethostname(), "started": None})
    unknown = study.ask({"x": optuna.distributions.IntDistribution(0, 3)})  # killed before it recorded an owner
    engine = Engine(prepare(run.path / "config.yaml", space_file=run.path / "space.yaml"), quiet=True)
    engine.attach(run, create=False)
    assert sorted(engine.recover_stale()) == [dead.number, unknown.number]
    states = {t.number: t.state.name for t in journal_study(run.path).get_trials()}
    assert states[live.number] == "RUNNING"
    assert states[dead.number] == states[unknown.number] == "FAIL"


def test_bad_worker_options_are_one_line_errors(tmp_path):
    config = write_config(tmp_path)
    runs = tmp_path / "runs"
    cases = [(["--workers", "0"], "--workers must be at least 1"),
             (["--workers", "2", "--max-trials-per-worker", "0"], "--max-trials-per-worker must be at least 1"),
             (["--workers", "2", "--trials-per-gpu", "1"], "not both")]
    import torch

    if not torch.cuda.is_available():
        cases.append((["--trials-per-gpu", "2"], "--trials-per-gpu needs CUDA GPUs"))
    for extra, words in cases:
        result = nas("search", str(config), "--runs-dir", str(runs), *extra)
        assert result.returncode == 2, (extra, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], (extra, result.stderr)
    assert not runs.exists()
