"""A run's ``latency.json`` (written by ``nas measure``) read back: the re-timed models as a table, with which
found nets dominate each baseline on the latency measured together. Numbers only: no torch."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from nas import pareto

LATENCY_FILE = "latency.json"


def read_remeasured(run_path: Path) -> dict[str, Any] | None:
    """The run's ``latency.json``, or None when the run has none (or it cannot be read: a report still works)."""
    path = Path(run_path) / LATENCY_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("models"), dict) else None


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[int, int]:
    """(rounds where ``a`` was faster than ``b``, rounds compared): the rounds are paired, both were timed in each."""
    n = min(len(a), len(b))
    return sum(x < y for x, y in zip(a[:n], b[:n])), n


def finds(trials: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``trials`` that are found nets: not the architecture of one of ``baselines`` (a baseline
    warm-started into the run is a trial of it, not a find)."""
    return trials[~trials["spec_hash"].isin(set(baselines["spec_hash"].dropna()))]


def dominating_found(found, baseline, objectives: list[str], directions: list[str]):
    """Mask of the rows of ``found`` (a frame of found nets, :func:`finds`) that dominate ``baseline`` (a row) on
    ``objectives``."""
    return pareto.dominating(found[objectives].to_numpy(dtype=float), baseline[objectives].to_numpy(dtype=float),
                             directions)


def remeasured_frame(record: dict[str, Any], objectives: list[str], directions: list[str],
                     baseline_values: dict[str, dict[str, float]] | None = None):
    """One row per re-measured model: its objectives with ``latency_ms`` replaced by the median of the rounds,
    whether it is on the front of the re-measured trials, and for a baseline the trials that dominate it on the
    re-measured latency, each with how many paired rounds it was faster in (a trial that is one of the baselines,
    warm-started into the run, is not a find and dominates none). ``baseline_values``: a baseline's
    objectives under the run's budget where known now (the report evaluates them; ``nas measure`` may have run
    before that)."""
    rows = []
    for label, m in record["models"].items():
        row = {"model": label, "kind": m.get("kind"), "number": m.get("number"), "summary": m.get("summary"),
               "spec_hash": m.get("spec_hash")}
        values = dict(m.get("values") or {})
        if m.get("kind") == "baseline" and (baseline_values or {}).get(m.get("name")):
            values = baseline_values[m["name"]]
        for o in objectives:
            v = values.get(o)
            row[o] = float(v) if isinstance(v, (int, float)) else np.nan
        row["stored_latency_ms"] = values.get("latency_ms") if m.get("kind") == "baseline" \
            else m.get("stored_latency_ms")
        row["latency_ms"] = m["median_ms"]
        row["rounds"] = f"{m['min_ms']:.3f}-{m['max_ms']:.3f}"
        row["latency_min_ms"], row["latency_max_ms"] = m["min_ms"], m["max_ms"]
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["model", "kind", "number", *dict.fromkeys([*objectives, "latency_ms"]),
                                        "stored_latency_ms", "rounds", "latency_min_ms", "latency_max_ms",
                                        "summary", "spec_hash"])
    found = frame[(frame["kind"] == "trial")]
    found_values = found[objectives].to_numpy(dtype=float)
    frame["on_front"] = False
    if len(found) and np.isfinite(found_values).all():
        frame.loc[found.index[pareto.pareto_mask(found_values, directions)], "on_front"] = True
    found_nets = finds(found, frame[frame["kind"] == "baseline"])
    dominated_by, dominators = [], []
    for _, row in frame.iterrows():
        hits = []
        b = row[objectives].to_numpy(dtype=float)
        if row["kind"] == "baseline" and np.isfinite(b).all():
            for _, f in found_nets[dominating_found(found_nets, row, objectives, directions)].iterrows():
                faster, n = paired(record["models"][f["model"]]["rounds_ms"],
                                   record["models"][row["model"]]["rounds_ms"])
                hits.append({"number": int(f["number"]), "faster_rounds": faster, "rounds": n})
        dominators.append(hits)
        if row["kind"] != "baseline":
            dominated_by.append("")
        elif not np.isfinite(b).all():
            dominated_by.append("not evaluated")
        else:
            dominated_by.append(", ".join(f"#{h['number']} (faster in {h['faster_rounds']} of {h['rounds']} "
                                          "rounds)" for h in hits) or "no")
    frame["dominated_by"] = dominated_by
    frame["dominators"] = dominators  # the same, as data: [{number, faster_rounds, rounds}]
    return frame
