"""experiments/proxy_fidelity.py: which results page a setting writes (the CPU page is never overwritten by --full)."""
from __future__ import annotations

import sys

import pytest


@pytest.fixture(scope="module")
def fidelity(experiment_script):
    return experiment_script("proxy_fidelity")


@pytest.mark.parametrize("argv, name", [
    ([], "proxy_fidelity"),
    (["--space", "mobile"], "proxy_fidelity_mobile"),
    (["--full", "--device", "cpu"], "proxy_fidelity_full"),
    (["--full", "--device", "cpu", "--space", "mobile"], "proxy_fidelity_mobile_full"),
])
def test_each_setting_writes_its_own_page(fidelity, monkeypatch, argv, name):
    monkeypatch.setattr(sys, "argv", ["proxy_fidelity.py", *argv])
    args = fidelity.parse_args()
    assert args.name == name
    assert args.device == "cpu"
    if "--full" in argv:  # the GPU setting's values, the device given explicitly
        assert (args.n, args.dataset, args.resolution, args.width_scale) == (100, "cifar10", 1.0, 1.0)
