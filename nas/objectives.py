"""The objectives a search can rank on: one definition each (name, direction, label, unit) that config validation,
the controller, the report, the model card and the CLI's help all read.

An objective is a number the evaluator reports under its name (``TrialResult.objectives[name]``). A plugin adds one
with :func:`register_objective` and an evaluator that reports it (docs/extending.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from nas.errors import ConfigError
from nas.registry import Registry

__all__ = ["Objective", "OBJECTIVES", "register_objective", "direction", "label", "additive"]


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "maximize" | "minimize"
    label: str  # for axes and tables
    unit: str = ""  # "" for a count or a fraction
    description: str = ""
    # a cost that adds up over the network's parts (latency, memory, params): the predictor sampler may model it as
    # a sum over the architecture's choices, which predicts networks cheaper than any trial seen
    additive: bool = False

    def __post_init__(self):
        if self.direction not in ("maximize", "minimize"):
            raise TypeError(f"objective {self.name}: direction must be 'maximize' or 'minimize', "
                            f"got {self.direction!r}")


OBJECTIVES: Registry[Objective] = Registry("objective", error=ConfigError, key="objectives")


def register_objective(name: str, direction: str, label: str, unit: str = "", description: str = "",
                       *, additive: bool = False, replace: bool = False) -> Objective:
    objective = Objective(name, direction, label, unit, description, additive)
    OBJECTIVES.register(name, objective, replace=replace)
    return objective


def direction(name: str) -> str:
    return OBJECTIVES.get(name).direction


def additive(name: str) -> bool:
    """Whether ``name`` is a cost that adds up over the network's parts (False for a metric that is not registered)."""
    return name in OBJECTIVES and OBJECTIVES.get(name).additive


def label(name: str) -> str:
    """The axis / table label of ``name`` (the name itself for a metric that is not a registered objective)."""
    return OBJECTIVES.get(name).label if name in OBJECTIVES else name


register_objective("accuracy", "maximize", "validation accuracy", "",
                   "accuracy on the validation split after the proxy budget")
register_objective("latency_ms", "minimize", "latency (ms)", "ms",
                   "median forward time at the run's latency batch size, device and threads", additive=True)
register_objective("params", "minimize", "parameters", "", "trainable and frozen parameters", additive=True)
register_objective("flops", "minimize", "FLOPs", "", "floating-point operations of one forward (2 per multiply-add)",
                   additive=True)
register_objective("activation_mb", "minimize", "activation memory (MB)", "MiB",
                   "bytes autograd saves for backward per example, in MiB", additive=True)
register_objective("val_loss", "minimize", "validation loss", "",
                   "cross-entropy on the validation split after the proxy budget (ranks architectures better than "
                   "accuracy at small budgets: docs/benchmarks.md)")
