"""The ``nas`` command line: thin — parses arguments, calls the API, turns known errors into one line + exit 2."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from nas.archjson import ARCH_FILE, read_spec
from nas.control.config import parse_set
from nas.control.rundir import RunDir
from nas.control.samplers import SAMPLERS
from nas.control.shared import DEFAULT_HEARTBEAT_S, GRACE_FACTOR
from nas.errors import NasError
from nas.grammar import load_space, shipped_spaces_dir
from nas.io import load_yaml, read_text
from nas.objectives import OBJECTIVES

EXIT_USAGE = 2
MAX_SEED = 2**31 - 2  # as a run config's seed: numpy / Optuna take seeds below 2**32, with room to derive others


class _Parser(argparse.ArgumentParser):
    """A usage error (bad or missing argument) is one line, like every other bad input, and exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _int_in(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high] (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"expected an integer {f'in [{low}, {high}]' if high is not None else f'>= {low}'}, got {text!r}")
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


_seed = _int_in(0, MAX_SEED)


def _shape(text: str) -> tuple[int, ...]:
    """An argparse type: an input shape without the batch, e.g. 3,32,32 or 784,1."""
    try:
        return tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers such as 3,32,32 or 784,1, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        getattr(args, "help_of", parser).print_help()  # `nas space` alone: the space commands' help
        return EXIT_USAGE
    previous = _terminate_as_interrupt()
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
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it stops as on Ctrl-C: the running trial is abandoned and
    enqueued again, the stop line says how to continue, the live display gives the terminal its cursor back."""


def _terminate_as_interrupt():
    """Install the SIGTERM handler (main thread only); the handler it replaced, or None."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def terminated(signum, frame):
        raise Terminated()

    return signal.signal(signal.SIGTERM, terminated)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description="Neural architecture search over a pattern grammar.")
    commands = parser.add_subparsers(title="commands")

    space_parser = commands.add_parser("space", help="inspect search spaces")
    space_parser.set_defaults(help_of=space_parser)
    space = space_parser.add_subparsers(title="space commands")
    p = space.add_parser("validate", help="check a space file (and its baselines) or a spec file")
    p.add_argument("file", help="a search-space YAML (or a shipped name: vision, mobile, sequence), a spec file or "
                                "an export's arch.json")
    p.add_argument("--no-constraints", action="store_true", help="skip the feasibility check of the constraints")
    p.set_defaults(handler=_space_validate)

    p = space.add_parser("show", help="print the grammar as a tree, with its size")
    p.add_argument("file")
    p.set_defaults(handler=_space_show)

    p = space.add_parser("sample", help="sample architectures: hash, summary, params, FLOPs")
    p.add_argument("file")
    p.add_argument("-n", "--num", type=int, default=5, help="how many (default 5)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the first sample (the next ones: +1, +2, ...)")
    p.add_argument("--json", action="store_true", help="print the spec JSON of each sample instead")
    p.add_argument("--latency-table", metavar="FILE", help="also print each sample's latency predicted by this table")
    p.set_defaults(handler=_space_sample)

    p = commands.add_parser("latency-table", help="measure the parts of a space's networks on this machine, for "
                                                  "latency predicted without timing (resumable)")
    p.add_argument("file", help="a search-space YAML or a shipped name")
    p.add_argument("--out", required=True, help="the table file (JSON); an existing one is continued")
    p.add_argument("--networks", type=_int_in(1), default=200, help="sampled networks whose parts are timed")
    p.add_argument("--overhead-networks", type=_int_in(2), default=20, help="of them, timed whole (the overhead)")
    p.add_argument("--rounds", type=_int_in(1), default=3, help="interleaved rounds per part (default 3)")
    p.add_argument("--threads", type=_int_in(1), default=1, help="CPU threads while timing (default 1)")
    p.add_argument("--batch", type=_int_in(1), default=1, help="batch size (default 1)")
    p.add_argument("--runtime", default="torch", choices=["torch"], help="what runs the parts (torch so far)")
    p.add_argument("--device", default="cpu", choices=["cpu"], help="where the parts run (cpu so far)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the first sampled network")
    p.add_argument("--input-shape", type=_shape, metavar="C,H,W|L,C", help="the networks' input (a run's: its data's "
                   "at its resolution; default: the space's reference input)")
    p.add_argument("--num-classes", type=_int_in(2), help="default: the space's reference classes")
    p.set_defaults(handler=_latency_table)

    p = commands.add_parser("eval", help="evaluate one spec (or one sample of a space) on a dataset")
    p.add_argument("target", help="a spec file (.json/.yaml) or an export (its folder or arch.json), or a space "
                                  "(file or shipped name) to sample from")
    p.add_argument("--dataset", default="digits", help="digits, fashion_mnist, mnist, cifar10, npz:PATH, ... ")
    p.add_argument("--data-dir", default=None, help="where .npz data sets are (default $NAS_DATA_DIR or "
                                                     "~/.cache/nas/data)")
    p.add_argument("--seed", type=_seed, default=0, help="training seed (and of the sample, for a space)")
    p.add_argument("--epochs", type=float, default=None, help="training epochs (fractions allowed; default 1, "
                                                              "as a search budget)")
    p.add_argument("--data-fraction", type=float, default=None, help="fraction of the training split used")
    p.add_argument("--resolution", type=float, default=None, help="input resolution multiplier (e.g. 0.5)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch size")
    p.add_argument("--train-subset", type=int, default=None, help="class-balanced subset of the training pool")
    p.add_argument("--device", default="auto", help="training device: auto, cpu, cuda")
    p.add_argument("--threads", type=_int_in(1), default=None,
                   help="torch CPU threads for training (default: torch's, which follows OMP_NUM_THREADS)")
    p.add_argument("--latency-device", default="cpu", help="where latency is timed: cpu, cuda or cuda:N")
    p.add_argument("--no-zero-cost", action="store_true", help="skip the zero-cost proxies")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.set_defaults(handler=_eval)
    _add_search_commands(commands)
    _add_ship_commands(commands)
    return parser


# -- space ------------------------------------------------------------------------------------------------------


def _is_spec_file(path: Path) -> bool:
    """A spec (.json / .yaml) or an export (its folder or arch.json), rather than a space."""
    if path.suffix == ".json":
        return True
    if path.is_dir():
        return (path / ARCH_FILE).is_file()
    if not path.exists():
        return False
    data, _ = load_yaml(read_text(path, what="space or spec file"), file=str(path))
    return isinstance(data, dict) and "cell" not in data and "stem" in data and "stages" in data \
        and isinstance(data.get("stages"), list) and all(isinstance(s, dict) and "mixer" in s
                                                         for s in data["stages"])


def _load_space(file: str):
    """The space ``file`` names, or one line saying what was given instead of a space: nothing, a run folder, a spec
    or an export (read as a space file, they gave '.: Is a directory' or 'unknown key ...')."""
    if not file.strip():
        raise NasError("empty space name; give a shipped space (vision, mobile, sequence) or a space file")
    path = Path(file)
    if path.is_dir():
        if RunDir.is_run(path):
            raise NasError(f"is a search run folder, not a space (the run's space is {path / 'space.yaml'})",
                           file=file)
    if _is_spec_file(path):
        spec = read_spec(path)[0]
        named = f" of space {spec.space!r}" if spec.space else ""
        raise NasError(f"is an architecture spec{named}, not a space (`nas space validate` checks a spec)", file=file)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        data, _ = load_yaml(read_text(path, what="space file"), file=file)
        if isinstance(data, dict) and "space" in data and "stages" not in data \
                and any(key in data for key in ("dataset", "objectives", "budget", "trials")):
            named = f" of space {data['space']!r}" if isinstance(data["space"], str) else ""
            raise NasError(f"is a run config (for `nas search`){named}, not a space", file=file)
    return load_space(file)


def _space_validate(args) -> int:
    path = Path(args.file)
    if _is_spec_file(path):
        spec, recorded = read_spec(path)
        where = ""
        if spec.space:
            candidates = [path.parent.parent / f"{spec.space}.yaml", path.parent / f"{spec.space}.yaml",
                          shipped_spaces_dir() / f"{spec.space}.yaml"]
            space_file = next((c for c in candidates if c.exists()), None)
            if space_file is not None:
                load_space(space_file).check_contains(spec, file=str(path))
                where = f", fits space {spec.space!r}"
            else:  # said, not skipped in silence
                where = f", names space {spec.space!r}, which is not found (not checked against it)"
        if recorded is not None:
            where += f", exported for input {list(recorded[0])} and {recorded[1]} classes"
        print(f"ok: spec {spec.hash()}{where}: {spec.summary()}")
        return 0
    space = _load_space(args.file)
    if not args.no_constraints:
        from nas.evaluate.costs import check_feasible  # heavy: torch

        check_feasible(space)
    baselines = f", {len(space.baselines)} baseline(s) fit" if space.baselines else ""
    print(f"ok: {space.describe()}{baselines}")
    return 0


def _space_show(args) -> int:
    from rich.console import Console
    from rich.tree import Tree

    space = _load_space(args.file)
    tree = Tree(f"[bold]{space.name}[/] ({space.input}) — {space.size()} architectures, "
                f"{len(space.choices())} choices")
    if space.description:
        tree.add(f"[dim]{space.description}[/]")
    branches: dict[str, Any] = {}
    titles = {"stem": "stem", "multipliers": "multipliers", "regularization": "regularization",
              "cell": "cell (shared by all stages)", "head": "head"}
    for param in space.params:
        if not param.is_choice and param.when:
            continue  # a conditional default (e.g. growth_rate when skip is dense): shown only when chosen
        scope = param.scope
        if scope not in branches:
            title = titles.get(scope) or f"stage {scope[1:]}"
            branches[scope] = tree.add(f"[bold cyan]{title}[/]")
        local = param.name.split(".", 1)[1]
        condition = ""
        if param.when:
            condition = " [dim]when " + ", ".join(
                f"{n.split('.', 1)[1]} in {{{', '.join(map(str, vals))}}}" for n, vals in param.when) + "[/]"
        style = "" if param.is_choice else "[dim]"
        end = "" if param.is_choice else "[/]"
        branches[scope].add(f"{style}{local} = {param.domain.describe()}{end}{condition}")
    if space.compound:
        alpha, beta, gamma = space.compound
        tree.add(f"compound scaling: depth {alpha}^phi, width {beta}^phi, resolution {gamma}^phi")
    if space.constraints:
        shape, classes = space.reference_input
        tree.add("constraints: " + ", ".join(f"{k} {v:,}" for k, v in space.constraints.items())
                 + f" (at input {list(shape)}, {classes} classes)")
    if space.baselines:
        node = tree.add("[bold]baselines[/]")
        for name, spec in space.baselines.items():
            node.add(f"{name} [dim]{spec.hash()}[/] {spec.summary()}")
    Console(width=160).print(tree)
    return 0


def _space_sample(args) -> int:
    if args.num < 1:
        raise NasError("-n must be at least 1", key="--num")
    from nas.evaluate import costs, latency_table  # heavy: torch

    space = _load_space(args.file)
    shape, classes = space.reference_input
    table = None
    if args.latency_table:
        table = latency_table.LatencyTable.load(args.latency_table).check_space(space)
    for i in range(args.num):
        spec = space.sample(args.seed + i)
        if args.json:
            print(spec.to_json(indent=None))
            continue
        counted = costs.constraint_costs(space, spec, shape, classes, what=("params", "flops"))  # by parts, once
        params, flops = counted["params"], counted["flops"]
        problems = costs.violations(space, spec, costs=counted) if space.constraints else []
        flag = f"  [violates: {'; '.join(problems)}]" if problems else ""
        predicted = f"  latency={table.predict(spec, fill=True):.3f}ms" if table else ""
        print(f"{spec.hash()}  params={_si(params):>7}  flops={_si(flops):>7}{predicted}  {spec.summary()}{flag}")
    return 0


def _latency_table(args) -> int:
    from nas.evaluate.latency_table import make_table  # heavy: torch

    table = make_table(_load_space(args.file), args.out, networks=args.networks,
                       overhead_networks=args.overhead_networks, rounds=args.rounds,
                       seed=args.seed, input_shape=args.input_shape, num_classes=args.num_classes,
                       runtime=args.runtime, threads=args.threads, batch_size=args.batch,
                       device=args.device, progress=lambda line: print(line, file=sys.stderr, flush=True))
    fit = table.fit
    print(f"{args.out}: {len(table.parts)} parts; a network = {fit['slope']:.3f} x its parts "
          f"{'+-'[fit['intercept_ms'] < 0]} {abs(fit['intercept_ms']):.3f} ms (fitted on {fit['networks']} networks)")
    return 0


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


# -- eval -------------------------------------------------------------------------------------------------------


def _eval(args) -> int:
    from nas.evaluate.evaluate import EvalConfig, check_input_kind, evaluate, load_data  # heavy: torch

    path = Path(args.target)
    if _is_spec_file(path):
        spec = read_spec(path)[0]
        what, file = "the spec", str(path)
    else:
        space = _load_space(args.target)
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
    p.add_argument("--seed", type=_seed, default=None, help="the run's seed (sampler, splits, training); default: "
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
                                         "failed, best values, front size, last activity")
    p.add_argument("runs_dir", nargs="?", default="runs", help="the folder holding run folders (default ./runs)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(handler=_runs)

    p = commands.add_parser("show", help="one run (settings, counts, front) or one trial of it (spec, objectives, "
                                         "costs, curve, failure reason, baselines it dominates)")
    p.add_argument("run_dir", help="the run folder, e.g. runs/demo")
    p.add_argument("--trial", type=_int_in(0), default=None, metavar="N", help="show trial N instead of the run")
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
    p.add_argument("--max-latency-ms", type=float, default=None, help="the most accurate trial within this latency")
    p.add_argument("--min-accuracy", type=float, default=None, help="the fastest trial reaching this accuracy")
    p.add_argument("-o", "--out", default=None,
                   help="export folder (default: RUN/exports/trial-NNNN, or exports/HASH for a spec file)")
    p.add_argument("--dataset", default=None, help="spec file only: the dataset giving input shape and classes "
                                                   "(default for an export: those it records)")
    p.add_argument("--data-dir", default=None, help="where .npz data sets are (default $NAS_DATA_DIR)")
    p.add_argument("--input-shape", type=_shape, default=None, metavar="C,H,W|L,C",
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
    p.add_argument("--seed", type=_seed, default=0, help="training seed (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--train-subset", type=int, default=None, help="class-balanced subset of the training pool")
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="EPOCHS",
                   help="write a resumable checkpoint every EPOCHS epochs (default 1)")
    p.add_argument("--max-epochs", type=_int_in(1), default=None,
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
    paths = export_from(args.target, args.out, trial=args.trial, dataset=args.dataset, data_dir=args.data_dir,
                        input_shape=shape, num_classes=args.num_classes, opset=args.opset, force=args.force,
                        max_latency_ms=args.max_latency_ms, min_accuracy=args.min_accuracy, knee=args.knee)
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
