"""NAS-Bench-201 end to end: the engine searching the nb201 space with proxy training (not the table), the picks
looked up in the table.

Each run is ``nas search`` on a run config of the nb201 space, on the CIFAR-10 subset of the shared data (``--data-dir``
or NAS_DATA_DIR), objective accuracy, proxy budget ``--epochs`` at ``--resolution`` (default 5 epochs at 16x16, the
budget of the best Kendall tau in experiments/results/nb201_fidelity.md), ``--workers`` worker processes of one torch
thread each, for a wall-clock budget of ``--hours``: the default sampler (resolved at run creation) against random
search, ``--seeds`` each. A run's *pick* after t minutes is the trial its default rule picks among the trials finished
by then (config rank_with: naswot, the best mean rank under proxy accuracy and the trial's own NASWOT); its ground
truth is the table's CIFAR-10 validation accuracy after 200 epochs (mean over NB201's seeds), beside the table's
optimum (91.61) and the published one-hour-class results on NB201 (REA 91.19 +- 0.31, random search 90.93 +- 0.36,
NB201's Table 5, cifar10-valid, which search on the table, not with proxy training).

Resumable: every run is a folder under ``--work`` (default runs/nb201_e2e/); run the same command again after a kill
and each run continues (``--resume``) until its trials' wall time reaches the budget. A finished run's trials (accuracy,
NB201 index, finish time) are kept in experiments/results/nb201_end_to_end_runs.jsonl with its settings, date and
machine, so the runs of the study can be spread over several sessions or machines: a run recorded there with the same
settings is not run again, and the page is written from the records of every run asked for.

    NAS_DATA_DIR=../shared/data python experiments/nb201_end_to_end.py                  # 1 h x 2 samplers x 3 seeds
    # the reduced proxy of the best fidelity (nb201_fidelity_width.md), scored by its validation loss:
    NAS_DATA_DIR=../shared/data python experiments/nb201_end_to_end.py --epochs 10 --resolution 0.75 --depth 0.2 \
        --width 0.5 --objective val_loss --out nb201_end_to_end_loss
    NAS_DATA_DIR=../shared/data python experiments/nb201_end_to_end.py --hours 0.03 --seeds 0 --no-write   # pilot

Writes experiments/results/nb201_end_to_end.md and .csv (``--out`` names another page).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, RESULTS_DIR, Report, cpu_model, machine_info, source_hash, usable_cores  # noqa: E402

NAME = "nb201_end_to_end"
RECORDS = RESULTS_DIR / f"{NAME}_runs.jsonl"
SAMPLERS = {"default": None, "random": "random"}
# How a run's pick is made from its finished trials (:func:`pick_truth`). A run picks by its config's rank_with
# (nas.control.pick): a new one-objective run of proxy training by the mean of its trials' ranks under proxy accuracy
# and each trial's own NASWOT (``run_naswot``: at the run's input, on its seed's batch): DEFAULT_RULE. The others rank
# the same trials by proxy accuracy alone (rank_with: none), by a zero-cost score alone, or by the mean rank with one
# (``naswot`` here scored for this page at 32x32 on seed 0's batch; ``params`` NB201's parameter count).
DEFAULT_RULE = ("accuracy", "run_naswot")
# A run whose objective is the proxy's validation loss (``--objective val_loss``) picks the same way with the loss in
# place of the accuracy (lower is better: a rule's name with a leading "-" ranks by the value negated).
DEFAULT_RULES = {"accuracy": DEFAULT_RULE, "val_loss": ("-val_loss", "run_naswot")}
LOSS_RULES = {"proxy loss alone": ("-val_loss",), "mean rank of proxy loss and naswot (32x32, seed 0's batch)":
              ("-val_loss", "naswot")}
PICK_RULES = {"proxy accuracy alone (rank_with: none)": ("accuracy",), "naswot": ("naswot",), "params": ("params",),
              "mean rank of proxy accuracy and naswot (32x32, seed 0's batch)": ("accuracy", "naswot"),
              "mean rank of proxy accuracy and params": ("accuracy", "params"),
              "mean rank of proxy accuracy and the trial's own naswot (rank_with: naswot, the default)": DEFAULT_RULE}
PUBLISHED = "NB201 Table 5 (cifar10-valid, searching the table): REA 91.19 +- 0.31, random search 90.93 +- 0.36"


def objective_of(args) -> str:
    return getattr(args, "objective", "accuracy")


def budget_of(args) -> dict:
    """The proxy budget of the study's runs; ``depth`` / ``width`` only below 1 (a reduced proxy)."""
    budget = {"epochs": args.epochs, "resolution": args.resolution, "batch_size": args.batch_size}
    for key in ("depth", "width"):
        if getattr(args, key, 1.0) != 1.0:
            budget[key] = getattr(args, key)
    return budget


def run_config(args, sampler: str | None, seed: int, budget_s: float) -> dict:
    config = {"name": "nb201_e2e", "space": "nb201", "dataset": "cifar10", "objectives": [objective_of(args)],
              "budget": budget_of(args), "val_fraction": 0.1, "seed": seed, "time_budget_s": budget_s,
              "train_threads": 1, "device": "cpu"}
    if args.data_dir:
        config["data_dir"] = args.data_dir
    if sampler:
        config["sampler"] = sampler
    return config


def finished(run: Path) -> list[dict]:
    """The run's complete trials in the order they finished: proxy accuracy, NB201 index, seconds since the run's
    start, the trial's own NASWOT score where it recorded one (``run_naswot``) and, for a run whose objective is the
    validation loss, that loss (``val_loss``)."""
    import optuna

    from nas.bench.nb201 import to_index
    from nas.control.rundir import RunDir
    from nas.spec import ArchSpec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = RunDir.open(run).load_study()
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not trials:
        return []
    start = min(t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start)
    rows = []
    for t in sorted(trials, key=lambda t: t.datetime_complete):
        spec = ArchSpec.from_json(t.user_attrs["spec"]) if "spec" in t.user_attrs else None
        index = t.user_attrs.get("nb201_index") or (to_index(spec) if spec is not None else None)
        measured = t.user_attrs.get("objectives") or {}
        row = {"accuracy": measured.get("accuracy", t.values[0]), "index": index,
               "end_s": (t.datetime_complete - start).total_seconds(),
               "seconds": (t.datetime_complete - t.datetime_start).total_seconds()}
        if isinstance(measured.get("val_loss"), (int, float)) and math.isfinite(measured["val_loss"]):
            row["val_loss"] = float(measured["val_loss"])
        naswot = (t.user_attrs.get("zero_cost") or {}).get("naswot")
        if isinstance(naswot, (int, float)) and math.isfinite(naswot):  # as nas export --rank-with keeps them
            row["run_naswot"] = float(naswot)
        rows.append(row)
    return rows


def check_folder(run: Path, args) -> None:
    """Refuse to continue a run folder made for another budget or objective (``--work`` holds one folder per sampler
    and seed, whatever the setting): its trials would be counted for this one."""
    import yaml

    if not (run / "config.yaml").exists():
        return
    config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    wanted = {"depth": 1.0, "width": 1.0, **run_config(args, None, 0, 1.0)["budget"]}
    budget = {"depth": 1.0, "width": 1.0, **(config.get("budget") or {})}
    if config.get("objectives") != [objective_of(args)] or any(float(budget.get(k, -1)) != float(v)
                                                               for k, v in wanted.items()):
        raise SystemExit(f"error: {run} holds a run of another setting (objectives {config.get('objectives')}, budget "
                         f"{config.get('budget')}); give --work another folder")


def setting_of(args) -> dict:
    """What a recorded run must share with this command to stand for one of its runs (a reduced proxy's depth and
    width, and an objective other than accuracy, only where set: the first runs' records keep their keys)."""
    setting = {"hours": args.hours, "epochs": args.epochs, "resolution": args.resolution,
               "batch_size": args.batch_size, "workers": args.workers}
    setting.update({k: v for k, v in budget_of(args).items() if k in ("depth", "width")})
    if objective_of(args) != "accuracy":
        setting["objective"] = objective_of(args)
    return setting


def record_key(sampler: str, seed: int, setting: dict) -> tuple[str, int, str]:
    """How a run is found among the records: its sampler, seed and settings (as canonical JSON)."""
    return sampler, seed, json.dumps(setting, sort_keys=True)


def load_records(path: Path = RECORDS) -> dict[tuple[str, int, str], dict]:
    """Finished runs by :func:`record_key`; a later record of the same run replaces an earlier one."""
    records = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                records[record_key(rec["sampler"], rec["seed"], rec["setting"])] = rec
    return records


def run_record(sampler: str, seed: int, setting: dict, rows: list[dict], run: Path) -> dict:
    """A finished run as a record: its trials, the sampler its config resolved to, date and machine."""
    import datetime

    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").exists() else {}
    return {"sampler": sampler, "seed": seed, "setting": setting, "resolved_sampler": config.get("sampler"),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{cpu_model()}, {usable_cores()} cores", "rows": rows}


def append_record(rec: dict, path: Path = RECORDS) -> dict:
    """Append a run's record to the records file; returns it."""
    with path.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    return rec


def with_run_naswot(rec: dict, run: Path) -> dict:
    """A record made before rows kept each trial's own NASWOT, filled in from its run folder where that still holds
    the same trials (else the record as it is)."""
    if all("run_naswot" in r for r in rec["rows"]) or not (run / "config.yaml").exists():
        return rec
    rows = finished(run)
    if [(r["index"], r["accuracy"]) for r in rows] != [(r["index"], r["accuracy"]) for r in rec["rows"]]:
        return rec
    return {**rec, "rows": [{**old, **({"run_naswot": new["run_naswot"]} if "run_naswot" in new else {})}
                            for old, new in zip(rec["rows"], rows)]}


def rescored_run_naswot(rec: dict, args, progress=print) -> dict:
    """A record whose rows lack the trial's own NASWOT (made before trials kept it, its run folder gone), filled in
    by scoring each architecture as the run's engine did: the model built at the run's input from the run's seed, on
    the 64-image batch of the run's seed (:func:`nas.evaluate.evaluate.proxy_batch`), from the run's own config
    (:func:`run_config`). The scores are bit-identical to those trials recorded (checked on seed 2, whose trials
    kept theirs: tests/experiments/test_nb201_end_to_end.py). Only finite scores are kept, as the search keeps them;
    the record says ``run_naswot: "rescored"``. About a quarter of a second per architecture on one core."""
    if any("run_naswot" in r for r in rec["rows"]) or rec.get("run_naswot") == "rescored":
        return rec  # the trials kept their own (a row without one: its NASWOT was not finite)
    scores = run_naswot_scores({r["index"] for r in rec["rows"] if r["index"]}, rec["seed"], args, progress)
    rows = [{**r, **({"run_naswot": scores[r["index"]]} if math.isfinite(scores.get(r["index"], math.nan)) else {})}
            for r in rec["rows"]]
    return {**rec, "rows": rows, "run_naswot": "rescored"}


def run_naswot_scores(indices: set[str], seed: int, args, progress=print) -> dict[str, float]:
    """NASWOT of each NB201 index as a trial of a run of this study with ``seed`` scores it (see
    :func:`rescored_run_naswot`): the engine's own scorer for the run's config
    (:meth:`nas.control.engine.Engine.warmup_scorer`)."""
    import torch

    from nas.bench.nb201 import from_index
    from nas.control.engine import Engine, prepare

    torch.set_num_threads(1)
    naswot = Engine(prepare(run_config(args, None, seed, 3600.0)), quiet=True).warmup_scorer()
    out = {}
    for n, index in enumerate(sorted(indices)):
        out[index] = float(naswot(from_index(index)))
        if (n + 1) % 100 == 0:
            progress(f"  seed {seed}: NASWOT of {n + 1} of {len(indices)} architectures rescored", flush=True)
    return out


def spent(rows: list[dict], workers: int) -> float:
    """Wall seconds of the run so far: its trials' seconds over the workers that ran them side by side."""
    return sum(r["seconds"] for r in rows) / workers


def pick_truth(rows: list[dict], until_s: float, table, rule: tuple[str, ...] = ("accuracy",),
               scores: dict[str, dict[str, float]] | None = None, tie: str = "accuracy") -> float | None:
    """Ground truth (percent) of the trial a run picks among those finished by ``until_s``: the best by the mean of
    its ranks under each score of ``rule`` (a value the row holds, as ``accuracy``, the trial's proxy accuracy, or
    a score per NB201 index in ``scores``; ``-name``: the row's value negated, lower ranking higher), ties to the
    higher ``tie`` (default the proxy accuracy; ``-val_loss``: the lower loss), then to the earlier trial. The
    default rule is the engine's: the best observed trial. A row without a score the rule takes from the rows (as
    ``run_naswot``, where a trial's NASWOT failed or a record was made before trials kept it) is left out, as
    ``nas export --rank-with`` leaves it out; None when no row is left."""
    from nas.control.pick import mean_rank  # as nas export --rank-with combines them

    def value(row: dict, name: str) -> float:
        sign, key = (-1.0, name[1:]) if name.startswith("-") else (1.0, name)
        return sign * (row[key] if key in row else scores[key][row["index"]])

    done = [r for r in rows if r["end_s"] <= until_s and r["index"]]
    held = [name.lstrip("-") for name in rule if name.lstrip("-") not in (scores or {})]  # rows without one: left out
    done = [r for r in done if all(name in r for name in held)]
    if not done:
        return None
    ranks = mean_rank(*[[value(r, name) for r in done] for name in rule])
    best = max(range(len(done)), key=lambda k: (ranks[k], value(done[k], tie), -k))
    return 100 * table[done[best]["index"]].mean_accuracy


def zero_cost_scores(indices: set[str], data_dir: str | None, progress=print,
                     cache_path: Path | None = None) -> dict[str, dict[str, float]]:
    """``naswot`` (Mellor et al. 2021) of each NB201 index on the batch ``nas search`` gives zero-cost proxies (64
    seeded CIFAR-10 training images, seed 0), cached with nb201_proxies' scores (:func:`nb201_proxies.naswot_scores`),
    and ``params`` from NB201's parameter formula."""
    from nas.bench.nb201 import param_count
    from nas.data import load_dataset
    from nb201_proxies import CACHE, ENGINE_SOURCES, naswot_scores
    from proxy_fidelity import Cache

    data = load_dataset("cifar10", data_dir=data_dir, val_fraction=0.1, seed=0)
    naswot = naswot_scores(Cache(cache_path or CACHE), indices, data, source_hash(ENGINE_SOURCES), progress=progress)
    return {"naswot": naswot, "params": {i: float(param_count(i)) for i in indices}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hours", type=float, default=1.0, help="wall-clock budget of each run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--samplers", nargs="+", choices=list(SAMPLERS), default=list(SAMPLERS))
    p.add_argument("--epochs", type=float, default=5)
    p.add_argument("--resolution", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--depth", type=float, default=1.0, help="budget.depth: a reduced-depth proxy below 1")
    p.add_argument("--width", type=float, default=1.0, help="budget.width: a reduced-width proxy below 1")
    p.add_argument("--objective", choices=("accuracy", "val_loss"), default="accuracy",
                   help="the runs' objective: the proxy's validation accuracy or its validation loss")
    p.add_argument("--out", default=NAME, metavar="NAME", help="the page's name under experiments/results (the "
                   "records of every setting share one file)")
    p.add_argument("--workers", type=int, default=2, help="worker processes per run (one torch thread each)")
    p.add_argument("--data-dir", default=os.environ.get("NAS_DATA_DIR"))
    p.add_argument("--work", default=str(REPO_ROOT / "runs" / "nb201_e2e"))
    p.add_argument("--no-rules", action="store_true", help="skip the table of picks by other rules (it scores every "
                   "picked-from architecture by NASWOT once: about a second each, cached; and rescores the trials' "
                   "own NASWOT for records made before trials kept it)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()

    from nas.bench.nb201_table import Table

    table = Table.load("cifar10")
    budget_s = 3600 * args.hours
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    nas = str(Path(sys.executable).with_name("nas"))
    setting = setting_of(args)
    records = load_records()
    results: dict[tuple[str, int], dict] = {}
    for sampler in args.samplers:
        for seed in args.seeds:
            name = f"{sampler}-s{seed}"
            run = work / name
            rec = records.get(record_key(sampler, seed, setting))
            if rec is not None:
                fuller = with_run_naswot(rec, run)
                if not args.no_rules:
                    fuller = rescored_run_naswot(fuller, args)
                if fuller is not rec and not args.no_write:
                    append_record(fuller)
                results[(sampler, seed)] = fuller
                continue
            check_folder(run, args)
            rows = finished(run) if (run / "config.yaml").exists() else []
            left = budget_s - spent(rows, args.workers)
            if left > 1:
                print(f"{name}: {left / 60:.1f} min of search left", flush=True)
                if (run / "config.yaml").exists():  # a run a kill stopped: its own config, the time left
                    command = [nas, "resume", str(run), "--time-budget", f"{left:.0f}"]
                else:
                    config = work / f"{name}.json"
                    config.write_text(json.dumps(run_config(args, SAMPLERS[sampler], seed, left)))
                    command = [nas, "search", str(config), "--name", name, "--runs-dir", str(work)]
                subprocess.run([*command, "--quiet", "--workers", str(args.workers)], check=True)
                rows = finished(run)
            rec = run_record(sampler, seed, setting, rows, run)
            results[(sampler, seed)] = rec if args.no_write else append_record(rec)
    marks = [budget_s * f for f in (0.25, 0.5, 1.0)]
    default_rule, rules = DEFAULT_RULES[args.objective], rule_columns(args.objective)
    headers = ["sampler", "seed", "trials", *[f"pick at {m / 60:.3g} min" for m in marks], "run on"]
    table_rows = []
    for (sampler, seed), rec in results.items():
        rows = rec["rows"]
        table_rows.append([f"{sampler} ({rec['resolved_sampler'] or sampler})", seed, len(rows),
                           *[_fmt(pick(rows, m, table, default_rule)) for m in marks], rec["date"]])
    for sampler in args.samplers:
        finals = [pick(results[(sampler, s)]["rows"], marks[-1], table, default_rule) for s in args.seeds]
        finals = [f for f in finals if f is not None]
        if finals:
            middle = f"median {statistics.median(finals):.2f}, mean {statistics.mean(finals):.2f}"
            if len(finals) > 1:
                middle += f" +- {statistics.pstdev(finals):.2f}"
            table_rows.append([sampler, f"{len(finals)} seed(s)", "", "", "", middle, ""])
    report = Report(args.out, "NAS-Bench-201 end to end: proxy-trained search, picks looked up in the table",
                    info=machine_info())
    report.text(__doc__.split("\n\n", 1)[1].split("\n\nResumable")[0].strip(), echo=False)
    reduced = "".join(f", {key} {value:g}" for key, value in budget_of(args).items() if key in ("depth", "width"))
    report.text(f"Budget per run: {args.hours:g} h wall, {args.workers} workers; proxy budget {args.epochs:g} epochs "
                f"at resolution {args.resolution:g}{reduced}, batch {args.batch_size}; objective "
                f"{'the proxy validation loss' if args.objective == 'val_loss' else 'the proxy validation accuracy'}. "
                f"Table optimum 91.61. {PUBLISHED}.")
    report.table(headers, table_rows, csv=None if args.no_write else f"{args.out}.csv")
    if not args.no_rules and results:
        indices = {r["index"] for rec in results.values() for r in rec["rows"] if r["index"]}
        scores = zero_cost_scores(indices, args.data_dir)
        report.text(
            "The same runs' picks after the full budget under other rules, from the same trials: by a zero-cost score "
            "alone (naswot on the 64-image batch the engine gives zero-cost proxies, or the parameter count), or by "
            "the mean of a trial's ranks among the run's finished trials under its proxy accuracy and that score "
            "(ties to the higher proxy accuracy). Ground truth in percent, as above.", echo=False)
        rule_rows = [[f"{sampler} ({rec['resolved_sampler'] or sampler})", seed,
                      *[_fmt(pick(rec["rows"], marks[-1], table, rule, scores)) for rule in rules.values()]]
                     for (sampler, seed), rec in results.items()]
        for sampler in args.samplers:
            runs = [results[(sampler, s)]["rows"] for s in args.seeds if (sampler, s) in results]
            per_rule = [[v for rows in runs if (v := pick(rows, marks[-1], table, rule, scores)) is not None]
                        for rule in rules.values()]
            rule_rows.append([sampler, f"median of {len(runs)}",
                              *[(_fmt(statistics.median(v)) + ("" if len(v) == len(runs) else f" (of {len(v)})"))
                                if v else "" for v in per_rule]])
        report.table(["sampler", "seed", *rules], rule_rows,
                     title=f"Pick at {marks[-1] / 60:.3g} min by rule",
                     csv=None if args.no_write else f"{args.out}_rules.csv")
    if not args.no_write:
        report.write()


def rule_columns(objective: str) -> dict[str, tuple[str, ...]]:
    """The pick rules the page compares for runs of ``objective``: :data:`PICK_RULES`, and for a loss run the loss
    rules too, its default last."""
    if objective == "accuracy":
        return dict(PICK_RULES)
    rules = {(label.replace(", the default)", ")") if rule == DEFAULT_RULE else label): rule
             for label, rule in PICK_RULES.items()}
    rules.update(LOSS_RULES)
    rules["mean rank of proxy loss and the trial's own naswot (rank_with: naswot, the default)"] = \
        DEFAULT_RULES[objective]
    return rules


def pick(rows: list[dict], until_s: float, table, rule: tuple[str, ...],
         scores: dict[str, dict[str, float]] | None = None) -> float | None:
    """:func:`pick_truth` with ties to the better value of the rule's own objective (the lower loss for a loss
    rule, else the higher proxy accuracy)."""
    return pick_truth(rows, until_s, table, rule, scores, tie="-val_loss" if rule[0] == "-val_loss" else "accuracy")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
