"""Shared helpers for the scripts under experiments/: the evidence header and the result writers.

Every benchmark writes ``experiments/results/<name>.md`` (and ``<name>.csv`` for its main table) headed by the
machine (platform, CPU model from /proc/cpuinfo, cores), the torch version, the date and the exact command, so a
number in a results page can always be traced to where and how it was measured.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import math
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

EXPERIMENTS_DIR = Path(__file__).resolve().parent
RESULTS_DIR = EXPERIMENTS_DIR / "results"
REPO_ROOT = EXPERIMENTS_DIR.parent

if str(REPO_ROOT) not in sys.path:  # `python experiments/x.py` puts experiments/ first on the path, not the repo
    sys.path.insert(0, str(REPO_ROOT))


# ------------------------------------------------------------------------------------------------ environment
def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def source_hash(paths: Iterable[str] = ("nas",)) -> str:
    """sha256 (12 hex digits) over the .py files under ``paths`` (relative to the repository root): identifies the
    engine code a result was measured with (the checkout is edited while experiments run; there is no git here)."""
    h = hashlib.sha256()
    for rel in paths:
        root = REPO_ROOT / rel
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for f in files:
            h.update(str(f.relative_to(REPO_ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def machine_info() -> dict[str, Any]:
    """Where and with what a measurement was taken."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": f"{usable_cores()} usable (os.cpu_count()={os.cpu_count()})",
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch threads (default)"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            info["cuda"] = torch.version.cuda
        else:
            info["gpu"] = "none (torch.cuda.is_available() is False)"
    except ImportError:
        info["torch"] = "not installed"
    try:
        info["load average (1/5/15 min, at start)"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    try:
        info["nas sources (sha256 of nas/**/*.py)"] = source_hash()
    except OSError:
        pass
    info["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    info["command"] = command_line()
    return info


def command_line() -> str:
    """The command as typed from the repository root: ``python experiments/<script>.py <args>``."""
    argv = list(sys.argv)
    script = Path(argv[0]).resolve() if argv else Path("?")
    try:
        script_text = str(script.relative_to(REPO_ROOT))
    except ValueError:
        script_text = str(script)
    return " ".join(["python", shlex.quote(script_text), *(shlex.quote(a) for a in argv[1:])])


# ---------------------------------------------------------------------------------------------------- tables
def _cell(v: Any, fmt: str | None = None) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if fmt:
            return format(v, fmt)
        return f"{v:.4g}"
    return str(v)


def format_rows(rows: Iterable[Sequence[Any]]) -> list[list[str]]:
    return [[_cell(v) for v in row] for row in rows]


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (cells formatted with 4 significant digits unless already strings)."""
    body = format_rows(rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The same table aligned for a terminal."""
    body = format_rows(rows)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(out)


def write_csv(path: Path, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(headers)
        for row in rows:
            w.writerow(["" if v is None else v for v in row])
    return path


class Report:
    """Collects a results page: title, evidence header, free text and tables; prints as it goes.

    ``report.table(...)`` prints the table to stdout and adds it to the page; ``report.write()`` writes
    ``experiments/results/<name>.md`` (and the CSV of every table given ``csv=...``).
    """

    def __init__(self, name: str, title: str, *, info: dict[str, Any] | None = None):
        self.name = name
        self.title = title
        self.info = info if info is not None else machine_info()
        self.parts: list[str] = []
        self.csv_files: list[Path] = []

    def text(self, markdown: str, *, echo: bool = True) -> None:
        self.parts.append(markdown.strip("\n"))
        if echo:
            print(markdown.strip("\n"), flush=True)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None,
              csv: str | None = None) -> None:
        rows = [list(r) for r in rows]
        if title:
            self.parts.append(f"### {title}")
            print(f"\n{title}")
        self.parts.append(md_table(headers, rows))
        print(text_table(headers, rows), flush=True)
        if csv:
            path = write_csv(RESULTS_DIR / csv, headers, rows)
            self.csv_files.append(path)
            self.parts.append(f"(CSV: `{path.relative_to(REPO_ROOT)}`)")

    def header_markdown(self) -> str:
        lines = [f"# {self.title}", "", "| | |", "|---|---|"]
        lines += [f"| {k} | {('`' + str(v) + '`') if k == 'command' else v} |" for k, v in self.info.items()]
        return "\n".join(lines)

    def write(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.name}.md"
        path.write_text(self.header_markdown() + "\n\n" + "\n\n".join(self.parts) + "\n")
        print(f"\nwrote {path.relative_to(REPO_ROOT)}" +
              "".join(f", {p.relative_to(REPO_ROOT)}" for p in self.csv_files), flush=True)
        return path


def print_header(info: dict[str, Any]) -> None:
    for k, v in info.items():
        print(f"{k}: {v}")
    print(flush=True)


def sync_device(device: Any) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing): call before reading a
    host clock around device work."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------ statistics
def median(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x == x]
    return float(statistics.median(xs)) if xs else float("nan")


def rel_diff(a: float, b: float) -> float:
    """|a - b| / min(a, b): the conservative relative difference of two positive numbers."""
    lo = min(a, b)
    return abs(a - b) / lo if lo > 0 else float("inf")
