"""The predictor sampler's models on NAS-Bench-201's real measurements: a random forest against an additive model.

For NB201's latency (a cost) and its accuracy, ``n`` random cells train each model of :mod:`nas.control.surrogate`
(features: log params and the six edges, by index for the forest and one-hot for the additive model, as the
predictor's rows; then also with the DAG cells' path statistics the predictor adds to the forest's rows in a space
with DAG cells, ``nas.control.predictor.dag_features``); 2,000 other cells test them: Kendall tau between predicted
and true values, mean of ``draws`` draws of the training cells. Also: which model ``surrogate.fit`` keeps
(``additive=True``: the smaller held-out error), and for latency the predicted rank of the fastest cell of all
(111111, every edge a skip; 0 = predicted fastest) among those 2,000, which the front's cheap end depends on.

    python experiments/surrogate_nb201.py            # about 2 min on one core

Writes experiments/results/surrogate_nb201.md and .csv.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info  # noqa: E402


def rows(entries, classes: int, paths: bool = False):
    from nas.bench.nb201 import from_index, param_count
    from nas.control.predictor import dag_features

    ordinal, onehot = [], []
    for e in entries:
        lead = [math.log1p(param_count(e.index, classes))]
        codes = [int(c) for c in e.index]
        tail = dag_features(from_index(e.index)) if paths else []
        ordinal.append(lead + [float(c) for c in codes] + tail)
        onehot.append(lead + [1.0 if c == k else 0.0 for c in codes for k in range(5)])  # (the predictor's too)
    return ordinal, onehot


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--test-cells", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    import numpy as np
    from scipy.stats import kendalltau

    from nas.bench.nb201_table import Table
    from nas.control import surrogate
    from nas.evaluate.tabular import NB201_INPUT

    table = Table.load(args.dataset)
    classes = NB201_INPUT[args.dataset][1]
    cells = list(table)
    fastest = min(cells, key=lambda e: e.latency_s)
    test = [e for e in random.Random(0).sample(cells, args.test_cells + 1) if e.index != fastest.index]
    test = test[:args.test_cells]
    test_rows = {paths: rows(test + [fastest], classes, paths) for paths in (False, True)}
    held = {e.index for e in test} | {fastest.index}
    pool = [e for e in cells if e.index not in held]
    targets = {"latency": lambda e: e.latency_s, "accuracy": lambda e: e.mean_accuracy}
    out = []
    for name, value in targets.items():
        truth = [value(e) for e in test]
        for n, paths in [(n, paths) for paths in (False, True) for n in args.sizes]:
            tau = {surrogate.FOREST: [], surrogate.ADDITIVE: [], "kept": []}
            kept, rank = [], {surrogate.FOREST: [], surrogate.ADDITIVE: []}
            for draw in range(args.draws):
                train = random.Random(draw + 1).sample(pool, n)
                x_forest, x_additive = rows(train, classes, paths)
                y = np.array([value(e) for e in train])
                models = {surrogate.FOREST: surrogate.forest_model(x_forest, y, seed=draw)[0],
                          surrogate.ADDITIVE: surrogate.additive_model(x_additive, y)[0]}
                chosen = surrogate.fit(x_forest, x_additive, y, seed=draw, additive=True)
                kept.append(chosen.kind)
                for kind, model in models.items():
                    predicted = model.predict(*test_rows[paths])[0]
                    tau[kind].append(kendalltau(predicted[:-1], truth)[0])
                    rank[kind].append(int((predicted[:-1] < predicted[-1]).sum()))
                tau["kept"].append(tau[chosen.kind][-1])
            row = [name, "edges + path statistics" if paths else "edges", n, args.draws]
            row += [round(statistics.mean(tau[k]), 3) for k in (surrogate.FOREST, surrogate.ADDITIVE, "kept")]
            row.append(f"{kept.count(surrogate.ADDITIVE)} of {args.draws}")
            row.append(" ".join(map(str, rank[surrogate.FOREST])) if name == "latency" else "")
            row.append(" ".join(map(str, rank[surrogate.ADDITIVE])) if name == "latency" else "")
            out.append(row)
            print(row, flush=True)
    report = Report("surrogate_nb201", "The predictor's models on NAS-Bench-201: forest against additive",
                    info=machine_info())
    report.text(__doc__.split("\n\n")[1] + "\n")
    report.table(["target", "features", "training cells", "draws", "tau forest", "tau additive", "tau kept",
                  "additive kept", "fastest cell's rank, forest", "fastest cell's rank, additive"], out,
                 csv=None if args.no_write else "surrogate_nb201.csv",
                 title=f"Kendall tau on {args.test_cells:,} held-out cells ({args.dataset}), mean of {args.draws} "
                       "draws")
    if not args.no_write:
        report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
