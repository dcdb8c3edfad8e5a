"""experiments/nb201_end_to_end.py's bookkeeping: the records that let its six one-hour runs be spread over sessions,
and the pick a run would make at a time mark (the runs themselves take an hour each)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def e2e(experiment_script):
    return experiment_script("nb201_end_to_end")


def args(**over):
    base = {"hours": 1.0, "epochs": 5.0, "resolution": 0.5, "batch_size": 128, "workers": 2}
    return SimpleNamespace(**{**base, **over})


def test_a_recorded_run_is_found_only_under_its_own_settings(e2e, tmp_path):
    path = tmp_path / "runs.jsonl"
    run = tmp_path / "default-s0"
    run.mkdir()
    (run / "config.yaml").write_text("sampler: tpe\nspace: nb201\n")
    rows = [{"accuracy": 0.41, "index": "333132", "end_s": 35.0, "seconds": 35.0}]
    rec = e2e.append_record(e2e.run_record("default", 0, e2e.setting_of(args()), rows, run), path=path)
    assert rec["resolved_sampler"] == "tpe" and rec["rows"] == rows
    records = e2e.load_records(path)
    assert records[("default", 0, json.dumps(e2e.setting_of(args()), sort_keys=True))]["rows"] == rows
    assert e2e.record_key("default", 0, e2e.setting_of(args(hours=0.5))) not in records
    # a later record of the same run replaces the earlier one
    e2e.append_record(e2e.run_record("default", 0, e2e.setting_of(args()), rows + rows, run), path=path)
    assert len(e2e.load_records(path)) == 1
    assert len(next(iter(e2e.load_records(path).values()))["rows"]) == 2


def test_the_pick_is_the_best_observed_trial_finished_by_the_mark(e2e):
    class Entry:
        def __init__(self, mean):
            self.mean_accuracy = mean

    table = {"000000": Entry(0.10), "333132": Entry(0.9161), "111111": Entry(0.85)}
    rows = [{"accuracy": 0.30, "index": "111111", "end_s": 10.0},
            {"accuracy": 0.45, "index": "333132", "end_s": 100.0},
            {"accuracy": 0.50, "index": "000000", "end_s": 200.0}]
    assert e2e.pick_truth(rows, 5.0, table) is None
    assert e2e.pick_truth(rows, 50.0, table) == pytest.approx(85.0)
    assert e2e.pick_truth(rows, 150.0, table) == pytest.approx(91.61)
    assert e2e.pick_truth(rows, 250.0, table) == pytest.approx(10.0)  # the observed value decides, not the truth
    assert e2e.spent([{"seconds": 30.0}, {"seconds": 50.0}], 2) == pytest.approx(40.0)
