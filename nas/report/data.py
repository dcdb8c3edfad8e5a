"""The report's data step: ``report_data(run_dir)`` reads the run's Optuna storage into plain pandas tables (one
row per trial, a flat column per grammar choice and per objective), the Pareto set, the hypervolume history, the
baselines evaluated under the run's proxy budget, the learning curves of the Pareto members with a fit diagnosis,
and the pattern insight (per-choice importance and share of the front vs. share of all trials)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from nas import pareto
from nas.catalog import latency_where
from nas.control.pick import complete_trials, run_pick
from nas.control.rundir import open_run, read_baselines_cache
from nas.grammar import shipped_spaces_dir
from nas.remeasure.record import dominating_found, finds, read_remeasured, remeasured_frame
from nas.significance import compare, wilson_interval

NOT_EVALUATED = "not evaluated"  # a baseline the run's cache does not hold yet


@dataclass
class ReportData:
    name: str
    space: str
    dataset: str
    objectives: list[str]
    directions: list[str]
    choices: list[str]
    trials: pd.DataFrame
    pareto: pd.DataFrame
    hypervolume: pd.DataFrame
    reference: list[float]
    baselines: pd.DataFrame
    curves: dict[int, pd.DataFrame] = field(default_factory=dict)
    fit: dict[int, str] = field(default_factory=dict)
    importance: pd.DataFrame = field(default_factory=pd.DataFrame)
    shares: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    remeasured: pd.DataFrame = field(default_factory=pd.DataFrame)  # `nas measure`: latency.json, one row a model
    remeasured_about: str = ""
    val_size: int | None = None  # validation examples every trial was scored on (None: not stored, an older run)
    pick: dict[str, Any] | None = None  # the run's pick (nas.control.pick.run_pick): {"number", "reason"}


# ---------------------------------------------------------------------------------------------------------------
# data step
# ---------------------------------------------------------------------------------------------------------------


def report_data(run_dir: str | Path, *, baselines: bool = True) -> ReportData:
    run, study, config, space = open_run(run_dir)
    objectives = list(config.objectives)
    directions = list(config.directions)
    choices = [p.name for p in space.choices()]
    trials = trials_frame(study, objectives, choices)
    complete = trials[trials["state"] == "COMPLETE"]
    values = complete[objectives].to_numpy(dtype=float) if len(complete) else np.zeros((0, len(objectives)))
    notes: list[str] = [latency_note(config, study)] if "latency_ms" in objectives else []
    picked = run_pick(complete_trials(study), objectives, directions, config.rank_with)
    pick = None if picked is None else {"number": picked[0].number, "reason": picked[1]}
    if pick is not None:
        values_of = ", ".join(f"{o} {v:.4g}" for o, v in zip(objectives, picked[0].values))
        notes.append(f"The run's pick (what `nas export` exports): trial #{pick['number']} ({values_of}), "
                     f"{pick['reason']}.")

    mask = pareto.pareto_mask(values, directions) if len(values) else np.zeros(0, bool)
    trials["on_front"] = False
    trials.loc[complete.index[mask], "on_front"] = True
    front = trials[trials["on_front"]].copy()
    if len(front):
        front_values = front[objectives].to_numpy(dtype=float)
        front["crowding"] = pareto.crowding_distance(front_values, directions)
        front["knee"] = False
        front.loc[front.index[pareto.knee_point(front_values, directions)], "knee"] = True
        front = front.sort_values(objectives[0], ascending=directions[0] == "minimize")

    reference = reference_point(values, objectives, directions)
    hv = pd.DataFrame({"number": complete["number"].to_numpy(), "hypervolume": np.nan})
    if len(values) and len(objectives) <= 3:
        hv["hypervolume"] = pareto.hypervolume_history(values, directions, reference)
    elif len(objectives) > 3:
        notes.append("hypervolume history is computed for up to 3 objectives")

    base = baseline_frame(run, config, space, objectives) if baselines else pd.DataFrame()
    missing = int((base["status"] == NOT_EVALUATED).sum()) if len(base) else 0
    if missing:
        notes.append(f"{missing} of {len(base)} baselines are not evaluated under this run's budget yet: "
                     f"`nas measure {run.path}` trains them (the report only reads results).")
    curves, fit = {}, {}
    for _, row in front.iterrows():
        curve = pd.DataFrame(row["curve"] or [])
        curves[int(row["number"])] = curve
        fit[int(row["number"])] = diagnose_fit(curve)
    if len(front):
        front["fit"] = [fit[int(n)] for n in front["number"]]

    importance = param_importance(study, objectives, directions)
    if importance.empty and len(complete) >= 2:
        notes.append("parameter importance needs more completed trials with varying choices")
    shares = choice_shares(trials[trials["state"] == "COMPLETE"], choices)
    val_size = _val_size(trials, base)
    if val_size and "accuracy" in objectives:
        notes.append(f"Accuracy is measured on {val_size} validation examples (one example = "
                     f"{1 / val_size:.2g}); `accuracy_95ci` is its Wilson interval, and margins between models are "
                     "in examples, with McNemar's exact p on the examples only one of the two got right.")
        if len(front):
            front["accuracy_95ci"] = ["{:.3f}-{:.3f}".format(*wilson_interval(a, val_size)) for a in front["accuracy"]]
    if len(base):
        base["versus_found"] = versus_found(base, front, objectives, directions, val_size)
    known = {r["name"]: {o: r[o] for o in objectives} for _, r in base.iterrows() if r.get("status") == "ok"}
    remeasured, about = _remeasured(run.path, front, objectives, directions, known)
    if len(remeasured) and "accuracy" in objectives and val_size:
        remeasured["dominated_by"] = _with_margins(remeasured, trials, base, val_size)
    return ReportData(name=run.path.name, space=space.name, dataset=config.dataset, objectives=objectives,
                      directions=directions, choices=choices, trials=trials, pareto=front, hypervolume=hv,
                      reference=list(reference), baselines=base, curves=curves, fit=fit, importance=importance,
                      shares=shares, notes=notes, remeasured=remeasured, remeasured_about=about, val_size=val_size,
                      pick=pick)


def latency_note(config, study) -> str:
    """Which device and runtime the run's latencies belong to, as its trials recorded them (the run's settings until
    a trial has), and whether they are a latency table's predictions."""
    record = next((t.user_attrs["cost"]["latency"] for t in study.trials if (t.user_attrs.get("cost") or {}).get(
        "latency")), None) or {"device": config.latency_device, "batch_size": config.latency_batch_size,
                               "threads": config.latency_threads, "runtime": config.latency_runtime}
    if record.get("source", config.latency_source) == "table":
        return f"latency_ms is predicted by the latency table {config.latency_table} ({latency_where(record)})."
    return f"latency_ms is measured while each trial ran ({latency_where(record)}), the median of its timed calls."


def _remeasured(run_path: Path, front: pd.DataFrame, objectives: list[str], directions: list[str],
                baseline_values: dict[str, dict[str, float]]) -> tuple[pd.DataFrame, str]:
    """The run's ``nas measure`` record as a table, and a line saying what it is (and what it misses)."""
    record = read_remeasured(run_path)
    if record is None:
        return pd.DataFrame(), ""
    frame = remeasured_frame(record, objectives, directions, baseline_values)
    st = record.get("settings", {})
    about = (f"Measured again by `nas measure` at {record.get('measured_at')}: {len(frame)} models in one process, "
             f"{record.get('rounds')} interleaved rounds ({st.get('device')}, batch {st.get('batch_size')}, "
             f"{st.get('threads')} thread(s), {st.get('runtime', 'torch')}). latency_ms is the median of the rounds, "
             "`rounds` their range, "
             "`stored_latency_ms` what the trial measured in its own moment; `on_front` is the front of the "
             "re-measured trials; a baseline is dominated on these latencies by the trials listed, with the paired "
             "rounds in which each was faster.")
    measured = {int(n) for n in frame["number"].dropna()}
    missing = [int(n) for n in front["number"] if int(n) not in measured] if len(front) else []
    if missing:
        about += (f" The front has changed since: #{', #'.join(map(str, missing))} not re-measured (run "
                  "`nas measure` again).")
    return frame, about


MAX_LISTED = 3  # dominating trials named per baseline (the most accurate first)


def _val_size(trials: pd.DataFrame, base: pd.DataFrame) -> int | None:
    """The validation-set size the run's models were scored on (one per run: the data settings are fixed)."""
    sizes = [pd.to_numeric(f["val_size"], errors="coerce") for f in (trials, base) if "val_size" in f]
    sizes = pd.concat(sizes).dropna() if sizes else pd.Series(dtype=float)
    return int(sizes.mode().iloc[0]) if len(sizes) else None


def _packed(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def accuracy_margin(a: Mapping[str, Any], b: Mapping[str, Any], val_size: int):
    """:func:`nas.significance.compare` of two rows (``accuracy``, ``val_correct``): paired where both are stored."""
    return compare(float(a["accuracy"]), float(b["accuracy"]), val_size, _packed(a.get("val_correct")),
                   _packed(b.get("val_correct")))


def versus_found(base: pd.DataFrame, front: pd.DataFrame, objectives: list[str], directions: list[str],
                 val_size: int | None) -> list[str]:
    """One line per baseline on the stored values: the front members that dominate it (front members that are
    baselines, warm-started into the run, do not count as found), each with its accuracy margin in validation
    examples (and McNemar's p where both models' per-example results are stored); or, when none does, the most
    accurate member that costs at most as much on every other objective, and whether the baseline's accuracy lead
    over it is beyond chance (p < 0.05) or within noise."""
    with_acc = "accuracy" in objectives and bool(val_size)
    costs = [j for j, o in enumerate(objectives) if o != "accuracy"]
    front = finds(front, base)
    front_min = pareto.to_minimization(front[objectives].to_numpy(dtype=float), directions)
    out = []
    for _, b in base.iterrows():
        if b.get("status") != "ok" or not np.isfinite(b[objectives].to_numpy(dtype=float)).all():
            out.append("not evaluated")
            continue
        dominating = front[dominating_found(front, b, objectives, directions)]
        b_min = pareto.to_minimization(b[objectives].to_numpy(dtype=float), directions)[0]
        as_cheap = front[np.all(front_min[:, costs] <= b_min[costs], axis=1)]
        if len(dominating):
            if "accuracy" in objectives:
                dominating = dominating.sort_values("accuracy", ascending=False, kind="stable")
            named = [f"#{int(f['number'])}" + (f" ({accuracy_margin(f, b, val_size).text()})" if with_acc else "")
                     for _, f in dominating.head(MAX_LISTED).iterrows()]
            more = f" and {len(dominating) - MAX_LISTED} more" if len(dominating) > MAX_LISTED else ""
            out.append("dominated by " + ", ".join(named) + more)
        elif len(as_cheap) and "accuracy" in objectives:
            f = as_cheap.loc[as_cheap["accuracy"].idxmax()]
            line = f"not dominated: #{int(f['number'])}, the most accurate found net that costs no more"
            if with_acc:
                c = accuracy_margin(f, b, val_size)
                line += f", is {-c.margin} of {c.n} examples behind"
                if c.paired:
                    line += f" ({c.test_text()}): " + ("beyond chance" if c.significant else "within noise")
            out.append(line)
        else:
            out.append("not dominated: no found net costs no more")
    return out


def _with_margins(remeasured: pd.DataFrame, trials: pd.DataFrame, base: pd.DataFrame, val_size: int) -> list[str]:
    """The re-measured table's ``dominated_by`` with each dominating trial's accuracy margin over the baseline."""
    by_number = {int(r["number"]): r for _, r in trials.iterrows()}
    by_hash = {r["spec_hash"]: r for _, r in base.iterrows()} if len(base) else {}
    out = []
    for _, row in remeasured.iterrows():
        hits = row["dominators"] if isinstance(row["dominators"], list) else []
        b = by_hash.get(row["spec_hash"])
        if not hits or b is None:
            out.append(row["dominated_by"])
            continue
        parts = []
        for h in hits:
            f = by_number.get(int(h["number"]))
            margin = f"; {accuracy_margin(f, b, val_size).text()}" if f is not None else ""
            parts.append(f"#{h['number']} (faster in {h['faster_rounds']} of {h['rounds']} rounds{margin})")
        out.append(", ".join(parts))
    return out


def trials_frame(study, objectives: list[str], choices: list[str]) -> pd.DataFrame:
    """One row per trial: state, status, objectives, spec, fidelity, zero-cost scores and one column per choice."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        row: dict[str, Any] = {"number": t.number, "state": t.state.name, "status": attrs.get("status"),
                               "reason": attrs.get("reason"), "spec_hash": attrs.get("spec_hash"),
                               "summary": attrs.get("summary"), "reused_from": attrs.get("reused_from"),
                               "warm_start": attrs.get("warm_start")}
        measured = dict(attrs.get("objectives") or {})
        curve = attrs.get("curve") or []
        if curve and "accuracy" not in measured:
            measured["accuracy"] = curve[-1].get("val_accuracy")  # a pruned trial: what it reached
        for i, name in enumerate(objectives):
            value = t.values[i] if t.values is not None else measured.get(name)
            row[name] = float(value) if isinstance(value, (int, float)) else np.nan
        row["fidelity_epochs"] = curve[-1]["epoch"] if curve else 0.0
        row["wall_s"] = attrs.get("wall_s")
        row["val_size"] = (attrs.get("training") or {}).get("val_size")
        row["val_correct"] = attrs.get("val_correct")
        for key, value in (attrs.get("zero_cost") or {}).items():
            row[f"zc_{key}"] = value
        for name in choices:
            row[name] = t.params.get(name)
        row["curve"] = curve
        rows.append(row)
    columns = ["number", "state", "status", "reason", "spec_hash", "summary", "reused_from", "warm_start", *objectives,
               "fidelity_epochs", "wall_s", "val_size", "val_correct", *choices, "curve"]
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(columns + [c for r in rows for c in r])))
    return frame.sort_values("number").reset_index(drop=True)


def reference_point(values: np.ndarray, objectives: list[str], directions: list[str]) -> np.ndarray:
    """Hypervolume reference: 0 for accuracy, else 10% beyond the worst completed value of each objective."""
    ref = []
    for j, (name, direction) in enumerate(zip(objectives, directions)):
        column = values[:, j] if len(values) else np.array([1.0])
        column = column[np.isfinite(column)] if len(column) else np.array([1.0])
        if name == "accuracy":
            ref.append(0.0)
        elif direction == "minimize":
            worst = float(column.max()) if len(column) else 1.0
            ref.append(worst * 1.1 + 1e-12)
        else:
            worst = float(column.min()) if len(column) else 0.0
            ref.append(worst - 0.1 * abs(worst) - 1e-12)
    return np.array(ref)


def baseline_frame(run, config, space, objectives: list[str]) -> pd.DataFrame:
    """The space's hand-designed baselines as evaluated under the run's proxy budget, read from the run's cache
    (``nas measure`` and :func:`nas.control.baselines.evaluate_baselines` write it; the report never trains). A
    baseline not evaluated yet has status ``not evaluated``."""
    space.load_baselines(shipped_spaces_dir() / "baselines")
    cache = read_baselines_cache(run.path)
    key_of = config.budget_key()
    rows = []
    for name, spec in space.baselines.items():
        entry = cache.get(f"{spec.hash()}:{key_of}") or {"status": NOT_EVALUATED, "objectives": {}}
        row = {"name": name, "spec_hash": spec.hash(), "summary": spec.summary(), "status": entry["status"],
               "val_size": entry.get("val_size"), "val_correct": entry.get("val_correct") or None}
        for o in objectives:
            row[o] = entry["objectives"].get(o, np.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=["name", "spec_hash", "summary", "status", *objectives, "val_size",
                                       "val_correct"])


def diagnose_fit(curve: pd.DataFrame) -> str:
    """Flag over- and under-fitting the way the catalogue's "monitor training" advice reads a learning curve."""
    if curve is None or len(curve) < 2:
        return "too short to judge (one evaluation)"
    train, val = curve["train_loss"].to_numpy(float), curve["val_loss"].to_numpy(float)
    best = float(np.min(val))
    if val[-1] > best * 1.05 and train[-1] < train[int(np.argmin(val))]:
        return f"over-fitting: validation loss rose {100 * (val[-1] / best - 1):.0f}% above its minimum " \
               "while training loss kept falling"
    if train[-1] > 0.85 * train[0]:
        return "under-fitting: training loss fell less than 15% (more capacity, epochs or a higher LR)"
    if val[-1] < val[-2] - 1e-3 and train[-1] < train[-2]:
        return "still improving: a longer budget would likely help"
    return "ok"


def param_importance(study, objectives: list[str], directions: list[str]) -> pd.DataFrame:
    """Optuna's fANOVA importance of every choice present in all completed trials, per objective."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 3:
        return pd.DataFrame(columns=["parameter", "objective", "importance"])
    rows = []
    for i, name in enumerate(objectives):
        try:
            scores = optuna.importance.get_param_importances(
                study, target=lambda t, i=i: t.values[i],
                evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        except (RuntimeError, ValueError):
            continue
        rows += [{"parameter": p, "objective": name, "importance": float(v)} for p, v in scores.items()]
    return pd.DataFrame(rows, columns=["parameter", "objective", "importance"])


FEW_ON_FRONT = 5  # below this many front members the report says that the options' shares of the front are noisy


def choice_shares(complete: pd.DataFrame, choices: list[str]) -> pd.DataFrame:
    """Per choice and option: its share of the Pareto front against its share of all completed trials."""
    rows = []
    front = complete[complete["on_front"]] if "on_front" in complete else complete.iloc[:0]
    for name in choices:
        column = complete[name]
        if column.isna().all():
            continue
        values = column.dropna()
        if pd.api.types.is_float_dtype(values) and values.nunique() > 8:
            bins = pd.qcut(values, 4, duplicates="drop")
            labelled = bins.astype(str)
            front_labelled = labelled.loc[labelled.index.intersection(front.index)]
        else:
            labelled = values.astype(str)
            front_labelled = front[name].dropna().astype(str)
        counts = labelled.value_counts()
        front_counts = front_labelled.value_counts()
        for option, n in counts.items():
            f = int(front_counts.get(option, 0))
            rows.append({"parameter": name, "option": option, "trials": int(n), "front": f,
                         "share_all": n / len(values), "share_front": f / len(front) if len(front) else 0.0,
                         "lift": (f / len(front)) / (n / len(values)) if len(front) else 0.0})
    return pd.DataFrame(rows, columns=["parameter", "option", "trials", "front", "share_all", "share_front", "lift"])
