"""``nas measure RUN``: the latency of a run's Pareto front (and the space's baselines) measured again, together.

Each trial's latency objective was measured by that trial, in its own moment: on a shared machine the same model
measured in two processes differs by 5-20 % (experiments/results/bench_latency_repeatability.md), so two neighbours
on the front, or a found net and a baseline, can swap places on a measurement's luck. This measures the chosen
models again in ONE process, round by round in a rotating order (every model once per round), with the run's latency
settings (device, batch size, threads, warm-up, repeats, minimum timing window), and writes ``latency.json`` in the
run folder (atomically; the run's Optuna storage is not touched). ``nas report`` then shows the re-measured front:
each model's median over the rounds, the spread of its rounds, the front recomputed on those latencies, and, for
each baseline, the found nets that dominate it with the latency compared round by round (paired: "faster in 5 of 5
rounds" is the architecture, "in 3 of 5" is the moment).

Latency depends on the architecture, not on trained weights, so each model is built from its spec at the run's input
(seeded with the run's seed, as ``evaluate`` builds it before measuring).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
import torch

from nas import builder, pareto
from nas.control.baselines import evaluate_baselines
from nas.control.rundir import open_run
from nas.data import load_dataset
from nas.errors import ConfigError, NasError, RunError, one_line
from nas.evaluate.evaluate import EvalConfig, measure_latency_for
from nas.io import write_atomic
from nas.remeasure.record import LATENCY_FILE, read_remeasured
from nas.spec import ArchSpec

SELECT = ("front", "all")


def _parse_selection(which: str | Sequence[int], where: str) -> str | list[int]:
    if isinstance(which, str) and which in SELECT:
        return which
    if isinstance(which, str):
        try:
            numbers = [int(part) for part in which.split(",")]  # an empty item ("3,,7") is a typo: refused
        except ValueError:
            raise RunError(f"--trials takes 'front', 'all' or trial numbers such as 3,7,12; got {which!r}",
                           file=where, key="--trials") from None
    else:
        numbers = [int(n) for n in which]
    if not numbers:
        raise RunError("--trials names no trial", file=where, key="--trials")
    return numbers


def _chosen_trials(study, complete: list, selection: str | list[int], directions: list[str], where: str) -> list:
    """The trials to time: numbered ones (each a complete trial with an architecture), all complete ones, or the
    Pareto front of the complete ones on the run's objectives."""
    if isinstance(selection, list):
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        for n in selection:
            if n not in by_number:
                raise RunError(f"no trial #{n} in this run (it has {len(by_number)})", file=where, key="--trials")
            if by_number[n] not in complete:
                raise RunError(f"trial #{n} is {by_number[n].state.name}, not a complete trial with an "
                               "architecture", file=where, key="--trials")
        chosen = [by_number[n] for n in dict.fromkeys(selection)]
    elif selection == "all":
        chosen = complete
    else:
        values = np.array([t.values for t in complete], dtype=float).reshape(len(complete), len(directions))
        mask = pareto.pareto_mask(values, directions) if len(complete) else np.zeros(0, bool)
        chosen = [t for t, on in zip(complete, mask) if on]
    if not chosen:
        raise RunError("the run has no complete trial to measure yet", file=where, key="--trials")
    return chosen


def _latency_settings(config, where: str, *, device: str | None, threads: int | None,
                      batch_size: int | None) -> EvalConfig:
    """The run's latency settings with the command's overrides, checked (syntax, and a GPU for cuda)."""
    for key, value in (("--threads", threads), ("--batch-size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise RunError(f"must be an integer >= 1, got {value!r}", file=where, key=key)
    overrides = {"latency_device": device, "latency_threads": threads, "latency_batch_size": batch_size}
    eval_config = replace(EvalConfig.from_options(**config.eval_options()),
                          **{k: v for k, v in overrides.items() if v is not None})
    try:
        eval_config.check_latency_device()  # its syntax, and a GPU for cuda: the one check search and eval run
    except ConfigError as e:
        raise RunError(e.message, file=where, key="--device") from None
    return eval_config


def remeasure(run_dir: str | os.PathLike, *, trials: str | Sequence[int] = "front", baselines: bool = True,
              rounds: int = 5, device: str | None = None, threads: int | None = None,
              batch_size: int | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the latency of the chosen COMPLETE trials of ``run_dir`` (``"front"``: the Pareto front on the run's
    objectives; ``"all"``; or trial numbers) and of the space's baselines, in ``rounds`` interleaved rounds, with
    the run's latency settings (``device`` / ``threads`` / ``batch_size`` override them). Writes and returns the
    record of ``latency.json``. It replaces an earlier record whole (times from two sessions are not comparable);
    ``replaced`` says which earlier models are not in the new one."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= 100:
        raise RunError(f"--rounds must be an integer in 1..100, got {rounds!r}", file=str(run_dir), key="--rounds")
    run, study, config, space = open_run(run_dir)
    where = str(run.path)
    selection = _parse_selection(trials, where)
    objectives = list(config.objectives)
    complete = [t for t in study.get_trials(deepcopy=False)
                if t.state.name == "COMPLETE" and t.values and "spec" in t.user_attrs]
    chosen = _chosen_trials(study, complete, selection, config.directions, where)
    eval_config = _latency_settings(config, where, device=device, threads=threads, batch_size=batch_size)
    data = load_dataset(config.dataset, data_dir=config.data_dir, train_subset=config.train_subset,
                        seed=config.seed, val_fraction=config.val_fraction)

    run_shape = tuple(int(s) for s in config.budget_obj().input_shape(data.input_shape))
    models: dict[str, dict[str, Any]] = {}
    built: dict[str, tuple[Any, tuple[int, ...]]] = {}
    skipped: dict[str, str] = {}

    def add(label: str, spec: ArchSpec, shape: Sequence[int], entry: dict[str, Any]) -> None:
        torch.manual_seed(config.seed)
        model = builder.build(spec, shape, data.num_classes).eval()
        built[label] = (model, tuple(int(s) for s in shape))
        models[label] = {**entry, "spec_hash": spec.hash(), "summary": spec.summary()}

    for t in chosen:
        spec = ArchSpec.from_json(t.user_attrs["spec"], file=f"{where} trial #{t.number}")
        shape = t.user_attrs.get("input_shape") or run_shape
        stored = (t.user_attrs.get("objectives") or {}).get("latency_ms")
        add(f"trial-{t.number:04d}", spec, shape, {"kind": "trial", "number": t.number,
                                                    "values": dict(zip(objectives, t.values)),
                                                    "stored_latency_ms": stored})
    if baselines:  # evaluated under the run's budget first where the run's cache lacks them (the report reads them)
        cache = evaluate_baselines(run, config, space, progress=progress)
        for name, spec in space.baselines.items():
            entry = cache.get(f"{spec.hash()}:{config.budget_key()}") or {}
            values = {o: entry.get("objectives", {}).get(o) for o in objectives} if entry.get("status") == "ok" \
                else {}
            try:
                add(f"baseline-{name}", spec, run_shape, {"kind": "baseline", "name": name, "values": values,
                                                          "stored_latency_ms": values.get("latency_ms")})
            except NasError as e:  # a baseline that does not build for this run's input: said, not fatal
                skipped[f"baseline-{name}"] = e.one_line()

    try:
        times = time_in_rounds(built, rounds,
                               lambda model, shape: measure_latency_for(model, shape, eval_config).median_ms,
                               progress=progress)
    except (RuntimeError, MemoryError) as e:  # e.g. a --batch-size that does not fit in memory

        raise RunError(f"cannot time the models ({eval_config.latency_device}, batch {eval_config.latency_batch_size}, "
                       f"{eval_config.latency_threads} thread(s), {eval_config.latency_runtime}): {one_line(e, 200)}",
                       file=where) from None
    for label in built:
        rounds_ms = times[label]
        models[label].update({"rounds_ms": rounds_ms, "median_ms": float(np.median(rounds_ms)),
                              "min_ms": min(rounds_ms), "max_ms": max(rounds_ms)})
    record = {
        "measured_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "selection": selection if isinstance(selection, str) else list(selection),
        "rounds": rounds,
        "settings": {"device": eval_config.latency_device, "batch_size": eval_config.latency_batch_size,
                     "threads": eval_config.latency_threads, "warmup": eval_config.latency_warmup,
                     "repeats": eval_config.latency_repeats, "min_time_s": eval_config.latency_min_time_s,
                     "runtime": eval_config.latency_runtime},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if eval_config.latency_device.startswith("cuda") else None},
        "trials_complete": len(complete),
        "models": models,
        "skipped": skipped,
    }
    previous = read_remeasured(run.path)
    if previous and isinstance(previous.get("models"), dict):  # rounds of two sessions do not mix: said, not merged
        record["replaced"] = {"measured_at": previous.get("measured_at"), "models": len(previous["models"]),
                              "not_measured_now": [label for label in previous["models"] if label not in models]}
    write_atomic(run.path / LATENCY_FILE, json.dumps(record, indent=1))
    return record


def time_in_rounds(models: dict[str, tuple[Any, Sequence[int]]], rounds: int,
                   time_one: Callable[[Any, Sequence[int]], float],
                   progress: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """``time_one(model, input_shape)`` of every model once per round, ``rounds`` times, in a rotating order (round
    r starts at the r-th model), so that a slow stretch of the machine falls on different models each round and the
    rounds compare pairwise. Returns each label's times, one per round, in round order."""
    labels = list(models)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(rounds):
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            model, shape = models[label]
            times[label].append(float(time_one(model, shape)))
        if progress:
            progress(f"round {r + 1}/{rounds}: {len(labels)} models")
    return times
