"""``nas measure``: the front's latency measured again together, written beside the run, shown by the report."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nas.errors import RunError
from nas.remeasure.record import LATENCY_FILE, read_remeasured, remeasured_frame
from nas.remeasure.timing import remeasure, time_in_rounds
from nas.report import report_data, write_report
from tests.control.control_helpers import nas, read_trials, write_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from nas.control.search import search

    folder = tmp_path_factory.mktemp("remeasure")
    config = write_config(folder, trials=6, latency_min_time_s=0.02)  # seconds, not minutes
    search(config, name="small", runs_dir=folder, quiet=True)
    return folder / "small"


@pytest.fixture()
def run(finished_run, tmp_path) -> Path:
    copy = tmp_path / finished_run.name
    shutil.copytree(finished_run, copy)
    return copy


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


def test_measures_the_front_together_and_leaves_the_storage_alone(run):
    before = _snapshot(run)
    trials_before = [(t.number, t.state.name, t.values) for t in read_trials(run)]
    record = remeasure(run, rounds=3)
    front = sorted(int(n) for n in report_data(run, baselines=False).pareto["number"])
    assert sorted(m["number"] for m in record["models"].values()) == front  # the tiny space has no baselines
    for label, m in record["models"].items():
        assert label == f"trial-{m['number']:04d}" and len(m["rounds_ms"]) == 3
        assert m["min_ms"] <= m["median_ms"] <= m["max_ms"] and m["min_ms"] > 0
        assert m["median_ms"] == float(np.median(m["rounds_ms"]))
        assert isinstance(m["stored_latency_ms"], float) and m["values"]["latency_ms"] == m["stored_latency_ms"]
    assert record["settings"] == {"device": "cpu", "batch_size": 1, "threads": 1, "warmup": 0, "repeats": 2,
                                  "min_time_s": 0.02, "runtime": "torch"}  # the run's latency settings (tiny config)
    assert json.loads((run / LATENCY_FILE).read_text()) == record
    after = _snapshot(run)
    assert {k: v for k, v in after.items() if k != LATENCY_FILE} == before  # the journal, config... untouched
    assert [(t.number, t.state.name, t.values) for t in read_trials(run)] == trials_before


def test_python_api(run):
    import nas

    record = nas.measure(run, trials="all", rounds=1)
    assert record == json.loads((run / LATENCY_FILE).read_text()) and record["selection"] == "all"


def test_selection_by_number_and_all(run):
    complete = [t.number for t in read_trials(run) if t.state.name == "COMPLETE"]
    record = remeasure(run, trials=f"{complete[-1]},{complete[0]}", rounds=1)
    assert [m["number"] for m in record["models"].values()] == [complete[-1], complete[0]]
    record = remeasure(run, trials="all", rounds=1, threads=2, batch_size=2)
    assert sorted(m["number"] for m in record["models"].values()) == sorted(complete)
    assert record["settings"]["threads"] == 2 and record["settings"]["batch_size"] == 2


def test_report_shows_the_remeasured_front_and_says_when_it_is_stale(run):
    front = sorted(int(n) for n in report_data(run, baselines=False).pareto["number"])
    remeasure(run, rounds=2)
    paths = write_report(run, baselines=False)
    data = report_data(run, baselines=False)
    assert sorted(int(n) for n in data.remeasured["number"]) == front
    assert data.remeasured["on_front"].any() and "not re-measured" not in data.remeasured_about
    summary = paths["summary.md"].read_text()
    assert "## Latency measured again, together" in summary and "2 interleaved rounds" in summary
    page = paths["report.html"].read_text()
    assert "Latency measured again, together" in page
    assert "timed together (nas measure)" in page  # the scatter's trace: medians with the rounds' range
    assert list(data.remeasured["latency_min_ms"] <= data.remeasured["latency_ms"]) == [True] * len(data.remeasured)

    remeasure(run, trials=str(front[0]), rounds=1)  # only one member: the rest of the front is missing
    data = report_data(run, baselines=False)
    if len(front) > 1:
        assert f"#{front[1]}" in data.remeasured_about and "not re-measured" in data.remeasured_about


def test_a_broken_latency_file_does_not_break_the_report(run):
    (run / LATENCY_FILE).write_text("{not json")
    assert read_remeasured(run) is None
    assert report_data(run, baselines=False).remeasured.empty


def test_rounds_rotate_the_order_and_keep_one_time_per_round():
    calls = []

    def time_one(model, shape):
        calls.append(model)
        return float(len(calls))

    lines = []
    times = time_in_rounds({"a": ("A", (1,)), "b": ("B", (1,)), "c": ("C", (1,))}, 3, time_one, progress=lines.append)
    assert calls == ["A", "B", "C", "B", "C", "A", "C", "A", "B"]  # round r starts at the r-th model
    assert times == {"a": [1.0, 6.0, 8.0], "b": [2.0, 4.0, 9.0], "c": [3.0, 5.0, 7.0]}
    assert lines == ["round 1/3: 3 models", "round 2/3: 3 models", "round 3/3: 3 models"]


def _record(models: dict) -> dict:
    return {"settings": {}, "rounds": 5, "models": models}


def _model(kind, rounds, number=None, name=None, **values):
    rounds = list(rounds)
    return {"kind": kind, "number": number, "name": name, "summary": "s", "values": values,
            "stored_latency_ms": values.get("latency_ms"), "rounds_ms": rounds,
            "median_ms": float(np.median(rounds)), "min_ms": min(rounds), "max_ms": max(rounds)}


def test_dominance_is_decided_on_the_remeasured_latency_with_paired_rounds():
    objectives, directions = ["accuracy", "latency_ms"], ["maximize", "minimize"]
    record = _record({
        # stored 1.6 ms (slower than the baseline's stored 1.5), measured together it is faster in 4 of 5 rounds
        "trial-0001": _model("trial", [1.40, 1.45, 1.52, 1.41, 1.43], number=1, accuracy=0.9, latency_ms=1.6),
        # stored faster than the baseline, together slower in every round
        "trial-0002": _model("trial", [2.0, 2.1, 2.0, 2.2, 2.1], number=2, accuracy=0.95, latency_ms=1.2),
        "baseline-a": _model("baseline", [1.50, 1.48, 1.50, 1.49, 1.47], name="a", accuracy=0.85, latency_ms=1.5),
    })
    frame = remeasured_frame(record, objectives, directions).set_index("model")
    assert frame.loc["trial-0001", "latency_ms"] == 1.43 and frame.loc["trial-0001", "stored_latency_ms"] == 1.6
    assert frame.loc["baseline-a", "dominated_by"] == "#1 (faster in 4 of 5 rounds)"
    assert frame.loc["baseline-a", "dominators"] == [{"number": 1, "faster_rounds": 4, "rounds": 5}]
    assert frame.loc["trial-0001", "on_front"] and frame.loc["trial-0002", "on_front"]
    assert not frame.loc["baseline-a", "on_front"]  # the front is the found trials'


def test_a_baseline_run_as_a_trial_does_not_dominate_itself():
    objectives, directions = ["accuracy", "latency_ms"], ["maximize", "minimize"]
    same = _model("trial", [0.9] * 3, number=0, accuracy=0.8, latency_ms=1.0)
    base = _model("baseline", [1.0] * 3, name="a", accuracy=0.8, latency_ms=1.0)
    same["spec_hash"] = base["spec_hash"] = "abc"  # a warm start: the same architecture, timed 0.1 ms faster
    frame = remeasured_frame(_record({"trial-0000": same, "baseline-a": base}), objectives, directions)
    assert frame.iloc[1]["dominated_by"] == "no" and frame.iloc[1]["dominators"] == []


def test_a_warm_started_baseline_trial_dominates_no_other_baseline():
    objectives, directions = ["accuracy", "latency_ms"], ["maximize", "minimize"]
    resnet_trial = _model("trial", [0.9] * 3, number=0, accuracy=0.9, latency_ms=1.0)
    resnet = _model("baseline", [1.0] * 3, name="resnet", accuracy=0.9, latency_ms=1.0)
    resnet_trial["spec_hash"] = resnet["spec_hash"] = "abc"
    found = _model("trial", [1.5] * 3, number=5, accuracy=0.85, latency_ms=1.5)
    found["spec_hash"] = "new"
    preact = _model("baseline", [2.0] * 3, name="preact", accuracy=0.8, latency_ms=2.0)
    preact["spec_hash"] = "def"
    frame = remeasured_frame(_record({"trial-0000": resnet_trial, "trial-0005": found, "baseline-resnet": resnet,
                                      "baseline-preact": preact}), objectives, directions).set_index("model")
    assert frame.loc["baseline-preact", "dominated_by"] == "#5 (faster in 3 of 3 rounds)"  # not #0, the ResNet
    assert frame.loc["baseline-resnet", "dominated_by"] == "no"
    assert frame.loc["trial-0000", "on_front"]  # still a trial of the run, on its front


def test_objectives_without_latency_keep_their_front_and_get_the_latency_beside():
    objectives, directions = ["accuracy", "params"], ["maximize", "minimize"]
    record = _record({"trial-0001": _model("trial", [3.0] * 3, number=1, accuracy=0.9, params=1000),
                      "trial-0002": _model("trial", [1.0] * 3, number=2, accuracy=0.8, params=5000),
                      "baseline-a": _model("baseline", [0.5] * 3, name="a", accuracy=0.85, params=2000)})
    frame = remeasured_frame(record, objectives, directions).set_index("model")
    assert list(frame["latency_ms"]) == [3.0, 1.0, 0.5]
    assert frame.loc["trial-0001", "on_front"] and not frame.loc["trial-0002", "on_front"]  # by params, not latency
    assert frame.loc["baseline-a", "dominated_by"] == "#1 (faster in 0 of 3 rounds)"


def test_baseline_values_known_now_replace_the_snapshot():
    objectives, directions = ["accuracy", "latency_ms"], ["maximize", "minimize"]
    record = _record({"trial-0001": _model("trial", [1.0] * 3, number=1, accuracy=0.9, latency_ms=1.0),
                      "baseline-a": _model("baseline", [2.0] * 3, name="a")})  # not evaluated when measured
    assert remeasured_frame(record, objectives, directions).iloc[1]["dominated_by"] == "not evaluated"
    frame = remeasured_frame(record, objectives, directions, {"a": {"accuracy": 0.8, "latency_ms": 1.9}})
    assert frame.iloc[1]["dominated_by"] == "#1 (faster in 3 of 3 rounds)"
    assert frame.iloc[1]["latency_ms"] == 2.0 and frame.iloc[1]["stored_latency_ms"] == 1.9


BAD_INPUT = [
    (["--trials", "999"], "no trial #999"),
    (["--trials", "a,b"], "--trials takes 'front', 'all' or trial numbers"),
    (["--trials", "1,,2"], "--trials takes 'front', 'all' or trial numbers"),
    (["--rounds", "0"], "--rounds must be an integer in 1..100"),
    (["--threads", "0"], "--threads: must be an integer >= 1"),
    (["--device", "cuda"], "--device: latency device 'cuda' requested but no CUDA GPU is available"),
    (["--device", "tpu"], "--device: unknown latency device 'tpu' (cpu, cuda or cuda:N)"),
    # a batch that cannot be allocated: was a traceback from torch's allocator
    (["--batch-size", str(10**12)], "cannot time the models (cpu, batch 1000000000000, 1 thread(s), torch): "),
]


def test_bad_input_is_one_line_exit_2_and_keeps_the_earlier_record(run, capsys):
    """Every case through nas.cli.main in this process (the first also as a real process): exit 2, one line naming
    the run, and the latency record written before is kept byte for byte."""
    import torch

    from nas.cli import main

    remeasure(run, rounds=1)
    kept = (run / LATENCY_FILE).read_bytes()
    for k, (args, message) in enumerate(BAD_INPUT):
        if "cuda" in args and torch.cuda.is_available():
            continue  # this machine has a CUDA device ("tpu" is refused on any machine)
        capsys.readouterr()
        code = main(["measure", str(run), *args])
        err = capsys.readouterr().err
        if k == 0:
            done = nas("measure", str(run), *args)
            assert (done.returncode, done.stderr) == (code, err), args
        lines = err.strip().splitlines()
        assert code == 2, (args, err)
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0] and str(run) in lines[0], \
            (args, lines)
        assert (run / LATENCY_FILE).read_bytes() == kept, args


def test_not_a_run_folder(tmp_path):
    with pytest.raises(RunError):
        remeasure(tmp_path / "nothing")
    done = nas("measure", str(tmp_path))
    assert done.returncode == 2 and done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / LATENCY_FILE).exists()


def test_cli_prints_each_model_and_writes_the_file(run):
    done = nas("measure", str(run), "--rounds", "2")
    assert done.returncode == 0, done.stderr
    record = json.loads((run / LATENCY_FILE).read_text())
    for label in record["models"]:
        assert label in done.stdout
    assert "2 interleaved rounds" in done.stdout
    assert "note: this replaces" not in done.stdout

    assert nas("measure", str(run), "--rounds", "1", "--trials", "all").returncode == 0
    first = sorted(json.loads((run / LATENCY_FILE).read_text())["models"])
    assert len(first) >= 2
    trial = next(label for label in first if label.startswith("trial-"))
    again = nas("measure", str(run), "--rounds", "1", "--trials", str(int(trial[6:])), "--no-baselines")
    assert again.returncode == 0, again.stderr
    replaced = json.loads((run / LATENCY_FILE).read_text())["replaced"]
    assert replaced["models"] == len(first) and replaced["not_measured_now"] == [x for x in first if x != trial]
    assert f"{len(first) - 1} of its models are not in this one" in again.stdout


def _study(points):
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, lat in points:
        study.add_trial(create_trial(values=[acc, lat], params={"x": 0.0},
                                     distributions={"x": FloatDistribution(0, 1)}, user_attrs={"spec": "{}"}))
    return study


def test_export_knee_uses_the_front_timed_together():
    from nas.export import select_trial

    # stored front: 0.70@1.0, 0.90@2.0 (the knee), 0.95@4.0
    study = _study([(0.70, 1.0), (0.90, 2.0), (0.95, 4.0), (0.60, 3.0)])
    objectives = ["accuracy", "latency_ms"]
    chosen, why = select_trial(study, objectives, knee=True)
    assert chosen.number == 1 and why == "knee of the Pareto front (3 members)"
    # timed together, #1 is as slow as #2 (4.1 ms): it leaves the front, and the knee of the rest is chosen
    timed = {"measured_at": "then", "models": {
        f"trial-{n:04d}": {"kind": "trial", "number": n, "median_ms": ms} for n, ms in ((0, 1.0), (1, 4.1), (2, 4.0))}}
    chosen, why = select_trial(study, objectives, knee=True, remeasured=timed)
    assert chosen.number in (0, 2) and "timed together (nas measure, then: 2 of 3 members stay on it)" in why
    # a record that misses a front member is not used
    del timed["models"]["trial-0002"]
    chosen, why = select_trial(study, objectives, knee=True, remeasured=timed)
    assert chosen.number == 1 and why == "knee of the Pareto front (3 members)"


def test_cli_export_knee_after_measure_says_so(run, tmp_path):
    remeasure(run, rounds=1)
    done = nas("export", str(run), "--knee", "-o", str(tmp_path / "knee"))
    assert done.returncode == 0, done.stderr
    source = json.loads((tmp_path / "knee" / "metrics.json").read_text())["source"]
    assert source["selected"].startswith("knee of the Pareto front with its latencies timed together (nas measure")
    assert "timed together" in (tmp_path / "knee" / "MODEL.md").read_text()


def test_a_baseline_that_does_not_build_is_skipped_and_said(run, monkeypatch):
    from nas import builder
    from nas.errors import BuildError
    from nas.grammar import Space

    space = Space.from_text((run / "space.yaml").read_text())
    searched = {t.user_attrs.get("spec_hash") for t in read_trials(run)}
    # a spec no trial has (the tiny space repeats specs; which trials are on the front varies with the latencies)
    broken = next(spec for seed in range(12345, 12445) if (spec := space.sample(seed)).hash() not in searched)
    real_build = builder.build

    def build(spec, *args, **kwargs):
        if spec.hash() == broken.hash():
            raise BuildError("patch size 8 is larger than the input (4, 4)", key="stem")
        return real_build(spec, *args, **kwargs)

    monkeypatch.setattr(Space, "load_baselines", lambda self, folder: setattr(self, "baselines", {"big": broken}))
    monkeypatch.setattr(builder, "build", build)
    record = remeasure(run, rounds=1)
    assert "baseline-big" not in record["models"] and record["models"]  # the trials are still timed
    assert "patch size 8 is larger" in record["skipped"]["baseline-big"]
