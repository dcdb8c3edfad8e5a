"""Where one candidate's evaluation spends its time: build, cost meters, zero-cost proxies and proxy training.

``evaluate`` builds a candidate, counts params and FLOPs, measures activation memory, latency (batch 1) and
throughput (batch 64) on ``latency_device`` (the CPU by default), and then proxy-trains it on ``device``. On a GPU the
CPU meters can cost more than the training. This script samples feasible candidates of a space and times each phase
separately, as ``evaluate`` runs them, then the proxy training three times: in the default memory layout (the first
training of that architecture in the process), then twice in channels-last (the first pays for the new layout's
kernels, the second is warm). Last it runs the whole ``evaluate`` on the candidate (its own wall time) for comparison.

    python experiments/bench_eval_phases.py                                     # CPU, digits, 2 candidates
    NAS_DATA_DIR=... python experiments/bench_eval_phases.py --device cuda --space mobile --dataset cifar10 \
        --train-subset 9000 --batch-size 256 --n 1                              # a GPU

Writes experiments/results/bench_eval_phases[_<tag>].md and .csv (``--no-write``: print only).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info, print_header, sync_device  # noqa: E402

from nas.budget import Budget  # noqa: E402
from nas.builder import build, example_input  # noqa: E402
from nas.data import load_dataset  # noqa: E402
from nas.evaluate import measure, zero_cost  # noqa: E402
from nas.evaluate.costs import network_costs, violations  # noqa: E402
from nas.evaluate.evaluate import EvalConfig, evaluate, proxy_batch  # noqa: E402
from nas.evaluate.train import train  # noqa: E402
from nas.grammar import load_space  # noqa: E402

NAME = "bench_eval_phases"
REPO = Path(__file__).resolve().parents[1]


def timed(device: str, fn):
    sync_device(device)
    t0 = time.perf_counter()
    out = fn()
    sync_device(device)
    return out, time.perf_counter() - t0


def seeded_build(spec, input_shape, num_classes: int, seed: int):
    torch.manual_seed(seed)
    return build(spec, input_shape, num_classes)


def candidates(space, n: int, input_shape, num_classes: int, first_seed: int) -> list:
    out, seed = [], first_seed
    while len(out) < n and seed < first_seed + 500:
        spec = space.sample(seed)
        if not violations(space, spec, input_shape, num_classes):
            out.append((seed, spec))
        seed += 1
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="vision")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--train-subset", type=int, default=None)
    p.add_argument("--n", type=int, default=2, help="candidates (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="first sample seed")
    p.add_argument("--device", default="cpu")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--tag", default="")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    info = machine_info()
    print_header(info)
    name = NAME + (f"_{args.tag}" if args.tag else "")
    report = Report(name, "Where one candidate's evaluation spends its time", info=info)
    config = EvalConfig(dataset=args.dataset, device=args.device, train_subset=args.train_subset,
                        budget=Budget(epochs=args.epochs, batch_size=args.batch_size))
    (data, load_s) = timed(args.device, lambda: load_dataset(args.dataset, device=args.device,
                                                               train_subset=args.train_subset,
                                                               val_fraction=config.val_fraction, seed=config.seed))
    space = load_space(REPO / "search_spaces" / f"{args.space}.yaml")
    input_shape = config.budget.input_shape(data.input_shape)
    specs = candidates(space, args.n, input_shape, data.num_classes, args.seed)
    report.text(f"Space `{args.space}`, dataset `{args.dataset}` ({data.size('train')} train / {data.size('val')} "
                f"val), input {tuple(input_shape)}, training on `{args.device}` for {args.epochs:g} epoch(s) at batch "
                f"{args.batch_size}; cost meters on `{config.latency_device}` with EvalConfig's defaults (latency "
                f"batch {config.latency_batch_size}, {config.latency_threads} thread(s), >= "
                f"{config.latency_min_time_s} s; throughput batch {config.throughput_batch_size}). Data load "
                f"{load_s:.2f} s (once per process). Seconds per phase; `evaluate` is a whole evaluate() call "
                f"afterwards (same process, so its training is warm).")
    rows = []
    for seed, spec in specs:
        print(f"seed {seed}: {spec.summary()[:110]}", flush=True)
        t = {}
        model, t["build"] = timed("cpu", lambda: seeded_build(spec, input_shape, data.num_classes, config.model_seed))
        _, t["params+flops"] = timed("cpu", lambda: network_costs(spec, input_shape, data.num_classes))
        _, t["activation"] = timed("cpu", lambda: measure.activation_memory_bytes(model, example_input(model, 8)))
        _, t["latency"] = timed("cpu", lambda: measure.measure_latency(
            model, input_shape, device=config.latency_device, batch_size=config.latency_batch_size,
            repeats=config.latency_repeats, warmup=config.latency_warmup, threads=config.latency_threads,
            min_time_s=config.latency_min_time_s))
        _, t["throughput"] = timed("cpu", lambda: measure.measure_throughput(
            model, input_shape, device=config.latency_device, batch_size=config.throughput_batch_size, warmup=2,
            repeats=max(5, config.latency_repeats // 3), threads=config.latency_threads))
        batch = proxy_batch(data, config, input_shape)
        _, t["zero-cost"] = timed(args.device, lambda: zero_cost.score_all(model, batch, seed=config.seed))
        for label, cl in (("train (default layout)", False), ("train (channels-last)", True),
                          ("train (channels-last again)", True)):
            fresh = seeded_build(spec, input_shape, data.num_classes, config.model_seed)
            res, t[label] = timed(args.device, lambda: train(fresh, data, config.budget, device=args.device,
                                                             seed=config.model_seed, channels_last=cl))
            if label == "train (default layout)":
                acc = res.final.val_accuracy if res.final else float("nan")
                steps = res.steps
            print(f"  {label}: {t[label]:.2f} s ({res.status})", flush=True)
        result, t["evaluate"] = timed(args.device, lambda: evaluate(spec, config, data=data))
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()), flush=True)
        rows.append([seed, spec.hash(), f"{sum(p.numel() for p in model.parameters()):,}", steps,
                     f"{acc:.3f}", result.status] + [f"{v:.2f}" for v in t.values()])
    report.table(["seed", "hash", "params", "steps", "val acc", "evaluate status"] + list(t.keys()), rows,
                 csv=None if args.no_write else f"{name}.csv")
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
