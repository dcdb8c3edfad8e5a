"""Sample efficiency of the samplers: hypervolume vs. trial count for random, tpe, nsga2, evolution and predictor
(plus the control ``screened``: the predictor's screening without its forest, see CONTROLS).

Fashion-MNIST (a class-balanced subset, a fixed proxy budget: one short training per trial, no rungs), the vision
space, two objectives (accuracy, CPU latency in ms), 3 seeds per sampler. Each (sampler, seed) is its own run
directory ``<runs-dir>/<sampler>-s<seed>`` (a normal patternnas run: ``nas report`` works on it); running the script
again continues the unfinished runs where they stopped (``nas resume`` semantics: exact trial counts), so the study
proceeds in steps that fit a 10-minute command (``--max-minutes``, default 8: no new trial starts after that; a
trial in flight finishes first). Once every run is complete the hypervolume curves are written.

Target: the default sampler for two objectives (predictor) reaches random search's
final hypervolume (mean over the seeds) in at most half of random's trials.

NOT RUN IN FULL HERE: 4 samplers x 3 seeds x 64 trials = 768 trainings take hours on a 2-core CPU (roughly 15-30 s
per trial). Repeat this command until it prints "all runs complete" (each call <= ~9 minutes):

    NAS_DATA_DIR=../shared/data python experiments/sample_efficiency.py --max-minutes 8

Smoke test (digits, 6 trials, 2 samplers x 1 seed, about a minute; writes nothing under experiments/results):

    python experiments/sample_efficiency.py --smoke --runs-dir /tmp/se_smoke --no-write

Writes experiments/results/sample_efficiency.md and .csv (hypervolume at checkpoints; mean and spread over seeds);
with ``--cost params`` (accuracy against the exactly counted parameters) sample_efficiency_params.md and .csv.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, Report, machine_info  # noqa: E402

SAMPLERS = ("random", "tpe", "nsga2", "evolution", "predictor")
# Controls, named like samplers: "screened" is the predictor with a startup as long as the run (every trial is the
# first random candidate that passes the predictor's screening, none is chosen by the forest): what the screening
# alone is worth.
# "pool4" / "pool4of32": the predictor keeping its unpicked candidates across trials and screening only 4 new ones
# per trial (config fresh_candidates), ranking 16 / 32: does the cheaper sampler choose as well?
# "zcwarm": the predictor whose random startup trials are the best of 64 screened random candidates by naswot
# (config zero_cost_warmup): does a zero-cost warm-up start the search higher?
CONTROLS = {"screened": lambda base: {"sampler": "predictor", "population_size": base["trials"]},
            "pool4": lambda base: {"sampler": "predictor", "fresh_candidates": 4},
            "pool4of32": lambda base: {"sampler": "predictor", "candidates": 32, "fresh_candidates": 4},
            "zcwarm": lambda base: {"sampler": "predictor", "zero_cost_warmup": 64},
            "anyparent": lambda base: {"sampler": "predictor", "mutate_share": 0.5, "end_share": 0.0}}
MAX_LATENCY_MS = 20.0
MAX_PARAMS = 2_000_000
# the second objective (--cost): its hypervolume reference (the run's limit on it), the run's constraints, the page
COSTS = {
    "latency_ms": {"reference": MAX_LATENCY_MS, "unit": "ms", "scale": 1.0, "page": "sample_efficiency",
                   "constraints": {"max_params": MAX_PARAMS, "max_latency_ms": MAX_LATENCY_MS}},
    "params": {"reference": MAX_PARAMS / 1e6, "unit": "M parameters", "scale": 1e-6, "page": "sample_efficiency_params",
               "constraints": {"max_params": MAX_PARAMS}},
}

FULL = {
    "space": "vision",
    "dataset": "fashion_mnist",
    "train_subset": 6000,
    "objectives": ["accuracy", "latency_ms"],
    "constraints": COSTS["latency_ms"]["constraints"],
    "budget": {"epochs": 1, "batch_size": 128, "lr": 0.002},
    "population_size": 16,
    "trials": 64,
    "device": "auto",
    "latency_device": "cpu",
    "latency_repeats": 10,
    "latency_warmup": 2,
    "train_threads": 2,
    "zero_cost": False,
}
SMOKE = {
    **FULL,
    "dataset": "digits",
    "train_subset": 300,
    "budget": {"epochs": 0.3, "batch_size": 32},
    "population_size": 4,
    "trials": 6,
    "latency_repeats": 2,
    "latency_warmup": 0,
    "train_threads": 1,
}


def run_name(sampler: str, seed: int) -> str:
    return f"{sampler}-s{seed}"


def counted_trials(run_dir: Path) -> int | None:
    """Counted trials of a run (None: no run yet)."""
    from nas.control.rundir import RunDir

    if not RunDir.is_run(run_dir):
        return None
    import optuna

    from nas.control.states import counted

    run = RunDir.open(run_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=run.study_name, storage=run.storage())
    return sum(1 for t in study.get_trials(deepcopy=False) if counted(t))


def advance(base: dict, runs_dir: Path, samplers, seeds, deadline: float) -> bool:
    """Run or continue every (sampler, seed) run until the deadline; True when all are complete."""
    from nas.control.search import search

    target = base["trials"]
    for seed in seeds:  # seeds outermost: every sampler gets its first seed before anyone gets a second
        for sampler in samplers:
            name = run_name(sampler, seed)
            have = counted_trials(runs_dir / name)
            if have is not None and have >= target:
                continue
            left = deadline - time.time()
            if left < 30:
                return False
            print(f"{name}: {have or 0}/{target} trials; continuing for up to {left / 60:.1f} min", flush=True)
            config = {**base, "sampler": sampler, "seed": seed, "name": name, "time_budget_s": left}
            if sampler in CONTROLS:
                config.update(CONTROLS[sampler](base))
            search(config, name=name, runs_dir=runs_dir, resume=True, quiet=True)
            have = counted_trials(runs_dir / name) or 0
            if have < target:
                return False
    return True


def stored_studies(runs_dir: Path, sampler: str, seeds):
    """The Optuna studies of the runs of ``sampler`` that exist, in seed order."""
    import optuna

    from nas.control.rundir import RunDir

    for seed in seeds:
        path = runs_dir / run_name(sampler, seed)
        if RunDir.is_run(path):
            run = RunDir.open(path)
            yield optuna.load_study(study_name=run.study_name, storage=run.storage())


def timings(runs_dir: Path, samplers, seeds, target: int) -> list[list]:
    """Per sampler: what its runs cost in time, from the trials' start / completion times in the journal.

    Outside ``evaluate`` = a trial's duration minus its ``wall_s`` (the evaluation): the sampler's choice (for the
    predictor: counting and ranking its candidates) plus storage and bookkeeping."""
    rows = []
    for sampler in samplers:
        outside, totals, trained = [], [], []
        for study in stored_studies(runs_dir, sampler, seeds):
            trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete and t.number < target]
            total = 0.0
            for t in trials:
                seconds = (t.datetime_complete - t.datetime_start).total_seconds()
                total += seconds
                wall = t.user_attrs.get("wall_s")
                if t.state.name == "COMPLETE" and wall is not None and "reused_from" not in t.user_attrs:
                    outside.append(seconds - float(wall))
            totals.append(total / 60)
            trained.append(sum(t.state.name == "COMPLETE" and "reused_from" not in t.user_attrs for t in trials))
        if totals:
            rows.append([sampler, len(totals), f"{statistics.median(outside) * 1000:.0f}" if outside else "",
                         f"{statistics.mean(totals):.1f} ({min(totals):.1f}-{max(totals):.1f})",
                         f"{statistics.mean(trained):.1f}"])
    return rows


def prediction_quality(runs_dir: Path, seeds, objectives: list[str]) -> list[list]:
    """How well the predictor's forest predicted the trials it chose (user attr ``predictor``): per objective,
    Spearman's rho of predicted mean vs. measured value, mean absolute error, share within one predicted sd."""
    import numpy as np
    from scipy.stats import spearmanr

    pairs: dict[str, list[tuple[float, float, float]]] = {}
    for study in stored_studies(runs_dir, "predictor", seeds):
        for t in study.get_trials(deepcopy=False):
            predicted = (t.user_attrs.get("predictor") or {}).get("predicted")
            if t.state.name != "COMPLETE" or not predicted or "reused_from" in t.user_attrs:
                continue
            for objective, value in zip(objectives, t.values):
                mean, sd = predicted[objective]
                pairs.setdefault(objective, []).append((mean, sd, value))
    rows = []
    for objective, found in pairs.items():
        mean, sd, value = (np.array(c) for c in zip(*found))
        rows.append([objective, len(found), f"{spearmanr(mean, value)[0]:.2f}", f"{np.mean(np.abs(mean - value)):.3f}",
                     f"{np.mean(np.abs(value - mean) <= sd):.2f}"])
    return rows


def curves(runs_dir: Path, samplers, seeds, target: int, reference: list[float], scale: float = 1.0):
    """{sampler: [hypervolume after k trials for k = 1..target, one list per seed]} (accuracy maximised, the cost
    times ``scale`` minimised, from ``reference``)."""
    import numpy as np

    from nas.control.states import counted
    from nas.pareto import hypervolume_history

    found = {}
    for sampler in samplers:
        found[sampler] = []
        for study in stored_studies(runs_dir, sampler, seeds):
            rows = []
            for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
                if not counted(t):
                    continue  # stale (re-enqueued) trials do not count
                rows.append(list(t.values) if t.state.name == "COMPLETE" else [float("nan")] * 2)
            rows = rows[:target]
            if rows:
                rows = np.array(rows, dtype=float) * [1.0, scale]
                hv = hypervolume_history(rows, ["maximize", "minimize"], reference)
                found[sampler].append([float(x) for x in hv])
    return found


def trials_to_reach(curve: list[float], level: float) -> int | None:
    for k, value in enumerate(curve, 1):
        if value >= level - 1e-12:
            return k
    return None


def summarize(report: Report, found: dict, target: int, default: str, *, cost: str = "latency_ms",
              write_csv: bool = True, page: str | None = None) -> None:
    checkpoints = sorted({c for c in (4, 8, 16, 32, 48, 64, target) if c <= target})
    headers = ["sampler", "seeds", *[f"HV@{c}" for c in checkpoints]]
    rows = []
    for sampler, runs in found.items():
        row = [sampler, len(runs)]
        for c in checkpoints:
            values = [r[c - 1] for r in runs if len(r) >= c]
            if values:
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                row.append(f"{statistics.mean(values):.4f} ± {sd:.4f}")
            else:
                row.append("")
        rows.append(row)
    ref = COSTS[cost]
    report.table(headers, rows, title=f"Hypervolume (reference: accuracy 0, {cost} {ref['reference']:,g} "
                                      f"{ref['unit']}) after k trials, mean ± sd over seeds",
                 csv=f"{page or ref['page']}.csv" if write_csv else None)
    random_final = [r[-1] for r in found.get("random", []) if len(r) >= target]
    if not random_final or not found.get(default):
        report.text("Target not evaluated: random or the default sampler has no complete runs yet.")
        return
    level = statistics.mean(random_final)
    lines = []
    for sampler in [default] + [s for s in found if s not in (default, "random")]:
        needed = [trials_to_reach(r, level) for r in found.get(sampler, []) if len(r) >= target]
        if not needed:
            continue
        shown = ", ".join("not reached" if n is None else str(n) for n in needed)
        reached = [n for n in needed if n is not None]
        ok = len(reached) == len(needed) and statistics.median(reached) <= target / 2 if reached else False
        role = " (the default)" if sampler == default else ""
        lines.append(f"* {sampler}{role}: {shown} -> {'met' if ok else 'MISSED'}")
    report.text(f"Random search's final hypervolume (mean of {len(random_final)} seeds, {target} trials): "
                f"{level:.4f}. Trials each sampler needs to reach it, per seed (target: median <= {target // 2}):\n\n"
                + "\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", default=str(REPO_ROOT / "runs" / "sample_efficiency"),
                        help="one run directory per (sampler, seed) (default runs/sample_efficiency)")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials", type=int, default=None, help="trials per run (default 64; smoke 6)")
    parser.add_argument("--max-minutes", type=float, default=8.0,
                        help="start no new trial after this long (reruns continue)")
    parser.add_argument("--smoke", action="store_true", help="tiny configuration on digits (a minute or two)")
    parser.add_argument("--train-subset", type=int, default=None,
                        help=f"class-balanced training pool per trial (train + val; default {FULL['train_subset']})")
    parser.add_argument("--epochs", type=float, default=None,
                        help=f"proxy budget in epochs (default {FULL['budget']['epochs']})")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"proxy training batch size (default {FULL['budget']['batch_size']})")
    parser.add_argument("--train-threads", type=int, default=None,
                        help=f"torch threads per trial (default {FULL['train_threads']})")
    parser.add_argument("--population-size", type=int, default=None,
                        help="nsga2 / evolution population; the random startup of predictor (tpe / gp: at most 10) "
                             f"(default {FULL['population_size']})")
    parser.add_argument("--latency-min-time", type=float, default=None, metavar="S",
                        help="latency_min_time_s: keep timing a candidate until the timed calls span S seconds "
                             "(default: the config default)")
    parser.add_argument("--cost", choices=sorted(COSTS), default="latency_ms",
                        help="the second objective beside accuracy (default latency_ms; params: exactly counted, "
                             "written to sample_efficiency_params.md)")
    parser.add_argument("--report-only", action="store_true", help="write the curves of what is there, run nothing")
    parser.add_argument("--out", default=None, metavar="NAME",
                        help="the results page experiments/results/NAME.md (and NAME.csv); default "
                             "sample_efficiency, or sample_efficiency_params with --cost params")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write experiments/results")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    base = dict(SMOKE if args.smoke else FULL)
    cost = dict(COSTS[args.cost])
    if args.out:
        cost["page"] = args.out
    base["objectives"] = ["accuracy", args.cost]
    base["constraints"] = cost["constraints"]
    if args.trials is not None:
        base["trials"] = args.trials
    if args.train_subset is not None:
        base["train_subset"] = args.train_subset
    if args.epochs is not None:
        base["budget"] = {**base["budget"], "epochs": args.epochs}
    if args.batch_size is not None:
        base["budget"] = {**base["budget"], "batch_size": args.batch_size}
    if args.train_threads is not None:
        base["train_threads"] = args.train_threads
    if args.population_size is not None:
        base["population_size"] = args.population_size
    if args.latency_min_time is not None:
        base["latency_min_time_s"] = args.latency_min_time
    samplers = [s for s in args.samplers.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    if args.smoke and args.samplers == ",".join(SAMPLERS):
        samplers = ["random", "nsga2"]
    if args.smoke and args.seeds == "0,1,2":
        seeds = [0]
    runs_dir = Path(args.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    complete = True
    if not args.report_only:
        complete = advance(base, runs_dir, samplers, seeds, time.time() + 60 * args.max_minutes)
        print("all runs complete" if complete else "not complete yet: run the same command again", flush=True)
    from nas.control.config import RunConfig

    default = RunConfig.model_validate({k: v for k, v in base.items()}).sampler_name
    found = curves(runs_dir, samplers, seeds, base["trials"], [0.0, cost["reference"]], cost["scale"])
    report = Report(cost["page"], "Sample efficiency: hypervolume vs. trials per sampler", info=info)
    report.text(f"Runs: `{runs_dir}`; {len(samplers)} samplers x {len(seeds)} seeds x {base['trials']} trials; "
                f"dataset {base['dataset']} (train_subset {base['train_subset']}), budget {base['budget']}, "
                f"population {base['population_size']}, train_threads {base['train_threads']}, constraints "
                f"{base['constraints']}, latency_min_time_s {base.get('latency_min_time_s', 'default')}; "
                f"objectives {base['objectives']}; {'complete' if complete else 'INCOMPLETE (partial curves)'}.")
    summarize(report, found, base["trials"], default, cost=args.cost, write_csv=not args.no_write and complete,
              page=cost["page"])
    report.table(["sampler", "runs", "outside evaluate, ms per trial (median)", "minutes per run, mean (range)",
                  "trials trained per run (mean)"], timings(runs_dir, samplers, seeds, base["trials"]),
                 title="What the runs cost in time (trial start to completion, from the journal; 'outside evaluate' "
                       "is the sampler's choice plus storage and bookkeeping)")
    if "predictor" in samplers:
        report.table(["objective", "trials chosen by the forest", "Spearman rho (predicted vs. measured)",
                      "mean absolute error", "share within one predicted sd"],
                     prediction_quality(runs_dir, seeds, base["objectives"]),
                     title="The predictor's forecasts for the trials it chose (after its random startup)")
    if not args.no_write and complete:
        report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
