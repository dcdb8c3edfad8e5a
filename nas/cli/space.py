"""The space commands: ``nas space validate / show / sample`` and ``nas latency-table``."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from nas.archjson import ARCH_FILE, read_spec
from nas.catalog import LATENCY_RUNTIMES
from nas.cli.args import int_in, seed, shape
from nas.control.rundir import RunDir
from nas.errors import NasError
from nas.grammar import load_space, shipped_spaces_dir
from nas.io import load_yaml, read_text


def add_space_commands(commands) -> None:
    space_parser = commands.add_parser("space", help="inspect search spaces")
    space_parser.set_defaults(help_of=space_parser)
    space = space_parser.add_subparsers(title="space commands")
    p = space.add_parser("validate", help="check a space file (and its baselines) or a spec file")
    p.add_argument("file", help="a search-space YAML (or a shipped name: vision, mobile, sequence), a spec file or "
                                "an export's arch.json")
    p.add_argument("--no-constraints", action="store_true", help="skip the feasibility check of the constraints")
    p.set_defaults(handler=space_validate)

    p = space.add_parser("show", help="print the grammar as a tree, with its size")
    p.add_argument("file")
    p.set_defaults(handler=space_show)

    p = space.add_parser("sample", help="sample architectures: hash, summary, params, FLOPs")
    p.add_argument("file")
    p.add_argument("-n", "--num", type=int, default=5, help="how many (default 5)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the first sample (the next ones: +1, +2, ...)")
    p.add_argument("--json", action="store_true", help="print the spec JSON of each sample instead")
    p.add_argument("--latency-table", metavar="FILE", help="also print each sample's latency predicted by this table")
    p.set_defaults(handler=space_sample)

    p = commands.add_parser("latency-table", help="measure the parts of a space's networks on this machine, for "
                                                  "latency predicted without timing (resumable)")
    p.add_argument("file", help="a search-space YAML or a shipped name")
    p.add_argument("--out", required=True, help="the table file (JSON); an existing one is continued")
    p.add_argument("--networks", type=int_in(1), default=200, help="sampled networks whose parts are timed")
    p.add_argument("--overhead-networks", type=int_in(2), default=20, help="of them, timed whole (the overhead)")
    p.add_argument("--rounds", type=int_in(1), default=3, help="interleaved rounds per part (default 3)")
    p.add_argument("--threads", type=int_in(1), default=1, help="CPU threads while timing (default 1)")
    p.add_argument("--batch", type=int_in(1), default=1, help="batch size (default 1)")
    p.add_argument("--runtime", default="torch", choices=list(LATENCY_RUNTIMES),
                   help="what runs the parts and the networks: torch, or onnxruntime (each part's ONNX graph in a "
                        "session with --threads; as latency_runtime: onnxruntime times a network)")
    p.add_argument("--device", default="cpu", choices=["cpu"], help="where the parts run (cpu so far)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the first sampled network")
    p.add_argument("--input-shape", type=shape, metavar="C,H,W|L,C", help="the networks' input (a run's: its data's "
                   "at its resolution; default: the space's reference input)")
    p.add_argument("--num-classes", type=int_in(2), help="default: the space's reference classes")
    p.set_defaults(handler=latency_table_command)


def is_spec_file(path: Path) -> bool:
    """A spec (.json / .yaml) or an export (its folder or arch.json), rather than a space."""
    if path.suffix == ".json":
        return True
    if path.is_dir():
        return (path / ARCH_FILE).is_file()
    if not path.exists():
        return False
    data, _ = load_yaml(read_text(path, what="space or spec file"), file=str(path))
    if not isinstance(data, dict) or "cell" in data or "families" in data:  # a space's keys
        return False
    return "stem" in data and isinstance(data.get("stages"), list) and all(isinstance(s, dict) and "mixer" in s
                                                                           for s in data["stages"])


def load_space_arg(file: str):
    """The space ``file`` names, or one line saying what was given instead of a space: nothing, a run folder, a spec
    or an export (read as a space file, they gave '.: Is a directory' or 'unknown key ...')."""
    if not file.strip():
        raise NasError("empty space name; give a shipped space (vision, mobile, sequence) or a space file")
    path = Path(file)
    if path.is_dir():
        if RunDir.is_run(path):
            raise NasError(f"is a search run folder, not a space (the run's space is {path / 'space.yaml'})",
                           file=file)
    if is_spec_file(path):
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


def space_validate(args) -> int:
    path = Path(args.file)
    if is_spec_file(path):
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
    space = load_space_arg(args.file)
    if not args.no_constraints:
        from nas.evaluate.costs import check_feasible  # heavy: torch

        check_feasible(space)
    baselines = f", {len(space.baselines)} baseline(s) fit" if space.baselines else ""
    print(f"ok: {space.describe()}{baselines}")
    return 0


def space_show(args) -> int:
    from rich.console import Console
    from rich.tree import Tree

    space = load_space_arg(args.file)
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
        family, _, part = scope.rpartition(".")  # a family's scopes: "<family>.s2", "<family>.cell", ...
        if scope not in branches:
            title = titles.get(part) or (f"stage {part[1:]}" if part[1:].isdigit() else part)
            branches[scope] = tree.add(f"[bold cyan]{family + ': ' if family else ''}{title}[/]")
        local = param.name[len(scope) + 1:] if param.name.startswith(scope + ".") else param.name
        shown = [(n, vals) for n, vals in param.when if n != "family"]  # a family's choices: under its name
        condition = ""
        if shown:
            condition = " [dim]when " + ", ".join(
                f"{n[len(family) + 1:] if family else n}".split(".", 1)[-1] + f" in {{{', '.join(map(str, vals))}}}"
                for n, vals in shown) + "[/]"
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


def space_sample(args) -> int:
    if args.num < 1:
        raise NasError("-n must be at least 1", key="--num")
    from nas.evaluate import costs, latency_table  # heavy: torch

    space = load_space_arg(args.file)
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
        print(f"{spec.hash()}  params={si(params):>7}  flops={si(flops):>7}{predicted}  {spec.summary()}{flag}")
    return 0


def latency_table_command(args) -> int:
    from nas.evaluate.latency_table import fit_text, make_table  # heavy: torch

    table = make_table(load_space_arg(args.file), args.out, networks=args.networks,
                       overhead_networks=args.overhead_networks, rounds=args.rounds,
                       seed=args.seed, input_shape=args.input_shape, num_classes=args.num_classes,
                       runtime=args.runtime, threads=args.threads, batch_size=args.batch,
                       device=args.device, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"{args.out}: {len(table.parts)} parts; a network = {fit_text(table.fit)} (fitted on "
          f"{table.fit['networks']} networks timed whole)")
    return 0


def si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


