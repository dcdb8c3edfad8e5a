"""Search quality on NAS-Bench-201's table: our engine's samplers against Optuna's samplers run straight on the table.

Every run is a real search through the engine (``nas.control.search.search``: journal storage, the run's sampler,
no-repeat reuse, progress) with ``evaluator: nb201``: a trial's accuracy is ONE training seed's validation accuracy
(200 epochs) drawn by the run's seed, and the architecture a run would pick after n trials (the best mean observed
accuracy among the first n: one trial each, more where the run confirms its leader with repeats, ``confirm_best``,
which draw the cell's other seeds) is scored by its ground truth, the mean over NB201's seeds. The peers are
Optuna's samplers asking the six edges directly, told the same drawn accuracy (no engine, no reuse of repeats);
their pick is the best observed trial.

Studies:

* ``one``: objective accuracy; median and quartiles of the picked ground truth (percent) after 25, 50, 100, 300
  trials, and a one-sided Mann-Whitney test of the default sampler against Optuna's TPE at 25 and 50 trials.
* ``two``: objectives accuracy and params, then accuracy and latency_ms (NB201's measured latency); hypervolume of
  the ground-truth front of the trials run so far over that of the true front of all 15,625 (reference point: the
  worst accuracy and the largest cost in the table), after 50, 100 and 300 trials, and a one-sided Mann-Whitney test
  of the default sampler against Optuna's NSGA-II and TPE at 50 and 100 trials.
* ``overhead``: wall seconds of 1,000 trials of the default sampler, and of NSGA-II, on the journal storage.

    python experiments/bench_nb201.py                              # cifar10, all studies: about 50 min on 2 cores
    python experiments/bench_nb201.py --dataset cifar100 --study one   # about 20 min
    python experiments/bench_nb201.py --study one --seeds 3 --trials 100 --no-write
    python experiments/bench_nb201.py --study two --costs params --samplers-two predictor:candidates=64 predictor

Writes experiments/results/bench_nb201.md and .csv (cifar10), bench_nb201_<dataset>.md and .csv (the others), or
``--out NAME``: NAME.md and NAME.csv.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, machine_info  # noqa: E402

CHECKPOINTS_ONE = (25, 50, 100, 300)
CHECKPOINTS_TWO = (50, 100, 300)
DEFAULT = "default"  # a sampler name: the run's default for its objectives (RunConfig.sampler_name)


def default_sampler(objectives: list[str], dataset: str) -> str:
    """The sampler a table run with these objectives gets when its config names none."""
    from nas.control.config import load_config

    config, _ = load_config({"space": "nb201", "evaluator": "nb201", "dataset": dataset, "objectives": objectives,
                             "trials": 1})
    return config.sampler_name


def sampler_setting(text: str) -> tuple[str, dict]:
    """``NAME`` or ``NAME:KEY=VALUE,...`` (run config keys for that sampler, values read as YAML, e.g.
    ``predictor:candidates=64``) -> (name, keys)."""
    import yaml

    name, _, rest = text.partition(":")
    keys = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise SystemExit(f"error: sampler {text!r}: {item!r} is not KEY=VALUE")
        keys[key.strip()] = yaml.safe_load(value)
    return name, keys


def engine_run(sampler: str, seed: int, trials: int, objectives: list[str], dataset: str) -> list[dict]:
    """One search through the engine (``sampler``: see :func:`sampler_setting`); its trials in order as
    {value(s), index}."""
    from nas.control.search import search

    name, keys = sampler_setting(sampler)
    config = {"space": "nb201", "evaluator": "nb201", "dataset": dataset, "objectives": objectives,
              "trials": trials, "seed": seed, **keys}
    if name != DEFAULT:  # else the run resolves its default sampler, as a config without ``sampler`` does
        config["sampler"] = name
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        study = search(config, name="run", runs_dir=tmp, quiet=True)
        trials_ = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        return [{"values": list(t.values), "index": t.user_attrs["nb201_index"],
                 "reused": "reused_from" in t.user_attrs} for t in trials_ if t.state.name == "COMPLETE"]


def optuna_run(sampler: str, seed: int, trials: int, objectives: list[str], dataset: str) -> list[dict]:
    """Optuna's sampler on the six edges directly (the peer): told the same drawn accuracy as the engine's runs."""
    import optuna

    from nas.bench.nb201_table import EDGES, OPS, Table
    from nas.evaluate.tabular import NB201_INPUT, seed_of

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = Table.load(dataset)
    classes = NB201_INPUT[dataset][1]
    make = {"tpe": lambda: optuna.samplers.TPESampler(seed=seed),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed)}[sampler]
    directions = ["maximize"] + ["minimize"] * (len(objectives) - 1)
    study = optuna.create_study(directions=directions, sampler=make())
    rows = []
    for _ in range(trials):
        trial = study.ask()
        index = "".join(str(OPS.index(trial.suggest_categorical(e, list(OPS)))) for e in EDGES)
        entry = table[index]
        values = [entry.accuracy(seed_of(seed, index, len(entry.val_acc)))]
        if len(objectives) > 1:
            values.append(cost_of(entry, objectives[1], classes))
        study.tell(trial, values)
        rows.append({"values": values, "index": index})
    return rows


def picked_truth(rows: list[dict], n: int, dataset: str) -> float:
    """The ground truth (mean accuracy, percent) of the architecture the run picks after its first ``n`` trials: the
    best mean observed accuracy over each architecture's evaluations (the run's rule, :mod:`nas.control.pick`: a
    ``confirm_best`` repeat adds an evaluation, a reused result does not; ties: the earlier architecture). An Optuna
    peer evaluates each architecture once, so this is its best observed trial."""
    from nas.bench.nb201_table import Table

    seen: dict[str, list[float]] = {}
    for row in rows[:n]:
        if not row.get("reused"):
            seen.setdefault(row["index"], []).append(row["values"][0])
    _, best = max(enumerate(seen), key=lambda pair: (sum(seen[pair[1]]) / len(seen[pair[1]]), -pair[0]))
    return Table.load(dataset)[best].mean_accuracy * 100


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """2-D hypervolume of (accuracy to maximize, cost to minimize) points against ``ref`` (worst of each)."""
    front = sorted({p for p in points if p[0] > ref[0] and p[1] < ref[1]}, key=lambda p: (-p[0], p[1]))
    volume, best_params = 0.0, ref[1]
    for acc, params in front:  # by falling accuracy: each point adds the area its lower params opens
        if params < best_params:
            volume += (acc - ref[0]) * (best_params - params)
            best_params = params
    return volume


def cost_of(entry, objective: str, classes: int) -> float:
    """The second objective of a two-objective run, as the tabular evaluator reports it."""
    from nas.bench.nb201 import param_count

    return float(param_count(entry.index, classes)) if objective == "params" else entry.latency_s * 1000.0


def true_front_hv(dataset: str, objective: str) -> tuple[float, tuple[float, float]]:
    from nas.bench.nb201_table import Table
    from nas.evaluate.tabular import NB201_INPUT

    classes = NB201_INPUT[dataset][1]
    points = [(e.mean_accuracy, cost_of(e, objective, classes)) for e in Table.load(dataset)]
    ref = (min(p[0] for p in points), max(p[1] for p in points))
    return hypervolume(points, ref), ref


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return q[0], statistics.median(xs), q[2]


def study_one(report: Report, args) -> list[list]:
    from scipy.stats import mannwhitneyu

    from nas.bench.nb201_table import Table

    optimum = Table.load(args.dataset).best().mean_accuracy * 100
    picks: dict[str, dict[int, list[float]]] = {}
    runs = [(f"nas:{s}", s) for s in args.samplers] + [(f"optuna:{s}", s) for s in ("tpe", "random")]
    for label, sampler in runs:
        slow = sampler_setting(sampler)[0] == "predictor" and label.startswith("nas")
        trials = args.predictor_trials if slow else args.trials
        seeds = args.predictor_seeds if slow else args.seeds
        start = time.perf_counter()
        for seed in range(seeds):
            run = engine_run if label.startswith("nas") else optuna_run
            rows = run(sampler, seed, trials, ["accuracy"], args.dataset)
            for n in CHECKPOINTS_ONE:
                if n <= trials:
                    picks.setdefault(label, {}).setdefault(n, []).append(picked_truth(rows, n, args.dataset))
        print(f"{label}: {seeds} seeds x {trials} trials in {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for label, by_n in picks.items():
        for n, xs in sorted(by_n.items()):
            q1, med, q3 = quartiles(xs)
            at_optimum = sum(abs(x - optimum) < 1e-6 for x in xs)
            rows.append([label, n, len(xs), round(med, 2), round(q1, 2), round(q3, 2), f"{at_optimum}/{len(xs)}"])
    report.table(["sampler", "trials", "seeds", "median", "q1", "q3", "at optimum"], rows,
                 csv=None if args.no_write else f"{report.name}.csv",
                 title=f"One objective ({args.dataset}): ground truth of the picked architecture, percent "
                       f"(optimum {optimum:.2f})")
    default = f"nas:{args.samplers[0]}"
    tests = []
    for n in (25, 50):
        if n in picks.get(default, {}) and n in picks.get("optuna:tpe", {}):
            p = mannwhitneyu(picks[default][n], picks["optuna:tpe"][n], alternative="greater").pvalue
            tests.append([default, "optuna:tpe", n, f"{p:.3g}"])
    if tests:
        report.table(["ours", "peer", "trials", "p (ours > peer, Mann-Whitney)"], tests,
                     title="Ahead of Optuna's TPE run straight on the table?")
    best_draws = draw_ceiling(args.dataset, args.seeds)
    report.text(f"A pick by one draw per cell cannot reach the optimum in every seed: even a run that evaluated all "
                f"15,625 cells once would see the optimum's draw as the best in {best_draws} of {args.seeds} seeds "
                "(its seeds' values disagree by up to 0.3 points, and close cells draw high ones). Repeats of the "
                "leader (``confirm_best``) average that away.\n")
    return rows


def draw_ceiling(dataset: str, seeds: int) -> int:
    """In how many of the run seeds 0..seeds-1 the optimum's drawn accuracy is the best draw of all the cells (ties
    count against it): the most a pick by one evaluation per cell could reach."""
    from nas.bench.nb201_table import Table, all_indices
    from nas.evaluate.tabular import seed_of

    table = Table.load(dataset)
    best = table.best().index
    wins = 0
    for seed in range(seeds):
        draws = {i: table[i].accuracy(seed_of(seed, i, len(table[i].val_acc))) for i in all_indices()}
        top = draws[best]
        wins += all(v < top for i, v in draws.items() if i != best)
    return wins


def study_two(report: Report, args) -> None:
    from scipy.stats import mannwhitneyu

    from nas.bench.nb201_table import Table

    table = Table.load(args.dataset)
    for cost in args.costs:
        true_hv, ref = true_front_hv(args.dataset, cost)
        ratios: dict[str, dict[int, list[float]]] = {}
        # the default first (named by what it resolves to), then the other samplers of ours, then the peers
        default_name = default_sampler(["accuracy", cost], args.dataset)
        default = f"nas:default ({default_name})"
        runs = [(default, DEFAULT)] + [(f"nas:{s}", s) for s in args.samplers_two if s != default_name] + \
            [(f"optuna:{s}", s) for s in ("nsga2", "tpe")]
        checkpoints = [n for n in CHECKPOINTS_TWO if n <= args.trials_two] or [args.trials_two]
        for label, sampler in runs:
            seeds = args.seeds_two
            start = time.perf_counter()
            for seed in range(seeds):
                run = engine_run if label.startswith("nas") else optuna_run
                rows = run(sampler, seed, max(checkpoints), ["accuracy", cost], args.dataset)
                for n in checkpoints:
                    points = [(table[r["index"]].mean_accuracy, r["values"][1]) for r in rows[:n]]
                    ratios.setdefault(label, {}).setdefault(n, []).append(hypervolume(points, ref) / true_hv)
            print(f"{label} ({cost}): {seeds} seeds in {time.perf_counter() - start:.0f} s", flush=True)
        rows = []
        for label, by_n in ratios.items():
            for n, xs in sorted(by_n.items()):
                q1, med, q3 = quartiles(xs)
                rows.append([label, n, len(xs), round(med, 4), round(q1, 4), round(q3, 4)])
        report.table(["sampler", "trials", "seeds", "median HV ratio", "q1", "q3"], rows,
                     csv=None if args.no_write else f"{report.name}_{cost}.csv",
                     title=f"Two objectives ({args.dataset}: accuracy, {cost}): hypervolume of the found front over "
                           "the true front's")
        tests = []
        for peer in ("optuna:nsga2", "optuna:tpe"):
            for n in (50, 100):
                if n in ratios.get(default, {}) and n in ratios.get(peer, {}):
                    p = mannwhitneyu(ratios[default][n], ratios[peer][n], alternative="greater").pvalue
                    tests.append([default, peer, n, f"{p:.3g}"])
        if tests:
            report.table(["ours", "peer", "trials", "p (ours > peer, Mann-Whitney)"], tests,
                         title=f"Ahead of Optuna's samplers run straight on the table (accuracy, {cost})?")


def study_overhead(report: Report, args) -> None:
    rows = []
    for sampler, objectives in ((args.samplers[0], ["accuracy"]), ("nsga2", ["accuracy", "params"])):
        start = time.perf_counter()
        engine_run(sampler, 0, args.overhead_trials, objectives, args.dataset)
        rows.append([sampler, len(objectives), args.overhead_trials, round(time.perf_counter() - start, 1)])
    report.table(["sampler", "objectives", "trials", "wall s"], rows,
                 title="Engine overhead on the table (journal storage, one process)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", choices=("one", "two", "overhead", "all"), default="all")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random", "evolution", "nsga2", "predictor"],
                        help="our samplers for the one-objective study; the first is the default's (NAME or "
                             "NAME:KEY=VALUE,... with run config keys, e.g. predictor:candidates=64)")
    parser.add_argument("--samplers-two", nargs="*", default=["predictor", "tpe", "nsga2", "random"],
                        help="our samplers for the two-objective study besides the default (which runs first, as "
                             "nas:default (NAME); NAME is left out of these)")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--predictor-seeds", type=int, default=20)
    parser.add_argument("--predictor-trials", type=int, default=100)
    parser.add_argument("--seeds-two", type=int, default=20)
    parser.add_argument("--trials-two", type=int, default=max(CHECKPOINTS_TWO),
                        help="trials of each two-objective run (its checkpoints up to there)")
    parser.add_argument("--costs", nargs="+", choices=("params", "latency_ms"), default=["params", "latency_ms"],
                        help="the second objectives of the two-objective study")
    parser.add_argument("--overhead-trials", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--out", default=None, metavar="NAME",
                        help="the page's name under experiments/results (default bench_nb201, "
                             "bench_nb201_<dataset> for another dataset)")
    args = parser.parse_args(argv)
    import optuna

    name = args.out or ("bench_nb201" if args.dataset == "cifar10" else f"bench_nb201_{args.dataset}")
    report = Report(name, f"Search quality on NAS-Bench-201's table ({args.dataset})",
                    info={**machine_info(), "optuna": optuna.__version__})
    report.text(__doc__.split("\n\n")[1] + "\n")
    if args.study in ("one", "all"):
        study_one(report, args)
    if args.study in ("two", "all"):
        study_two(report, args)
    if args.study in ("overhead", "all"):
        study_overhead(report, args)
    if not args.no_write:
        report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
