"""Warm start: architectures a new run trains first (baselines, spec files, export folders)."""
from __future__ import annotations

import random

import pytest
from control_helpers import TINY, TINY_SPACE, journal_study, write_config
from control_helpers import nas as nas_cli

import nas
from nas.control.engine import prepare
from nas.control.samplers import SAMPLERS
from nas.control.warmstart import ATTR, resolve
from nas.errors import ConfigError
from nas.export import export_from
from nas.grammar import Space, shipped_spaces_dir

SHIPPED = sorted(p.stem for p in shipped_spaces_dir().glob("*.yaml"))


def tiny_specs(n: int):
    """``n`` different specs of the tiny space."""
    space = Space.load(TINY_SPACE)
    rng = random.Random(0)
    found = {}
    while len(found) < n:
        spec = space.sample(rng.randrange(10**6))
        found[spec.hash()] = spec
    return list(found.values())


@pytest.mark.parametrize("space_name", SHIPPED)
def test_every_shipped_baseline_is_a_warm_start(space_name):
    """`warm_start: [baselines]` reproduces each baseline of each shipped space exactly (same spec hash)."""
    path = shipped_spaces_dir() / f"{space_name}.yaml"
    space = Space.load(path)
    if not space.baselines:
        pytest.skip(f"space {space_name} ships no baselines")
    warm = resolve(["baselines"], Space.from_text(path.read_text(), file=str(path)), path, None)
    assert [w.label for w in warm] == sorted(space.baselines)
    for w in warm:
        assert w.spec_hash == space.baselines[w.label].hash()
        assert space.replay(w.params).hash() == w.spec_hash
    by_name = resolve([sorted(space.baselines)[0]], space, path, None)
    assert [w.label for w in by_name] == [sorted(space.baselines)[0]]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_warm_starts_are_the_first_trials_with_every_sampler(tmp_path, sampler):
    a, b = tiny_specs(2)
    a.save(tmp_path / "a.json")
    b.save(tmp_path / "b.json")
    config = write_config(tmp_path, sampler=sampler, trials=4, population_size=2,
                          warm_start=["a.json", "b.json", "a.json"])  # relative to the config; a duplicate
    study = nas.search(config, runs_dir=tmp_path / "runs", name="w", quiet=True)
    trials = journal_study(tmp_path / "runs" / "w").get_trials()
    assert len(trials) == 4
    assert [t.user_attrs.get(ATTR) for t in trials[:2]] == ["a.json", "b.json"]
    assert [t.user_attrs["spec_hash"] for t in trials[:2]] == [a.hash(), b.hash()]
    assert all(ATTR not in t.user_attrs for t in trials[2:])
    assert all(t.state.name == "COMPLETE" for t in trials[:2])
    header = (tmp_path / "runs" / "w" / "search.log").read_text().splitlines()[0]
    assert " search w: " in header and "; warm start: 2 trial(s) first: a.json, b.json; data: " in header
    assert len(study.trials) == 4


@pytest.mark.parametrize("sampler", [s for s in SAMPLERS if s != "predictor"])  # the predictor ranks its own
def test_a_zero_cost_warm_up_makes_the_startup_trials_of_every_sampler_best_naswot_first(tmp_path, sampler):
    from nas.control.config import RunConfig
    from nas.control.samplers import startup_trials

    changes = dict(sampler=sampler, trials=5, population_size=3, zero_cost_warmup=8, zero_cost=["naswot"])
    config = write_config(tmp_path, **changes)
    nas.search(config, runs_dir=tmp_path / "runs", name="z", quiet=True)
    trials = journal_study(tmp_path / "runs" / "z").get_trials()
    keep = startup_trials(RunConfig.model_validate({**TINY, **changes}))
    assert keep == 3  # nsga2 / evolution: the population; tpe / gp / random: min(10, population)
    labels = [t.user_attrs.get(ATTR) for t in trials]
    assert [label.split(" of ")[0] for label in labels[:keep]] == [f"zero-cost warm-up: naswot {i}"
                                                                   for i in range(1, keep + 1)]
    assert all(label is None for label in labels[keep:])
    # the warm-up ranks by the score each trial then records itself (same model seed, input and batch)
    scores = [t.user_attrs["zero_cost"]["naswot"] for t in trials[:keep]]
    assert scores == sorted(scores, reverse=True)
    assert len({t.user_attrs["spec_hash"] for t in trials[:keep]}) == keep


def test_a_resumed_run_does_not_warm_start_again(tmp_path):
    (a,) = tiny_specs(1)
    a.save(tmp_path / "a.json")
    config = write_config(tmp_path, trials=2, warm_start=[str(tmp_path / "a.json")])
    nas.search(config, runs_dir=tmp_path / "runs", name="w", quiet=True)
    nas.resume(tmp_path / "runs" / "w", trials=4, quiet=True)
    nas.search(config, runs_dir=tmp_path / "runs", name="w", resume=True, quiet=True, trials=5)
    trials = journal_study(tmp_path / "runs" / "w").get_trials()
    assert len(trials) == 5
    assert [t.number for t in trials if ATTR in t.user_attrs] == [0]


def test_an_export_folder_warm_starts_a_new_run(tmp_path):
    first = nas.search(write_config(tmp_path, trials=2), runs_dir=tmp_path / "runs", name="first", quiet=True)
    best = next(t for t in first.trials if t.state.name == "COMPLETE")
    out = tmp_path / "export"
    export_from(tmp_path / "runs" / "first", out, trial=best.number, latency_repeats=2)
    config = write_config(tmp_path, name="second", trials=1, warm_start=[str(out)])
    second = nas.search(config, runs_dir=tmp_path / "runs", name="second", quiet=True)
    (t,) = second.trials
    assert t.user_attrs[ATTR] == str(out) and t.user_attrs["spec_hash"] == best.user_attrs["spec_hash"]


@pytest.mark.parametrize("entry, says", [
    ("resnet", "unknown warm start 'resnet': not a baseline of space 'tiny'"),
    ("nowhere/spec.json", "warm start 'nowhere/spec.json': no such file or folder"),
    ("vision_spec.json", "is not in space 'tiny'"),
    ("broken.json", "warm start 'broken.json':"),
])
def test_bad_warm_starts_are_one_line_errors_naming_the_line(tmp_path, entry, says, capsys):
    space = Space.load(shipped_spaces_dir() / "vision.yaml")
    space.baselines["resnet"].save(tmp_path / "vision_spec.json")
    (tmp_path / "broken.json").write_text("{not json")
    config = write_config(tmp_path, warm_start=[entry])
    with pytest.raises(ConfigError) as err:
        prepare(config)
    line = err.value.one_line()
    assert says in line and "\n" not in line
    assert line.startswith(f"{config}:") and err.value.line == config.read_text().splitlines().index(f"- {entry}") + 1
    if entry == "resnet":  # the command line, once as a real process (the others: the same error, in process)
        r = nas_cli("search", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet")
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1
    else:
        from nas.cli import main

        capsys.readouterr()
        assert main(["search", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing written


def test_warm_start_is_not_read_on_resume_from_the_run_snapshot(tmp_path):
    """A run's config snapshot keeps `warm_start`; resuming from it must not need those files any more."""
    (a,) = tiny_specs(1)
    a.save(tmp_path / "a.json")
    nas.search(write_config(tmp_path, trials=1, warm_start=["a.json"]), runs_dir=tmp_path / "runs", name="w",
               quiet=True)
    (tmp_path / "a.json").unlink()
    assert len(nas.resume(tmp_path / "runs" / "w", trials=2, quiet=True).trials) == 2


def test_search_resume_does_not_need_the_warm_start_files_any_more(tmp_path):
    """`nas search CONFIG --resume` of an existing run enqueues nothing, so a warm-start file deleted since the run
    began must not stop it (it used to be resolved, and fail, before the run was found); a new run still checks it."""
    (a,) = tiny_specs(1)
    a.save(tmp_path / "a.json")
    config = write_config(tmp_path, trials=1, warm_start=["a.json"])
    nas.search(config, runs_dir=tmp_path / "runs", name="w", quiet=True)
    (tmp_path / "a.json").unlink()
    r = nas_cli("search", str(config), "--runs-dir", str(tmp_path / "runs"), "--name", "w", "--resume", "--trials",
                "2", "--quiet")
    assert r.returncode == 0, r.stderr
    trials = journal_study(tmp_path / "runs" / "w").get_trials()
    assert len(trials) == 2 and [t.number for t in trials if ATTR in t.user_attrs] == [0]
    r = nas_cli("search", str(config), "--runs-dir", str(tmp_path / "runs"), "--name", "new", "--quiet")
    assert r.returncode == 2 and "warm start 'a.json': no such file or folder" in r.stderr
    assert not (tmp_path / "runs" / "new").exists()


def test_unknown_space_without_baselines(tmp_path):
    with pytest.raises(ConfigError, match="space 'tiny' has no baselines to warm-start from"):
        prepare({**TINY, "warm_start": ["baselines"]})


def test_one_warm_start_may_be_written_without_a_list():
    space = shipped_spaces_dir() / "vision.yaml"
    prepared = prepare({**TINY, "space": str(space), "warm_start": "resnet"})
    assert [w.label for w in prepared.warm] == ["resnet"]
    assert prepared.config.warm_start == ["resnet"]


def test_the_report_marks_warm_start_trials(tmp_path):
    from nas.report import write_report

    (a,) = tiny_specs(1)
    a.save(tmp_path / "a.json")
    nas.search(write_config(tmp_path, trials=3, warm_start=["a.json"]), runs_dir=tmp_path / "runs", name="w",
               quiet=True)
    paths = write_report(tmp_path / "runs" / "w", baselines=False)
    import pandas as pd

    trials = pd.read_csv(paths["trials.csv"])
    assert trials.loc[trials["number"] == 0, "warm_start"].tolist() == ["a.json"]
    assert trials.loc[trials["number"] != 0, "warm_start"].isna().all()
    pareto = pd.read_csv(paths["pareto.csv"])
    on_front = 0 in pareto["number"].tolist()
    header = next(line for line in paths["summary.md"].read_text().splitlines() if line.startswith("| number"))
    assert ("warm_start" in header) == on_front  # the Pareto table's header


def test_a_warm_start_does_not_shift_the_samplers_seed(tmp_path):
    """The sampler of a new run is seeded with the config's seed; enqueuing the warm starts first must not count as
    trials already stored (which gives a resumed run its shifted seed)."""
    (a,) = tiny_specs(1)
    a.save(tmp_path / "a.json")
    cold = nas.search(write_config(tmp_path, "cold", trials=3), runs_dir=tmp_path / "runs", name="cold", quiet=True)
    warm = nas.search(write_config(tmp_path, "warm", trials=4, warm_start=["a.json"]), runs_dir=tmp_path / "runs",
                      name="warm", quiet=True)
    assert [t.params for t in warm.trials[1:]] == [t.params for t in cold.trials]
