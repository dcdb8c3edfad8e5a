"""The ``nas`` command line: thin — parses arguments, calls the API, turns known errors into one line + exit 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from nas.errors import NasError

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except NasError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas", description="Neural architecture search over a pattern grammar.")
    commands = parser.add_subparsers(title="commands")

    space = commands.add_parser("space", help="inspect search spaces").add_subparsers(title="space commands")
    p = space.add_parser("validate", help="check a space file (and its baselines) or a spec file")
    p.add_argument("file", help="a search-space YAML (or a shipped name: vision, mobile, sequence) or a spec file")
    p.add_argument("--no-constraints", action="store_true", help="skip the feasibility check of the constraints")
    p.set_defaults(handler=_space_validate)

    p = space.add_parser("show", help="print the grammar as a tree, with its size")
    p.add_argument("file")
    p.set_defaults(handler=_space_show)

    p = space.add_parser("sample", help="sample architectures: hash, summary, params, FLOPs")
    p.add_argument("file")
    p.add_argument("-n", "--num", type=int, default=5, help="how many (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the spec JSON of each sample instead")
    p.set_defaults(handler=_space_sample)

    p = commands.add_parser("eval", help="evaluate one spec (or one sample of a space) on a dataset")
    p.add_argument("target", help="a spec file (.json/.yaml), or a space (file or shipped name) to sample from")
    p.add_argument("--dataset", default="digits", help="digits, fashion_mnist, mnist, cifar10, npz:PATH, ... ")
    p.add_argument("--data-dir", default=None, help="where .npz data sets are (default $NAS_DATA_DIR or "
                                                     "~/.cache/nas/data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--data-fraction", type=float, default=None)
    p.add_argument("--resolution", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--train-subset", type=int, default=None, help="class-balanced subset of the training pool")
    p.add_argument("--device", default="auto", help="training device: auto, cpu, cuda")
    p.add_argument("--latency-device", default="cpu")
    p.add_argument("--no-zero-cost", action="store_true", help="skip the zero-cost proxies")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    p.set_defaults(handler=_eval)
    return parser


# -- space ------------------------------------------------------------------------------------------------------


def _is_spec_file(path: Path) -> bool:
    if path.suffix == ".json":
        return True
    if not path.exists():
        return False
    from nas.yamlio import load_yaml

    data, _ = load_yaml(path.read_text(), file=str(path))
    return isinstance(data, dict) and "cell" not in data and "stem" in data and "stages" in data \
        and isinstance(data.get("stages"), list) and all(isinstance(s, dict) and "mixer" in s
                                                         for s in data["stages"])


def _space_validate(args) -> int:
    from nas.grammar import load_space, shipped_spaces_dir
    from nas.spec import ArchSpec

    path = Path(args.file)
    if _is_spec_file(path):
        spec = ArchSpec.load(path)
        where = ""
        if spec.space:
            candidates = [path.parent.parent / f"{spec.space}.yaml", path.parent / f"{spec.space}.yaml",
                          shipped_spaces_dir() / f"{spec.space}.yaml"]
            space_file = next((c for c in candidates if c.exists()), None)
            if space_file is not None:
                load_space(space_file).check_contains(spec, file=str(path))
                where = f", fits space {spec.space!r}"
        print(f"ok: spec {spec.hash()}{where}: {spec.summary()}")
        return 0
    space = load_space(args.file)
    if not args.no_constraints:
        space.check_feasible()
    baselines = f", {len(space.baselines)} baseline(s) fit" if space.baselines else ""
    print(f"ok: {space.describe()}{baselines}")
    return 0


def _space_show(args) -> int:
    from rich.console import Console
    from rich.tree import Tree

    from nas.grammar import load_space

    space = load_space(args.file)
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
    from nas.builder import build, example_input
    from nas.evaluate.measure import count_flops, count_params
    from nas.grammar import load_space

    if args.num < 1:
        raise NasError("-n must be at least 1", key="--num")
    space = load_space(args.file)
    shape, classes = space.reference_input
    for i in range(args.num):
        spec = space.sample(args.seed + i)
        if args.json:
            print(spec.to_json(indent=None))
            continue
        model = build(spec, shape, classes)
        params = count_params(model)
        flops = count_flops(model, example_input(model, 1))
        problems = space.violations(spec) if space.constraints else []
        flag = f"  [violates: {'; '.join(problems)}]" if problems else ""
        print(f"{spec.hash()}  params={_si(params):>7}  flops={_si(flops):>7}  {spec.summary()}{flag}")
    return 0


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


# -- eval -------------------------------------------------------------------------------------------------------


def _eval(args) -> int:
    from nas.evaluate.evaluate import EvalConfig, evaluate
    from nas.grammar import load_space
    from nas.spec import ArchSpec

    path = Path(args.target)
    if _is_spec_file(path):
        spec = ArchSpec.load(path)
    else:
        spec = load_space(args.target).sample(args.seed)
    overrides = {k: v for k, v in {
        "epochs": args.epochs, "data_fraction": args.data_fraction, "resolution": args.resolution,
        "batch_size": args.batch_size}.items() if v is not None}
    config = EvalConfig.from_options(dataset=args.dataset, data_dir=args.data_dir, seed=args.seed,
                                     device=args.device, latency_device=args.latency_device,
                                     train_subset=args.train_subset, zero_cost=not args.no_zero_cost,
                                     budget=overrides)
    result = evaluate(spec, config)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.report())
    return 0 if result.status in ("ok", "pruned") else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
