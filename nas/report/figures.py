"""The report's figures: the scatter of two objectives with its front, baselines and re-measured latencies (the
data both the HTML and the PNG draw from, and the plotly figure)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from nas import pareto
from nas.objectives import label
from nas.report.data import ReportData
from nas.significance import wilson_interval

LABEL_POSITIONS = ("top center", "bottom center", "top right", "bottom left", "top left", "bottom right")


def label_positions(frame: pd.DataFrame, x: str, y: str) -> list[str]:
    """Text positions for labelled markers: taken in order of height, neighbours get different positions (above /
    below, then to the sides), so labels of baselines close together do not print over each other."""
    order = frame.reset_index(drop=True).sort_values([y, x], kind="stable").index
    positions = [""] * len(frame)
    for rank, i in enumerate(order):
        positions[i] = LABEL_POSITIONS[rank % len(LABEL_POSITIONS)]
    return positions


# ---------------------------------------------------------------------------------------------------------------
# plot data (shared by HTML and PNG)
# ---------------------------------------------------------------------------------------------------------------


class ScatterData(NamedTuple):
    x_name: str
    y_name: str
    completed: pd.DataFrame
    front: pd.DataFrame  # sorted along x, for the step line
    pruned: pd.DataFrame
    failed: pd.DataFrame
    baselines: pd.DataFrame


def scatter_data(data: ReportData, x: str | None = None, y: str | None = None) -> ScatterData:
    """Accuracy against latency when both are objectives; else the first two objectives."""
    objectives = data.objectives
    if x is None or y is None:
        if "accuracy" in objectives and len(objectives) > 1:
            y = "accuracy"
            x = "latency_ms" if "latency_ms" in objectives else next(o for o in objectives if o != "accuracy")
        else:
            x, y = objectives[0], objectives[1] if len(objectives) > 1 else objectives[0]
    if x == "accuracy":  # accuracy reads best upwards
        x, y = y, x
    t = data.trials
    completed = t[t["state"] == "COMPLETE"]
    front = completed[completed["on_front"]]
    if x != y:
        front = front_2d(completed, x, y, data)
    pruned = t[(t["state"] == "PRUNED")].dropna(subset=[x, y])
    failed = t[t["state"] == "FAIL"]
    base = data.baselines.dropna(subset=[x, y]) if len(data.baselines) else data.baselines
    return ScatterData(x, y, completed, front.sort_values(x), pruned, failed, base)


def front_2d(completed: pd.DataFrame, x: str, y: str, data: ReportData) -> pd.DataFrame:
    directions = [data.directions[data.objectives.index(x)], data.directions[data.objectives.index(y)]]
    values = completed[[x, y]].to_numpy(float)
    return completed[pareto.pareto_mask(values, directions)] if len(values) else completed


def step_line(front: pd.DataFrame, x: str, y: str, y_direction: str) -> tuple[list, list]:
    """The staircase through a 2-D front (x minimised): each member holds its y until the next member."""
    xs, ys = [], []
    for i, (_, row) in enumerate(front.iterrows()):
        if i:
            xs.append(row[x])
            ys.append(ys[-1])
        xs.append(row[x])
        ys.append(row[y])
    return xs, ys


# ---------------------------------------------------------------------------------------------------------------
# drawing
# ---------------------------------------------------------------------------------------------------------------


def scatter_figure(s: ScatterData, data: ReportData):
    import plotly.graph_objects as go

    fig = go.Figure()
    hover = "#%{customdata[0]} %{customdata[1]}<extra></extra>"
    if len(s.completed):
        fig.add_trace(go.Scatter(x=s.completed[s.x_name], y=s.completed[s.y_name], mode="markers", name="completed",
                                 marker=dict(color="#8aa4c8", size=8),
                                 customdata=s.completed[["number", "summary"]].to_numpy(), hovertemplate=hover))
    if len(s.pruned):
        fig.add_trace(go.Scatter(x=s.pruned[s.x_name], y=s.pruned[s.y_name], mode="markers",
                                 name="pruned / infeasible (value reached)",
                                 marker=dict(color="#bbbbbb", symbol="x", size=8),
                                 customdata=s.pruned[["number", "summary"]].to_numpy(), hovertemplate=hover))
    if len(s.front):
        xs, ys = step_line(s.front, s.x_name, s.y_name, "")
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="Pareto front", line=dict(color="#d62728",
                                                                                          shape="linear")))
        bars = accuracy_bars(s.front, s, data, "#d62728")
        fig.add_trace(go.Scatter(x=s.front[s.x_name], y=s.front[s.y_name], mode="markers",
                                 name="Pareto members" + (" (accuracy: 95% Wilson interval)" if bars else ""),
                                 marker=dict(color="#d62728", size=11, line=dict(color="black", width=1)),
                                 customdata=s.front[["number", "summary"]].to_numpy(), hovertemplate=hover, **bars))
    if len(s.baselines):
        fig.add_trace(go.Scatter(x=s.baselines[s.x_name], y=s.baselines[s.y_name], mode="markers+text",
                                 name="hand-designed baselines", text=s.baselines["name"],
                                 textposition=label_positions(s.baselines, s.x_name, s.y_name),
                                 marker=dict(color="black", symbol="diamond", size=11),
                                 customdata=s.baselines[["name", "summary"]].to_numpy(),
                                 hovertemplate="%{customdata[0]}: %{customdata[1]}<extra></extra>",
                                 **accuracy_bars(s.baselines, s, data, "black")))
    timed = timed_together(s, data)
    if len(timed):
        x_is_latency = s.x_name == "latency_ms"
        bar = dict(type="data", symmetric=False, color="#2ca02c",
                   array=(timed["latency_max_ms"] - timed["latency_ms"]).to_numpy(),
                   arrayminus=(timed["latency_ms"] - timed["latency_min_ms"]).to_numpy())
        fig.add_trace(go.Scatter(x=timed[s.x_name], y=timed[s.y_name], mode="markers",
                                 name="timed together (nas measure): median, range of the rounds",
                                 marker=dict(color="rgba(0,0,0,0)", size=13, line=dict(color="#2ca02c", width=2)),
                                 error_x=bar if x_is_latency else None, error_y=None if x_is_latency else bar,
                                 customdata=timed[["model", "summary"]].to_numpy(),
                                 hovertemplate="%{customdata[0]} timed together: %{x}, %{y}<extra></extra>"))
    failed = f" — {len(s.failed)} failed trial(s) have no values (listed below)" if len(s.failed) else ""
    fig.update_layout(title=f"{label(s.y_name)} vs {label(s.x_name)}{failed}", xaxis_title=label(s.x_name),
                      yaxis_title=label(s.y_name), template="plotly_white", height=520)
    return fig


def accuracy_spans(frame: pd.DataFrame, val_size: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(below, above): each row's distance from its accuracy to the ends of its 95% Wilson interval on ``val_size``
    validation examples; None when the size is not known (a run stored before it was recorded)."""
    if not val_size or not len(frame) or "accuracy" not in frame:
        return None

    acc = frame["accuracy"].to_numpy(dtype=float)
    ci = np.array([wilson_interval(a, val_size) if np.isfinite(a) else (a, a) for a in acc]).reshape(len(acc), 2)
    return acc - ci[:, 0], ci[:, 1] - acc


def accuracy_bars(frame: pd.DataFrame, s: ScatterData, data: ReportData, color: str) -> dict:
    """Plotly error bars for the accuracy axis of the scatter (none when neither axis is accuracy)."""
    spans = accuracy_spans(frame, data.val_size) if "accuracy" in (s.x_name, s.y_name) else None
    if spans is None:
        return {}
    bar = dict(type="data", symmetric=False, arrayminus=spans[0], array=spans[1], color=color, thickness=1)
    return {"error_x": bar} if s.x_name == "accuracy" else {"error_y": bar}


def timed_together(s: ScatterData, data: ReportData) -> pd.DataFrame:
    """The ``nas measure`` rows to draw on a latency axis (none when neither axis is latency)."""
    r = data.remeasured
    if not len(r) or "latency_ms" not in (s.x_name, s.y_name) or not {s.x_name, s.y_name} <= set(r.columns):
        return r.iloc[:0]
    return r.dropna(subset=[s.x_name, s.y_name])
