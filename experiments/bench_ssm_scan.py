"""The selective scan of the ssm block: the sequential loop against the chunked closed form, by chunk and precision.

The ssm mixer's scan is most of its cost at long sequences. ``nas.blocks.ssm`` has two implementations of the same
recurrence: a sequential loop over the l steps (``selective_scan_reference``, whose per-step decays and inputs are
computed a block of steps at a time, or all at once) and a closed form per chunk of steps carried from chunk to
chunk (``selective_scan_chunked``, in float64 or float32). ``ssm.scan_plan`` picks one per
device, for training and for inference. This script measures them at the shapes of the sequence space's Mamba
baseline (d = 96 channels, n = 16 states) in two modes: ``train``, one forward plus backward at the proxy batch
(64), and ``infer``, one forward at batch 1 without autograd (what the latency objective measures). The variants
alternate round by round in one process; the table gives the median, the ratio to chunks of 64 in float64 (the plan
on CUDA), the bytes autograd saves for the backward pass (its memory; a saved-tensors
hook counts them), and the largest difference of the output from a float64 loop. Inputs come from a freshly
initialised block (Mamba's Δ initialisation) on a random sequence, and, as a harder case, with Δ ten times larger
(decays a trained block can reach), where float32 chunks pass exp's range and run step by step.

    python experiments/bench_ssm_scan.py                       # CPU, lengths 64, 256, 784
    python experiments/bench_ssm_scan.py --device cuda         # on a lent GPU
    python experiments/bench_ssm_scan.py --lengths 64 --rounds 1 --no-write

Writes experiments/results/bench_ssm_scan.md and .csv (``--device cuda``: bench_ssm_scan_cuda.*).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info  # noqa: E402

NAME = "bench_ssm_scan"
# (label, implementation, chunk, precision); the first is the ratio's base: the plan on CUDA, chunks of 64 in float64
VARIANTS = [("chunked 64, float64", "chunked", 64, "float64"), ("loop, blocks of 64", "reference", 64, None),
            ("loop, unblocked", "reference", None, None)] + [
    (f"chunked {c}, float32", "chunked", c, "float32") for c in (8, 16, 32)]


def scan_inputs(batch: int, length: int, delta_scale: float, device: str, seed: int):
    """(u, Δ, A, B, C, D) as a fresh ssm block hands them to its scan for a random sequence (Δ times
    ``delta_scale``), as leaves that want gradients."""
    from unittest import mock

    import torch

    from nas.blocks import registry, ssm
    from nas.blocks.layers import BlockContext

    torch.manual_seed(seed)
    block = registry.create("ssm", 48, 48, BlockContext(dims=1, tokens=length, norm="layer"),
                            {"state_size": 16, "expansion_ratio": 2, "conv_kernel": 4}).to(device)
    seen = []

    def record(*args, **kwargs):
        seen.append(args[:6])
        return args[0]

    with torch.no_grad(), mock.patch.object(ssm, "selective_scan", record):
        block(torch.randn(batch, 48, length, device=device))
    u, delta, A, B, C, D = seen[0]
    return [t.detach().contiguous().requires_grad_() for t in (u, delta * delta_scale, A, B, C, D)]


def step(variant, inputs, weights, train: bool):
    """Seconds of one scan (forward + backward when ``train``), MiB saved for the backward, and the output."""
    import torch

    from nas.blocks import ssm

    _, impl, chunk, precision = variant
    for t in inputs:
        t.grad = None
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    sync = torch.cuda.synchronize if inputs[0].is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.set_grad_enabled(train):
        if impl == "reference":
            y = ssm.selective_scan_reference(*inputs, block=chunk)
        else:
            y = ssm.selective_scan_chunked(*inputs, chunk=chunk, dtype=getattr(torch, precision))
        if train:
            (y * weights).sum().backward()
    sync()
    return time.perf_counter() - start, saved[0] / 2**20, y.detach()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 784])
    p.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    p.add_argument("--batch", type=int, default=64, help="train mode's batch (evaluate's proxy batch: 64)")
    p.add_argument("--delta-scales", type=float, nargs="+", default=[1.0, 10.0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    import torch

    from nas.blocks import ssm

    torch.set_num_threads(args.threads)
    name = NAME if args.device == "cpu" else f"{NAME}_{args.device.split(':')[0]}"
    report = Report(name, f"The ssm block's selective scan on {args.device}: loop vs. chunked, by chunk and "
                    "precision", info=machine_info())
    report.text(__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(), echo=False)
    plans = {}
    for mode in args.modes:
        impl, steps, dtype = ssm.scan_plan(args.device, training=mode == "train")
        plans[mode] = (f"loop, blocks of {steps}" if impl == "reference"
                       else f"chunked {steps}, {str(dtype).split('.')[-1]}")
    report.text("Plan on " + args.device + " (`scan_plan`): " + "; ".join(f"{m}: {v}" for m, v in plans.items())
                + f". d = 96, n = 16, {args.threads} thread(s), {args.rounds} rounds after a warm-up.")
    rows = []
    for mode in args.modes:
        train = mode == "train"
        batch = args.batch if train else 1
        for scale in args.delta_scales:
            for length in args.lengths:
                inputs = scan_inputs(batch, length, scale, args.device, args.seed)
                if not train:
                    inputs = [t.detach() for t in inputs]
                weights = torch.randn(inputs[0].shape, device=args.device)
                with torch.no_grad():
                    exact = ssm.selective_scan_reference(*(t.double() for t in inputs))
                times = {v[0]: [] for v in VARIANTS}
                saved, error = {}, {}
                for r in range(args.rounds + 1):  # round 0 is the warm-up
                    for variant in (VARIANTS if r % 2 == 0 else VARIANTS[::-1]):
                        seconds, mib, y = step(variant, inputs, weights, train)
                        if r:
                            times[variant[0]].append(seconds)
                        saved[variant[0]] = mib
                        error[variant[0]] = float((y.double() - exact).abs().max() / exact.abs().max())
                base = statistics.median(times[VARIANTS[0][0]])
                for label, *_ in VARIANTS:
                    ms = statistics.median(times[label]) * 1e3
                    rows.append([mode, batch, scale, length, label + (" (plan)" if label == plans[mode] else ""),
                                 f"{ms:.{0 if ms >= 100 else 2}f}", f"{ms / base / 1e3:.2f}",
                                 f"{saved[label]:.0f}" if train else "", f"{error[label]:.1e}"])
                    print(*rows[-1], sep="\t", flush=True)
    report.table(["mode", "batch", "Δ scale", "length", "scan", "ms (median)", "ratio to chunked 64, float64",
                  "MiB saved for backward", "max error / max |y| (vs float64 loop)"],
                 rows, csv=None if args.no_write else f"{name}.csv")
    if not args.no_write:
        report.write()


if __name__ == "__main__":
    main()
