"""patternnas: neural architecture search over a declarative grammar of architecture design patterns.

Importing ``nas`` is cheap: torch, Optuna and Ray are imported only by the functions that need them.
"""
from __future__ import annotations

from typing import Any

from nas.errors import NasError
from nas.version import __version__

__all__ = ["NasError", "__version__", "search", "resume"]


# -- search controller (lazy: nas.control imports optuna and torch) ------------------------------------------------

_RUN_OPTIONS = ("name", "runs_dir", "resume", "storage", "quiet")


def search(config: Any, **overrides: Any):
    """Run an architecture search; return the ``optuna.Study``.

    ``config`` is a run-config YAML path or a mapping. Keyword arguments override config keys (``trials=4``,
    ``budget={"epochs": 0.5}``; a dotted key via ``**{"budget.epochs": 0.5}``), except the run options ``name``,
    ``runs_dir`` (default ``runs``), ``resume``, ``storage`` (an Optuna storage URL) and ``quiet``.
    """
    from nas.control.search import search as _search  # heavy: optuna

    options = {k: overrides.pop(k) for k in _RUN_OPTIONS if k in overrides}
    return _search(config, overrides, **options)


def resume(run_dir: Any, trials: int | None = None, **options: Any):
    """Continue the run in ``run_dir`` to its target (or to ``trials``); return the ``optuna.Study``."""
    from nas.control.search import resume as _resume  # heavy: optuna

    return _resume(run_dir, trials=trials, **options)


# -- specs, models, reports, exports (lazy: these import torch) ------------------------------------------------------

__all__ += ["build", "load", "report", "measure", "export"]


def build(spec: Any, input_shape: Any = None, num_classes: int | None = None):
    """Build the ``nn.Module`` of a spec (an ArchSpec, plain data, a spec file, or an exported ``arch.json``)."""
    from nas.builder import build as _build  # heavy: torch

    return _build(spec, input_shape, num_classes)


def load(path: Any):
    """Load an exported architecture (folder or ``arch.json``) as an ``nn.Module``, with its weights when present.
    The spec's hash is checked; weights are read with safetensors only."""
    from nas.export import load as _load  # heavy: torch, onnx

    return _load(path)


def report(run_dir: Any, out_dir: Any = None, *, baselines: bool = True):
    """Write the run's report (report.html, pareto.png, trials.csv, pareto.csv, summary.md); return their paths."""
    from nas.report import write_report  # heavy: plotly, pandas

    return write_report(run_dir, out_dir, baselines=baselines)


def measure(run_dir: Any, trials: Any = "front", **options: Any) -> dict:
    """Time the run's Pareto front (``trials``: "front", "all" or trial numbers) and the space's baselines again,
    together in one process, round by round; write and return ``latency.json`` (see :mod:`nas.remeasure`)."""
    from nas.remeasure.timing import remeasure  # heavy: torch

    return remeasure(run_dir, trials=trials, **options)


def export(target: Any, out_dir: Any = None, **options: Any):
    """Export a run's trial (``trial=N``, default the best) or a spec file as arch.json, ONNX, TorchScript, card."""
    from nas.export import export_from  # heavy: torch, onnx

    return export_from(target, out_dir, **options)
