"""The report of a small finished run: every file exists and parses; the HTML works in a real browser."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.grammar import Space
from nas.report import diagnose_fit, report_data, write_report
from tests.control.control_helpers import TINY_SPACE, write_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    from nas.control.search import search

    folder = tmp_path_factory.mktemp("report")
    config = write_config(folder, trials=6, objectives=["accuracy", "latency_ms", "params"], zero_cost=True)
    search(config, name="small", runs_dir=folder, quiet=True)
    return folder / "small"


@pytest.fixture(scope="module")
def written(finished_run) -> dict[str, Path]:
    return write_report(finished_run, baselines=False)


def test_every_file_exists_and_parses(written):
    assert set(written) == {"report.html", "pareto.png", "trials.csv", "pareto.csv", "summary.md"}
    trials = pd.read_csv(written["trials.csv"])
    assert len(trials) == 6 and set(trials["state"]) <= {"COMPLETE", "PRUNED", "FAIL"}
    pareto = pd.read_csv(written["pareto.csv"])
    assert 1 <= len(pareto) <= (trials["state"] == "COMPLETE").sum()
    assert written["pareto.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = written["report.html"].read_text()
    assert html.startswith("<!DOCTYPE html>") and "Plotly" in html and "src=\"http" not in html  # offline
    summary = written["summary.md"].read_text()
    assert summary.count("\n|") >= 2 + len(pareto)


def test_neighbouring_baseline_labels_take_different_positions():
    from nas.report import LABEL_POSITIONS, label_positions

    frame = pd.DataFrame({"latency_ms": [1.0, 1.1, 5.0, 1.05], "accuracy": [0.90, 0.91, 0.5, 0.905]},
                         index=[7, 3, 9, 1])  # any index: positions follow the rows
    positions = label_positions(frame, "latency_ms", "accuracy")
    assert len(positions) == 4 and set(positions) <= set(LABEL_POSITIONS)
    by_height = [positions[i] for i in np.argsort(frame["accuracy"].to_numpy(), kind="stable")]
    assert all(a != b for a, b in zip(by_height, by_height[1:]))


def test_a_small_front_comes_with_a_caveat_on_its_shares(finished_run, written):
    from nas.report import FEW_ON_FRONT

    front = len(pd.read_csv(written["pareto.csv"]))
    html = written["report.html"].read_text()
    said = f"The front has {front} member" in html and "says little until the front has several" in html
    assert said == (front < FEW_ON_FRONT)


def test_cells_read_the_same_in_html_and_markdown(finished_run, written):
    """An architecture summary holds '|': escaped in the Markdown table only; a parameter count is one integer with
    thousands separators in both tables."""
    import re

    html = written["report.html"].read_text()
    cells = re.findall(r"<td>(.*?)</td>", html)
    summary = written["summary.md"].read_text()
    assert not [c for c in cells if "\\|" in c] and [c for c in cells if " | " in c] and "\\|" in summary
    params = pd.read_csv(written["pareto.csv"])["params"]
    for count in params:
        assert f"{int(count):,}" in html and f"{int(count):,}" in summary
        assert f"{count:.4g}" not in summary or f"{count:.4g}" == f"{int(count):,}"


@pytest.mark.parametrize("value, column, text", [
    (412874.0, "params", "412,874"), (412874, "params", "412,874"), (np.int64(5120), "flops", "5,120"),
    (0.123456, "accuracy", "0.1235"), (1.0, "accuracy", "1"), (float("nan"), "latency_ms", ""), (1234, "trial", "1234"),
    ("a | b", "summary", "a | b"), (np.bool_(True), "feasible", "True"),
])
def test_cell_text(value, column, text):
    from nas.tables import cell_text

    assert cell_text(value, column) == text


def test_csv_columns_match_the_grammar_choices(written):
    trials = pd.read_csv(written["trials.csv"])
    choices = [p.name for p in Space.load(TINY_SPACE, with_baselines=False).choices()]
    assert choices and set(choices) <= set(trials.columns)
    assert {"accuracy", "latency_ms", "params", "state", "status", "summary", "spec_hash"} <= set(trials.columns)


def test_data_step_front_is_non_dominated(finished_run):
    data = report_data(finished_run, baselines=False)
    complete = data.trials[data.trials["state"] == "COMPLETE"]
    front = data.pareto
    for _, a in front.iterrows():
        for _, b in complete.iterrows():
            better = (b["accuracy"] >= a["accuracy"] and b["latency_ms"] <= a["latency_ms"]
                      and b["params"] <= a["params"])
            strictly = (b["accuracy"] > a["accuracy"] or b["latency_ms"] < a["latency_ms"]
                        or b["params"] < a["params"])
            assert not (better and strictly)
    assert front["knee"].sum() == 1
    assert (np.diff(data.hypervolume["hypervolume"].to_numpy()) >= -1e-12).all()
    assert set(data.fit) == set(front["number"])
    shares = data.shares
    assert set(shares["parameter"]) <= set(data.choices)
    for _, group in shares.groupby("parameter"):
        assert group["share_all"].sum() == pytest.approx(1.0)


def test_report_works_while_a_run_is_still_going(finished_run, tmp_path):
    """A RUNNING trial (a search in progress) is listed, not an error."""
    import optuna

    from nas.control.rundir import RunDir

    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    run = RunDir.open(copy)
    study = optuna.load_study(study_name=run.study_name, storage=run.storage())
    study.ask()  # left running
    data = report_data(copy, baselines=False)
    assert "RUNNING" in set(data.trials["state"])


def test_fit_diagnosis():
    over = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [2.0, 1.0, 0.5], "val_loss": [1.5, 1.0, 1.3]})
    under = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.3, 2.2], "val_loss": [2.3, 2.25]})
    fine = pd.DataFrame({"epoch": [1, 2], "train_loss": [2.0, 1.0], "val_loss": [1.2, 1.21]})
    assert diagnose_fit(over).startswith("over-fitting")
    assert diagnose_fit(under).startswith("under-fitting")
    assert diagnose_fit(fine) == "ok"


def _browser():
    selenium = pytest.importorskip("selenium")  # noqa: F841
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("chromium / chromedriver not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1300,1800"):
        options.add_argument(arg)
    options.binary_location = binary
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_report_html_in_headless_chromium(written, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(written["report.html"].resolve().as_uri())
        WebDriverWait(browser, 30).until(
            lambda d: len(d.find_elements("css selector", "div.plotly-graph-div g.scatterlayer")) > 0)
        points = browser.find_elements("css selector", "div.plotly-graph-div g.scatterlayer .point")
        assert len(points) >= 2
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == []
        # a sortable table sorts on a header click, numerically also for counts written with thousands separators
        table = browser.find_element("css selector", "table.sortable")
        names = [th.text for th in table.find_elements("css selector", "th")]
        column = names.index("params") + 1
        header = table.find_element("css selector", f"th:nth-child({column})")

        def params() -> list[int]:
            return [int(td.text.replace(",", "")) for td in
                    table.find_elements("css selector", f"tbody td:nth-child({column})")]

        header.click()
        assert params() == sorted(params()) and len(params()) >= 1
        header.click()
        assert params() == sorted(params(), reverse=True)
        shot = tmp_path / "report.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        browser.quit()


def test_export_selection_rules(finished_run, tmp_path, capsys):
    """nas export --knee / --max-latency-ms / --min-accuracy pick from the front, --rank-with by mean rank; an unmet
    bound says what the closest trial offers, exit 2."""
    import json as _json

    from nas.cli import main

    data = report_data(finished_run, baselines=False)
    complete = data.trials[data.trials["state"] == "COMPLETE"]
    assert main(["export", str(finished_run), "--knee", "-o", str(tmp_path / "knee")]) == 0
    knee = _json.loads((tmp_path / "knee" / "arch.json").read_text())["hash"]
    assert knee == data.pareto[data.pareto["knee"]]["spec_hash"].iloc[0]

    bound = float(complete["latency_ms"].max())
    assert main(["export", str(finished_run), "--max-latency-ms", str(bound), "-o", str(tmp_path / "fast")]) == 0
    chosen = _json.loads((tmp_path / "fast" / "arch.json").read_text())["hash"]
    best = complete.sort_values(["accuracy", "latency_ms"], ascending=[False, True]).iloc[0]
    assert chosen == best["spec_hash"]

    capsys.readouterr()
    assert main(["export", str(finished_run), "--max-latency-ms", "1e-6", "-o", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    fastest = complete.sort_values("latency_ms").iloc[0]
    assert len(err) == 1 and "no trial runs within" in err[0] and f"trial #{int(fastest['number'])}" in err[0]
    assert not (tmp_path / "none").exists()
    assert main(["export", str(finished_run), "--min-accuracy", "1.01", "-o", str(tmp_path / "none")]) == 2
    assert "no trial reaches accuracy 1.01" in capsys.readouterr().err

    # --rank-with: the best mean of the ranks under accuracy and a recorded zero-cost proxy (ties: more accurate)
    scored = complete.dropna(subset=["accuracy", "zc_naswot"]).copy()
    scored["mean_rank"] = (scored["accuracy"].rank() + scored["zc_naswot"].rank()) / 2
    best = scored.sort_values(["mean_rank", "accuracy", "number"], ascending=[False, False, True]).iloc[0]
    assert main(["export", str(finished_run), "--rank-with", "naswot", "-o", str(tmp_path / "ranked")]) == 0
    assert _json.loads((tmp_path / "ranked" / "arch.json").read_text())["hash"] == best["spec_hash"]
    capsys.readouterr()
    assert main(["export", str(finished_run), "--rank-with", "naswot", "--min-accuracy", "0.5", "-o",
                 str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rank-with cannot be combined with --max-latency-ms / --min-accuracy" in err[0]
    assert not (tmp_path / "none").exists()


def test_export_from_a_run_with_no_completed_trial_is_one_line_exit_2(tmp_path, capsys):
    from nas.cli import main
    from nas.control.search import search

    config = write_config(tmp_path, trials=1, constraints={"max_params": 10})  # nothing fits: pruned, untrained
    search(config, name="empty", runs_dir=tmp_path, quiet=True)
    capsys.readouterr()
    for rule in (["--knee"], ["--max-latency-ms", "5"], []):
        assert main(["export", str(tmp_path / "empty"), *rule, "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no complete trial" in err[0], err
    assert not (tmp_path / "out").exists()


def test_baselines_are_cached_one_by_one_and_a_deadline_stops_new_ones(tmp_path, monkeypatch):
    import time
    from types import SimpleNamespace

    import nas.evaluate.evaluate as ev
    from nas.control.baselines import evaluate_baselines
    from nas.control.engine import prepare
    from nas.evaluate.evaluators import EVALUATORS

    prepared = prepare({"space": "vision", "dataset": "digits", "trials": 1, "device": "cpu"})
    config, space = prepared.config, prepared.space
    calls, crash = [], {"at": 2}

    class Crash(Exception):
        pass

    def fake_evaluate(spec, cfg, **kwargs):  # the caching is under test here, not the evaluation
        calls.append(spec.hash())
        if len(calls) == crash["at"]:
            raise Crash  # a crash in the middle of the second baseline
        return ev.TrialResult(spec.hash(), spec.summary(), "ok", objectives={"accuracy": 0.5, "latency_ms": 1.0})

    monkeypatch.setitem(EVALUATORS, "proxy", fake_evaluate)
    run = SimpleNamespace(path=tmp_path)
    with pytest.raises(Crash):
        evaluate_baselines(run, config, space)
    first = calls[0]
    saved = json.loads((tmp_path / "baselines.json").read_text())
    assert list(saved) == [f"{first}:{config.budget_key()}"]  # the finished one survived the crash
    calls.clear()
    assert evaluate_baselines(run, config, space, deadline=time.time() - 1) == saved and calls == []
    crash["at"] = None
    cache = evaluate_baselines(run, config, space)
    assert len(cache) == len(space.baselines) >= 3
    assert first not in calls  # never evaluated again
    assert json.loads((tmp_path / "baselines.json").read_text()) == cache


def test_accuracy_is_reported_with_its_validation_size_and_interval(finished_run, written):
    """Every trial stores which validation examples it got right; the report states the size and a Wilson interval."""
    from nas.significance import unpack_correct, wilson_interval

    data = report_data(finished_run, baselines=False)
    complete = data.trials[data.trials["state"] == "COMPLETE"]
    assert data.val_size and (complete["val_size"] == data.val_size).all()
    for _, row in complete.iterrows():
        assert unpack_correct(row["val_correct"], data.val_size).mean() == pytest.approx(row["accuracy"])
    for _, row in data.pareto.iterrows():
        low, high = wilson_interval(row["accuracy"], data.val_size)
        assert row["accuracy_95ci"] == f"{low:.3f}-{high:.3f}"
    assert any(f"{data.val_size} validation examples" in n for n in data.notes)
    assert f"{data.val_size} validation examples" in written["summary.md"].read_text()
    assert "val_correct" not in pd.read_csv(written["trials.csv"]).columns  # bulky: stays in the storage


def test_the_report_says_which_device_and_runtime_its_latencies_belong_to(finished_run, written):
    data = report_data(finished_run, baselines=False)
    note = "latency_ms is measured while each trial ran (cpu, batch 1, 1 thread(s), PyTorch eager)"
    assert any(n.startswith(note) for n in data.notes)
    assert note in written["summary.md"].read_text() and note in written["report.html"].read_text()


def _row(number, accuracy, latency, correct, spec_hash=None, name=None):
    from nas.significance import pack_correct

    return {"number": number, "name": name, "status": "ok", "spec_hash": spec_hash or f"h{number}{name}",
            "accuracy": accuracy if correct is None else float(np.mean(correct)), "latency_ms": latency,
            "val_correct": pack_correct(correct) if correct is not None else None}


def test_versus_found_names_dominators_with_margins_and_near_misses_with_their_test():
    from nas.report import versus_found
    from nas.significance import mcnemar_p

    n = 300
    base_ok = np.ones(n, bool)
    base_ok[:30] = False  # 270 right
    ahead = base_ok.copy()
    ahead[:12] = True  # 12 more right: dominates with a margin of +12 of 300 (12 vs 0)
    tie = base_ok.copy()
    tie[40] = False  # one fewer: behind by 1 of 300
    way_behind = base_ok.copy()
    way_behind[100:140] = False  # 40 fewer
    objectives, directions = ["accuracy", "latency_ms"], ["maximize", "minimize"]
    front = pd.DataFrame([_row(1, None, 1.0, ahead), _row(2, None, 0.5, tie), _row(3, None, 0.2, way_behind)])
    base = pd.DataFrame([
        _row(None, None, 2.0, base_ok, name="slow"),  # #1 and #2 are faster; only #1 is as accurate
        _row(None, None, 0.8, base_ok, name="close"),  # #2 is faster and one example behind
        _row(None, None, 0.3, base_ok, name="fast"),  # #3 is faster but 40 behind
        _row(None, None, 0.1, base_ok, name="fastest"),  # nothing found is as fast
        {**_row(None, None, 1.0, base_ok, name="broken"), "status": "error", "accuracy": np.nan},
    ])
    lines = dict(zip(base["name"], versus_found(base, front, objectives, directions, n)))
    assert lines["slow"] == f"dominated by #1 (+12 of 300 examples, 12 vs 0 discordant, p={mcnemar_p(12, 0):.2g})"
    assert lines["close"] == ("not dominated: #2, the most accurate found net that costs no more, is 1 of 300 "
                              "examples behind (0 vs 1 discordant, p=1): within noise")
    assert lines["fast"].startswith("not dominated: #3") and lines["fast"].endswith("beyond chance")
    assert lines["fastest"] == "not dominated: no found net costs no more"
    assert lines["broken"] == "not evaluated"

    # a run stored before per-example results: margins in examples, no test
    old = front.assign(val_correct=None)
    lines = dict(zip(base["name"], versus_found(base.assign(val_correct=None), old, objectives, directions, n)))
    assert lines["slow"] == "dominated by #1 (+12 of 300 examples)"
    assert lines["close"].endswith("is 1 of 300 examples behind")
    # no validation size known at all: dominance only
    assert versus_found(base.iloc[:1], old, objectives, directions, None) == ["dominated by #1"]
    # the baseline warm-started into the run is not its own dominator
    same = front.assign(spec_hash=[base.iloc[0]["spec_hash"], "x", "y"])
    assert versus_found(base.iloc[:1], same, objectives, directions, n)[0].startswith("not dominated: #2")
    # nor is another baseline warm-started into the run a found net that dominates it
    other = front.assign(spec_hash=[base.iloc[1]["spec_hash"], "x", "y"])
    assert versus_found(base.iloc[:2], other, objectives, directions, n)[0].startswith("not dominated: #2")


def test_the_remeasured_dominators_get_their_accuracy_margin():
    from nas.remeasure.record import remeasured_frame
    from nas.report.data import _with_margins

    n = 300
    base_ok = np.ones(n, bool)
    base_ok[:30] = False
    ahead = base_ok.copy()
    ahead[:3] = True
    trials = pd.DataFrame([_row(1, None, 1.0, ahead)])
    base = pd.DataFrame([_row(None, None, 1.5, base_ok, name="a", spec_hash="hb")])
    record = {"settings": {}, "rounds": 3, "models": {
        "trial-0001": {"kind": "trial", "number": 1, "summary": "s", "spec_hash": "h1", "rounds_ms": [1.0, 1.1, 1.6],
                       "median_ms": 1.1, "min_ms": 1.0, "max_ms": 1.6,
                       "values": {"accuracy": trials.iloc[0]["accuracy"], "latency_ms": 1.0}},
        "baseline-a": {"kind": "baseline", "name": "a", "summary": "s", "spec_hash": "hb", "rounds_ms": [1.5] * 3,
                       "median_ms": 1.5, "min_ms": 1.5, "max_ms": 1.5,
                       "values": {"accuracy": base.iloc[0]["accuracy"], "latency_ms": 1.5}}}}
    frame = remeasured_frame(record, ["accuracy", "latency_ms"], ["maximize", "minimize"])
    lines = _with_margins(frame, trials, base, n)
    assert lines == ["", "#1 (faster in 2 of 3 rounds; +3 of 300 examples, 3 vs 0 discordant, p=0.25)"]


def test_an_out_folder_that_is_a_file_is_one_line(finished_run):
    from nas.errors import RunError

    before = (finished_run / "run.json").read_bytes()
    with pytest.raises(RunError, match="--out: cannot make the folder: a file is in the way"):
        write_report(finished_run, finished_run / "run.json", baselines=False)
    assert (finished_run / "run.json").read_bytes() == before


def test_the_report_of_a_run_without_a_completed_trial_draws_without_warnings(tmp_path, capsys):
    import warnings

    import nas
    from nas.report import write_report

    nas.search(write_config(tmp_path, trials=1, budget={"epochs": 1, "lr": 1e9}), runs_dir=tmp_path, name="r",
               quiet=True)  # diverges: no completed trial
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = write_report(tmp_path / "r", baselines=False)
    assert paths["pareto.png"].stat().st_size > 0
    from nas.cli import main

    assert main(["report", str(tmp_path / "r"), "--no-baselines"]) == 0  # written, and says why it is empty
    err = capsys.readouterr().err
    assert err.startswith("note: no trial of this run has completed (1 ") and "no Pareto front yet" in err


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\xff"])
def test_a_damaged_baselines_cache_is_one_line_and_kept(tmp_path, content):
    from types import SimpleNamespace

    from nas.control.baselines import evaluate_baselines
    from nas.control.engine import prepare
    from nas.errors import RunError

    (tmp_path / "baselines.json").write_text(content, errors="surrogateescape")
    before = (tmp_path / "baselines.json").read_bytes()
    prepared = prepare({"space": "vision", "dataset": "digits", "trials": 1, "device": "cpu"})
    with pytest.raises(RunError, match="baselines cache is damaged .*delete it to evaluate the baselines again"):
        evaluate_baselines(SimpleNamespace(path=tmp_path), prepared.config, prepared.space)
    assert (tmp_path / "baselines.json").read_bytes() == before


def test_the_scatter_draws_each_front_members_accuracy_interval(finished_run):
    from nas.report import scatter_data, scatter_figure
    from nas.significance import wilson_interval

    data = report_data(finished_run, baselines=False)
    s = scatter_data(data)
    assert "accuracy" in (s.x_name, s.y_name) and data.val_size
    members = next(t for t in scatter_figure(s, data).data if t.name.startswith("Pareto members"))
    bars = members.error_x if s.x_name == "accuracy" else members.error_y
    assert "95% Wilson interval" in members.name
    for acc, below, above in zip(s.front["accuracy"], bars.arrayminus, bars.array):
        low, high = wilson_interval(acc, data.val_size)
        assert acc - below == pytest.approx(low) and acc + above == pytest.approx(high)

    old = data.__class__(**{**data.__dict__, "val_size": None})  # a run stored before the size was recorded
    members = next(t for t in scatter_figure(s, old).data if t.name.startswith("Pareto members"))
    assert members.error_y.array is None and members.error_x.array is None


def test_the_report_trains_nothing_and_says_which_baselines_wait_for_nas_measure(finished_run, tmp_path, monkeypatch):
    """A baseline the run's cache does not hold is listed as not evaluated, with the command that evaluates it; the
    report writes no cache and, in a fresh process, never imports torch, the evaluator or the builder."""
    import subprocess
    import sys

    from nas.report import NOT_EVALUATED

    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    (copy / "baselines.json").unlink(missing_ok=True)
    baseline = Space.load(TINY_SPACE, with_baselines=False).sample(5)
    monkeypatch.setattr(Space, "load_baselines", lambda self, folder: setattr(self, "baselines", {"b": baseline}))
    data = report_data(copy, baselines=True)
    assert list(data.baselines["status"]) == [NOT_EVALUATED]
    assert any(f"nas measure {copy}" in note for note in data.notes)
    assert not (copy / "baselines.json").exists()
    code = (f"import sys; from nas.report import write_report; write_report({str(copy)!r}, {str(tmp_path / 'r')!r}); "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('nas.evaluate', 'nas.builder'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert not (copy / "baselines.json").exists()
