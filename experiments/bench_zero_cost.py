"""Zero-cost proxy cost per candidate: SynFlow on the whole all-ones batch vs. on one example scaled to the batch.

``evaluate`` scores every trial with the default zero-cost proxies (synflow, naswot, grad_norm, snip) on a batch of
64 training examples. SynFlow ignores the data: its input is all ones, so every example of the batch is the same
and the score of the batch is the batch size times the score of one example. ``nas.evaluate.zero_cost.synflow``
runs one example and scales; the alternative is the whole batch in float64. This script measures both
on ``--per-space`` specs sampled from each shipped space (plus its baselines), at the space's reference input,
batch ``--batch``: per model, the two in alternating order ``--rounds`` times after a warm-up of each, then the
other three default proxies once, for the share of the zero-cost step SynFlow was. The table gives per space the
median ms of each, the median per-model ratio (one example / whole batch; < 1 is faster), and how far the two
scores are apart: the median relative difference and the number of models where it exceeds 1e-6 (an ill-conditioned
network, e.g. instance norm of the constant input, where the score is rounding noise either way: see the
``zero_cost`` module docstring).

    python experiments/bench_zero_cost.py                      # 8 specs per space, 3 rounds
    python experiments/bench_zero_cost.py --per-space 2 --rounds 1 --no-write

Writes experiments/results/bench_zero_cost.md and .csv.
"""
from __future__ import annotations

import argparse
import copy
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info  # noqa: E402

NAME = "bench_zero_cost"
APART = 1e-6  # a relative difference above this is not float64 rounding of a well-conditioned sum


def synflow_whole_batch(model, x) -> float:
    """SynFlow on the whole all-ones batch: the float64 |theta| copy, every example computed."""
    import torch

    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones_like(x, dtype=torch.float64 if x.is_floating_point() else x.dtype)
    net(ones).double().sum().backward()
    return float(sum((p.detach() * p.grad).abs().sum().double() for p in net.parameters() if p.grad is not None))


def timed(fn, *args) -> tuple[float, float]:
    t0 = time.perf_counter()
    value = fn(*args)
    return (time.perf_counter() - t0) * 1000, value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--per-space", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=64, help="the zero-cost batch (evaluate's default: 64)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    import torch

    from nas.builder import build, example_input
    from nas.evaluate import zero_cost
    from nas.grammar import RandomSuggest, Space, shipped_spaces_dir

    torch.set_num_threads(args.threads)
    report = Report(NAME, "Zero-cost proxies per candidate: SynFlow on one example vs. the whole batch",
                    info=machine_info())
    report.text(__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(), echo=False)
    rows, all_ratios, shares = [], [], []
    for path in sorted(shipped_spaces_dir().glob("*.yaml")):
        space = Space.load(path)
        rng = random.Random(f"{args.seed}:{space.name}")
        specs = list(space.baselines.values()) + [space.sample(RandomSuggest(rng)) for _ in range(args.per_space)]
        shape, classes = space.reference_input
        whole_ms, one_ms, others_ms, ratios, diffs = [], [], [], [], []
        for spec in specs:
            try:
                model = build(spec, input_shape=shape, num_classes=classes)
            except Exception:  # noqa: BLE001 - a sample that does not build is not a candidate
                continue
            x = example_input(model, batch_size=args.batch)
            y = torch.randint(0, classes, (args.batch,))
            reference, value = synflow_whole_batch(model, x), zero_cost.synflow(model, (x, y))  # warm-up of both
            per = {"whole": [], "one": []}
            for r in range(args.rounds):
                for kind in (("whole", "one") if r % 2 == 0 else ("one", "whole")):
                    ms, _ = timed(synflow_whole_batch, model, x) if kind == "whole" else timed(
                        zero_cost.synflow, model, (x, y))
                    per[kind].append(ms)
            rest = sum(timed(zero_cost.PROXIES[name], model, (x, y))[0] for name in ("naswot", "grad_norm", "snip"))
            whole, one = statistics.median(per["whole"]), statistics.median(per["one"])
            whole_ms.append(whole)
            one_ms.append(one)
            others_ms.append(rest)
            ratios.append(one / whole)
            shares.append(whole / (whole + rest))
            if math.isfinite(reference) and math.isfinite(value):
                diffs.append(abs(value - reference) / max(abs(reference), 1e-300))
            else:
                diffs.append(0.0 if value == reference else math.inf)
        all_ratios += ratios
        rows.append([space.name, len(ratios), f"{statistics.median(whole_ms):.0f}", f"{statistics.median(one_ms):.1f}",
                     f"{statistics.median(ratios):.3f}", f"{min(ratios):.3f}-{max(ratios):.3f}",
                     f"{statistics.median(others_ms):.0f}", f"{statistics.median(diffs):.1e}",
                     f"{sum(d > APART for d in diffs)} (largest {max(diffs):.2g})"])
    report.table(["space", "models", "synflow whole batch ms", "synflow one example ms",
                  "ratio one / whole (median)", "ratio range", "naswot + grad_norm + snip ms",
                  "relative score difference (median)", "models > 1e-6 apart"],
                 rows, csv=None if args.no_write else f"{NAME}.csv")
    report.text(f"Batch {args.batch}, {args.threads} thread(s). Over all {len(all_ratios)} models: median ratio "
                f"{statistics.median(all_ratios):.3f}. SynFlow on the whole batch was a median "
                f"{statistics.median(shares):.0%} of the four default proxies' time.")
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
