"""Channels-last memory format for proxy training on the CPU: is it faster for the architectures a search samples?

The proxy trainer uses channels-last (model and batches) on CUDA only. On this CPU the bare-loop breakdown of
bench_trainer_overhead.py measured channels-last 22-29% faster for two conv nets. This script decides whether the
trainer should use it on the CPU too, at the trainer level and over what a search really trains: ``--per-space`` specs
sampled from each image space (vision, mobile; seeds in order, those above ``--max-mflops`` at the dataset's input
skipped) plus the resnet and mobilenetv3_large baselines. Each spec is trained by ``nas.evaluate.train.train`` with
``channels_last=False`` and ``True`` from the same initial weights, interleaved round by round (``--rounds``, after a
warm-up run of each), and timed end to end. Reported per spec: median seconds of each and the median of the per-round
time ratios (channels-last / contiguous; < 1 is faster), and the final validation accuracy of each (the same seed: the
two formats compute the same function, so accuracies should agree to noise).

    python experiments/bench_channels_last_cpu.py                      # 6 specs per space, 3 rounds
    python experiments/bench_channels_last_cpu.py --per-space 10 --rounds 5

Writes experiments/results/bench_channels_last_cpu.md and .csv.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info  # noqa: E402

NAME = "bench_channels_last_cpu"


def pick_specs(input_shape, num_classes: int, per_space: int, max_mflops: float) -> list[tuple[str, object]]:
    from nas.builder import build, example_input
    from nas.evaluate.measure import count_flops
    from nas.grammar import load_space, shipped_spaces_dir

    picked = []
    for name in ("vision", "mobile"):
        space = load_space(name)
        seed, found = 0, 0
        while found < per_space and seed < 20 * per_space:
            spec = space.sample(seed)
            seed += 1
            try:
                model = build(spec, input_shape, num_classes)
            except Exception:  # noqa: BLE001 - a spec that cannot be built at this input is not a candidate
                continue
            if count_flops(model, example_input(model, 1)) / 1e6 > max_mflops:
                continue
            picked.append((f"{name}#{seed - 1}", spec))
            found += 1
    from nas.spec import ArchSpec

    for baseline in ("resnet", "mobilenetv3_large"):
        picked.append((f"baseline {baseline}", ArchSpec.load(shipped_spaces_dir() / "baselines" / f"{baseline}.yaml")))
    return picked


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--train-subset", type=int, default=1500)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--per-space", type=int, default=6)
    p.add_argument("--max-mflops", type=float, default=100.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    from nas.budget import Budget
    from nas.builder import build
    from nas.data import load_dataset
    from nas.evaluate.train import train

    torch.set_num_threads(args.threads)
    info = machine_info()
    info["torch threads (used)"] = args.threads
    report = Report(NAME, "Channels-last proxy training on the CPU", info=info)
    report.text(__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(), echo=False)
    data = load_dataset(args.dataset, train_subset=args.train_subset, seed=args.seed)
    budget = Budget(epochs=args.epochs, batch_size=args.batch_size)
    specs = pick_specs(data.input_shape, data.num_classes, args.per_space, args.max_mflops)
    report.text(f"Data: `{args.dataset}` train_subset {args.train_subset} ({data.size('train')} train / "
                f"{data.size('val')} val, shape {tuple(data.input_shape)}); budget {args.epochs:g} epoch(s), batch "
                f"{args.batch_size}; {args.threads} torch thread(s); {args.rounds} timed rounds after one warm-up "
                f"run of each format; {len(specs)} specs.")
    rows, ratios = [], []
    for label, spec in specs:
        torch.manual_seed(args.seed)
        template = build(spec, data.input_shape, data.num_classes)
        times = {False: [], True: []}
        accuracy = {}
        failed = None
        for rnd in range(args.rounds + 1):
            for fmt in ((False, True) if rnd % 2 == 0 else (True, False)):
                model = copy.deepcopy(template)
                t0 = time.perf_counter()
                result = train(model, data, budget, seed=args.seed, threads=args.threads, channels_last=fmt)
                elapsed = time.perf_counter() - t0
                if result.status != "ok":
                    failed = f"{'channels-last' if fmt else 'contiguous'}: {result.status} {result.reason}"
                    break
                accuracy[fmt] = result.final.val_accuracy
                if rnd > 0:
                    times[fmt].append(elapsed)
            if failed:
                break
        if failed:
            rows.append([label, spec.summary()[:70], "", "", "", "", "", failed])
            print(f"{label}: FAILED {failed}", flush=True)
            continue
        per_round = [b / a for a, b in zip(times[False], times[True])]
        ratio = statistics.median(per_round)
        ratios.append((label, ratio))
        rows.append([label, spec.summary()[:70], round(statistics.median(times[False]), 3),
                     round(statistics.median(times[True]), 3), round(ratio, 3), round(accuracy[False], 4),
                     round(accuracy[True], 4), ""])
        print(f"{label}: contiguous {statistics.median(times[False]):.2f} s, channels-last "
              f"{statistics.median(times[True]):.2f} s, ratio {ratio:.3f}", flush=True)
    report.table(["spec", "architecture", "contiguous s", "channels-last s", "time ratio (cl / contiguous)",
                  "val acc contiguous", "val acc channels-last", "failure"], rows, csv=f"{NAME}.csv",
                 title="Proxy training time per spec, median over rounds")
    if ratios:
        values = [r for _, r in ratios]
        faster = sum(r < 0.97 for r in values)
        slower = sum(r > 1.03 for r in values)
        report.text(f"Over {len(values)} specs: median time ratio {statistics.median(values):.3f} (min "
                    f"{min(values):.3f}, max {max(values):.3f}); {faster} faster by more than 3% with channels-last, "
                    f"{slower} slower by more than 3%.")
    if not args.no_write:
        report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
