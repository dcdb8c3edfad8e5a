"""nas.inspection and `nas runs` / `nas show`: what a stored run holds, read without training anything."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nas.cli import main
from nas.control.rundir import RunDir
from nas.errors import RunError
from nas.inspection import list_runs, run_overview, trial_detail
from tests.control.control_helpers import write_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A folder with two finished runs of the tiny space, a vision run on digits, a folder that is not a run and a
    run whose config was damaged."""
    from nas.control.search import search

    root = tmp_path_factory.mktemp("runs")
    for name, trials in (("a", 4), ("b", 2)):
        search(write_config(root, name, trials=trials, seed=trials), name=name, runs_dir=root / "runs", quiet=True)
    search(write_config(root, "v", space="vision", trials=2, train_subset=200), name="v", runs_dir=root / "runs",
           quiet=True)
    (root / "runs" / "notes").mkdir()
    search(write_config(root, "broken", trials=1), name="broken", runs_dir=root / "runs", quiet=True)
    (root / "runs" / "broken" / "config.yaml").write_text("space: [unclosed\n")
    return root / "runs"


def test_list_runs_counts_every_trial_once(runs):
    rows = {r["name"]: r for r in list_runs(runs)}
    assert sorted(rows) == ["a", "b", "broken", "v"]  # "notes" is not a run
    assert rows["broken"]["state"] == "unreadable" and "config.yaml" in rows["broken"]["error"]
    for name, target in (("a", 4), ("b", 2), ("v", 2)):
        r = rows[name]
        assert r["state"] == "done" and r["target"] == target == r["counted"]
        assert r["trained"] + r["screened"] + r["reused"] + r["failed"] == r["counted"] and r["running"] == 0
        assert 1 <= len(r["front"]) <= r["trained"] and set(r["best"]) == {"accuracy", "latency_ms"}
        assert r["last_activity"] and r["objectives"] == ["accuracy", "latency_ms"]


def test_a_run_held_by_a_process_is_running(runs):
    run = RunDir.open(runs / "a").lock()
    try:
        assert run_overview(runs / "a")["state"] == f"running (pid {os.getpid()})"
    finally:
        run.unlock()
    assert run_overview(runs / "a")["state"] == "done"


def test_runs_command_text_and_json(runs, capsys):
    assert main(["runs", str(runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("a  done  4/4 counted: ") and "| front " in lines[0]
    # a two-objective run picks its best first objective (rank_with: none): the most accurate trial
    pick = run_overview(runs / "a")["pick"]
    assert f"| pick #{pick['number']} | front " in lines[0] and pick["reason"].startswith("best accuracy of ")
    assert lines[1].startswith("b  done  2/2 counted: ") and lines[2].startswith("broken  unreadable: ")
    assert main(["runs", str(runs), "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["a", "b", "broken", "v"]
    assert main(["runs", str(runs / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {runs / 'nowhere'}: no such folder"


def test_show_a_run_and_a_trial(runs, capsys):
    assert main(["show", str(runs / "a")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"run a ({runs / 'a'}): done") and "objectives: accuracy (maximize), latency_ms" in out
    overview = run_overview(runs / "a")
    number = overview["front"][0]
    assert main(["show", str(runs / "a"), "--trial", str(number), "--json"]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["number"] == number and detail["state"] == "COMPLETE" and detail["spec_hash"]
    assert detail["objectives"]["accuracy"] == overview["best"]["accuracy"] or len(overview["front"]) > 1
    assert detail["cost"]["params"] > 0 and detail["cost"]["latency_ms"] > 0 and detail["curve"]
    assert main(["show", str(runs / "a"), "--trial", str(number)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"trial #{number} of a: COMPLETE (ok)") and "curve (epoch: val accuracy): " in text
    assert main(["show", str(runs / "a"), "--trial", "99"]) == 2
    assert "--trial: no trial #99 in this run (trials: 0..3)" in capsys.readouterr().err


def test_a_trial_names_the_baselines_it_dominates(runs):
    """The run's baseline cache holds one baseline that is worse on both objectives and one that is better: the
    trial dominates the first only (a baseline not evaluated is never named)."""
    from nas.control.engine import prepare
    from nas.grammar import shipped_spaces_dir

    prepared = prepare(runs / "v" / "config.yaml")
    space, key = prepared.space, prepared.config.budget_key()
    space.load_baselines(shipped_spaces_dir() / "baselines")
    (worse, worse_spec), (better, better_spec), *_ = space.baselines.items()
    cache = {f"{worse_spec.hash()}:{key}": {"status": "ok", "objectives": {"accuracy": 0.0, "latency_ms": 1e6}},
             f"{better_spec.hash()}:{key}": {"status": "ok", "objectives": {"accuracy": 1.0, "latency_ms": 1e-6}}}
    (runs / "v" / "baselines.json").write_text(json.dumps(cache))
    number = run_overview(runs / "v")["front"][0]
    assert trial_detail(runs / "v", number)["dominates"] == [worse]


def test_an_unknown_trial_is_a_run_error(runs):
    with pytest.raises(RunError, match=r"no trial #7 in this run \(trials: 0..1\)"):
        trial_detail(runs / "b", 7)
