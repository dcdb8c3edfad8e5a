"""The Ray backend (nas.control.ray_run): a Tune experiment over the run's own Optuna study."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
import yaml
from control_helpers import ENV, REPO, TINY, TINY_SPACE, counted, journal_study, nas, write_config

ray = pytest.importorskip("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray runtime for the in-process tests (ray_run reuses a session it did not start)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_search_restore_and_report(tmp_path, ray_session):
    from nas.control.rundir import RunDir
    from nas.control.search import resume, search
    from nas.report import report_data

    cfg = write_config(tmp_path, trials=2)
    search(cfg, name="r", runs_dir=tmp_path / "runs", backend="ray", quiet=True)
    run_dir = tmp_path / "runs" / "r"
    run = RunDir.open(run_dir)
    assert run.meta["backend"] == "ray" and run.meta["ray"]["experiments"] == [{"name": "tune-1", "done": True}]
    assert (run_dir / "ray" / "tune-1").is_dir()
    header = (run_dir / "search.log").read_text().splitlines()[0]
    assert " on Ray (local): " in header and "; data: 180 training / 20 validation examples (" in header
    trials = journal_study(run_dir).trials
    assert counted(trials) == 2
    for t in trials:
        assert t.state.name == "COMPLETE"
        assert {"spec", "spec_hash", "summary", "budget_key", "status", "objectives", "curve", "cost",
                "ray_trial_id", "val_correct"} <= set(t.user_attrs)
        assert t.user_attrs["status"] == "ok" and len(t.values) == 2
    data = report_data(run_dir, baselines=False)
    assert len(data.trials) == 2 and len(data.pareto) >= 1

    # an experiment cut short: `nas resume` restores it (Tuner.restore), then a new one reaches the new target
    run.meta["ray"]["experiments"][-1]["done"] = False
    run.save_meta()
    resume(run_dir, trials=3, time_budget_s=600, quiet=True)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["trials"] == 3 and saved.get("time_budget_s") is None  # the time budget was for that call
    run = RunDir.open(run_dir)
    assert [e["name"] for e in run.meta["ray"]["experiments"]] == ["tune-1", "tune-2"]
    assert all(e["done"] for e in run.meta["ray"]["experiments"])
    trials = journal_study(run_dir).trials
    assert counted(trials) == 3
    assert "ray experiment tune-1 (restored)" in (run_dir / "search.log").read_text()


def test_ray_search_with_several_validations_and_rungs(tmp_path, ray_session):
    """A budget of 2 epochs validates twice and rungs stop trials in the middle: every report carries the metrics
    Ray Tune checks (the objectives and rung_accuracy), so the search finishes with the exact count."""
    from nas.control.search import search

    cfg = write_config(tmp_path, trials=4, budget={"epochs": 2, "batch_size": 32}, rungs=[0.5], rung_keep=0.5)
    search(cfg, name="rungs", runs_dir=tmp_path / "runs", backend="ray", quiet=True)
    trials = journal_study(tmp_path / "runs" / "rungs").trials
    assert counted(trials) == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert complete and all([p["epoch"] for p in t.user_attrs["curve"]] == [1.0, 2.0] for t in complete)
    for t in trials:
        if t.state.name == "PRUNED":  # stopped by ASHA at the first validation, with its curve so far
            assert t.user_attrs["status"] == "pruned" and [p["epoch"] for p in t.user_attrs["curve"]] == [1.0]


def test_tune_metrics_name_every_checked_metric():
    from nas.control.ray_run import tune_metrics

    early = tune_metrics(["accuracy", "latency_ms"])
    assert set(early) == {"accuracy", "latency_ms", "rung_accuracy"} and all(v != v for v in early.values())
    final = tune_metrics(["accuracy", "latency_ms"], [0.9, 2.5], 0.9)
    assert final == {"accuracy": 0.9, "latency_ms": 2.5, "rung_accuracy": 0.9}


def test_ray_backend_drives_the_predictor_sampler(tmp_path, ray_session):
    """The predictor decides a whole spec in before_trial and replays it: that works through OptunaSearch too."""
    from nas.control.search import search
    from nas.grammar import Space

    warm = Space.load(TINY_SPACE).sample(123)  # and a warm start: enqueued in the study, asked for by OptunaSearch
    warm.save(tmp_path / "warm.json")
    # 5 trials: two trials run at once, so under load the 4th can be asked before 2 are complete (still startup)
    cfg = write_config(tmp_path, trials=5, sampler="predictor", population_size=2, warm_start=["warm.json"])
    search(cfg, name="p", runs_dir=tmp_path / "runs", backend="ray", quiet=True)
    trials = journal_study(tmp_path / "runs" / "p").trials
    assert counted(trials) == 5
    assert trials[0].user_attrs["warm_start"] == "warm.json" and trials[0].user_attrs["spec_hash"] == warm.hash()
    assert "predictor" not in trials[0].user_attrs  # the sampler leaves an enqueued trial alone
    notes = [t.user_attrs["predictor"] for t in trials[1:]]
    assert all(n["pool"] >= 1 for n in notes)
    assert any("predicted" in n for n in notes)  # after the 2 startup trials the forest chose
    assert len({t.user_attrs["spec_hash"] for t in trials}) == 5


def test_ray_reuses_a_spec_evaluated_before(tmp_path, ray_session):
    """No repeats on Ray: a spec already COMPLETE at the same budget is told its stored result (``reused_from``)
    by the searcher and never becomes a Ray trial."""
    from nas.control.engine import COPIED_ATTRS
    from nas.control.search import search

    space = tmp_path / "space2.yaml"  # two architectures (relu / silu): 5 trials must repeat one
    space.write_text(TINY_SPACE.read_text().replace("kernel_size: [3, 5]", "kernel_size: 3")
                     .replace("width: [8, 16]", "width: 8"))
    cfg = write_config(tmp_path, "two", space=str(space), trials=5)
    search(cfg, name="two", runs_dir=tmp_path / "runs", backend="ray", quiet=True)
    run_dir = tmp_path / "runs" / "two"
    trials = journal_study(run_dir).trials
    assert len(trials) == counted(trials) == 5 and all(t.state.name == "COMPLETE" for t in trials)
    reused = [t for t in trials if "reused_from" in t.user_attrs]
    trained = [t for t in trials if "reused_from" not in t.user_attrs]
    assert reused and len({t.user_attrs["spec_hash"] for t in trained}) <= 2
    # (two Ray trials run at once: a spec whose first run has not finished yet may be trained twice, as with
    # --workers; everything sampled after a COMPLETE one is reused)
    assert all("ray_trial_id" in t.user_attrs for t in trained)
    ray_trials = [d for d in (run_dir / "ray" / "tune-1").iterdir() if d.is_dir() and d.name.startswith("_trainable")]
    assert len(ray_trials) == len(trained)  # a reused trial never ran on Ray
    for t in reused:
        source = trials[t.user_attrs["reused_from"]]
        assert source.number < t.number and "reused_from" not in source.user_attrs
        assert "ray_trial_id" not in t.user_attrs
        assert (source.user_attrs["spec_hash"], source.user_attrs["budget_key"]) == \
            (t.user_attrs["spec_hash"], t.user_attrs["budget_key"])
        assert t.values == source.values
        assert {k: t.user_attrs[k] for k in COPIED_ATTRS if k in source.user_attrs} == \
            {k: source.user_attrs[k] for k in COPIED_ATTRS if k in source.user_attrs}
    log = (run_dir / "search.log").read_text()
    assert sum(" reused " in line for line in log.splitlines()) == len(reused)


def test_unreachable_address_is_one_line_and_writes_nothing(tmp_path):
    cfg = write_config(tmp_path)
    port = _free_port()
    t0 = time.perf_counter()
    proc = nas("search", str(cfg), "--backend", "ray", "--ray-address", f"127.0.0.1:{port}",
               "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--ray-address" in lines[0] and f"127.0.0.1:{port}" in lines[0]
    assert not (tmp_path / "runs").exists()
    assert time.perf_counter() - t0 < 60
    proc = nas("search", str(cfg), "--backend", "ray", "--ray-address", "nonsense", "--runs-dir",
               str(tmp_path / "runs"))
    assert proc.returncode == 2 and "HOST:PORT" in proc.stderr and not (tmp_path / "runs").exists()


def test_backend_does_not_import_ray_by_default():
    code = "import sys, nas, nas.control.search, nas.cli; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, check=True, timeout=60)


def test_scheduler_and_outcomes():
    from nas.control.backends import pop_gpus as _pop_gpus
    from nas.control.config import load_config
    from nas.control.ray_run import make_scheduler
    from nas.control.ray_run import ray_outcome as outcome
    from nas.errors import RunError

    config, _ = load_config({**TINY, "budget": {"epochs": 4}, "rungs": [0.25, 0.5], "rung_keep": 0.5})
    asha = make_scheduler(config)
    assert type(asha).__name__ == "AsyncHyperBandScheduler" and asha._metric == "rung_accuracy"
    assert make_scheduler(load_config(TINY)[0]) is None
    objectives = ["accuracy", "latency_ms"]
    final = {"nas_final": True, "nas_state": "COMPLETE", "nas_attrs": json.dumps({"status": "ok"}),
             "nas_constraints": "{}", "accuracy": 0.5, "latency_ms": 2.0}
    assert outcome(final, False, objectives) == ("COMPLETE", [0.5, 2.0], {"status": "ok"}, {})
    state, values, attrs, _ = outcome({"epoch": 1.0, "rung_accuracy": 0.1, "nas_curve": "[]"}, False, objectives)
    assert state == "PRUNED" and values is None and "ASHA" in attrs["reason"]
    assert outcome(None, True, objectives)[0] == "FAIL"
    overrides = {"gpus_per_trial": 0.25, "trials": 3}
    assert _pop_gpus(overrides) == 0.25 and overrides == {"trials": 3}
    with pytest.raises(RunError):
        _pop_gpus({"gpus_per_trial": -1})


@pytest.mark.slow
def test_a_refused_join_names_ray_auth_mode_when_tokens_are_in_play(tmp_path, monkeypatch):
    from nas.control.ray_run import auth_hint

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    none = tmp_path / "no_token"
    token = tmp_path / "auth_token"
    token.write_text("secret")
    assert auth_hint("Failed to connect to GCS", none) == ""  # nothing points at authentication
    assert "RAY_AUTH_MODE=token" in auth_hint("Failed to connect to GCS", token)  # a token file, mode not set
    assert "RAY_AUTH_MODE=token" in auth_hint("Unauthenticated: invalid auth token", none)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert auth_hint("Failed to connect to GCS", token) == ""  # the mode is set: not the cause
