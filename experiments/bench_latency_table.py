"""Latency predicted from a per-part table against latency measured whole, per shipped space.

For each shipped space this script makes a latency table (``nas.evaluate.latency_table.make_table``: the distinct
parts of ``--table-networks`` sampled networks timed network by network, then the overhead fitted on
``--overhead-networks`` of them, each timed whole right after its parts: ``whole = parts + intercept``, or in a
space of DAG cells a slope per edge operation), then takes ``--networks`` other random networks of the space (seeds
from 10,000), predicts each from the table (parts the table lacks are measured on demand first, and counted) and
measures each whole in the same process as a search does: ``--rounds`` interleaved rounds of ``measure_latency``
(batch 1, one thread, 5 warm-up calls, 30 timed), the median of the rounds. Reported per space: Spearman's rho and
the median absolute percentage error between predicted and measured, the share of the test networks' parts that had
to be measured on demand, the time to make the table and the median time of one prediction. Targets (issue 24): rho
>= 0.95 and MAPE <= 10% per space; a prediction under 1 ms; nb201's table within 5 minutes on 2 cores.

    python experiments/bench_latency_table.py                          # 4 spaces, 100 networks each
    python experiments/bench_latency_table.py --runs 3                 # the same 3 times, fresh tables each
    python experiments/bench_latency_table.py --runtime onnxruntime          # the same with onnxruntime
    python experiments/bench_latency_table.py --spaces vision --networks 20 --table-networks 20 --no-write

Writes experiments/results/bench_latency_table.md and .csv (``_onnxruntime`` added to the name for that runtime);
the tables go to a temporary folder (they belong to this machine).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info  # noqa: E402

NAME = "bench_latency_table"


def one_space(name: str, run: int, args, folder: Path) -> tuple[list, float, float]:
    """Make ``name``'s table (a fresh one per run), predict the test networks and time them whole: the row, rho and
    MAPE."""
    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from nas.builder import build
    from nas.evaluate.latency_table import fit_text, make_table, part_key, parts_of, sample_networks
    from nas.evaluate.measure import measure_latency
    from nas.grammar import load_space

    space = load_space(name)
    shape, classes = space.reference_input
    t0 = time.perf_counter()
    table = make_table(space, folder / f"{name}-{run}.json", networks=args.table_networks,
                       overhead_networks=args.overhead_networks, rounds=args.rounds, runtime=args.runtime,
                       progress=lambda line: print(f"{name}: {line}", flush=True))
    make_s = time.perf_counter() - t0
    specs = sample_networks(space, args.networks, 10_000, table)
    filled = total = 0
    predicted, costs = [], []
    for spec in specs:
        keys = [part_key(q) for q in parts_of(spec, shape, classes)]
        total += len(keys)
        filled += sum(k not in table.parts for k in keys)
        table.fill(spec, rounds=args.rounds)
        t1 = time.perf_counter()
        predicted.append(table.predict(spec))
        costs.append(time.perf_counter() - t1)
    models = []
    for spec in specs:
        torch.manual_seed(0)
        models.append(build(spec, shape, classes).eval())
    measured: list[list[float]] = [[] for _ in models]
    rng = random.Random(0)
    for r in range(args.rounds):
        order = list(range(len(models)))
        rng.shuffle(order)
        for i in order:
            measured[i].append(measure_latency(models[i], shape, warmup=5, repeats=30, threads=1,
                                              runtime=args.runtime).median_ms)
        print(f"{name}: whole networks, round {r + 1}/{args.rounds}", flush=True)
    whole = np.array([statistics.median(m) for m in measured])
    pred = np.array(predicted)
    if args.verbose:
        for a, b in zip(pred, whole):
            print(f"  predicted {a:8.3f} ms  measured {b:8.3f} ms")
    rho = float(spearmanr(pred, whole).statistic)
    mape = float(np.median(np.abs(pred - whole) / whole))
    row = [name, run, len(specs), len(table.parts), f"{rho:.3f}", f"{100 * mape:.1f}%",
           f"{100 * float(np.median((pred - whole) / whole)):+.1f}%", f"{100 * filled / max(1, total):.1f}%",
           f"{make_s:.0f}", f"{1000 * statistics.median(costs):.2f}", fit_text(table.fit),
           f"{np.median(whole):.2f} ({whole.min():.2f}-{whole.max():.2f})"]
    print(row, flush=True)
    return row, rho, mape


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spaces", nargs="+", default=["vision", "mobile", "sequence", "nb201"])
    p.add_argument("--networks", type=int, default=100, help="test networks per space")
    p.add_argument("--table-networks", type=int, default=100, help="networks whose parts make the table")
    p.add_argument("--overhead-networks", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=1,
                   help="repeat the whole benchmark, each run with fresh tables (the spread between runs)")
    p.add_argument("--runtime", default="torch", choices=["torch", "onnxruntime"],
                   help="what runs the parts and the networks (the table's and the measurement's runtime)")
    p.add_argument("--verbose", action="store_true", help="print each network's predicted and measured latency")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    name_out = NAME if args.runtime == "torch" else f"{NAME}_{args.runtime}"
    report = Report(name_out, f"Latency tables ({args.runtime}): predicted against measured whole", info=machine_info())
    report.text(__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(), echo=False)
    rows, found = [], {}
    folder = Path(tempfile.mkdtemp(prefix="latency_tables_"))
    for run in range(1, args.runs + 1):
        for name in args.spaces:
            row, rho, mape = one_space(name, run, args, folder)
            rows.append(row)
            found.setdefault(name, []).append((rho, mape))
    report.table(["space", "run", "networks", "parts in table", "Spearman rho", "MAPE", "median error (signed)",
                  "parts measured on demand", "table made in s", "ms per prediction", "overhead fit",
                  "measured ms: median (range)"], rows, csv=None if args.no_write else f"{name_out}.csv")
    if args.runs > 1:
        report.text(f"Over the {args.runs} runs (each with its own tables):", echo=True)
        report.table(["space", "Spearman rho: min-max", "MAPE: min-max", "runs with rho >= 0.95 and MAPE <= 10%"],
                     [[name, f"{min(r for r, _ in v):.3f}-{max(r for r, _ in v):.3f}",
                       f"{100 * min(m for _, m in v):.1f}-{100 * max(m for _, m in v):.1f}%",
                       f"{sum(r >= 0.95 and m <= 0.10 for r, m in v)}/{len(v)}"] for name, v in found.items()])
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
