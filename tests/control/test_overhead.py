"""Controller overhead: the journal backend's fsync policy and the constraint pre-check's shared, cached costs."""
from __future__ import annotations

import os
import pickle

import optuna
import pytest
from control_helpers import TINY, TINY_SPACE, journal_study

from nas.control.engine import Engine, prepare
from nas.evaluate.costs import constraint_costs, violations
from nas.grammar import load_space


# ---------------------------------------------------------------------------------------------------------------
# journal backend
# ---------------------------------------------------------------------------------------------------------------
def test_unsynced_ops_are_the_mid_trial_records_of_the_installed_optuna():
    from optuna.storages.journal._storage import JournalOperation as Op

    from nas.control.rundir import UNSYNCED_OPS

    assert UNSYNCED_OPS == {int(Op.SET_TRIAL_PARAM), int(Op.SET_TRIAL_INTERMEDIATE_VALUE),
                            int(Op.SET_TRIAL_USER_ATTR), int(Op.SET_TRIAL_SYSTEM_ATTR)}


def test_journal_backend_fsyncs_creation_and_tell_only(tmp_path, monkeypatch):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from nas.control import rundir

    storage = JournalStorage(rundir.journal_backend(str(tmp_path / "journal.log")))
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    trial = study.ask()  # CREATE_TRIAL: fsync-ed
    assert len(synced) == 1
    for i in range(10):
        trial.suggest_int(f"p{i}", 0, 9)
        trial.set_user_attr(f"a{i}", {"i": i})
    assert len(synced) == 1  # parameters and attributes: written, not fsync-ed
    study.tell(trial, [0.5, 1.0])  # SET_TRIAL_STATE_VALUES: fsync-ed (flushes the records before it too)
    assert len(synced) == 2
    # the file is Optuna's own format: Optuna's stock backend (and so `optuna trials`) reads it back whole
    stock = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    plain = optuna.load_study(study_name="s", storage=stock)
    [t] = plain.get_trials()
    assert t.state.name == "COMPLETE" and t.values == [0.5, 1.0]
    assert t.params == {f"p{i}": trial.params[f"p{i}"] for i in range(10)}
    assert t.user_attrs == {f"a{i}": {"i": i} for i in range(10)}
    # picklable (Ray's OptunaSearch pickles its storage), and the copy writes with the same policy
    copy = pickle.loads(pickle.dumps(storage))
    assert type(copy._backend) is type(storage._backend)
    assert optuna.load_study(study_name="s", storage=copy).get_trials()[0].params == t.params


# ---------------------------------------------------------------------------------------------------------------
# constraint pre-check
# ---------------------------------------------------------------------------------------------------------------
SHIPPED = [(name, seed) for name in ("vision", "mobile", "sequence") for seed in range(3)]


@pytest.mark.parametrize("name,seed", SHIPPED)
def test_constraint_costs_equal_the_meters_and_are_cached(name, seed, monkeypatch):
    """The pre-check's params / FLOPs are exactly what the meters report on a freshly built model, and a spec
    checked again is not counted again."""
    import nas.evaluate.costs
    from nas.builder import build, example_input
    from nas.evaluate.measure import count_flops, count_params

    space = load_space(name)
    spec = space.sample(seed)
    shape, classes = space.reference_input
    model = build(spec, input_shape=shape, num_classes=classes)
    expected = {"params": count_params(model), "flops": count_flops(model, example_input(model, 1))}
    assert constraint_costs(space, spec, what=("params", "flops")) == expected
    monkeypatch.setattr(nas.evaluate.costs, "network_costs", lambda *a, **k: pytest.fail("counted a cached spec again"))
    assert constraint_costs(space, spec, what=("flops", "params")) == expected
    assert violations(space, load_space(name).sample(seed)) == violations(space, spec)  # a fresh space agrees


def _counting_builds(monkeypatch) -> list:
    """Spec hashes, one per count of a network's params and FLOPs (:func:`nas.evaluate.costs.network_costs`), from
    an empty cache (the cache of whole-network counts lives as long as the process)."""
    import nas.evaluate.costs

    monkeypatch.setattr(nas.evaluate.costs, "network_cost_cache", {})
    builds = []
    real = nas.evaluate.costs.network_costs

    def counted(spec, *a, **k):
        builds.append(spec.hash())
        return real(spec, *a, **k)

    monkeypatch.setattr(nas.evaluate.costs, "network_costs", counted)
    return builds


def _engine_on(tmp_path, reference: str, **config) -> Engine:
    """An engine on the tiny space with a space constraint at ``reference`` input (digits is 1x8x8, 10 classes)."""
    space = tmp_path / "space.yaml"
    space.write_text(TINY_SPACE.read_text()
                     + f"constraints: {{max_params: 100000, reference_input: {reference}}}\n")
    return Engine(prepare({**TINY, "space": str(space), **config}), quiet=True)


def test_one_count_serves_the_space_and_the_run_constraints_at_the_same_input(tmp_path, monkeypatch):
    engine = _engine_on(tmp_path, "{shape: [1, 8, 8], num_classes: 10}",
                        constraints={"max_params": 1500, "max_flops": 10**9})
    builds = _counting_builds(monkeypatch)
    specs = [engine.space.sample(seed) for seed in range(6)]
    results = [engine.check_constraints(spec) for spec in specs]
    assert len(builds) == len({s.hash() for s in specs})  # one count per distinct spec, for both checks
    for spec, (problems, amounts, measured) in zip(specs, results):
        from nas.builder import build, example_input
        from nas.evaluate.measure import count_flops, count_params

        model = build(spec, (1, 8, 8), 10)
        assert measured == {"params": count_params(model), "flops": count_flops(model, example_input(model, 1))}
        assert ("max_params" in amounts) == (measured["params"] > 1500)
    builds.clear()
    assert [engine.check_constraints(spec) for spec in specs] == results  # all from the cache
    assert builds == []


def test_different_inputs_are_measured_separately(tmp_path, monkeypatch):
    engine = _engine_on(tmp_path, "{shape: [3, 32, 32], num_classes: 10}", constraints={"max_flops": 10**9})
    builds = _counting_builds(monkeypatch)
    spec = engine.space.sample(0)
    _, _, measured = engine.check_constraints(spec)
    assert len(builds) == 2  # the space's reference input and the dataset's
    from nas.builder import build, example_input
    from nas.evaluate.measure import count_flops

    model = build(spec, (1, 8, 8), 10)
    assert measured == {"flops": count_flops(model, example_input(model, 1))}
    ref = constraint_costs(engine.space, spec, what=("flops",))["flops"]
    assert ref != measured["flops"]  # 32x32 vs 8x8: really measured at each input


def test_a_resampled_infeasible_spec_is_not_counted_again_in_a_search(tmp_path, monkeypatch):
    import nas

    builds = _counting_builds(monkeypatch)
    space = tmp_path / "space.yaml"  # 8 architectures, every one infeasible: each is resampled again and again
    space.write_text(TINY_SPACE.read_text() + "constraints: {max_params: 100000000, max_flops: 1}\n")
    from control_helpers import write_config

    study = nas.search(write_config(tmp_path, space=str(space), trials=16), runs_dir=tmp_path / "runs",
                       name="inf", quiet=True)
    trials = study.get_trials()
    assert len(trials) == 16 and all(t.user_attrs.get("status") == "infeasible" for t in trials)
    assert len(builds) == len({t.user_attrs["spec_hash"] for t in trials}) < 16
    assert len(journal_study(tmp_path / "runs" / "inf").get_trials()) == 16


# ---------------------------------------------------------------------------------------------------------------
# progress: the front size kept incrementally
# ---------------------------------------------------------------------------------------------------------------
def test_incremental_front_size_equals_pareto_mask():
    import random

    import numpy as np

    from nas.control.progress import Progress, Tally
    from nas.pareto import pareto_mask

    for case in range(150):
        rng = random.Random(case)
        directions = rng.choice([["maximize", "minimize"], ["minimize"], ["maximize", "minimize", "minimize"]])
        tally = Tally()
        progress = Progress(objectives=["x"] * len(directions), directions=directions, target=None,
                            time_budget_s=None, quiet=True, log=lambda line: None, tally=tally)
        for _ in range(rng.randint(0, 50)):  # small integer grid: ties and duplicates on purpose; some NaN rows
            tally.values.append([float(rng.randint(0, 5)) if rng.random() > 0.03 else float("nan")
                                 for _ in directions])
            if rng.random() < 0.5:
                expected = int(pareto_mask(np.array(tally.values, dtype=float), directions).sum())
                assert progress.front_size() == expected, case
        progress.tally = Tally(values=[[1.0] * len(directions)])  # a new tally (resume) starts over
        assert progress.front_size() == 1


def _ready_engine(tmp_path, config: dict) -> Engine:
    """An engine on a new run folder, ready for ``one_trial()`` (what ``search`` sets up before its loop)."""
    from nas.control.progress import Progress
    from nas.control.runs import new_run

    prepared = prepare(config)
    engine = Engine(prepared, quiet=True)
    fingerprint = prepared.config.fingerprint(prepared.space.fingerprint())
    engine.attach(new_run(prepared, "s", tmp_path / "run", fingerprint, None), create=True)
    engine.tally = engine.load_tally()
    engine.progress = Progress(objectives=engine.config.objectives, directions=engine.config.directions,
                               target=engine.config.trials, time_budget_s=None, quiet=True, log=engine.run_dir.log,
                               tally=engine.tally)
    return engine


def test_a_feasible_trial_builds_its_model_once_and_counts_it_once(tmp_path, monkeypatch):
    """The constraint check inside evaluate counts params / FLOPs without building the network (by its parts);
    evaluate then builds the model once, to measure and train it, and does not count its params / FLOPs again."""
    import nas.builder
    import nas.evaluate.measure as measure

    space = tmp_path / "space.yaml"
    space.write_text(TINY_SPACE.read_text() + "constraints: {max_params: 100000, reference_input: "
                                              "{shape: [1, 8, 8], num_classes: 10}}\n")
    engine = _ready_engine(tmp_path, {**TINY, "space": str(space), "trials": 3,
                                      "budget": {"epochs": 0.1, "batch_size": 32}})
    counts = _counting_builds(monkeypatch)
    builds, whole_counts = [], []
    real_build, real_count = nas.builder.build, measure.count_flops
    monkeypatch.setattr(nas.builder, "build", lambda spec, *a, **k: builds.append(spec.hash()) or real_build(
        spec, *a, **k))
    monkeypatch.setattr(measure, "count_flops", lambda model, *a, **k: (
        isinstance(model, nas.builder.Network) and whole_counts.append(1)) or real_count(model, *a, **k))
    for _ in range(3):
        engine.one_trial()
    trials = engine.study.get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE" and "reused_from" not in t.user_attrs]
    assert complete
    evaluated = len(trials) - sum("reused_from" in t.user_attrs for t in trials)
    assert len(counts) == len(builds) == evaluated  # one count and one build per evaluated trial
    assert whole_counts == []  # evaluate takes the pre-check's FLOPs
    for t in complete:
        assert t.user_attrs["precheck"]["params"] == t.user_attrs["cost"]["params"]
        assert t.user_attrs["precheck"]["flops"] == t.user_attrs["cost"]["flops"]


def test_a_latency_constraint_measures_latency_once_and_it_is_the_objective(tmp_path, monkeypatch):
    import nas.evaluate.measure as measure

    engine = _ready_engine(tmp_path, {**TINY, "trials": 2, "budget": {"epochs": 0.1, "batch_size": 32},
                                      "constraints": {"max_latency_ms": 1000.0}})
    calls = []
    real = measure.measure_latency
    monkeypatch.setattr(measure, "measure_latency",
                        lambda *a, **k: calls.append(k.get("batch_size")) or real(*a, **k))
    for _ in range(2):
        engine.one_trial()
    complete = [t for t in engine.study.get_trials()
                if t.state.name == "COMPLETE" and "reused_from" not in t.user_attrs]
    # one batch-1 latency measurement per evaluated trial (the throughput meter measures at its own batch size)
    assert complete and calls.count(1) == len(complete)
    for t in complete:
        assert t.user_attrs["objectives"]["latency_ms"] == t.user_attrs["precheck"]["latency_ms"]
        assert t.user_attrs["cost"]["latency"] == t.user_attrs["precheck"]["latency"]
        assert t.values[1] == t.user_attrs["precheck"]["latency_ms"]


@pytest.mark.parametrize("medians, problem, kept", [
    ([0.5], False, 0.5),  # under the cap: timed once
    ([3.0, 0.6], False, 0.6),  # a busy moment: timed again, the fastest timing kept
    ([3.0, 2.5, 2.8], True, 2.5),  # over the cap every time: infeasible
])
def test_a_network_over_the_latency_cap_is_timed_again_before_it_is_infeasible(tmp_path, monkeypatch, medians,
                                                                                problem, kept):
    import nas.control.engine as engine_module
    from nas.evaluate.measure import Latency

    engine = Engine(prepare({**TINY, "constraints": {"max_latency_ms": 1.0}}), quiet=True)
    timings = iter(medians)
    calls = []

    def fake_latency(model, input_shape, config, spec=None):
        calls.append(input_shape)
        return Latency(device="cpu", batch_size=1, median_ms=next(timings), iqr_ms=0.0, repeats=5, warmup=0,
                       threads=1)

    monkeypatch.setattr(engine_module, "measure_latency_for", fake_latency)
    problems, amounts, measured = engine.check_constraints(engine.space.sample(0))
    assert len(calls) == len(medians) and measured["latency_ms"] == kept == measured["latency"]["median_ms"]
    assert bool(problems) == problem and ("max_latency_ms" in amounts) == problem
    assert measured["latency"].get("timings_ms", [medians[0]]) == medians
