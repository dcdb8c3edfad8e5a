"""FLOP counting cost at batch 1: the stock ``FlopCounterMode`` against the total-only counter ``count_flops`` uses.

A model-guided sampler (``predictor``) counts the params and FLOPs of every candidate it screens, so the time of one
count is most of its per-trial cost. ``nas.evaluate.measure.count_flops`` uses ``FlopCounterMode`` without its
module tracker (which only feeds the per-module table): the same formulas and the same total (a test checks it over
every shipped space), less Python per module call. This script measures both on what the predictor counts:
``--per-space`` specs sampled from each shipped space (plus its baselines), at the space's reference input, batch 1.
Each model is counted by both counters in alternating order, ``--rounds`` times after a warm-up of each, and the
table gives per space the median ms per count of each, the median of the per-model ratios (total-only / stock;
< 1 is faster), and the time to build a model (the rest of a candidate's screening).

    python experiments/bench_flop_count.py                     # 12 specs per space, 5 rounds
    python experiments/bench_flop_count.py --per-space 4 --rounds 2 --no-write

Writes experiments/results/bench_flop_count.md and .csv.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info  # noqa: E402

NAME = "bench_flop_count"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--per-space", type=int, default=12)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    import torch

    from nas.builder import build, example_input
    from nas.evaluate.measure import count_flops
    from nas.grammar import RandomSuggest, Space, shipped_spaces_dir

    torch.set_num_threads(args.threads)
    info = machine_info()
    report = Report(NAME, "FLOP counting at batch 1: stock FlopCounterMode vs. the total-only counter", info=info)
    report.text(__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(), echo=False)
    rows, all_ratios = [], []
    for path in sorted(shipped_spaces_dir().glob("*.yaml")):
        space = Space.load(path)
        rng = random.Random(f"{args.seed}:{space.name}")
        specs = list(space.baselines.values()) + [space.sample(RandomSuggest(rng)) for _ in range(args.per_space)]
        shape, classes = space.reference_input
        builds, lean_ms, stock_ms, ratios = [], [], [], []
        for spec in specs:
            t0 = time.perf_counter()
            model = build(spec, input_shape=shape, num_classes=classes)
            builds.append((time.perf_counter() - t0) * 1000)
            x = example_input(model, batch_size=1)
            same = count_flops(model, x) == count_flops(model, x, per_module=True)  # warm-up of both
            assert same, f"counts differ for {spec.summary()}"
            per = {"lean": [], "stock": []}
            for r in range(args.rounds):
                order = ("lean", "stock") if r % 2 == 0 else ("stock", "lean")
                for kind in order:
                    t0 = time.perf_counter()
                    count_flops(model, x, per_module=kind == "stock")
                    per[kind].append((time.perf_counter() - t0) * 1000)
            lean, stock = statistics.median(per["lean"]), statistics.median(per["stock"])
            lean_ms.append(lean)
            stock_ms.append(stock)
            ratios.append(lean / stock)
        all_ratios += ratios
        rows.append([space.name, len(specs), f"{statistics.median(builds):.1f}", f"{statistics.median(stock_ms):.1f}",
                     f"{statistics.median(lean_ms):.1f}", f"{statistics.median(ratios):.3f}",
                     f"{min(ratios):.3f}-{max(ratios):.3f}"])
    report.table(["space", "models", "build ms", "stock count ms", "total-only count ms",
                  "ratio total-only / stock (median)", "ratio range"], rows,
                 csv=None if args.no_write else f"{NAME}.csv")
    report.text(f"Over all {len(all_ratios)} models: median ratio {statistics.median(all_ratios):.3f}; every count "
                "identical between the two counters.")
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
