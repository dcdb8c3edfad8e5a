"""experiments/nb201_proxies.py's arithmetic: a fidelity-table row, with the mean rank that combines a proxy training
with a zero-cost score (the trainings themselves take minutes each)."""
from __future__ import annotations


import pytest


@pytest.fixture(scope="module")
def proxies(experiment_script):
    return experiment_script("nb201_proxies")


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
