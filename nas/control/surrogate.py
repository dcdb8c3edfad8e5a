"""The predictor sampler's per-objective models: a random forest or an additive (linear) model, whichever predicts the
run's own trials better.

A forest learns interactions (on NAS-Bench-201 a ``none`` edge in the wrong place cuts the cell off, whatever the
other edges are) but cannot predict outside the values it was trained on: no candidate is predicted faster than the
fastest trial seen, so the cheap end of a latency front is never expected to improve. Costs such as latency add up
over a network's parts (the premise of :mod:`nas.evaluate.latency_table`), and an additive model of the choices
extrapolates: fitted on the trials seen so far, it predicts the network of all the cheapest parts as the cheapest.
Measured on NAS-Bench-201's latency (100 training cells, 2,000 held-out ones, 5 draws;
experiments/results/surrogate_nb201.md): Kendall tau 0.82 additive against 0.70 forest, and the fastest cell of all
predicted 0th-2nd fastest of the 2,000 by the additive model against 14th-70th by the forest; on its accuracy the
forest is better (0.55 against 0.47), and held-out error would pick the additive model there in some draws: so only
costs are offered it.

So each such cost (an objective registered ``additive``: latency, memory, params, FLOPs) gets both, fitted on the
same trials, and keeps the one with the smaller held-out squared error (accuracy and other metrics keep the forest):
the forest's out-of-bag predictions against the additive model's 5-fold cross-validated ones. The forest's spread
is that of its trees' predictions; the additive model (Bayesian ridge regression on standardized features: every
categorical choice one-hot, numbers as they are, log params and log FLOPs) gives its predictive standard deviation.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

FOREST = "forest"
ADDITIVE = "additive"


@dataclass
class Surrogate:
    kind: str  # FOREST or ADDITIVE
    model: Any
    center: Any = None  # the additive model's feature standardization
    scale: Any = None

    def predict(self, x_forest, x_additive):
        """(mean, spread) per row: the forest reads ``x_forest`` (ordinal rows), the additive model ``x_additive``
        (one-hot rows)."""
        import numpy as np

        if self.kind == FOREST:
            x_forest = np.asarray(x_forest, dtype=float)
            per_tree = np.stack([tree.predict(x_forest) for tree in self.model.estimators_])
            return per_tree.mean(axis=0), per_tree.std(axis=0)
        mean, sd = self.model.predict((np.asarray(x_additive) - self.center) / self.scale, return_std=True)
        return mean, sd


def fit(x_forest, x_additive, y, *, seed: int, additive: bool) -> Surrogate:
    """A random forest on ``x_forest`` for targets ``y``; for an objective that adds up over the network's parts
    (``additive``, :func:`nas.objectives.additive`) the better of it and an additive model on ``x_additive`` (see the
    module docstring). ``seed`` seeds the forest."""
    chosen, forest_error = forest_model(x_forest, y, seed=seed, held_out=additive)
    if not additive or len(y) < 4:
        return chosen
    model, additive_error = additive_model(x_additive, y)
    return model if additive_error < forest_error else chosen


def forest_model(x, y, *, seed: int, held_out: bool = True) -> tuple[Surrogate, float]:
    """A random forest fitted on all rows, and (``held_out``) its out-of-bag mean squared error (else inf)."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    forest = RandomForestRegressor(n_estimators=64, max_features=0.5, min_samples_leaf=1, n_jobs=1,
                                   oob_score=held_out, random_state=seed)
    with warnings.catch_warnings():  # a handful of trials leaves a row without out-of-bag trees: it is left out
        warnings.simplefilter("ignore")
        forest.fit(x, y)
    error = np.inf
    if held_out:
        oob = np.asarray(forest.oob_prediction_, dtype=float)
        known = np.isfinite(oob)
        error = float(np.mean((oob[known] - y[known]) ** 2)) if known.any() else np.inf
    return Surrogate(FOREST, forest), error


def additive_model(x, y) -> tuple[Surrogate, float]:
    """The additive model fitted on all rows, and its 5-fold cross-validated mean squared error."""
    import numpy as np
    from sklearn.linear_model import BayesianRidge
    from sklearn.model_selection import KFold

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    center = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - center) / scale
    held_out = np.empty_like(y)
    for train, test in KFold(n_splits=min(5, len(y)), shuffle=True, random_state=0).split(z):
        held_out[test] = BayesianRidge().fit(z[train], y[train]).predict(z[test])
    error = float(np.mean((held_out - y) ** 2))
    return Surrogate(ADDITIVE, BayesianRidge().fit(z, y), center, scale), error
