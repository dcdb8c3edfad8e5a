"""The evaluators: what turns a spec and a run's settings into the objectives a trial records.

An evaluator is a function with the signature of :func:`nas.evaluate.evaluate.evaluate`::

    def my_evaluator(spec: ArchSpec, config: EvalConfig, *, data: Dataset, callback=None, precheck=None,
                     **_) -> TrialResult

``data`` is the run's dataset (loaded once per process); ``callback(EpochStats)`` returning True asks to stop (rungs);
``precheck(spec, get_model) -> (problems, excess, measured)`` is the controller's constraint check, which an
evaluator runs first (see :func:`~nas.evaluate.evaluate.evaluate`). It returns a
:class:`~nas.evaluate.evaluate.TrialResult` whose ``objectives`` hold a value for each of the run's objectives
(:mod:`nas.objectives`); it never raises for a failing candidate (a status says so). A run config selects one with
``evaluator: NAME`` (default ``proxy``; ``nb201`` looks NAS-Bench-201 architectures up in its tables,
:mod:`nas.evaluate.tabular`); a plugin module registers its own (docs/extending.md). An evaluator with a
``table_input(dataset) -> (input_shape, num_classes)`` attribute is tabular: the engine loads no data set for it.
An evaluator with a ``reports`` attribute (a tuple of objective names) reports only those: a run asking for another
objective is refused before any trial, naming the key ``objectives``.
"""
from __future__ import annotations

from collections.abc import Callable

from nas.errors import ConfigError
from nas.evaluate.evaluate import TrialResult, evaluate
from nas.evaluate.tabular import nb201_evaluate
from nas.registry import Registry

Evaluator = Callable[..., TrialResult]
EVALUATORS: Registry[Evaluator] = Registry("evaluator", error=ConfigError, key="evaluator")
EVALUATORS.register("proxy", evaluate)  # build, measure, score and proxy-train (nas.evaluate.evaluate)
EVALUATORS.register("nb201", nb201_evaluate)  # look the architecture up in NAS-Bench-201 (nas.evaluate.tabular)


def check_reports(name: str, objectives: list[str]) -> None:
    """Refuse a run whose objectives the evaluator ``name`` does not all report (where it says which it reports, its
    ``reports`` attribute): a one-line ConfigError naming the key ``objectives``, before any trial."""
    reports = getattr(EVALUATORS.get(name), "reports", None)
    missing = [o for o in objectives if reports is not None and o not in reports]
    if missing:
        raise ConfigError(f"evaluator {name!r} reports {', '.join(reports)}; not {', '.join(missing)}",
                          key="objectives")


__all__ = ["EVALUATORS", "Evaluator", "check_reports"]
