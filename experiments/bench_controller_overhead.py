"""Controller overhead per trial: everything the search controller does around an evaluation.

The evaluator is replaced by one that returns fixed objectives instantly (deterministic per spec hash, with a result
of realistic size: curve, cost, training info), so what is left is the controller: ``study.ask``, sampling the
define-by-run spec from the space (vision.yaml: dozens of parameters), the no-repeat lookup, the user attrs, the
``study.tell`` (storage write), and the progress line + ``search.log``. The stand-in evaluator still runs the
constraint check (the space's FLOPs cap: params / FLOPs at the space's reference input, counted by parts,
:func:`nas.evaluate.costs.network_costs`; cached per spec) exactly as ``evaluate`` runs it first, so the tables
give the controller alone ("sample + store + bookkeeping") and the all-in time with that check. Measured
on the default storage (the journal file, written by ``nas.control.rundir.journal_backend``), on the same journal
written by Optuna's stock ``JournalFileBackend`` (every record fsync-ed) and on SQLite,
with NSGA-II (``--sampler``, default nsga2: the controller's own cost; the run default ``predictor`` also screens
candidates per trial, which ``bench_predictor_overhead.py`` measures), as the median ms per trial over a window of
trials around trial 100 and trial 1000. A last table times that count whole (the network built and counted) against
by parts.

Target: <= 20 ms per trial, growing at most 2x from trial 100 to trial 1000.

    python experiments/bench_controller_overhead.py                       # all three storages, 1025 trials each
    python experiments/bench_controller_overhead.py --max-seconds 300     # stop a storage after 5 minutes
    python experiments/bench_controller_overhead.py --trials 1100 --profile 1000   # + cProfile after trial 1000

Writes experiments/results/bench_controller_overhead.md and .csv.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info  # noqa: E402

PARTS = ("ask", "sample", "precheck", "tell", "rest")


def fake_evaluate(spec, config, *, data=None, callback=None, precheck=None):
    """Instant stand-in for nas.evaluate.evaluate.evaluate: the constraint check as evaluate runs it (the model is
    built on demand at the evaluation input), then fixed objectives per spec, a result of realistic size."""
    from nas.evaluate.evaluate import TrialResult

    h = spec.hash()
    measured = {}
    if precheck is not None:
        from nas.builder import lazy_model

        problems, excess, measured = precheck(spec, lazy_model(spec, (1, 8, 8), 10))
        if problems:
            return TrialResult(h, spec.summary(), "infeasible", reason="; ".join(problems), precheck=measured,
                               constraint_excess=excess, input_shape=(1, 8, 8), num_classes=10)
    u = int(hashlib.sha256(h.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    acc, lat = 0.5 + 0.45 * u, 0.2 + 5.0 * (1 - u) ** 2
    curve = [{"epoch": e + 1.0, "train_loss": 1.5 / (e + 1), "val_loss": 1.6 / (e + 1),
              "val_accuracy": acc * (e + 1) / 4} for e in range(4)]
    return TrialResult(h, spec.summary(), "ok", objectives={"accuracy": acc, "latency_ms": lat, "params": 1e5 * u,
                                                            "flops": 1e7 * u, "activation_mb": 1.0},
                       curve=curve, cost={"params": int(1e5 * u), "flops": int(1e7 * u), "activation_mb": 1.0},
                       training={"epochs": 4, "steps": 400, "train_s": 0.0}, input_shape=(1, 8, 8), num_classes=10,
                       wall_s=0.0)


def make_engine(storage_kind: str, folder: Path, sampler: str | None, extra: dict | None = None):
    from nas.control.config import dump_config
    from nas.control.engine import Engine, prepare
    from nas.control.rundir import RunDir

    config = {"space": "vision", "dataset": "digits", "objectives": ["accuracy", "latency_ms"], "trials": 100000,
              "seed": 0, "device": "cpu", "zero_cost": False, "train_threads": 1}
    if sampler:
        config["sampler"] = sampler
    config.update(extra or {})
    prepared = prepare(config)
    engine = Engine(prepared, quiet=True)
    storage = f"sqlite:///{folder / 'nas.db'}" if storage_kind == "sqlite" else None
    run = RunDir.create(folder / "run", study_name="bench", storage=storage, config_text=dump_config(prepared.config),
                        space_text=prepared.space_text, space_source=prepared.space_source,
                        fingerprint=prepared.config.fingerprint(prepared.space.fingerprint()))
    if storage_kind == "journal-stock":  # Optuna's own JournalFileBackend: every record fsync-ed
        from optuna.storages.journal import JournalFileBackend

        import nas.control.rundir as rundir

        ours, rundir.journal_backend = rundir.journal_backend, JournalFileBackend
        try:
            engine.attach(run, create=True)
        finally:
            rundir.journal_backend = ours
    else:
        engine.attach(run, create=True)
    return engine


def instrument(engine, clock: dict):
    """Time the parts of a trial (ask, sample, precheck, tell) by wrapping the calls one_trial makes."""
    def wrap(owner, name, part):
        inner = getattr(owner, name)

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return inner(*a, **k)
            finally:
                clock[part] += time.perf_counter() - t0

        setattr(owner, name, timed)

    wrap(engine.study, "ask", "ask")
    wrap(engine.study, "tell", "tell")
    wrap(engine.space, "sample", "sample")
    wrap(engine, "check_constraints", "precheck")


def bench(storage_kind: str, trials: int, max_seconds: float, sampler: str | None, profile_at: int | None,
          window: int, extra: dict | None = None, on_trial=None) -> dict:
    """Run ``trials`` trials with the stand-in evaluator; per trial the parts' times. ``extra``: config keys;
    ``on_trial(engine, trial)``: called after each trial (e.g. to read what the sampler did)."""
    import nas.evaluate.costs
    import nas.evaluate.evaluate as ev
    from nas.control.progress import Progress

    ev.evaluate = fake_evaluate  # Engine._trial imports it from the module at call time
    nas.evaluate.costs.part_cost_cache.clear()  # each run counts its parts afresh (the cache lives with the process)
    with tempfile.TemporaryDirectory(prefix=f"bench-{storage_kind}-") as tmp:
        engine = make_engine(storage_kind, Path(tmp), sampler, extra)
        engine.tally = engine.load_tally()
        engine.progress = Progress(objectives=engine.config.objectives, directions=engine.config.directions,
                                   target=trials, time_budget_s=None, quiet=True, log=engine.run_dir.log,
                                   tally=engine.tally)
        clock = dict.fromkeys(PARTS, 0.0)
        instrument(engine, clock)
        rows, profile_text = [], None
        start = time.perf_counter()
        profiler = None
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            for i in range(trials):
                # the profiled window comes right after the measured one (cProfile slows what it watches)
                if profile_at is not None and i == profile_at + window // 2:
                    profiler = cProfile.Profile()
                    profiler.enable()
                for k in clock:
                    clock[k] = 0.0
                t0 = time.perf_counter()
                engine.one_trial()
                total = time.perf_counter() - t0
                clock["rest"] = total - sum(clock[p] for p in PARTS if p != "rest")
                rows.append({"trial": i, "total": total, "controller": total - clock["precheck"],
                             **{p: clock[p] for p in PARTS}})
                if on_trial is not None:
                    on_trial(engine, rows[-1])
                if profiler is not None and i == profile_at + window // 2 + window - 1:
                    profiler.disable()
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
                    profile_text = out.getvalue()
                    profiler = None
                if time.perf_counter() - start > max_seconds:
                    break
        states = {}
        for t in engine.study.get_trials(deepcopy=False):
            states[t.state.name] = states.get(t.state.name, 0) + 1
        prechecks = sum(1 for t in engine.study.get_trials(deepcopy=False) if "reused_from" not in t.user_attrs)
        return {"storage": storage_kind, "rows": rows, "elapsed": time.perf_counter() - start,
                "profile": profile_text, "states": states,
                "precheck_builds": len(nas.evaluate.costs.network_cost_cache), "prechecks": prechecks}


def whole_costs(spec, input_shape, num_classes) -> dict[str, int]:
    """Params / FLOPs counted whole: build the network, count it (what counting by parts is compared with)."""
    from nas.builder import build, example_input
    from nas.evaluate.measure import count_flops, count_params

    model = build(spec, input_shape=input_shape, num_classes=num_classes)
    return {"params": count_params(model), "flops": count_flops(model, example_input(model, 1))}


def precheck_variants(n: int) -> list[list]:
    """The pre-check's count on ``n`` random specs of each shipped space, then ``n`` one-choice mutations of them
    (what the predictor screens), median ms per spec: the whole network built and counted against
    :func:`nas.evaluate.costs.network_costs` (by parts, each distinct part counted once; its cache starts empty
    per space). The two counts are compared."""
    import random

    from nas.evaluate.costs import network_costs, part_cost_cache
    from nas.grammar import load_space

    rows = []
    for name in ("vision", "mobile", "sequence"):
        space = load_space(name)
        shape, classes = tuple(space.reference_input[0]), space.reference_input[1]
        rng = random.Random(0)
        randoms = [space.sample(seed) for seed in range(100, 100 + n)]
        kinds = {"random": randoms, "mutation": [space.mutate(rng.choice(randoms), rng) for _ in range(n)]}
        whole_costs(space.sample(0), shape, classes)  # warm-up
        part_cost_cache.clear()
        for kind, specs in kinds.items():
            whole, parts, equal = [], [], 0
            for spec in specs:
                t0 = time.perf_counter()
                a = whole_costs(spec, shape, classes)
                t1 = time.perf_counter()
                b = network_costs(spec, shape, classes)
                t2 = time.perf_counter()
                whole.append(t1 - t0)
                parts.append(t2 - t1)
                equal += a == b
            w, p = 1000 * statistics.median(whole), 1000 * statistics.median(parts)
            rows.append([name, kind, len(specs), round(w, 2), round(p, 2), f"{p / w:.2f}", f"{equal}/{len(specs)}"])
    return rows


def window_stats(rows: list[dict], center: int, window: int) -> dict | None:
    lo, hi = center - window // 2, center + window // 2
    picked = [r for r in rows if lo <= r["trial"] < hi]
    if len(picked) < window // 2:
        return None
    return {k: 1000 * statistics.median(r[k] for r in picked) for k in ("total", "controller", *PARTS)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storages", default="journal,journal-stock,sqlite",
                        help="journal: the default storage (nas.control.rundir.journal_backend: mid-trial records "
                             "not fsync-ed); journal-stock: the same file with Optuna's stock JournalFileBackend "
                             "(every record fsync-ed); sqlite")
    parser.add_argument("--trials", type=int, default=1025, help="trials per storage (default 1025: window 1000)")
    parser.add_argument("--points", default="100,1000", help="trial numbers to measure around")
    parser.add_argument("--window", type=int, default=50, help="trials per window (median over them)")
    parser.add_argument("--max-seconds", type=float, default=600, help="stop a storage's run after this long")
    parser.add_argument("--sampler", default="nsga2",
                        help="default nsga2 (the committed tables); the run default, predictor, has its own bench")
    parser.add_argument("--profile", type=int, default=None, metavar="TRIAL",
                        help="cProfile the window of trials right after the one measured around this trial")
    parser.add_argument("--target-ms", type=float, default=20.0)
    parser.add_argument("--variants", type=int, default=30, metavar="N",
                        help="also time the params + FLOPs count whole vs by parts on N random specs and N "
                             "mutations per shipped space (0: skip)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    points = [int(p) for p in args.points.split(",")]
    info = machine_info()
    report = Report("bench_controller_overhead", "Search controller overhead per trial", info=info)
    report.text(__doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(), echo=False)
    results = []
    for kind in args.storages.split(","):
        print(f"{kind}: up to {args.trials} trials (max {args.max_seconds:.0f} s) ...", flush=True)
        results.append(bench(kind, args.trials, args.max_seconds, args.sampler, args.profile, args.window))
        r = results[-1]
        print(f"  {len(r['rows'])} trials in {r['elapsed']:.0f} s; states {r['states']}; space pre-check counted "
              f"{r['precheck_builds']} specs for {r['prechecks']} checks (the rest from the cost cache)", flush=True)
    headers = ["storage", "trials run", "at trial", "controller ms/trial (target)", "ask", "sample", "tell (store)",
               "rest (bookkeeping)", "growth vs first point", "verdict", "constraint check (in evaluate)",
               "all-in ms/trial", "all-in verdict"]
    table = []
    for r in results:
        first = None
        for p in points:
            s = window_stats(r["rows"], p, args.window)
            if s is None:
                table.append([r["storage"], len(r["rows"]), p, "not reached"] + [""] * (len(headers) - 4))
                continue
            first = first or s
            controller, first_controller = s["controller"], first["controller"]
            growth = controller / first_controller
            ok = controller <= args.target_ms and growth <= 2.0
            all_in_ok = s["total"] <= args.target_ms and s["total"] / first["total"] <= 2.0
            table.append([r["storage"], len(r["rows"]), p, round(controller, 2), round(s["ask"], 2),
                          round(s["sample"], 2), round(s["tell"], 2), round(s["rest"], 2), f"{growth:.2f}x",
                          "ok" if ok else "MISSED", round(s["precheck"], 2), round(s["total"], 2),
                          "ok" if all_in_ok else "MISSED"])
    report.table(headers, table, title=f"Median ms per trial over {args.window} trials around each point "
                                       f"(target <= {args.target_ms:g} ms, growth <= 2x)",
                 csv=None if args.no_write else "bench_controller_overhead.csv")
    report.table(["storage", "trials run", "states", "pre-checks", "specs counted (cache misses)"],
                 [[r["storage"], len(r["rows"]), " ".join(f"{k} {v}" for k, v in sorted(r["states"].items())),
                   r["prechecks"], r["precheck_builds"]] for r in results],
                 title="Trials and the pre-check's cost cache (a spec sampled again is not counted again)")
    if args.variants:
        print(f"pre-check variants on {args.variants} specs per space ...", flush=True)
        report.table(["space", "specs", "n", "whole network built + counted, ms", "by parts (network_costs), ms",
                      "ratio", "same counts"], precheck_variants(args.variants),
                     title="Params + FLOPs of a spec: the whole network built and counted vs counted by its parts, "
                           "median ms per spec (one process, random specs first, then mutations of them)")
    for r in results:
        if r["profile"]:
            report.text(f"### cProfile, {r['storage']}, {args.window} trials after the window at trial "
                        f"{args.profile}\n\n```\n"
                        + r["profile"].strip() + "\n```")
    if not args.no_write:
        report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
