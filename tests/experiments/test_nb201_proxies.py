"""experiments/nb201_proxies.py's arithmetic: the mean rank that combines a proxy training with a zero-cost score, and
a fidelity-table row (the trainings themselves take minutes each)."""
from __future__ import annotations

import math

import pytest


@pytest.fixture(scope="module")
def proxies(experiment_script):
    return experiment_script("nb201_proxies")


def test_mean_rank_averages_each_columns_ranks_and_leaves_out_a_nan(proxies):
    assert proxies.mean_rank([0.1, 0.3, 0.2], [3.0, 1.0, 2.0]) == [2.0, 2.0, 2.0]
    assert proxies.mean_rank([0.1, 0.3, 0.2], [1.0, 3.0, 2.0]) == [1.0, 3.0, 2.0]
    assert proxies.mean_rank([0.1, 0.1, 0.5]) == [1.5, 1.5, 3.0]  # ties share the average rank
    out = proxies.mean_rank([0.1, float("nan"), 0.5], [5.0, 6.0, 7.0])
    assert out[0] == 1.0 and math.isnan(out[1]) and out[2] == 2.0  # ranked among the rows every column has


def test_a_fidelity_row_reports_all_the_upper_half_and_the_mean_ranks(proxies):
    truth = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    scores = [0.1, 0.2, 0.3, 0.6, 0.5, 0.4]  # right in the lower half, reversed in the upper
    partners = {"naswot": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}  # perfect
    row = proxies.fidelity_row("5 epochs", scores, truth, [3, 4, 5], partners, "47.7")
    label, archs, tau, rho, interval, tau_upper, with_naswot, with_params, cpu = row
    assert (label, archs, cpu, with_params) == ("5 epochs", 6, "47.7", "")
    assert float(tau) == pytest.approx(0.6)  # 12 concordant, 3 discordant of 15 pairs
    assert float(tau_upper) == pytest.approx(-1.0)
    assert float(tau) < float(with_naswot) <= 1.0
    assert interval.startswith("[")
