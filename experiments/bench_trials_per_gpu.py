"""Candidates per hour on one GPU with ``--trials-per-gpu K``: several small trainings packed on one GPU at once.

A proxy training of a small candidate leaves most of a big GPU idle (kernel launches, the data loader, validation
and the latency measurement on the CPU). ``nas search --trials-per-gpu K`` runs K worker processes per GPU, each
training its own trial. This script runs the same search (same config, sampler and seed) for a fixed wall time
with each K of ``--ks`` and counts the trials completed, from the run's own storage. Reported per K: trials
completed, wall seconds (worker start-up included), candidates per hour, the median seconds of one trial's
evaluation, and the throughput relative to K = the first of ``--ks``.

Target (issue 4): K = 4 gives at least 2x the candidates per hour of K = 1.

    python experiments/bench_trials_per_gpu.py --data-dir DIR           # a GPU: K = 1 and 4, 240 s each
    python experiments/bench_trials_per_gpu.py --ks 1,2,4,8 --seconds 300 --data-dir DIR
    python experiments/bench_trials_per_gpu.py --smoke                  # no GPU: --workers K on digits, a few
                                                                        # seconds; checks the script, writes nothing

The search: the ``mobile`` space on Fashion-MNIST (``--train-subset`` examples, ``--epochs`` of proxy training at
batch ``--batch-size`` on the GPU), objectives accuracy and params (no latency measurement: it would time the CPU,
not the packing), random sampling (the sampler's own cost is not what is measured), no zero-cost proxies.
Writes experiments/results/bench_trials_per_gpu.md and .csv.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info  # noqa: E402

NAME = "bench_trials_per_gpu"
TARGET = 2.0


def config(args) -> dict:
    return {
        "space": args.space,
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "train_subset": args.train_subset,
        "objectives": ["accuracy", "params"],
        "budget": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": 0.003},
        "sampler": "random",
        "trials": 100_000,
        "time_budget_s": args.seconds,
        "seed": args.seed,
        "device": args.device,
        "zero_cost": False,
        "train_threads": 1,
    }


def one(args, k: int, runs_dir: Path) -> list:
    from nas.control.search import search
    from nas.control.workers import Parallel, resolve

    parallel = Parallel(workers=k) if args.smoke else resolve(trials_per_gpu=k)
    name = f"k{k}"
    t0 = time.perf_counter()
    study = search(config(args), runs_dir=runs_dir, name=name, quiet=True, parallel=parallel)
    wall = time.perf_counter() - t0
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state.name == "COMPLETE"]
    evals = [t.user_attrs["wall_s"] for t in done if "wall_s" in t.user_attrs]
    per_hour = len(done) / wall * 3600
    failed = sum(1 for t in trials if t.state.name == "FAIL")
    return [k, len(done), failed, round(wall, 1), round(per_hour, 1),
            round(statistics.median(evals), 2) if evals else "", per_hour]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--ks", default="1,4", help="trials per GPU to compare (default 1,4)")
    p.add_argument("--seconds", type=float, default=240.0, help="wall time of each search (default 240)")
    p.add_argument("--space", default="mobile")
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--data-dir", default=os.environ.get("NAS_DATA_DIR"))
    p.add_argument("--train-subset", type=int, default=10_000)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true",
                   help="no GPU needed: --workers K on the CPU with digits and a few seconds (writes nothing)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    args.device = "cuda"
    if args.smoke:
        args.device, args.dataset, args.space, args.train_subset = "cpu", "digits", "mobile", 300
        args.seconds, args.epochs, args.batch_size, args.no_write = min(args.seconds, 20.0), 0.3, 64, True
    else:
        import torch

        if not torch.cuda.is_available():
            p.error("needs a CUDA GPU (or --smoke to check the script on a CPU)")
    info = machine_info()
    report = Report(NAME, "Candidates per hour with --trials-per-gpu K", info=info)
    report.text(__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(), echo=False)
    report.text(f"Settings: space `{args.space}`, dataset `{args.dataset}` (train_subset {args.train_subset}), "
                f"{args.epochs} epoch(s) at batch {args.batch_size}, {args.seconds:.0f} s per K, seed {args.seed}"
                + (" (SMOKE: CPU workers, not a result)" if args.smoke else ""))
    rows = []
    with tempfile.TemporaryDirectory(prefix="nas-tpg-") as tmp:
        for k in ks:
            print(f"K = {k}: {args.seconds:.0f} s ...", flush=True)
            rows.append(one(args, k, Path(tmp)))
    base = rows[0][-1] or float("nan")
    table = [r[:-1] + [f"{r[-1] / base:.2f}x"] for r in rows]
    report.table(["K (trials per GPU)" if not args.smoke else "K (CPU workers)", "trials completed", "failed",
                  "wall s", "candidates / hour", "median evaluation s", f"vs K={ks[0]}"], table,
                 csv=None if args.no_write else f"{NAME}.csv")
    if len(rows) > 1:
        best = max(rows[1:], key=lambda r: r[-1])
        ratio = best[-1] / base
        report.text(f"Best: K = {best[0]} at {ratio:.2f}x the candidates per hour of K = {ks[0]} "
                    f"(target >= {TARGET:g}x: {'met' if ratio >= TARGET else 'NOT met'}).")
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
