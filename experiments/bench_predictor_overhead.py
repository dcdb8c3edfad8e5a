"""The ``predictor`` sampler's cost per trial, with and without its candidate pool, at trial 100 and trial 1000.

The default sampler screens candidates (counts each one's params and FLOPs) and fits two random forests before
every trial. ``bench_controller_overhead.py`` measured that at 583 ms per trial at trial 100 (each candidate built
whole), against the 20 ms target for the controller. This script runs the same stand-in search (vision space, the
journal storage, an instant evaluator: ``bench_controller_overhead.bench``) once per variant, in one process, and
reports the controller's median ms per trial in a window around each point, with the ratio to the first variant:

* ``fresh16-whole``: 16 new candidates per trial, each network built whole and
  counted: ``bench_controller_overhead.whole_costs``);
* ``fresh16``: the default (16 new candidates per trial, counted by parts: :func:`nas.evaluate.costs.network_costs`);
* ``pool4of16`` (``fresh_candidates: 4``): the unpicked candidates are kept, 4 new ones screened per trial;
* ``pool4of32`` (``candidates: 32, fresh_candidates: 4``).

Forests are refitted once the complete trials grew by 1/16 in all variants; the part cache starts empty for each.
Whether the cheaper variants choose as well is not measured here (the evaluator is a stand-in): that is
``sample_efficiency.py``'s pool4 / pool4of32 controls.

    python experiments/bench_predictor_overhead.py                    # 1025 trials per variant (about 25 min)
    python experiments/bench_predictor_overhead.py --trials 130 --points 100 --no-write

Writes experiments/results/bench_predictor_overhead.md and .csv.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info  # noqa: E402

VARIANTS = {  # name -> (config keys, count each network whole)
    "fresh16-whole": ({"fresh_candidates": 16}, True),
    "fresh16": ({"fresh_candidates": 16}, False),
    "pool4of16": ({"fresh_candidates": 4}, False),
    "pool4of32": ({"candidates": 32, "fresh_candidates": 4}, False),
}


def run_variant(name: str, trials: int, max_seconds: float, window: int) -> dict:
    from bench_controller_overhead import bench, whole_costs

    import nas.evaluate.costs

    extra, whole = VARIANTS[name]
    notes: list[dict] = []

    def on_trial(engine, row):
        last = engine.study.get_trials(deepcopy=False)[-1]
        notes.append({"trial": row["trial"], **(last.user_attrs.get("predictor") or {})})

    by_parts = nas.evaluate.costs.network_costs
    nas.evaluate.costs.part_cost_cache.clear()
    nas.evaluate.costs.network_costs = whole_costs if whole else by_parts  # Space.constraint_costs imports it per call
    try:
        result = bench("journal", trials, max_seconds, "predictor", None, window, extra=extra, on_trial=on_trial)
    finally:
        nas.evaluate.costs.network_costs = by_parts
    result["notes"] = notes
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1025)
    parser.add_argument("--points", default="100,1000")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=900, help="stop a variant's run after this long")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names (default: all)")
    parser.add_argument("--target-ms", type=float, default=20.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; known: {', '.join(VARIANTS)}")
    points = [int(p) for p in args.points.split(",")]
    report = Report("bench_predictor_overhead", "The predictor sampler's cost per trial, with and without its "
                    "candidate pool", info=machine_info())
    report.text(__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(), echo=False)
    report.text(f"Command: `python experiments/bench_predictor_overhead.py {' '.join(argv or sys.argv[1:])}`".strip())
    results = {}
    for name in names:
        print(f"{name}: up to {args.trials} trials (max {args.max_seconds:.0f} s) ...", flush=True)
        results[name] = run_variant(name, args.trials, args.max_seconds, args.window)
        r = results[name]
        print(f"  {len(r['rows'])} trials in {r['elapsed']:.0f} s; states {r['states']}", flush=True)
    headers = ["variant", "at trial", "controller ms/trial", "of which ask (sampler)", f"ratio to {names[0]}",
               "new candidates screened per trial", "candidates ranked", "verdict (<= target)"]
    table = []
    for p in points:
        first = None  # the first variant's time at this point: the ratios' base (blank if it did not get there)
        for k, (name, r) in enumerate(results.items()):
            lo, hi = p - args.window // 2, p + args.window // 2
            rows = [x for x in r["rows"] if lo <= x["trial"] < hi]
            notes = [n for n in r["notes"] if lo <= n["trial"] < hi and "predicted" in n]
            if len(rows) < args.window // 2:
                table.append([name, p, "not reached", "", "", "", "", ""])
                continue
            ms = 1000 * statistics.median(x["controller"] for x in rows)
            ask = 1000 * statistics.median(x["ask"] for x in rows)
            first = ms if k == 0 else first
            table.append([name, p, round(ms, 1), round(ask, 1), f"{ms / first:.2f}" if first else "",
                          statistics.median(n.get("fresh", n["pool"]) for n in notes) if notes else "",
                          statistics.median(n["pool"] for n in notes) if notes else "",
                          "ok" if ms <= args.target_ms else "MISSED"])
    report.table(headers, table, title=f"Median over {args.window} trials around each point (journal storage, "
                                       f"stand-in evaluator, vision space; target {args.target_ms:g} ms)",
                 csv=None if args.no_write else "bench_predictor_overhead.csv")
    if not args.no_write:
        report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
