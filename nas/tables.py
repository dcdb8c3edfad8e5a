"""Tables of the report, in Markdown (summary.md) and HTML (report.html), with one text per cell for both; and the
page's style and its click-to-sort script."""
from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd


def markdown_table(frame: pd.DataFrame, columns: list[str]) -> str:
    columns = [c for c in columns if c in frame.columns]
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in frame.iterrows():
        rows.append("| " + " | ".join(cell_text(row[c], c).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(rows)


def cell_text(value: Any, column: str = "") -> str:
    """A table cell's text, the same in the Markdown and the HTML tables: counts (params, FLOPs, whole numbers
    stored as floats) as integers with thousands separators, other numbers to 4 significant digits, NaN empty;
    trial numbers as they are."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if column in ("trial", "number") and isinstance(value, (int, float, np.integer, np.floating)):
        return "" if value != value else str(int(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value):,}"
        return f"{value:.4g}"
    return str(value)


def html_table(frame: pd.DataFrame, columns: list[str], *, sortable: bool = False) -> str:
    columns = [c for c in columns if c in frame.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell_text(row[c], c))}</td>" for c in columns) + "</tr>"
                   for _, row in frame.iterrows())
    cls = " class='sortable'" if sortable else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


PAGE_CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px}table{border-collapse:collapse;
margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 6px;text-align:left}th{background:#f3f3f3}
table.sortable th{cursor:pointer}h2{margin-top:32px}"""

SORT_JS = """document.addEventListener('click',function(e){var th=e.target.closest('table.sortable th');if(!th)return;
var table=th.closest('table'),i=Array.prototype.indexOf.call(th.parentNode.children,th),body=table.tBodies[0];
var asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';var rows=Array.prototype.slice.call(body.rows);
rows.sort(function(a,b){var x=a.cells[i].textContent,y=b.cells[i].textContent;
var p=parseFloat(x.replace(/,/g,'')),q=parseFloat(y.replace(/,/g,''));
var c=(!isNaN(p)&&!isNaN(q))?p-q:x.localeCompare(y);return asc?c:-c;});
rows.forEach(function(r){body.appendChild(r);});});"""
