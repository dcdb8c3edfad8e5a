"""experiments/nb201_end_to_end.py's bookkeeping: the records that let its six one-hour runs be spread over sessions,
and the pick a run would make at a time mark (the runs themselves take an hour each)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="module")
def e2e(experiment_script):
    return experiment_script("nb201_end_to_end")


class Entry:
    """A table entry: what the pick looks up."""

    def __init__(self, mean):
        self.mean_accuracy = mean


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
    table = {"000000": Entry(0.10), "333132": Entry(0.9161), "111111": Entry(0.85)}
    rows = [{"accuracy": 0.30, "index": "111111", "end_s": 10.0},
            {"accuracy": 0.45, "index": "333132", "end_s": 100.0},
            {"accuracy": 0.50, "index": "000000", "end_s": 200.0}]
    assert e2e.pick_truth(rows, 5.0, table) is None
    assert e2e.pick_truth(rows, 50.0, table) == pytest.approx(85.0)
    assert e2e.pick_truth(rows, 150.0, table) == pytest.approx(91.61)
    assert e2e.pick_truth(rows, 250.0, table) == pytest.approx(10.0)  # the observed value decides, not the truth
    assert e2e.spent([{"seconds": 30.0}, {"seconds": 50.0}], 2) == pytest.approx(40.0)


def test_a_pick_rule_ranks_the_finished_trials_by_the_mean_of_its_scores_ranks(e2e):
    table = {"a": Entry(0.90), "b": Entry(0.91), "c": Entry(0.80)}
    rows = [{"accuracy": 0.50, "index": "a", "end_s": 10.0},
            {"accuracy": 0.45, "index": "b", "end_s": 20.0},
            {"accuracy": 0.40, "index": "c", "end_s": 30.0}]
    scores = {"naswot": {"a": 1.0, "b": 3.0, "c": 2.0}}
    assert e2e.pick_truth(rows, 60.0, table) == pytest.approx(90.0)  # proxy accuracy alone: a
    assert e2e.pick_truth(rows, 60.0, table, ("naswot",), scores) == pytest.approx(91.0)
    # ranks: accuracy a3 b2 c1, naswot a1 b3 c2 -> a4 b5 c3: b
    assert e2e.pick_truth(rows, 60.0, table, ("accuracy", "naswot"), scores) == pytest.approx(91.0)
    # a tie of the summed ranks goes to the higher proxy accuracy: a 3+1, b 2+2, c 1+3 -> a
    tied = {"naswot": {"a": 1.0, "b": 2.0, "c": 3.0}}
    assert e2e.pick_truth(rows, 60.0, table, ("accuracy", "naswot"), tied) == pytest.approx(90.0)
    assert e2e.pick_truth(rows, 15.0, table, ("accuracy", "naswot"), scores) == pytest.approx(90.0)  # only a by then
    assert ("accuracy", "naswot") in e2e.PICK_RULES.values()
    # a score the rows hold (each trial's own naswot, as nas export --rank-with naswot ranks); a rule whose score
    # neither the rows nor the scores hold does not apply
    own = [{**r, "run_naswot": v} for r, v in zip(rows, (1.0, 3.0, 2.0))]
    assert e2e.pick_truth(own, 60.0, table, ("accuracy", "run_naswot")) == pytest.approx(91.0)
    assert e2e.pick_truth(rows, 60.0, table, ("accuracy", "run_naswot"), scores) is None
    # a row without the score is left out (b's naswot failed): among a and c, a 2+1, c 1+2: a tie, a by accuracy
    assert e2e.pick_truth([own[0], rows[1], own[2]], 60.0, table, ("accuracy", "run_naswot")) == pytest.approx(90.0)
    assert e2e.DEFAULT_RULE == ("accuracy", "run_naswot") and e2e.DEFAULT_RULE in e2e.PICK_RULES.values()


def test_a_record_is_filled_in_with_the_trials_own_naswot_from_its_run_folder(e2e, tmp_path, monkeypatch):
    rec = {"sampler": "default", "seed": 2, "rows": [{"accuracy": 0.5, "index": "a", "end_s": 1.0},
                                                     {"accuracy": 0.4, "index": "b", "end_s": 2.0}]}
    run = tmp_path / "default-s2"
    assert e2e.with_run_naswot(rec, run) is rec  # no run folder
    (run).mkdir()
    (run / "config.yaml").write_text("sampler: tpe\n")
    monkeypatch.setattr(e2e, "finished", lambda _: [{**rec["rows"][0], "run_naswot": 7.0},
                                                    {**rec["rows"][1], "run_naswot": 9.0}])
    filled = e2e.with_run_naswot(rec, run)
    assert [r["run_naswot"] for r in filled["rows"]] == [7.0, 9.0] and filled["seed"] == 2
    assert "run_naswot" not in rec["rows"][0]  # the loaded record is not changed in place
    assert e2e.with_run_naswot(filled, run) is filled  # already complete
    monkeypatch.setattr(e2e, "finished", lambda _: [{**rec["rows"][0], "run_naswot": 7.0}])  # other trials
    assert e2e.with_run_naswot(rec, run) is rec


def test_zero_cost_scores_are_the_zero_cost_studys_naswot_and_are_cached(e2e, experiment_script, tmp_path):
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "cifar10_small.npz").exists() and not (SHARED_DATA / "cifar10.npz").exists():
        pytest.skip("needs the shared CIFAR-10 data (NAS_DATA_DIR)")
    import torch

    from nas.bench.nb201 import param_count
    from nas.data import load_dataset
    from nas.evaluate.evaluate import EvalConfig, proxy_batch

    cache = tmp_path / "cache.jsonl"
    scores = e2e.zero_cost_scores({"333132", "000000"}, str(SHARED_DATA), progress=lambda _: None, cache_path=cache)
    assert scores["params"] == {"333132": float(param_count("333132")), "000000": float(param_count("000000"))}
    proxies = experiment_script("nb201_proxies")
    data = load_dataset("cifar10", val_fraction=0.1, seed=0, data_dir=str(SHARED_DATA))
    batch = proxy_batch(data, EvalConfig(seed=0, zero_cost_batch_size=64), proxies.INPUT)
    torch.set_num_threads(1)
    expected = proxies.zero_cost_one("333132", batch, 0)["scores"]["naswot"]
    assert scores["naswot"]["333132"] == pytest.approx(expected, rel=1e-6)
    lines = cache.read_text().splitlines()
    assert len(lines) == 2
    again = e2e.zero_cost_scores({"333132"}, str(SHARED_DATA), progress=lambda _: None, cache_path=cache)
    assert again["naswot"]["333132"] == scores["naswot"]["333132"] and cache.read_text().splitlines() == lines


def test_a_rescored_naswot_is_the_one_the_trials_of_a_run_recorded(e2e):
    """Seed 2's runs kept each trial's own NASWOT: rescoring their architectures gives the same numbers, so records
    made before trials kept them can be filled in."""
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "cifar10_small.npz").exists() and not (SHARED_DATA / "cifar10.npz").exists():
        pytest.skip("needs the shared CIFAR-10 data (NAS_DATA_DIR)")
    kept = [r for r in e2e.load_records().values() if r["seed"] == 2 and any("run_naswot" in x for x in r["rows"])]
    assert kept, "the recorded study has seed 2's runs with their trials' own NASWOT"
    rows = [x for x in kept[0]["rows"] if "run_naswot" in x][:3]
    scores = e2e.run_naswot_scores({x["index"] for x in rows}, 2, args(data_dir=str(SHARED_DATA)),
                                   progress=lambda *_, **__: None)
    assert {x["index"]: x["run_naswot"] for x in rows} == {i: scores[i] for i in scores}

    bare = {**kept[0], "rows": [{k: v for k, v in x.items() if k != "run_naswot"} for x in rows]}
    filled = e2e.rescored_run_naswot(bare, args(data_dir=str(SHARED_DATA)), progress=lambda *_, **__: None)
    assert filled["run_naswot"] == "rescored" and filled["rows"] == rows
    assert e2e.rescored_run_naswot(kept[0], args()) is kept[0]  # the trials kept their own: left as it is


def test_a_loss_run_of_a_reduced_proxy_is_a_setting_of_its_own_and_picks_by_loss_and_naswot(e2e):
    """``--objective val_loss --depth 0.2 --width 0.5``: the records of the first runs keep their key; the runs'
    config is valid and picks by the mean rank of the loss and the trial's own NASWOT, ties to the lower loss."""
    from nas.control.config import load_config

    plain = e2e.setting_of(args())
    assert plain == {"hours": 1.0, "epochs": 5.0, "resolution": 0.5, "batch_size": 128, "workers": 2}
    loss = args(epochs=10.0, resolution=0.75, depth=0.2, width=0.5, objective="val_loss", data_dir=None)
    assert e2e.setting_of(loss) == {**plain, "epochs": 10.0, "resolution": 0.75, "depth": 0.2, "width": 0.5,
                                    "objective": "val_loss"}
    loaded = load_config(e2e.run_config(loss, None, 0, 3600.0))[0]
    assert loaded.objectives == ["val_loss"] and (loaded.budget.depth, loaded.budget.width) == (0.2, 0.5)
    assert loaded.rank_with_name == "naswot"

    table = {"a": Entry(0.90), "b": Entry(0.91), "c": Entry(0.80)}
    rows = [{"accuracy": 0.40, "val_loss": 1.0, "run_naswot": 1.0, "index": "a", "end_s": 10.0},
            {"accuracy": 0.45, "val_loss": 1.1, "run_naswot": 3.0, "index": "b", "end_s": 20.0},
            {"accuracy": 0.50, "val_loss": 1.2, "run_naswot": 2.0, "index": "c", "end_s": 30.0}]
    rule = e2e.DEFAULT_RULES["val_loss"]
    # ranks: -loss a3 b2 c1, naswot a1 b3 c2 -> a4 b5 c3: b
    assert e2e.pick(rows, 60.0, table, rule) == pytest.approx(91.0)
    assert e2e.pick(rows, 60.0, table, ("-val_loss",)) == pytest.approx(90.0)  # the lowest loss, not best accuracy
    tied = [{**r, "run_naswot": v} for r, v in zip(rows, (1.0, 2.0, 3.0))]  # a 3+1, b 2+2, c 1+3: to the lower loss
    assert e2e.pick(tied, 60.0, table, rule) == pytest.approx(90.0)
    assert e2e.pick(tied, 60.0, table, ("accuracy", "run_naswot")) == pytest.approx(80.0)  # to the higher accuracy
    columns = e2e.rule_columns("val_loss")
    assert [label for label in columns if "the default" in label] == [list(columns)[-1]]
    assert columns[list(columns)[-1]] == rule and set(e2e.PICK_RULES.values()) <= set(columns.values())
    assert e2e.rule_columns("accuracy") == e2e.PICK_RULES


def test_a_run_folder_of_another_setting_is_refused_not_continued(e2e, tmp_path):
    """``--work`` holds one folder per sampler and seed: a folder left by a study of another budget or objective
    stops the script instead of having its trials counted for this one."""
    import yaml

    loss = args(epochs=10.0, resolution=0.75, depth=0.2, width=0.5, objective="val_loss", data_dir=None)
    run = tmp_path / "default-s0"
    e2e.check_folder(run, loss)  # no folder yet
    run.mkdir()
    stored = {**e2e.run_config(loss, None, 0, 3600.0), "budget": {"epochs": 10.0, "data_fraction": 1.0, "lr": 0.002,
                                                                   "resolution": 0.75, "batch_size": 128,
                                                                   "depth": 0.2, "width": 0.5}}
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    e2e.check_folder(run, loss)  # the same setting: continued
    for other in (args(data_dir=None), args(**{**vars(loss), "objective": "accuracy"}),
                  args(**{**vars(loss), "width": 1.0})):
        with pytest.raises(SystemExit, match="holds a run of another setting"):
            e2e.check_folder(run, other)
