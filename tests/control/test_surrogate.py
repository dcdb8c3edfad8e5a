"""The predictor sampler's per-objective models (nas.control.surrogate): a forest, or for a cost that adds up over the
network's parts whichever of a forest and an additive model predicts the trials better."""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from nas.control import surrogate
from nas.objectives import OBJECTIVES, additive


def _one_hot(row, options=4):
    return [1.0 if v == k else 0.0 for v in row for k in range(options)]


def _grid(target, *, leave_out):
    """Every row of 4 choices x 4 options but ``leave_out``: (ordinal rows, one-hot rows, targets)."""
    rows = [r for r in itertools.product(range(4), repeat=4) if r != leave_out]
    return [list(map(float, r)) for r in rows], [_one_hot(r) for r in rows], np.array([target(r) for r in rows])


COST = [[0.5, 1.0, 2.0, 4.0], [0.2, 0.1, 3.0, 1.0], [1.0, 2.0, 0.3, 0.6], [2.0, 0.4, 0.8, 1.6]]  # per choice, option


NOISE = random.Random(0)  # measurement noise, one stream for the module


def _additive_cost(row):
    return sum(COST[i][v] for i, v in enumerate(row)) + NOISE.gauss(0, 0.05)


def test_an_additive_cost_gets_the_additive_model_which_predicts_below_every_trial_seen():
    cheapest = tuple(int(np.argmin(c)) for c in COST)  # (0, 1, 2, 1): never among the trials
    ordinal, onehot, y = _grid(_additive_cost, leave_out=cheapest)
    model = surrogate.fit(ordinal, onehot, y, seed=0, additive=True)
    assert model.kind == surrogate.ADDITIVE
    mean, sd = model.predict([list(map(float, cheapest))], [_one_hot(cheapest)])
    true = sum(min(c) for c in COST)
    assert mean[0] < y.min() and abs(mean[0] - true) < 0.2 and sd[0] > 0
    forest = surrogate.fit(ordinal, onehot, y, seed=0, additive=False)  # a forest cannot go below what it saw
    assert forest.kind == surrogate.FOREST
    assert forest.predict([list(map(float, cheapest))], [_one_hot(cheapest)])[0][0] >= y.min()


def test_an_interaction_keeps_the_forest_and_so_does_an_objective_that_does_not_add_up():
    def gate(row):  # the second choice's option 0 cuts everything off (NAS-Bench-201's `none` on the only path)
        return 0.0 if row[1] == 0 else 1.0 + 0.1 * row[0] * row[2]

    ordinal, onehot, y = _grid(gate, leave_out=(3, 3, 3, 3))
    assert surrogate.fit(ordinal, onehot, y, seed=0, additive=True).kind == surrogate.FOREST
    ordinal, onehot, y = _grid(_additive_cost, leave_out=(0, 0, 0, 0))
    assert surrogate.fit(ordinal, onehot, y, seed=0, additive=False).kind == surrogate.FOREST
    few = surrogate.fit(ordinal[:3], onehot[:3], y[:3], seed=0, additive=True)  # too few trials to compare
    assert few.kind == surrogate.FOREST


@pytest.mark.parametrize("name", sorted(OBJECTIVES.names()))
def test_costs_that_add_up_are_marked(name):
    assert additive(name) == (name in ("latency_ms", "params", "flops", "activation_mb"))
    assert not additive("not an objective")


def test_nas_bench_201s_latency_is_modelled_additively_from_50_cells():
    """Real measurements: NAS-Bench-201's latency of 50 random cells. The additive model is chosen, ranks 1,000
    other cells better than the forest does, and puts the fastest cell of all (every edge a skip) among the fastest
    predicted, where the forest cannot (it predicts nothing below the 50 it saw)."""
    from scipy.stats import kendalltau

    from nas.bench.nb201_table import Table

    table = Table.load("cifar10")
    cells = list(table)
    rng = random.Random(0)
    train, test = rng.sample(cells, 50), rng.sample(cells, 1000)

    def rows(entries):
        codes = [[int(c) for c in e.index] for e in entries]
        return [list(map(float, c)) for c in codes], [_one_hot(c, 5) for c in codes]

    y = np.array([e.latency_s for e in train])
    model = surrogate.fit(*rows(train), y, seed=0, additive=True)
    forest = surrogate.fit(*rows(train), y, seed=0, additive=False)
    assert model.kind == surrogate.ADDITIVE
    truth = [e.latency_s for e in test]
    tau = {m.kind: kendalltau(m.predict(*rows(test))[0], truth)[0] for m in (model, forest)}
    assert tau[surrogate.ADDITIVE] > tau[surrogate.FOREST] + 0.05, tau
    fastest = min(cells, key=lambda e: e.latency_s)
    assert fastest.index == "111111"
    predicted = model.predict(*rows(test + [fastest]))[0]
    assert predicted[-1] < np.quantile(predicted[:-1], 0.02)
