"""Writing the report: report.html (plotly), pareto.png (matplotlib), trials.csv, pareto.csv and summary.md, all
drawn from one :class:`nas.report.data.ReportData`."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from nas.io import make_dir
from nas.objectives import label
from nas.report.data import FEW_ON_FRONT, ReportData, report_data
from nas.report.figures import accuracy_spans, scatter_data, scatter_figure, step_line, timed_together
from nas.tables import PAGE_CSS, SORT_JS, html_table, markdown_table


def write_html(data: ReportData, path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    sections = []

    def figure(fig) -> str:
        return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})

    s = scatter_data(data)
    sections.append(("Accuracy vs. cost", figure(scatter_figure(s, data))))

    if len(data.objectives) > 2 and len(s.completed):
        dims = [dict(label=label(o), values=s.completed[o]) for o in data.objectives]
        par = go.Figure(go.Parcoords(dimensions=dims, line=dict(color=s.completed["on_front"].astype(int),
                                                                  colorscale=[[0, "#8aa4c8"], [1, "#d62728"]])))
        par.update_layout(title="All objectives (red: Pareto members)", height=420)
        pairs = [figure(scatter_figure(scatter_data(data, a, b), data)) for i, a in enumerate(data.objectives)
                 for b in data.objectives[i + 1:]]
        sections.append(("Parallel coordinates and 2-D fronts", figure(par) + "".join(pairs)))

    if len(data.hypervolume):
        hv = go.Figure(go.Scatter(x=data.hypervolume["number"], y=data.hypervolume["hypervolume"],
                                  mode="lines+markers"))
        hv.update_layout(title=f"Hypervolume vs. trial (reference {np.round(data.reference, 4).tolist()})",
                         xaxis_title="trial", yaxis_title="hypervolume", template="plotly_white", height=380)
        sections.append(("Hypervolume", figure(hv)))

    columns = ["number", *data.objectives, "accuracy_95ci", "fit", "summary", *_warm_column(data.pareto)]
    sections.append(("Pareto set", html_table(data.pareto, columns, sortable=True)))

    if data.curves:
        curves = go.Figure()
        for number, curve in data.curves.items():
            if len(curve):
                curves.add_trace(go.Scatter(x=curve["epoch"], y=curve["train_loss"], mode="lines+markers",
                                            name=f"#{number} train", line=dict(dash="dot")))
                curves.add_trace(go.Scatter(x=curve["epoch"], y=curve["val_loss"], mode="lines+markers",
                                            name=f"#{number} val"))
        curves.update_layout(title="Learning curves of the Pareto members", xaxis_title="epoch",
                             yaxis_title="loss", template="plotly_white", height=420)
        flags = "".join(f"<li>#{n}: {html.escape(v)}</li>" for n, v in data.fit.items())
        sections.append(("Learning curves", figure(curves) + f"<ul>{flags}</ul>"))

    insight = ""
    if len(data.importance):
        imp = go.Figure()
        for name, group in data.importance.groupby("objective"):
            imp.add_trace(go.Bar(x=group["parameter"], y=group["importance"], name=name))
        imp.update_layout(title="Choice importance per objective (fANOVA)", barmode="group", height=420,
                          template="plotly_white")
        insight += figure(imp) + html_table(data.importance, ["parameter", "objective", "importance"],
                                             sortable=True)
    if len(data.shares):
        top = data.shares[data.shares["front"] > 0]
        share = go.Figure([go.Bar(x=top["parameter"] + "=" + top["option"], y=top["share_front"],
                                  name="share of Pareto front"),
                           go.Bar(x=top["parameter"] + "=" + top["option"], y=top["share_all"],
                                  name="share of all trials")])
        share.update_layout(title="Options on the front vs. in all trials", barmode="group", height=460,
                            template="plotly_white")
        front_size = int(data.trials["on_front"].sum()) if "on_front" in data.trials else 0
        caveat = (f"<p>The front has {front_size} member{'s' if front_size != 1 else ''}: a share of the front (and "
                  "its lift over the share of all trials) moves by a whole member at a time and says little "
                  f"until the front has several.</p>" if front_size < FEW_ON_FRONT else "")
        insight += figure(share) + caveat + html_table(data.shares, list(data.shares.columns), sortable=True)
    sections.append(("Pattern insight", insight or "<p>Not enough completed trials yet.</p>"))

    if len(s.failed):
        sections.append(("Failed trials", html_table(s.failed, ["number", "status", "reason", "summary"])))
    if len(data.baselines):
        sections.append(("Baselines (same proxy budget)",
                         html_table(data.baselines, ["name", *data.objectives, "status", "versus_found",
                                                      "summary"])))

    if len(data.remeasured):
        sections.append(("Latency measured again, together",
                         f"<p>{html.escape(data.remeasured_about)}</p>"
                         + html_table(data.remeasured, _remeasured_columns(data), sortable=True)))

    counts = data.trials["state"].value_counts().to_dict()
    header = (f"<h1>patternnas report: {html.escape(data.name)}</h1><p>space <b>{html.escape(data.space)}</b>, "
              f"dataset <b>{html.escape(data.dataset)}</b>, objectives "
              + ", ".join(f"{o} ({d})" for o, d in zip(data.objectives, data.directions))
              + " — trials: " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items())) + "</p>"
              + "".join(f"<p><i>{html.escape(n)}</i></p>" for n in data.notes))
    body = header + "".join(f"<h2>{html.escape(t)}</h2>{content}" for t, content in sections)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(data.name)} report</title>"
            f"<style>{PAGE_CSS}</style><script type='text/javascript'>{get_plotlyjs()}</script>"
            f"<script>{SORT_JS}</script></head><body>{body}</body></html>")
    path.write_text(page, encoding="utf-8")


def write_png(data: ReportData, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = scatter_data(data)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=150)
    if len(s.completed):
        ax.scatter(s.completed[s.x_name], s.completed[s.y_name], s=18, c="#8aa4c8", label="completed")
    if len(s.pruned):
        ax.scatter(s.pruned[s.x_name], s.pruned[s.y_name], s=18, c="#bbbbbb", marker="x", label="pruned")
    if len(s.front):
        xs, ys = step_line(s.front, s.x_name, s.y_name, "")
        ax.plot(xs, ys, c="#d62728", lw=1.5)
        spans = accuracy_spans(s.front, data.val_size) if "accuracy" in (s.x_name, s.y_name) else None
        ax.scatter(s.front[s.x_name], s.front[s.y_name], s=40, c="#d62728", edgecolors="k", zorder=3,
                   label="Pareto front" + (" (95% accuracy interval)" if spans is not None else ""))
        if spans is not None:  # the accuracy's 95% Wilson interval on the validation examples
            span = np.vstack(spans)
            ax.errorbar(s.front[s.x_name], s.front[s.y_name], xerr=span if s.x_name == "accuracy" else None,
                        yerr=span if s.y_name == "accuracy" else None, fmt="none", ecolor="#d62728", elinewidth=0.8,
                        zorder=2)
    timed = timed_together(s, data)
    if len(timed):
        span = [(timed["latency_ms"] - timed["latency_min_ms"]).to_numpy(),
                (timed["latency_max_ms"] - timed["latency_ms"]).to_numpy()]
        ax.errorbar(timed[s.x_name], timed[s.y_name], xerr=span if s.x_name == "latency_ms" else None,
                    yerr=span if s.y_name == "latency_ms" else None, fmt="o", mfc="none", mec="#2ca02c",
                    ecolor="#2ca02c", ms=8, label="timed together (nas measure)", zorder=4)
    if len(s.baselines):
        ax.scatter(s.baselines[s.x_name], s.baselines[s.y_name], s=50, c="k", marker="D", label="baselines")
        for _, row in s.baselines.iterrows():
            ax.annotate(row["name"], (row[s.x_name], row[s.y_name]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel(label(s.x_name))
    ax.set_ylabel(label(s.y_name))
    ax.set_title(f"{data.name}: {data.space} on {data.dataset}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing completed yet: no legend (and no matplotlib warning)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_tables(data: ReportData, out: Path) -> dict[str, Path]:
    trials_csv, pareto_csv, summary_md = out / "trials.csv", out / "pareto.csv", out / "summary.md"
    bulky = ["curve", "val_correct"]  # the curve is in the storage and the HTML; per-example results in the storage
    data.trials.drop(columns=bulky, errors="ignore").to_csv(trials_csv, index=False)
    data.pareto.drop(columns=bulky, errors="ignore").to_csv(pareto_csv, index=False)
    lines = [f"# {data.name}: Pareto set", "",
             f"space `{data.space}`, dataset `{data.dataset}`, {len(data.trials)} trials, "
             f"{int((data.trials['state'] == 'COMPLETE').sum())} completed, {len(data.pareto)} on the front.", ""]
    lines += [f"_{n}_" for n in data.notes] + ([""] if data.notes else [])
    columns = ["number", *data.objectives, "accuracy_95ci", "summary", *_warm_column(data.pareto)]
    lines.append(markdown_table(data.pareto, columns))
    if len(data.baselines):
        lines += ["", "## Baselines (same proxy budget)", "",
                  markdown_table(data.baselines, ["name", *data.objectives, "status", "versus_found"])]
    if len(data.remeasured):
        lines += ["", "## Latency measured again, together", "", data.remeasured_about, "",
                  markdown_table(data.remeasured, _remeasured_columns(data))]
    summary_md.write_text("\n".join(lines) + "\n")
    return {"trials.csv": trials_csv, "pareto.csv": pareto_csv, "summary.md": summary_md}


def write_report(run_dir: str | Path, out_dir: str | Path | None = None, *, baselines: bool = True) -> dict[str, Path]:
    """Write report.html, pareto.png, trials.csv, pareto.csv and summary.md; return their paths."""
    data = report_data(run_dir, baselines=baselines)

    out = make_dir(Path(out_dir) if out_dir else Path(run_dir) / "report", "--out")
    paths = write_tables(data, out)
    write_html(data, out / "report.html")
    write_png(data, out / "pareto.png")
    paths.update({"report.html": out / "report.html", "pareto.png": out / "pareto.png"})
    return paths


def _remeasured_columns(data: ReportData) -> list[str]:
    return ["model", *dict.fromkeys([*data.objectives, "latency_ms"]), "rounds", "stored_latency_ms", "on_front",
            "dominated_by", "summary"]


def _warm_column(frame: pd.DataFrame) -> list[str]:
    """["warm_start"] when a row of ``frame`` was a warm-start trial (config key warm_start), else []."""
    return ["warm_start"] if "warm_start" in frame and frame["warm_start"].notna().any() else []
