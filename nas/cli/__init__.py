"""The ``nas`` command line: thin — parses arguments, calls the API, turns known errors into one line + exit 2."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Sequence

from nas.archjson import read_spec
from nas.control.config import parse_set
from nas.control.rundir import defer
from nas.control.samplers import SAMPLERS
from nas.control.shared import DEFAULT_HEARTBEAT_S, GRACE_FACTOR
from nas.errors import NasError
from nas.cli.args import EXIT_USAGE, Parser, int_in, seed, shape
from nas.cli.space import add_space_commands, is_spec_file, load_space_arg
from nas.objectives import OBJECTIVES


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        getattr(args, "help_of", parser).print_help()  # `nas space` alone: the space commands' help
        return EXIT_USAGE
    previous = install_stop_handlers()
    try:
        return int(args.handler(args) or 0)
    except NasError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for signum, handler in (previous or {}).items():
            signal.signal(signum, handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it stops as on Ctrl-C: the running trial is abandoned and
    enqueued again, the stop line says how to continue, the live display gives the terminal its cursor back."""


def install_stop_handlers() -> dict | None:
    """Install the SIGTERM and SIGINT handlers (main thread only); the handlers they replaced, or None. Both stop the
    command where it is, except in the middle of a journal write, which they let finish first (an interrupt inside
    Optuna's file lock would leave a FileNotFoundError traceback instead of the stop line)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop():
        raise Terminated()

    def interrupt():
        raise KeyboardInterrupt()

    def terminated(signum, frame):
        if not defer(stop):  # in the middle of a journal write: stop when it is done
            stop()

    def interrupted(signum, frame):
        if not defer(interrupt):
            interrupt()

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, terminated)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when SIGINT is ignored or taken
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupted)
    return previous


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nas", description="Neural architecture search over a pattern grammar.")
    commands = parser.add_subparsers(title="commands")

    add_space_commands(commands)

    p = commands.add_parser("eval", help="evaluate one spec (or one sample of a space) on a dataset")
    p.add_argument("target", help="a spec file (.json/.yaml) or an export (its folder or arch.json), or a space "
                                  "(file or shipped name) to sample from")
    p.add_argument("--dataset", default="digits", help="digits, fashion_mnist, mnist, cifar10, npz:PATH, ... ")
    p.add_argument("--data-dir", default=None, help="where .npz data sets are (default $NAS_DATA_DIR or "
                                                     "~/.cache/nas/data)")
    p.add_argument("--seed", type=seed, default=0, help="training seed (and of the sample, for a space)")
    p.add_argument("--epochs", type=float, default=None, help="training epochs (fractions allowed; default 1, "
                                                              "as a search budget)")
    p.add_argument("--data-fraction", type=float, default=None, help="fraction of the training split used")
    p.add_argument("--resolution", type=float, default=None, help="input resolution multiplier (e.g. 0.5)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch size")
    p.add_argument("--train-subset", type=int, default=None, help="class-balanced subset of the training pool")
    p.add_argument("--device", default="auto", help="training device: auto, cpu, cuda")
    p.add_argument("--threads", type=int_in(1), default=None,
                   help="torch CPU threads for training (default: torch's, which follows OMP_NUM_THREADS)")
    p.add_argument("--latency-device", default="cpu", help="where latency is timed: cpu, cuda or cuda:N")
    p.add_argument("--no-zero-cost", action="store_true", help="skip the zero-cost proxies")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.set_defaults(handler=_eval)
    _add_search_commands(commands)
    _add_ship_commands(commands)
    return parser


# -- eval -------------------------------------------------------------------------------------------------------


def _eval(args) -> int:
    from nas.evaluate.evaluate import EvalConfig, check_input_kind, evaluate, load_data  # heavy: torch

    path = Path(args.target)
    if is_spec_file(path):
        spec = read_spec(path)[0]
        what, file = "the spec", str(path)
    else:
        space = load_space_arg(args.target)
        spec = space.sample(args.seed)
        what, file = f"space {space.name!r}", None
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "data_fraction": args.data_fraction, "resolution": args.resolution,
        "batch_size": args.batch_size}.items() if v is not None}
    config = EvalConfig.from_options(dataset=args.dataset, data_dir=args.data_dir, seed=args.seed,
                                     device=args.device, latency_device=args.latency_device,
                                     train_subset=args.train_subset, zero_cost=not args.no_zero_cost,
                                     train_threads=args.threads, budget=overrides)
    try:
        config.check_latency_device()  # named by its flag: it was "device: ...", which is another flag
    except NasError as e:
        raise NasError(e.message, key="--latency-device") from None
    out = sys.stderr if args.json else sys.stdout  # progress; the result alone on stdout with --json

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    say(f"{what}: {spec.summary()}")
    say(f"loading {args.dataset} ...")
    data = load_data(config, config.resolved_device())
    check_input_kind(data, spec.input, args.dataset, what=what, file=file, key="--dataset")
    say(f"data: {data.size('train'):,} training / {data.size('val'):,} validation examples; measuring the costs, "
        f"then {config.budget.epochs:g} epoch(s) of training")

    def epoch_line(stats) -> bool:
        say(f"epoch {stats.epoch:g}: train loss {stats.train_loss:.4f}, val loss "
            f"{stats.val_loss:.4f}, val acc {stats.val_accuracy:.4f} ({stats.wall_s:.1f} s of training)")
        return False

    result = evaluate(spec, config, data=data, callback=epoch_line)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.report())
    return 0 if result.status in ("ok", "pruned") else 1


# -- search / resume (the search controller: nas.control) --------------------------------------------------------


def _add_search_commands(commands) -> None:
    objectives = "; ".join(f"{o.name} ({o.direction}, {o.label})" for _, o in OBJECTIVES.items())
    p = commands.add_parser("search", help="run an architecture search from a run config (experiments/*.yaml)",
                            epilog=f"objectives: {objectives}. Samplers: {', '.join(SAMPLERS.names())}.")
    p.add_argument("config", help="a run config YAML (space, dataset, objectives, budget, sampler, trials)")
    p.add_argument("--name", default=None, help="run name: the folder under --runs-dir (default: the config's "
                                                "name, else its file name)")
    p.add_argument("--runs-dir", default="runs", help="where runs live (default ./runs)")
    p.add_argument("--resume", action="store_true", help="continue the run of that name if it exists")
    p.add_argument("--storage", default=None, help="Optuna storage URL (sqlite:///FILE, postgresql://...); "
                                                   "default: journal.log in the run folder")
    p.add_argument("--trials", type=int, default=None, help="target number of counted trials: trained ones, and "
                                                            "those screened out (infeasible), reused or failed")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="start no new trial after this many seconds")
    p.add_argument("--sampler", default=None, help=f"one of {', '.join(SAMPLERS.names())}")
    p.add_argument("--seed", type=seed, default=None, help="the run's seed (sampler, splits, training); default: "
                                                            "the config's, else 0")
    p.add_argument("--dataset", default=None, help="digits, fashion_mnist, mnist, cifar10, npz:PATH, ... "
                                                   "(default: the config's)")
    p.add_argument("--data-dir", default=None, help="where .npz data sets are (data_dir; default $NAS_DATA_DIR or "
                                                    "~/.cache/nas/data)")
    p.add_argument("--epochs", type=float, default=None, help="budget.epochs")
    p.add_argument("--device", default=None, help="training device: auto, cpu, cuda")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (dotted, e.g. budget.batch_size=32); repeatable")
    p.add_argument("-q", "--quiet", action="store_true", help="one plain line per trial, no live display")
    _add_worker_options(p)
    p.add_argument("--backend", choices=("optuna", "ray"), default="optuna",
                   help="optuna: trials in this process (or --workers); ray: a Ray Tune experiment")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="with --backend ray: join this Ray cluster (HOST:PORT) instead of starting a local one")
    p.add_argument("--heartbeat", type=int, default=None, metavar="SECONDS",
                   help="with --storage on a database server: seconds between a running trial's heartbeats; a "
                        f"trial silent for {GRACE_FACTOR}x that (its worker died) is retried (default "
                        f"{DEFAULT_HEARTBEAT_S})")
    p.set_defaults(handler=_search)

    p = commands.add_parser("worker", help="take trials of a run on a database server, from this or another host",
                            description="Join a run whose trials live on a PostgreSQL / MySQL server (made by `nas "
                            "search --storage postgresql://...`): the run's config and space are read from the "
                            "storage, and this process takes trials until the run's target is counted there. Start "
                            "as many as you like, on any host that reaches the database and has the data; a worker "
                            "that dies mid-trial has its trial retried by the others once its heartbeat stops.")
    p.add_argument("source", help="the storage URL (postgresql://USER@HOST/DB), or a worker's folder from an earlier "
                                  "call")
    p.add_argument("--study", default=None, help="the run's name in the storage (needed when it holds several)")
    p.add_argument("--name", default=None, help="this worker's run folder under --runs-dir (default STUDY-HOST)")
    p.add_argument("--runs-dir", default="runs", help="where runs live (default ./runs)")
    p.add_argument("--data-dir", default=None, help="where this host keeps the data sets (default: the run's "
                                                    "data_dir, else $NAS_DATA_DIR)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="take no new trial after this many seconds")
    p.add_argument("-q", "--quiet", action="store_true", help="one plain line per trial, no live display")
    p.set_defaults(handler=_worker)

    p = commands.add_parser("resume", help="continue a run (after a stop or a crash) to its target")
    p.add_argument("run_dir", help="the run folder, e.g. runs/digits_demo")
    p.add_argument("--trials", type=int, default=None, help="new target number of trials (saved in the run)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="start no new trial after this many seconds (this call only; not saved in the run)")
    p.add_argument("-q", "--quiet", action="store_true", help="one plain line per trial, no live display")
    _add_worker_options(p)
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="a run made with --backend ray: join this Ray cluster instead of starting a local one")
    p.set_defaults(handler=_resume)


def _add_worker_options(p) -> None:
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="run trials in N worker processes sharing the run's storage; a worker is replaced by a "
                        "fresh one after --max-trials-per-worker trials")
    p.add_argument("--trials-per-gpu", type=int, default=None, metavar="K",
                   help="CUDA only: K worker processes per GPU (workers = K x GPUs)")
    p.add_argument("--max-trials-per-worker", type=int, default=None, metavar="M",
                   help="with --workers / --trials-per-gpu: a worker exits after M trials and a fresh one starts, "
                        "so leaked (GPU) memory cannot accumulate (default 8)")


def _parallel(args):
    from nas.control.workers import resolve  # heavy: optuna

    return resolve(args.workers, args.trials_per_gpu, args.max_trials_per_worker)


def _control():
    import nas.control.search as control  # heavy: optuna

    return control


def _search(args) -> int:
    overrides = parse_set(args.set)
    for key, value in (("trials", args.trials), ("time_budget_s", args.time_budget), ("sampler", args.sampler),
                       ("seed", args.seed), ("dataset", args.dataset), ("data_dir", args.data_dir),
                       ("budget.epochs", args.epochs), ("device", args.device)):
        if value is not None:
            overrides[key] = value
    _control().search(args.config, overrides, name=args.name, runs_dir=args.runs_dir, resume=args.resume,
                      storage=args.storage, quiet=args.quiet, parallel=_parallel(args), backend=args.backend,
                      ray_address=args.ray_address, heartbeat_s=args.heartbeat)
    return 0


def _worker(args) -> int:
    _control().join(args.source, study=args.study, name=args.name, runs_dir=args.runs_dir, data_dir=args.data_dir,
                    time_budget_s=args.time_budget, quiet=args.quiet)
    return 0


def _resume(args) -> int:
    _control().resume(args.run_dir, trials=args.trials, time_budget_s=args.time_budget, quiet=args.quiet,
           parallel=_parallel(args), ray_address=args.ray_address)
    return 0


# -- report / export / train (nas.report, nas.export, nas.fulltrain) -------------------------------------------------


def _add_ship_commands(commands) -> None:
    p = commands.add_parser("runs", help="list the runs in a folder: state, trials trained / screened / reused / "
                                         "failed, best values, the pick, front size, last activity")
    p.add_argument("runs_dir", nargs="?", default="runs", help="the folder holding run folders (default ./runs)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(handler=_runs)

    p = commands.add_parser("show", help="one run (settings, counts, front) or one trial of it (spec, objectives, "
                                         "costs, curve, failure reason, baselines it dominates)")
    p.add_argument("run_dir", help="the run folder, e.g. runs/demo")
    p.add_argument("--trial", type=int_in(0), default=None, metavar="N", help="show trial N instead of the run")
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(handler=_show)

    p = commands.add_parser("report", help="write the run's report: report.html, pareto.png, trials.csv, "
                                           "pareto.csv, summary.md (also while the run is going)")
    p.add_argument("run_dir", help="the run folder, e.g. runs/demo")
    p.add_argument("--out", default=None, help="output folder (default RUN/report)")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip evaluating the space's hand-designed baselines under the run's budget")
    p.set_defaults(handler=_report)

    p = commands.add_parser("measure", help="measure the latency of the run's Pareto front and the baselines again, "
                                            "together in one process, round by round (latency.json; the report "
                                            "shows it)")
    p.add_argument("run_dir")
    p.add_argument("--trials", default="front", help="front (default), all, or trial numbers: 3,7,12")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds, every model once per round (default 5)")
    p.add_argument("--no-baselines", action="store_true", help="leave the space's baselines out")
    p.add_argument("--device", default=None, help="latency device (default: the run's latency_device)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the run's latency_threads)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the run's latency_batch_size")
    p.set_defaults(handler=_measure)

    p = commands.add_parser("export", help="export an architecture (a search trial or a spec file): arch.json, "
                                           "ONNX (checked with onnxruntime), TorchScript, MODEL.md")
    p.add_argument("target", help="a run folder (runs/NAME), a spec file (.json/.yaml) or an export (its folder "
                                  "or arch.json)")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--trial", type=int, default=None, help="trial number")
    rule.add_argument("--knee", action="store_true",
                      help="the knee of the Pareto front (on the latencies of `nas measure` when they cover it)")
    rule.add_argument("--rank-with", default=None, metavar="PROXY",
                      help="the best mean of the ranks under the first objective and this zero-cost proxy the "
                           "trials recorded (e.g. naswot: docs/benchmarks.md, which trial a run picks); none: the "
                           "best first objective (default: the run's pick, config rank_with)")
    p.add_argument("--max-latency-ms", type=float, default=None, help="the most accurate trial within this latency")
    p.add_argument("--min-accuracy", type=float, default=None, help="the fastest trial reaching this accuracy")
    p.add_argument("-o", "--out", default=None,
                   help="export folder (default: RUN/exports/trial-NNNN, or exports/HASH for a spec file)")
    p.add_argument("--dataset", default=None, help="spec file only: the dataset giving input shape and classes "
                                                   "(default for an export: those it records)")
    p.add_argument("--data-dir", default=None, help="where .npz data sets are (default $NAS_DATA_DIR)")
    p.add_argument("--input-shape", type=shape, default=None, metavar="C,H,W|L,C",
                   help="spec file only, with --num-classes, instead of --dataset")
    p.add_argument("--num-classes", type=int, default=None, help="spec file only, at least 2")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17; one that torch's TorchScript-based "
                                                         "exporter writes: 7 to 20 on torch 2.13)")
    p.add_argument("--force", action="store_true",
                   help="overwrite a folder holding another export (or this one's trained weights)")
    p.set_defaults(handler=_export)

    p = commands.add_parser("train", help="train an exported architecture fully (resumable), test once, "
                                          "write weights + card")
    p.add_argument("export_dir", help="an export folder (or its arch.json), e.g. runs/NAME/exports/trial-0007")
    p.add_argument("--dataset", default=None, help="default: the dataset recorded in the export")
    p.add_argument("--epochs", type=int, required=True, help="epochs of the full training (the schedule's length)")
    p.add_argument("--data-dir", default=None, help="where .npz data sets are (default $NAS_DATA_DIR)")
    p.add_argument("--batch-size", type=int, default=128, help="training batch size (default 128)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3, as in the search)")
    p.add_argument("--seed", type=seed, default=0, help="training seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--train-subset", type=int, default=None, help="class-balanced subset of the training pool")
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="EPOCHS",
                   help="write a resumable checkpoint every EPOCHS epochs (default 1)")
    p.add_argument("--max-epochs", type=int_in(1), default=None,
                   help="stop after this many epochs in this call (run again to continue)")
    p.add_argument("--restart", action="store_true", help="discard an existing checkpoint, train from scratch")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-reexport", action="store_true",
                   help="do not rewrite model.onnx / model.ts with the trained weights (they are removed)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_train)


def _measure(args) -> int:
    from nas.remeasure.record import LATENCY_FILE  # heavy: pandas
    from nas.remeasure.timing import remeasure  # heavy: torch

    record = remeasure(args.run_dir, trials=args.trials, baselines=not args.no_baselines, rounds=args.rounds,
                       device=args.device, threads=args.threads, batch_size=args.batch_size,
                       progress=lambda line: print(line, file=sys.stderr, flush=True))
    settings = record["settings"]
    print(f"latency of {len(record['models'])} models, {record['rounds']} interleaved rounds "
          f"({settings['device']}, batch {settings['batch_size']}, {settings['threads']} thread(s)):")
    for label, m in record["models"].items():
        stored = m.get("stored_latency_ms")
        print(f"  {label:<24} {m['median_ms']:9.3f} ms  rounds {m['min_ms']:.3f}-{m['max_ms']:.3f}"
              + (f"  (stored {stored:.3f})" if isinstance(stored, (int, float)) else ""))
    for label, why in (record.get("skipped") or {}).items():
        print(f"  {label:<24} skipped: {why}")
    print(f"written to {Path(args.run_dir) / LATENCY_FILE}; `nas report {args.run_dir}` shows the re-measured front")
    dropped = (record.get("replaced") or {}).get("not_measured_now") or []
    if dropped:
        print(f"note: this replaces the measurement of {record['replaced']['measured_at']}, and {len(dropped)} of its "
              f"models are not in this one ({', '.join(dropped[:6])}{' ...' if len(dropped) > 6 else ''}); times "
              "from two sessions do not mix, so measure every model you compare in one call")
    return 0


def _runs(args) -> int:
    look = _inspection()
    rows = look.list_runs(args.runs_dir)
    print(json.dumps(rows, indent=2) if args.json else look.runs_text(rows))
    return 0


def _show(args) -> int:
    look = _inspection()
    if args.trial is None:
        data = look.run_overview(args.run_dir)
        print(json.dumps(data, indent=2) if args.json else look.run_text(data))
    else:
        data = look.trial_detail(args.run_dir, args.trial)
        print(json.dumps(data, indent=2) if args.json else look.trial_text(data))
    return 0


def _inspection():
    import nas.inspection as inspection  # heavy: pandas, numpy, and optuna once a run is opened

    return inspection


def _report(args) -> int:
    from nas.report import write_report  # heavy: plotly, pandas

    paths = write_report(args.run_dir, args.out, baselines=not args.no_baselines)
    print(f"report written to {paths['report.html'].parent}")
    for name, path in paths.items():
        print(f"  {path}")
    states = _trial_states(paths["trials.csv"])
    if not states.get("COMPLETE"):
        counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(states.items())) or "no trials"
        print(f"note: no trial of this run has completed ({counts}): the report has no Pareto front yet",
              file=sys.stderr)
    return 0


def _trial_states(trials_csv) -> dict[str, int]:
    import pandas as pd  # heavy

    try:
        frame = pd.read_csv(trials_csv)
    except pd.errors.EmptyDataError:
        return {}
    return {str(k): int(v) for k, v in frame["state"].value_counts().items()} if "state" in frame else {}


def _export(args) -> int:
    from nas.export import export_from  # heavy: torch, onnx

    shape = args.input_shape  # positive and of the spec's rank: checked by export_from
    if args.trial is not None and (args.max_latency_ms is not None or args.min_accuracy is not None):
        raise NasError("--trial cannot be combined with --max-latency-ms / --min-accuracy", key="--trial")
    if args.knee and (args.max_latency_ms is not None or args.min_accuracy is not None):
        raise NasError("--knee cannot be combined with --max-latency-ms / --min-accuracy", key="--knee")
    if args.rank_with is not None and (args.max_latency_ms is not None or args.min_accuracy is not None):
        raise NasError("--rank-with cannot be combined with --max-latency-ms / --min-accuracy", key="--rank-with")
    paths = export_from(args.target, args.out, trial=args.trial, dataset=args.dataset, data_dir=args.data_dir,
                        input_shape=shape, num_classes=args.num_classes, opset=args.opset, force=args.force,
                        max_latency_ms=args.max_latency_ms, min_accuracy=args.min_accuracy, knee=args.knee,
                        rank_with=args.rank_with)
    print(f"exported to {paths['dir']}")
    for key in ("arch", "weights", "onnx", "torchscript", "card"):
        if paths.get(key):
            print(f"  {paths[key]}")
    if paths.get("onnx_max_abs_diff") is not None:
        print(f"ONNX check: onnxruntime vs PyTorch max abs diff {paths['onnx_max_abs_diff']:.2e}")
    return 0


def _train(args) -> int:
    from nas.fulltrain import train_full  # heavy: torch

    result = train_full(args.export_dir, dataset=args.dataset, epochs=args.epochs, data_dir=args.data_dir,
                        batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                        checkpoint_every=args.checkpoint_every, train_subset=args.train_subset,
                        max_epochs_this_call=args.max_epochs, restart=args.restart, threads=args.threads,
                        reexport=not args.no_reexport,
                        log=None if args.json else lambda line: print(line, flush=True))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif result["status"] == "done":
        paths = result.get("paths") or {}
        written = ["weights"] + [name for key, name in (("onnx", "ONNX"), ("torchscript", "TorchScript"))
                                 if paths.get(key)] + ["MODEL.md"]
        folder = Path(paths["weights"]).parent if paths.get("weights") else args.export_dir
        print(f"done: test accuracy {result['test_accuracy']:.4f}; {', '.join(written[:-1])} and {written[-1]} "
              f"in {folder}")
        if result.get("export_error"):
            print(f"warning: {result['export_error']}", file=sys.stderr)
    elif result["status"] == "diverged":
        print(f"diverged: {result.get('reason')}", file=sys.stderr)
    if result["status"] == "done":
        return 0 if not result.get("export_error") else 1
    return 0 if result["status"] == "paused" else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
