"""The search controller in process: the demo end to end, no-repeat reuse, constraints, resume, samplers."""
from __future__ import annotations

import json
import math

import optuna
import pytest
from control_helpers import REPO, TINY, counted, journal_study, write_config

import nas
from nas.control.engine import Engine, prepare
from nas.control.samplers import SAMPLERS
from nas.errors import RunError
from nas.evaluate.costs import constraint_costs
from nas.spec import ArchSpec

USER_ATTRS = ("spec", "spec_hash", "summary", "budget_key", "status", "objectives", "cost", "curve", "zero_cost")


def test_demo_end_to_end(tmp_path):
    study = nas.search(REPO / "experiments" / "digits_demo.yaml", runs_dir=tmp_path, name="demo", quiet=True,
                       trials=4, seed=1, train_subset=300, latency_repeats=2, latency_warmup=0,
                       **{"budget.epochs": 0.3})
    run = tmp_path / "demo"
    for name in ("config.yaml", "space.yaml", "run.json", "journal.log", "search.log"):
        assert (run / name).is_file(), name
    stored = journal_study(run)  # what is on disk, read back by a fresh storage
    trials = stored.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert counted(trials) == 4 and len(study.trials) == 4
    assert [d.name for d in stored.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert complete
    for t in complete:
        for key in USER_ATTRS:
            assert key in t.user_attrs, key
        assert len(t.values) == 2 and all(math.isfinite(v) for v in t.values)
        assert t.values[0] == t.user_attrs["objectives"]["accuracy"]
        assert t.values[1] == t.user_attrs["objectives"]["latency_ms"]
        spec = ArchSpec.from_json(t.user_attrs["spec"])
        assert spec.hash() == t.user_attrs["spec_hash"]
        assert t.user_attrs["curve"] and t.user_attrs["cost"]["params"] > 0
        assert set(t.user_attrs["zero_cost"]) >= {"synflow", "naswot"}
    for t in trials:
        if t.state.name != "COMPLETE":
            assert t.user_attrs["status"] != "ok" and t.user_attrs["reason"]
    log = (run / "search.log").read_text().splitlines()
    assert sum(line.startswith("#") for line in log) == 4
    # the first line says what the validation split can tell apart: 300 examples, 30 of them validation
    assert log[0].endswith("; data: 270 training / 30 validation examples (an accuracy of 0.90 is known to "
                           "0.744-0.965, 95%)"), log[0]


def test_no_repeats_reuse_results(tmp_path):
    # 8 architectures, 12 random trials: repeats are certain, and each is told the first result again
    study = nas.search(write_config(tmp_path, trials=12), runs_dir=tmp_path / "runs", quiet=True)
    trials = study.get_trials()
    assert len(trials) == 12 and all(t.state.name == "COMPLETE" for t in trials)
    reused = [t for t in trials if "reused_from" in t.user_attrs]
    trained = [t for t in trials if "reused_from" not in t.user_attrs]
    assert reused and len(trained) <= 8
    assert len({t.user_attrs["spec_hash"] for t in trained}) == len(trained)  # nothing trained twice
    for t in reused:
        original = trials[t.user_attrs["reused_from"]]
        assert "reused_from" not in original.user_attrs and original.number < t.number
        assert original.user_attrs["spec_hash"] == t.user_attrs["spec_hash"]
        assert original.values == t.values
        assert original.user_attrs["curve"] == t.user_attrs["curve"]


def test_a_search_can_rank_by_the_validation_loss(tmp_path):
    """``objectives: [val_loss, ...]``: the proxy training's final validation loss, minimised; the run's pick is the
    lowest loss, and the report and export read the run as any other."""
    from nas.control.pick import complete_trials, run_pick
    from nas.report import report_data

    study = nas.search(write_config(tmp_path, objectives=["val_loss", "latency_ms"], trials=3),
                       runs_dir=tmp_path / "runs", quiet=True)
    trials = study.get_trials()
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:
        assert t.values[0] == t.user_attrs["curve"][-1]["val_loss"] == t.user_attrs["objectives"]["val_loss"] > 0
    picked, reason = run_pick(complete_trials(study), ["val_loss", "latency_ms"], ["minimize", "minimize"], None)
    assert picked.values[0] == min(t.values[0] for t in trials) and reason.startswith("best val_loss")
    data = report_data(tmp_path / "runs" / "tiny", baselines=False)
    assert len(data.trials) == 3 and not data.pareto.empty


def test_infeasible_specs_are_pruned_without_training(tmp_path):
    study = nas.search(write_config(tmp_path, trials=6, constraints={"max_params": 700}),
                       runs_dir=tmp_path / "runs", quiet=True)
    trials = study.get_trials()
    infeasible = [t for t in trials if t.user_attrs.get("status") == "infeasible"]
    assert infeasible
    for t in infeasible:
        assert t.state.name == "PRUNED"
        assert "max_params" in t.user_attrs["reason"] and t.user_attrs["precheck"]["params"] > 700
        assert "curve" not in t.user_attrs  # never trained
        assert t.constraints and max(t.constraints.values()) > 0
    for t in trials:
        if t.state.name == "COMPLETE":
            assert t.user_attrs["cost"]["params"] <= 700


def test_resume_in_process_continues_to_the_new_target(tmp_path):
    runs = tmp_path / "runs"
    first = nas.search(write_config(tmp_path, trials=3), runs_dir=runs, name="r", quiet=True)
    before = {t.number: (t.params, t.values) for t in first.get_trials()}
    study = nas.resume(runs / "r", trials=5, quiet=True)
    trials = study.get_trials()
    assert len(trials) == 5 and counted(trials) == 5
    assert {t.number: (t.params, t.values) for t in trials[:3]} == before
    assert "trials: 5" in (runs / "r" / "config.yaml").read_text()  # the new target is kept
    again = nas.resume(runs / "r", quiet=True)  # nothing left to do
    assert len(again.get_trials()) == 5


def test_search_refuses_an_existing_run_and_invalidating_changes(tmp_path):
    runs = tmp_path / "runs"
    config = write_config(tmp_path, trials=2)
    nas.search(config, runs_dir=runs, name="r", quiet=True)
    with pytest.raises(RunError, match="already exists; add --resume"):
        nas.search(config, runs_dir=runs, name="r", quiet=True)
    with pytest.raises(RunError, match=r"budget\.epochs \(0\.5 -> 1\.0\)"):
        nas.search(config, runs_dir=runs, name="r", resume=True, quiet=True, budget={"epochs": 1})
    with pytest.raises(RunError, match="dataset"):
        nas.search(config, runs_dir=runs, name="r", resume=True, quiet=True, dataset="digits:rows")
    study = nas.search(config, runs_dir=runs, name="r", resume=True, quiet=True, trials=3, seed=5)  # harmless
    assert len(study.get_trials()) == 3


def test_time_budget_stops_starting_trials(tmp_path):
    study = nas.search(write_config(tmp_path, trials=None, time_budget_s=0.01), runs_dir=tmp_path / "runs",
                       quiet=True)
    assert len(study.get_trials()) == 1


def test_sqlite_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = nas.search(write_config(tmp_path, trials=2), runs_dir=tmp_path / "runs", name="sql", storage=url,
                       quiet=True)
    meta = json.loads((tmp_path / "runs" / "sql" / "run.json").read_text())
    assert meta["storage"] == url and not (tmp_path / "runs" / "sql" / "journal.log").exists()
    loaded = optuna.load_study(study_name="sql", storage=url)
    assert len(loaded.get_trials()) == len(study.get_trials()) == 2
    assert len(nas.resume(tmp_path / "runs" / "sql", trials=3, quiet=True).get_trials()) == 3


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samplers_drive_define_by_run_sampling(tmp_path, sampler):
    """Every sampler proposes valid specs of a conditional space (no training: a stand-in objective)."""
    from nas.control.samplers import make_sampler
    from nas.control.suggest import OptunaSuggest

    prepared = prepare({**TINY, "space": "vision", "sampler": sampler, "trials": 12, "population_size": 4,
                        "tournament_size": 2})
    space, config = prepared.space, prepared.config
    sampler = make_sampler(config, space, count=constraint_costs)
    study = optuna.create_study(directions=config.directions, sampler=sampler)
    for _ in range(12):
        trial = study.ask()
        spec = space.sample(OptunaSuggest(trial))
        assert space.contains(spec)
        study.tell(trial, [len(spec.summary()) % 7 / 7, spec.stem.width / 64])
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) > 6
    if sampler == "evolution":  # after the population is full, a child differs from its parent in one choice
        children = [t for t in study.trials if "evolution_parent" in t.user_attrs]
        assert children
        for child in children:
            parent = study.trials[child.user_attrs["evolution_parent"]]
            changed = [k for k in child.params if k in parent.params and child.params[k] != parent.params[k]]
            assert len(changed) == 1, changed


def test_seeded_samplers_repeat(tmp_path):
    a = nas.search(write_config(tmp_path, trials=3, sampler="tpe"), runs_dir=tmp_path / "a", quiet=True)
    b = nas.search(write_config(tmp_path, trials=3, sampler="tpe"), runs_dir=tmp_path / "b", quiet=True)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_rungs_prune_below_the_quantile_of_earlier_trials(tmp_path):
    prepared = prepare({**TINY, "budget": {"epochs": 2}, "rungs": [0.5], "rung_keep": 0.5, "rung_min_trials": 2})
    engine = Engine(prepared, quiet=True)
    engine.rung_peers = [[0.2, 0.6, 0.8]]

    class Stats:
        def __init__(self, epoch, acc):
            self.epoch, self.val_accuracy = epoch, acc

    rungs: dict = {}
    assert engine._rung_callback(None, rungs)(Stats(1.0, 0.9)) is False  # above the median: kept
    assert rungs["0"]["threshold"] == pytest.approx(0.6) and rungs["0"]["accuracy"] == 0.9
    rungs = {}
    assert engine._rung_callback(None, rungs)(Stats(1.0, 0.3)) is True  # below: pruned
    assert engine._rung_callback(None, {})(Stats(2.0, 0.0)) is False  # the end of training never prunes
    pruned = []
    for seed in range(4):  # a handful of seeded runs: some candidate falls below an earlier one at the rung
        study = nas.search(write_config(tmp_path, name=f"rungs{seed}", trials=3, train_subset=400, rungs=[0.5],
                                        rung_min_trials=1, seed=seed,
                                        budget={"epochs": 2, "batch_size": 16, "lr": 0.01}),
                           runs_dir=tmp_path / "runs", name=f"rungs{seed}", quiet=True)
        trials = study.get_trials()
        assert all("0" in t.user_attrs["rungs"] for t in trials)
        pruned += [t for t in trials if t.state.name == "PRUNED"]
        if pruned:
            break
    assert pruned
    for t in pruned:
        assert t.user_attrs["status"] == "pruned" and len(t.user_attrs["curve"]) == 1
        assert t.user_attrs["rungs"]["0"]["accuracy"] < t.user_attrs["rungs"]["0"]["threshold"]


def test_a_run_is_driven_by_one_process_at_a_time(tmp_path):
    from nas.control.rundir import RunDir

    nas.search(write_config(tmp_path, trials=1), runs_dir=tmp_path / "runs", name="r", quiet=True)
    holder = RunDir.open(tmp_path / "runs" / "r").lock()
    try:
        with pytest.raises(RunError, match="in use by another process"):
            nas.resume(tmp_path / "runs" / "r", trials=2, quiet=True)
    finally:
        holder.unlock()
    assert len(nas.resume(tmp_path / "runs" / "r", trials=2, quiet=True).get_trials()) == 2


def test_resume_repairs_a_journal_cut_mid_write(tmp_path):
    import time

    run = tmp_path / "runs" / "r"
    nas.search(write_config(tmp_path, trials=2), runs_dir=tmp_path / "runs", name="r", quiet=True)
    with open(run / "journal.log", "ab") as f:
        f.write(b'{"op_code": 8, "worker_id": "x", "trial_id": 1, "user_att')  # killed while writing
    (run / "journal.log.lock").symlink_to(run / "journal.log")  # and while holding Optuna's file lock
    t0 = time.perf_counter()
    study = nas.resume(run, trials=3, quiet=True)
    assert time.perf_counter() - t0 < 20  # did not wait out Optuna's 30 s lock grace period
    assert counted(journal_study(run).get_trials()) == 3 == len(study.get_trials())
    log = (run / "search.log").read_text()
    assert "removed a stale journal lock" in log and "half-written journal record" in log


def test_a_damaged_journal_is_one_line_everywhere_and_resume_writes_nothing(tmp_path):
    """A complete line that is not a record: Optuna skips it when it is the last line, so a resume appending after
    it would turn it into a line that breaks every later read. Refused, naming the file and line."""
    from nas.control.rundir import RunDir
    from nas.export import export_trial
    from nas.report import report_data

    run = tmp_path / "runs" / "r"
    nas.search(write_config(tmp_path, trials=2), runs_dir=tmp_path / "runs", name="r", quiet=True)
    journal = run / "journal.log"
    good = journal.read_bytes()
    lines = good.count(b"\n")
    journal.write_bytes(good + b"garbage\n")  # the last line
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(RunError, match=f"line {lines + 1} is not a journal record"):
        nas.resume(run, trials=3, quiet=True)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before

    head, tail = good.split(b"\n", 1)
    journal.write_bytes(head + b"\ngarbage\n" + tail)  # inside: Optuna itself raises
    for read in (lambda: report_data(run, baselines=False), lambda: export_trial(run, tmp_path / "e"),
                 lambda: RunDir.open(run).load_study(), lambda: nas.resume(run, trials=3, quiet=True)):
        with pytest.raises(RunError, match="line 2 is not a journal record: the journal is damaged"):
            read()


def test_a_resume_time_budget_is_for_that_call_only(tmp_path):
    import yaml

    run = tmp_path / "runs" / "r"
    nas.search(write_config(tmp_path, trials=1), runs_dir=tmp_path / "runs", name="r", quiet=True)
    nas.resume(run, trials=3, time_budget_s=1e-6, quiet=True)  # stops before its first new trial
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trials"] == 3 and saved.get("time_budget_s") is None
    assert counted(nas.resume(run, quiet=True).get_trials()) == 3  # the next resume has no time limit


@pytest.mark.parametrize("content", [b"", b"torn", b"{}\n", b"{}\n" + b"x" * 50 + b"\n",
                                     b"{}\n" + b"y" * 70 + b"\ntorn", b"a" * 40 + b"\n" + b"b" * 40 + b"\n" + b"c" * 5])
def test_the_journal_tail_holds_the_last_complete_line_whole(tmp_path, content):
    from nas.control.rundir import _journal_tail

    path = tmp_path / "journal.log"
    path.write_bytes(content)
    with open(path, "rb") as f:
        start, tail = _journal_tail(f, len(content), chunk=16)  # lines longer than a chunk
    assert content[start:] == tail
    end = content.rfind(b"\n")
    if end != -1:  # the last complete line starts inside the tail
        assert start <= content.rfind(b"\n", 0, end) + 1


def test_a_run_file_without_its_study_name_or_study(tmp_path):
    import json

    from nas.control.rundir import RunDir

    run = tmp_path / "runs" / "r"
    nas.search(write_config(tmp_path, trials=1), runs_dir=tmp_path / "runs", name="r", quiet=True)
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "study_name": "other"}))
    with pytest.raises(RunError, match="holds no study 'other'"):
        RunDir.open(run).load_study()
    (run / "run.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "study_name"}))
    with pytest.raises(RunError, match="run.json has no study_name"):
        RunDir.open(run)
    (run / "run.json").write_text(json.dumps({**meta, "version": 9}))
    with pytest.raises(RunError, match="run.json has version 9; this patternnas reads run folders up to version 1"):
        RunDir.open(run)


def test_a_run_keeps_its_sampler(tmp_path):
    """The default is resolved into a new run's config snapshot; a run whose snapshot names none (made before
    that) resumes with the default of its time (NSGA-II for two objectives), not today's."""
    import yaml

    from nas.control.config import RunConfig

    default = RunConfig.model_validate({k: v for k, v in TINY.items() if k != "sampler"}).sampler_name
    study = nas.search(write_config(tmp_path, trials=1, sampler=None), runs_dir=tmp_path / "runs", name="d",
                       quiet=True)
    snapshot = tmp_path / "runs" / "d" / "config.yaml"
    assert yaml.safe_load(snapshot.read_text())["sampler"] == default
    assert type(study.sampler).__name__ == type(make_sampler_for(default)).__name__
    data = yaml.safe_load(snapshot.read_text())
    data["sampler"] = None  # as written before the default was resolved at creation
    snapshot.write_text(yaml.safe_dump(data))
    resumed = nas.resume(tmp_path / "runs" / "d", trials=2, quiet=True)
    assert isinstance(resumed.sampler, optuna.samplers.NSGAIISampler)
    assert yaml.safe_load(snapshot.read_text())["sampler"] == "nsga2"  # and says so from now on


def make_sampler_for(name: str):
    from nas.control.samplers import make_sampler

    prepared = prepare({**TINY, "sampler": name})
    return make_sampler(prepared.config, prepared.space, count=constraint_costs)


def _resume_outcome(config, runs, **overrides) -> str:
    try:
        nas.search(config, runs_dir=runs, name="r", resume=True, quiet=True, **overrides)
    except RunError as e:
        return e.one_line()
    return "resumed"


@pytest.mark.parametrize("made", ["now", "before canonical fingerprints"])
def test_a_space_edit_of_comments_or_layout_does_not_block_resume(tmp_path, made):
    """`search --resume` compares the space as parsed: comments and layout may change, a choice may not. A run made
    before that (its run.json holds a hash of the space file's text) resumes the same way."""
    import hashlib

    from control_helpers import TINY_SPACE

    space = tmp_path / "space.yaml"
    original = TINY_SPACE.read_text()
    space.write_text(original)
    config = write_config(tmp_path, trials=1, space=str(space))
    runs = tmp_path / "runs"
    nas.search(config, runs_dir=runs, name="r", quiet=True)
    meta_file = runs / "r" / "run.json"
    if made != "now":  # what earlier versions stored
        meta = json.loads(meta_file.read_text())
        meta["fingerprint"]["space"] = hashlib.sha256(original.encode()).hexdigest()[:16]
        meta_file.write_text(json.dumps(meta, indent=2))
    assert _resume_outcome(config, runs, trials=2) == "resumed"  # the file as it was

    space.write_text("# the tiny space, now commented\n" + original.replace("stem:\n", "\n\nstem:   # the stem\n")
                     .replace("{width: [8, 16], depth: 1, downsample: none}",
                              "\n    width: [8, 16]\n    depth: 1\n    downsample: none"))
    assert _resume_outcome(config, runs, trials=3) == "resumed"
    assert counted(journal_study(runs / "r").get_trials()) == 3

    before = {p.name: p.read_bytes() for p in (runs / "r").iterdir() if p.is_file()}
    space.write_text(original.replace("act: [relu, silu]", "act: [relu, gelu]"))  # a real change
    outcome = _resume_outcome(config, runs, trials=4)
    assert "would invalidate" in outcome and "space (its content differs)" in outcome, outcome
    assert {p.name: p.read_bytes() for p in (runs / "r").iterdir() if p.is_file()} == before  # nothing changed


def test_a_run_whose_journal_is_gone_is_refused_and_not_recreated(tmp_path):
    """A deleted journal.log read as 'no trial has started' (report, export) or 'study not in storage' (resume),
    and each command left an empty journal behind. It is one line naming the file now, and nothing is written."""
    from nas.control.rundir import RunDir
    from nas.export import export_trial
    from nas.report import report_data

    run = tmp_path / "runs" / "r"
    nas.search(write_config(tmp_path, trials=1), runs_dir=tmp_path / "runs", name="r", quiet=True)
    (run / "journal.log").unlink()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    for read in (lambda: report_data(run, baselines=False), lambda: export_trial(run, tmp_path / "e"),
                 lambda: RunDir.open(run).load_study(), lambda: nas.resume(run, trials=2, quiet=True)):
        with pytest.raises(RunError, match="journal is missing") as e:
            read()
        assert e.value.file == str(run / "journal.log")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_search_timed_by_onnxruntime_says_so_in_the_trial_show_and_card(tmp_path):
    """latency_runtime: onnxruntime: each trial's latency is its ONNX graph's in onnxruntime, recorded with the
    runtime, and `nas show` and the exported MODEL.md name it."""
    from nas.export import export_trial
    from nas.inspection import trial_detail, trial_text

    config = write_config(tmp_path, "ort", trials=2, latency_runtime="onnxruntime")
    study = nas.search(config, runs_dir=tmp_path / "runs", quiet=True)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done
    for t in done:
        latency = t.user_attrs["cost"]["latency"]
        assert latency["runtime"] == "onnxruntime" and latency["threads"] == 1
        assert t.user_attrs["objectives"]["latency_ms"] == latency["median_ms"] > 0
    run = tmp_path / "runs" / "ort"
    assert "1 thread(s), onnxruntime)" in trial_text(trial_detail(run, done[0].number))
    export_trial(run, trial=done[0].number, out_dir=tmp_path / "export", latency_repeats=3)
    card = (tmp_path / "export" / "MODEL.md").read_text()
    assert "ONNX Runtime (CPU)" in card and "PyTorch eager" not in card
    from nas.report import report_data

    assert any("(cpu, batch 1, 1 thread(s), ONNX Runtime (CPU))" in n for n in report_data(run, baselines=False).notes)


def test_a_search_with_a_latency_table_predicts_instead_of_timing(tmp_path):
    """latency_source: table: every trial's latency is the table's prediction for its spec at the run's input (the
    same number in any process, nothing timed), the max_latency_ms check uses it, `nas show` says so; a table for
    another input or a missing file stops the run before anything trains, naming latency_table."""
    from nas.errors import ConfigError
    from nas.evaluate.latency_table import LatencyTable, make_table
    from nas.grammar import Space
    from nas.inspection import trial_detail, trial_text

    space = Space.load(TINY["space"])
    table_file = tmp_path / "table.json"
    make_table(space, table_file, networks=4, overhead_networks=2, rounds=1, input_shape=(1, 8, 8), num_classes=10)
    config = write_config(tmp_path, "lt", trials=3, latency_source="table", latency_table=str(table_file),
                          constraints={"max_latency_ms": 1000.0})
    study = nas.search(config, runs_dir=tmp_path / "runs", quiet=True)
    table = LatencyTable.load(table_file)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done
    for t in done:
        latency = t.user_attrs["cost"]["latency"]
        assert latency["source"] == "table" and latency["repeats"] == 0
        assert t.user_attrs["objectives"]["latency_ms"] == table.predict(ArchSpec.from_json(t.user_attrs["spec"]))
    assert "predicted by the run's latency table" in trial_text(trial_detail(tmp_path / "runs" / "lt", done[0].number))
    from nas.report import report_data

    notes = report_data(tmp_path / "runs" / "lt", baselines=False).notes
    assert any(n.startswith(f"latency_ms is predicted by the latency table {table_file} (cpu, batch 1") for n in notes)
    other = tmp_path / "other.json"
    make_table(space, other, networks=2, overhead_networks=2, rounds=1, input_shape=(1, 16, 16), num_classes=10)
    for path, words in ((other, r"is a table for input \(1, 16, 16\)"), (tmp_path / "none.json", "no such")):
        bad = write_config(tmp_path, "bad", trials=1, latency_source="table", latency_table=str(path))
        with pytest.raises(ConfigError, match=words) as e:
            nas.search(bad, runs_dir=tmp_path / "runs2", quiet=True)
        assert "latency_table" in str(e.value)


def test_the_predictor_screens_and_ranks_on_the_latency_table(tmp_path):
    """With a latency table the predictor drops candidates over max_latency_ms before they become trials and takes
    their latency as known: no trial of the run breaks the cap, and none is infeasible."""
    from nas.evaluate.latency_table import LatencyTable, make_table
    from nas.grammar import Space

    space = Space.load(TINY["space"])
    table_file = tmp_path / "table.json"
    make_table(space, table_file, networks=8, overhead_networks=2, rounds=1, input_shape=(1, 8, 8), num_classes=10)
    table = LatencyTable.load(table_file)
    cap = sorted(table.predict(space.sample(k), fill=True) for k in range(40))[20]  # about half the space is over
    config = write_config(tmp_path, "p", trials=4, sampler="predictor", population_size=2, latency_source="table",
                          latency_table=str(table_file), constraints={"max_latency_ms": cap})
    study = nas.search(config, runs_dir=tmp_path / "runs", quiet=True)
    states = [t.user_attrs.get("status") for t in study.trials]
    assert "infeasible" not in states and states.count("ok") == 4
    guided = [t for t in study.trials if "predicted" in t.user_attrs.get("predictor", {})]
    assert guided  # after the 2 startup trials
    for t in study.trials:
        assert t.user_attrs["objectives"]["latency_ms"] <= cap
    for t in guided:  # its latency was known (the table's, spread 0), not guessed by a forest
        mean, sd = t.user_attrs["predictor"]["predicted"]["latency_ms"]
        assert sd == 0 and mean == pytest.approx(t.user_attrs["objectives"]["latency_ms"], abs=1e-6)
