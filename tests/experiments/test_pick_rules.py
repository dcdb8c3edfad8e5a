"""experiments/pick_rules.py: reading proxy_fidelity's per-architecture tables and the taus of the pick rules."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def rules(experiment_script):
    return experiment_script("pick_rules")


def _table(path, rows):
    lines = ["seed,hash,summary,params,MFLOPs,synflow,naswot,0.5 ep,1 ep,reference,total s"]
    lines += [f'{i},h{i},"s | x","1,000",1.0,1.0,{nw},{a},{b},{ref},3.0' for i, (nw, a, b, ref) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_table_reads_with_its_budgets_and_a_failed_training_as_nan(rules, tmp_path):
    path = _table(tmp_path / "t.csv", [(500.0, 0.3, 0.4, 0.7), ("-inf", "failed", 0.2, 0.6)])
    budgets, rows = rules.read_table(path)
    assert budgets == ["0.5 ep", "1 ep"]
    assert rows[0] == {"0.5 ep": 0.3, "1 ep": 0.4, "naswot": 500.0, "reference": 0.7}
    assert rows[1]["naswot"] == float("-inf") and rows[1]["0.5 ep"] != rows[1]["0.5 ep"]


def test_the_mean_rank_mends_a_proxy_training_that_naswot_corrects(rules, tmp_path):
    # the reference order is 0 < 1 < 2 < 3 < 4; the training swaps the top two, naswot the bottom two
    rows = [(2.0, 0.1, 0, 0.1), (1.0, 0.2, 0, 0.2), (3.0, 0.3, 0, 0.3), (4.0, 0.5, 0, 0.4), (5.0, 0.4, 0, 0.5),
            (float("-inf"), 0.9, 0, 0.0)]  # a degenerate cell: left out, as the pick leaves it out
    _, table = rules.read_table(_table(tmp_path / "t.csv", rows))
    n, alone, naswot, ranked = rules.taus(table, "0.5 ep")
    assert n == 5
    assert alone == pytest.approx(0.8) and naswot == pytest.approx(0.8)  # 9 of 10 pairs right each
    assert ranked > alone
    assert rules.paired_share(table, "0.5 ep", reps=50) > 0.5
