"""Latency repeatability: the same model measured by ``measure_latency`` in two separate processes.

What it measures
    A few architectures (sampled from ``search_spaces/vision.yaml`` within its constraints, plus the ResNet baseline)
    are each measured with ``nas.evaluate.measure.measure_latency`` in two FRESH Python processes (``subprocess``;
    each builds the model from the spec with the same seed, so the weights are identical) -- the situation of two
    search runs, or a run and its resumption, scoring the same candidate. The processes run one at a time
    (never concurrently) and interleaved across models (all models' first process, then all models' second
    process), so the two measurements of a model are separated in time as they would be in practice.
    Settings default to what ``evaluate`` uses for its latency objective (``EvalConfig``: batch 1, 5 warm-up
    calls, 30 timed repeats, 1 thread). Each process also reports its interquartile range.

Target
    For every model, the two medians within 5% of each other: ``|m1 - m2| / min(m1, m2) <= 0.05``.

How to run (from the repository root; results go to experiments/results/bench_latency_repeatability.md and .csv)
    python experiments/bench_latency_repeatability.py                  # 4 sampled specs + ResNet, CPU
    python experiments/bench_latency_repeatability.py --pairs 3        # 3 process pairs per model (spread)
    python experiments/bench_latency_repeatability.py --warmup 20 --repeats 100   # stricter measurement settings

GPU run (not run here): ``--device cuda --batch-size 1`` (and ``--batch-size 64`` for a throughput-sized
batch); CUDA latency is timed with CUDA events, so ``--threads`` does not matter there.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import Report, machine_info, median, print_header, rel_diff

from nas.evaluate.costs import violations

NAME = "bench_latency_repeatability"
TARGET = 0.05


def worker(args) -> None:
    """Child process: build one spec and print its Latency as JSON on the last stdout line."""
    import torch

    from nas.builder import build
    from nas.evaluate.measure import measure_latency
    from nas.spec import ArchSpec

    spec = ArchSpec.from_json(args.spec_json)
    shape = tuple(int(s) for s in args.input_shape.split(","))
    torch.manual_seed(0)
    model = build(spec, shape, 10)
    blocks = []
    for _ in range(args.blocks):
        lat = measure_latency(model, shape, device=args.device, batch_size=args.batch_size, warmup=args.warmup,
                              repeats=args.repeats, threads=args.threads, min_time_s=args.min_time)
        blocks.append(lat.to_dict())
    first = blocks[0]  # exactly what evaluate() measures: one call in a process
    print(json.dumps({"pid": os.getpid(), **first, "block_medians": [b["median_ms"] for b in blocks]}))


def pick_specs(n: int, shape, seed0: int):
    import torch

    from nas.builder import build
    from nas.evaluate.measure import count_flops, count_params
    from nas.grammar import load_space, shipped_spaces_dir
    from nas.spec import ArchSpec

    space = load_space("vision")
    chosen = [("resnet (baseline)", ArchSpec.load(shipped_spaces_dir() / "baselines" / "resnet.yaml"))]
    seed = seed0
    while len(chosen) < n + 1 and seed < seed0 + 1000:
        spec = space.sample(seed)
        try:
            ok = not violations(space, spec)
            if ok:
                build(spec, shape, 10)(torch.randn(2, *shape))  # runs at this input shape
        except Exception:  # noqa: BLE001
            ok = False
        if ok:
            chosen.append((f"vision seed {seed}", spec))
        seed += 1
    rows = []
    for label, spec in chosen:
        torch.manual_seed(0)
        model = build(spec, shape, 10)
        rows.append((label, spec, count_params(model), count_flops(model, torch.randn(1, *shape)) / 1e6))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4, help="sampled specs besides the ResNet baseline (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="first vision.yaml sample seed")
    p.add_argument("--input-shape", default="3,32,32", help="C,H,W (default: the space's reference input)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5, help="EvalConfig.latency_warmup default")
    p.add_argument("--repeats", type=int, default=30, help="EvalConfig.latency_repeats default")
    p.add_argument("--threads", type=int, default=1, help="EvalConfig.latency_threads default")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds the timed calls must span (default: EvalConfig.latency_min_time_s)")
    p.add_argument("--pairs", type=int, default=1, help="process pairs per model (default: %(default)s)")
    p.add_argument("--blocks", type=int, default=5,
                   help="measure_latency calls per process: the first is what evaluate() does; the minimum of all "
                        "the block medians is reported as a more robust alternative (default: %(default)s)")
    p.add_argument("--tag", default="", help="suffix of the results files (results/<name>_<tag>.md)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--spec-json", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.min_time is None:
        from nas.evaluate.evaluate import EvalConfig

        args.min_time = EvalConfig.latency_min_time_s
    if args.worker:
        worker(args)
        return

    info = machine_info()
    print_header(info)
    name_out = NAME + (f"_{args.tag}" if args.tag else "")
    report = Report(name_out, "Latency repeatability across processes (measure_latency)", info=info)
    shape = tuple(int(s) for s in args.input_shape.split(","))
    specs = pick_specs(args.n, shape, args.seed)
    report.text(
        f"Input {shape}, batch {args.batch_size}, device `{args.device}`, {args.threads} thread(s), "
        f"warm-up {args.warmup}, at least {args.repeats} timed repeats spanning at least {args.min_time:g} s per "
        f"process; every measurement in a fresh process "
        f"(`{sys.executable} {os.path.relpath(__file__)} --worker ...`), run one at a time, interleaved over the "
        f"models; {args.pairs} process pair(s) per model. Columns 1/2 are the FIRST `measure_latency` call of each "
        f"process (exactly what `evaluate` records); each process then calls it {args.blocks - 1} more time(s), and "
        f"`best-of-{args.blocks}` is the minimum of the {args.blocks} block medians (a candidate fix)."
    )

    base_cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--input-shape", args.input_shape,
                "--device", args.device, "--batch-size", str(args.batch_size), "--warmup", str(args.warmup),
                "--repeats", str(args.repeats), "--min-time", str(args.min_time), "--threads", str(args.threads),
                "--blocks", str(args.blocks)]
    env = dict(os.environ)
    results: dict[int, list[dict]] = {i: [] for i in range(len(specs))}
    for rnd in range(2 * args.pairs):
        for i, (label, spec, _, _) in enumerate(specs):
            out = subprocess.run(base_cmd + ["--spec-json", spec.to_json(indent=None)], capture_output=True,
                                 text=True, env=env, check=False)
            if out.returncode != 0:
                raise SystemExit(f"worker failed for {label}:\n{out.stderr[-3000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[i].append(res)
            print(f"  process {rnd + 1} (pid {res['pid']}): {label}: median {res['median_ms']:.3f} ms, "
                  f"IQR {res['iqr_ms']:.3f} ms; block medians "
                  + " ".join(f"{m:.3f}" for m in res["block_medians"]), flush=True)

    rows = []
    for i, (label, spec, n_params, mflops) in enumerate(specs):
        rs = results[i]
        diffs = [rel_diff(rs[2 * k]["median_ms"], rs[2 * k + 1]["median_ms"]) for k in range(args.pairs)]
        # pair k = (process from round 2k, process from round 2k+1)
        worst = max(diffs)
        best = [min(r["block_medians"]) for r in rs]
        bdiffs = [rel_diff(best[2 * k], best[2 * k + 1]) for k in range(args.pairs)]
        within = median([max(r["block_medians"]) / min(r["block_medians"]) - 1 for r in rs])
        rows.append([label, spec.hash(), f"{n_params:,}", f"{mflops:.1f}",
                     f"{rs[0]['median_ms']:.3f}", f"{rs[0]['iqr_ms']:.3f}",
                     f"{rs[1]['median_ms']:.3f}", f"{rs[1]['iqr_ms']:.3f}",
                     f"{100 * diffs[0]:.1f}%"]
                    + ([f"{100 * median(diffs):.1f}% / {100 * worst:.1f}%"] if args.pairs > 1 else [])
                    + ["yes" if worst <= TARGET else "NO"]
                    + [f"{best[0]:.3f} / {best[1]:.3f}", f"{100 * max(bdiffs):.1f}%",
                       "yes" if max(bdiffs) <= TARGET else "NO", f"{100 * within:.1f}%"])
    headers = ["model", "hash", "params", "MFLOPs", "median 1 ms", "IQR 1 ms", "median 2 ms", "IQR 2 ms",
               "rel. diff"] + (["rel. diff median / worst over pairs"] if args.pairs > 1 else []) + \
              [f"within {100 * TARGET:.0f}%", f"best-of-{args.blocks} 1 / 2 ms", "best-of rel. diff (worst pair)",
               "best-of within 5%", "in-process block spread"]
    report.text("## Result")
    report.table(headers, rows, csv=f"{name_out}.csv")
    failed = [r[0] for r in rows if r[-5] != "yes"]
    report.text(f"\nrel. diff = |m1 - m2| / min(m1, m2). Verdict: target (medians within {100 * TARGET:.0f}%) is "
                + ("MET for every model." if not failed else "NOT met for: " + ", ".join(failed) + ".")
                + f" With best-of-{args.blocks}: "
                + ("met for every model." if all(r[-2] == "yes" for r in rows) else
                   "not met for: " + ", ".join(r[0] for r in rows if r[-2] != "yes") + "."))
    report.text("`in-process block spread` = max/min - 1 of the block medians WITHIN one process (median over the "
                "processes): when it is as large as the cross-process difference, the difference is machine noise "
                "during the short measurement window, not something that differs between processes.", echo=False)
    report.text("Specs: " + "; ".join(f"{label} = `{spec.summary()}`" for label, spec, _, _ in specs), echo=False)
    report.write()


if __name__ == "__main__":
    main()
