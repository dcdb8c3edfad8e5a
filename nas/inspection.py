"""Look inside runs without Optuna's CLI or a CSV: ``nas runs [DIR]`` (every run under a folder, a line each) and
``nas show RUN [--trial N]`` (one run: settings, counts, front; or one trial: spec, objectives, costs, curve, why it
failed, which baselines it dominates). Both read the stored run only (never train, build or time anything) and
give the same facts as plain data for ``--json``.

Counts: *trained* trials ran an evaluation (COMPLETE and not a reuse, or PRUNED by a rung); *screened* trials were
refused before or instead of training (PRUNED as infeasible); *reused* trials repeated an architecture and copied
its result; *failed* are FAIL trials that count (not stale); *running* are RUNNING now. The first four are what
counts toward the run's target.
"""
from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np

from nas import pareto
from nas.control.confirm import REPEAT, REPEAT_OF
from nas.control.pick import complete_trials, run_pick
from nas.control.rundir import RunDir, open_run
from nas.control.states import counted
from nas.errors import NasError, RunError
from nas.report import baseline_frame


def counts_of(trials) -> dict[str, int]:
    """Trained, screened, reused, failed and running trials (see the module's docstring)."""
    counts = {"trained": 0, "screened": 0, "reused": 0, "failed": 0, "running": 0}
    for t in trials:
        attrs, state = t.user_attrs, t.state.name
        if state == "RUNNING":
            counts["running"] += 1
        elif not counted(t):
            continue  # a stale FAIL: its parameters were queued again
        elif state == "COMPLETE":
            counts["reused" if "reused_from" in attrs else "trained"] += 1
        elif state == "PRUNED":
            counts["screened" if attrs.get("status") == "infeasible" else "trained"] += 1
        else:
            counts["failed"] += 1
    return counts


def _front(complete, directions: list[str]) -> list:
    values = np.array([t.values for t in complete], dtype=float).reshape(len(complete), len(directions))
    mask = pareto.pareto_mask(values, directions) if len(complete) else np.zeros(0, bool)
    return [t for t, keep in zip(complete, mask) if keep]


def _best(complete, objectives: list[str], directions: list[str]) -> dict[str, float]:
    best = {}
    for i, (name, direction) in enumerate(zip(objectives, directions)):
        column = [t.values[i] for t in complete if t.values is not None and math.isfinite(t.values[i])]
        if column:
            best[name] = float(max(column) if direction == "maximize" else min(column))
    return best


def _pick(study, config) -> dict[str, Any] | None:
    """The trial the run picks (what ``nas export RUN`` exports) and why; None before any trial completes."""
    picked = run_pick(complete_trials(study), config.objectives, config.directions, config.rank_with)
    return None if picked is None else {"number": picked[0].number, "reason": picked[1]}


def _last_activity(run: RunDir, trials) -> str | None:
    stamps = [s for t in trials for s in (t.datetime_complete, t.datetime_start) if s is not None]
    log = run.path / "search.log"
    if log.is_file():
        stamps.append(dt.datetime.fromtimestamp(log.stat().st_mtime))
    return max(stamps).isoformat(timespec="seconds") if stamps else None


def run_overview(path: str | Path) -> dict[str, Any]:
    """One run as plain data: where, state (running / done / stopped), settings, counts, best values, front size."""
    run, study, config, space = open_run(path)
    trials = study.get_trials(deepcopy=False)
    objectives, directions = list(config.objectives), list(config.directions)
    counts = counts_of(trials)
    counted = counts["trained"] + counts["screened"] + counts["reused"] + counts["failed"]
    complete = [t for t in trials if t.state.name == "COMPLETE" and "reused_from" not in t.user_attrs]
    holder = run.holder()
    target = config.trials
    if holder is not None:
        state = f"running (pid {holder})"
    elif target is not None and counted >= target:
        state = "done"
    else:
        state = "stopped"
    return {"name": run.path.name, "path": str(run.path), "state": state, "space": space.name,
            "dataset": config.dataset, "evaluator": config.evaluator, "objectives": objectives,
            "directions": directions, "sampler": config.sampler_name, "target": target, "counted": counted,
            **counts, "best": _best(complete, objectives, directions), "pick": _pick(study, config),
            "front": [t.number for t in sorted(_front(complete, directions), key=lambda t: t.number)],
            "last_activity": _last_activity(run, trials)}


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    """Every run folder directly under ``root`` (sorted by name); a run that cannot be read is listed with its
    error instead of stopping the listing."""
    root = Path(root)
    if not root.is_dir():
        raise RunError("no such folder", file=str(root))
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and RunDir.is_run(p)):
        try:
            rows.append(run_overview(folder))
        except NasError as e:
            rows.append({"name": folder.name, "path": str(folder), "state": "unreadable", "error": e.one_line()})
    return rows


def trial_detail(path: str | Path, number: int) -> dict[str, Any]:
    """One trial of a run as plain data: state, spec, objectives, costs, curve, failure reason, and the baselines
    (as the run's cache holds them) that it dominates on the run's objectives."""
    run, study, config, space = open_run(path)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        known = f"0..{max(trials)}" if trials else "none yet"
        raise RunError(f"no trial #{number} in this run (trials: {known})", file=str(run.path), key="--trial")
    t = trials[number]
    attrs = t.user_attrs
    values = dict(zip(config.objectives, t.values)) if t.values is not None else {}
    cost = attrs.get("cost") or {}
    latency = cost.get("latency") or {}
    return {"run": run.path.name, "number": number, "state": t.state.name, "status": attrs.get("status"),
            "reason": attrs.get("reason"), "reused_from": attrs.get("reused_from"),
            "repeat_of": attrs.get(REPEAT_OF), "repeat": attrs.get(REPEAT),
            "summary": attrs.get("summary"), "spec_hash": attrs.get("spec_hash"), "params": dict(t.params),
            "objectives": values, "measured": attrs.get("objectives") or {},
            "cost": {"params": cost.get("params"), "flops": cost.get("flops"),
                     "latency_ms": latency.get("median_ms"), "latency_device": latency.get("device"),
                     "latency_threads": latency.get("threads"),
                     "latency_runtime": latency.get("runtime", "torch") if latency else None,
                     "latency_source": latency.get("source", "measured") if latency else None},
            "curve": attrs.get("curve") or [], "wall_s": attrs.get("wall_s"),
            "dominates": _dominated_baselines(run, config, space, values)}


def _dominated_baselines(run, config, space, values: dict) -> list[str]:
    """The space's baselines, as evaluated under the run's budget (its cache), that ``values`` dominate."""
    objectives, directions = list(config.objectives), list(config.directions)
    if len(values) != len(objectives):
        return []
    base = baseline_frame(run, config, space, objectives)
    base = base[base["status"] == "ok"].dropna(subset=objectives)
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    mine = sign * np.array([values[o] for o in objectives], dtype=float)
    return [row["name"] for _, row in base.iterrows()
            if pareto.dominates(mine, sign * row[objectives].to_numpy(dtype=float))]


# -- text ----------------------------------------------------------------------------------------------------------

def _value(name: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if name in ("params", "flops") or (isinstance(value, int) and not isinstance(value, bool)):
        return f"{int(value):,}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def runs_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no runs here"
    lines = []
    for r in rows:
        if r["state"] == "unreadable":
            lines.append(f"{r['name']}  unreadable: {r['error']}")
            continue
        target = r["target"] if r["target"] is not None else "-"
        best = ", ".join(f"{k} {_value(k, v)}" for k, v in r["best"].items()) or "no result yet"
        lines.append(f"{r['name']}  {r['state']}  {r['counted']}/{target} counted: {r['trained']} trained, "
                     f"{r['screened']} screened, {r['reused']} reused, {r['failed']} failed"
                     f"{', ' + str(r['running']) + ' running' if r['running'] else ''} | best {best} | pick "
                     f"{'#' + str(r['pick']['number']) if r.get('pick') else '-'} | front "
                     f"{len(r['front'])} | {r['space']} on {r['dataset']} | last {r['last_activity'] or '-'}")
    return "\n".join(lines)


def run_text(r: dict[str, Any]) -> str:
    best = ", ".join(f"{k} {_value(k, v)}" for k, v in r["best"].items()) or "no result yet"
    return "\n".join([
        f"run {r['name']} ({r['path']}): {r['state']}",
        f"  space {r['space']}, dataset {r['dataset']}, evaluator {r['evaluator']}, sampler {r['sampler']}",
        f"  objectives: {', '.join(f'{o} ({d})' for o, d in zip(r['objectives'], r['directions']))}",
        f"  trials: {r['counted']} of {r['target'] if r['target'] is not None else '-'} counted: {r['trained']} "
        f"trained, {r['screened']} screened, {r['reused']} reused, {r['failed']} failed; {r['running']} running",
        f"  best: {best}",
        "  pick: " + (f"#{r['pick']['number']} ({r['pick']['reason']})" if r.get("pick") else "-"),
        f"  front ({len(r['front'])}): {', '.join(f'#{n}' for n in r['front']) or '-'}",
        f"  last activity: {r['last_activity'] or '-'}",
    ])


def trial_text(d: dict[str, Any]) -> str:
    lines = [f"trial #{d['number']} of {d['run']}: {d['state']}" + (f" ({d['status']})" if d["status"] else ""),
             f"  {d['summary'] or '(no spec)'}" + (f"  [{d['spec_hash']}]" if d["spec_hash"] else "")]
    if d["reused_from"] is not None:
        lines.append(f"  reused the result of #{d['reused_from']} (same architecture)")
    if d.get("repeat_of") is not None:
        lines.append(f"  evaluation {int(d['repeat'] or 0) + 1} of the architecture of #{d['repeat_of']} "
                     "(confirm_best: trained again from another seed)")
    if d["objectives"]:
        lines.append("  objectives: " + ", ".join(f"{k} {_value(k, v)}" for k, v in d["objectives"].items()))
    cost = d["cost"]
    if any(v is not None for v in cost.values()):
        table = ", predicted by the run's latency table" if cost.get("latency_source") == "table" else ""
        where = (f" ({cost['latency_device']}, {cost['latency_threads']} thread(s), {cost['latency_runtime']}{table})"
                 if cost["latency_device"] else "")
        lines.append(f"  cost: params {_value('params', cost['params'])}, FLOPs {_value('flops', cost['flops'])}, "
                     f"latency {_value('latency_ms', cost['latency_ms'])} ms{where}")
    if d["curve"]:
        points = ", ".join(f"{p.get('epoch', 0):g}: {p.get('val_accuracy', float('nan')):.4f}" for p in d["curve"])
        lines.append(f"  curve (epoch: val accuracy): {points}")
    if d["reason"]:
        lines.append(f"  reason: {d['reason']}")
    if d["dominates"]:
        lines.append(f"  dominates the baselines: {', '.join(d['dominates'])}")
    return "\n".join(lines)
