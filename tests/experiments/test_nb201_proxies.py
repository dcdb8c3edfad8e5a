"""experiments/nb201_proxies.py's arithmetic: its budgets, a fidelity-table row, with the mean rank that combines a
proxy training with a zero-cost score (the trainings themselves take minutes each)."""
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


def test_budgets_read_epochs_resolution_lr_depth_and_width(proxies):
    """``epochs@resolution[:lr][/depth][xwidth]``: the reduced-depth and reduced-width proxies of the fidelity study,
    labelled with the cells per stage and the channels they train."""
    items, budget = proxies.parse_budgets("10@0.5/0.2, 10@0.75/0.2x0.5,1@1:6e-3")
    assert [item[1:] for item in items] == [(10.0, 0.5, None, 0.2, 1.0), (10.0, 0.75, None, 0.2, 0.5),
                                            (1.0, 1.0, 6e-3, 1.0, 1.0)]
    assert [item[0] for item in items] == ["10@0.5/0.2", "10@0.75/0.2x0.5", "1@1:6e-3"]  # the cache keys' labels
    assert proxies.budget_label(10, 0.75, None, 0.2, 0.5) == (
        "10 epoch(s) at 24x24, depth 0.2 (1 cell(s) per stage), width 0.5 (8/16/32 channels)")
    assert budget(epochs=10, depth=0.2, width=0.5).width == 0.5
