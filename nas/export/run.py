"""What ``nas export`` calls: export a trial of a search run, or a spec file, as a folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from nas.archjson import ARCH_FILE, check_input_shape, check_num_classes, positive_shape, read_spec
from nas.control.config import load_config
from nas.control.pick import NO_RANK, complete_trials, run_pick
from nas.control.rundir import CONFIG_FILE, RunDir
from nas.errors import ExportError
from nas.evaluate.evaluate import check_input_kind
from nas.export.card import dataset_preprocessing, preprocessing_of
from nas.export.choose import select_trial
from nas.export.folder import check_target_dir, export_model
from nas.export.graph import check_opset
from nas.remeasure.record import read_remeasured
from nas.spec import ArchSpec


def export_trial(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, trial: int | None = None,
                 max_latency_ms: float | None = None, min_accuracy: float | None = None, knee: bool = False,
                 opset: int | None = None, force: bool = False, latency_repeats: int = 50,
                 rank_with: str | None = None) -> dict:
    """Export the architecture of ``trial`` of a search run (default: the run's pick, :func:`nas.control.pick.run_pick`
    by its config's ``rank_with``; ``rank_with="none"``: the best first objective; other rules:
    :func:`nas.export.choose.select_trial`). A search keeps no weights, so the folder holds
    the architecture and its proxy metrics; train it with :func:`nas.fulltrain.train_full`.
    Default folder: ``<run_dir>/exports/trial-<N>``."""
    run = RunDir.open(run_dir)
    config, _ = load_config(run.path / CONFIG_FILE)
    study = run.load_study()
    objectives = list(study.user_attrs.get("objectives") or config.objectives)
    rules = [trial is not None, max_latency_ms is not None or min_accuracy is not None, bool(knee),
             rank_with is not None]
    if sum(rules) > 1:
        raise ExportError("choose one of --trial, --max-latency-ms / --min-accuracy, --knee, --rank-with",
                          file=str(run.path))
    if trial is None and any(rules) and rank_with != NO_RANK:
        chosen, selected = select_trial(study, objectives, max_latency_ms=max_latency_ms,
                                        min_accuracy=min_accuracy, knee=knee, where=str(run.path),
                                        remeasured=read_remeasured(run.path) if knee else None,
                                        rank_with=rank_with)
    elif trial is None:  # the run's own pick (config rank_with), or --rank-with none: the best first objective
        rule = rank_with if rank_with is not None else config.rank_with
        picked = run_pick(complete_trials(study), objectives, [d.name.lower() for d in study.directions], rule)
        if picked is None:
            raise ExportError("the run has no complete trial to export yet", file=str(run.path), key="--trial")
        chosen, selected = picked
        if rank_with is None and rule not in (None, NO_RANK):
            selected += " (the run's pick, config rank_with; --rank-with none: the best alone)"
    else:
        found = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
        if not found:
            raise ExportError(f"no trial #{trial} in this run (it has {len(study.trials)})", file=str(run.path),
                              key="--trial")
        if "spec" not in found[0].user_attrs:
            raise ExportError(f"trial #{trial} has no architecture (state {found[0].state.name}: it failed "
                              "before sampling one)", file=str(run.path), key="--trial")
        chosen = found[0]
        selected = "asked for"
    spec = ArchSpec.from_json(chosen.user_attrs["spec"], file=f"{run.path} trial #{chosen.number}")
    data, pre = dataset_preprocessing(config.dataset, data_dir=config.data_dir, train_subset=config.train_subset,
                                      seed=config.seed, val_fraction=config.val_fraction)
    shape = chosen.user_attrs.get("input_shape")
    if positive_shape(shape) is None:  # a trial stopped before evaluation (e.g. infeasible): the run's input shape
        shape = config.budget_obj().input_shape(data.input_shape)
    shape = tuple(int(s) for s in shape)
    if data.kind == "image":
        pre = preprocessing_of(data, resize=shape[1:])
    objectives_measured = chosen.user_attrs.get("objectives") or {}
    metrics = {k: objectives_measured[k] for k in ("accuracy", "val_loss") if k in objectives_measured}
    source = {"run": run.path.name, "trial": chosen.number, "run_dir": str(run.path.resolve()),
              "state": chosen.state.name, "selected": selected, "dataset": config.dataset,
              "budget": config.budget.model_dump()}
    if chosen.values:
        source["values"] = dict(zip(objectives, chosen.values))
    source = {k: v for k, v in source.items() if v is not None}
    out = Path(out_dir) if out_dir is not None else run.path / "exports" / f"trial-{chosen.number:04d}"
    check_target_dir(out, spec.hash(), force)
    return export_model(spec, out, input_shape=shape, num_classes=int(data.num_classes), metrics=metrics,
                        source=source, opset=opset, preprocessing=pre, latency_repeats=latency_repeats,
                        latency_runtime=config.latency_runtime)


def export_from(target: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, trial: int | None = None,
                dataset: str | None = None, data_dir: str | None = None, input_shape: Sequence[int] | None = None,
                num_classes: int | None = None, opset: int | None = None, force: bool = False,
                latency_repeats: int = 50, max_latency_ms: float | None = None, min_accuracy: float | None = None,
                knee: bool = False, rank_with: str | None = None) -> dict:
    """``nas export``: ``target`` is a search run folder (exports a trial, see :func:`export_trial`) or a spec file
    (.json / .yaml; the input shape and classes come from ``dataset`` or from ``input_shape`` + ``num_classes``).
    Default folder for a spec: ``exports/<hash>``. An existing folder holding another export is left alone unless
    ``force``."""
    opset = check_opset(opset)
    path = Path(target)
    if path.is_dir() and RunDir.is_run(path):
        for key, given in (("--dataset", dataset is not None), ("--input-shape", input_shape is not None),
                           ("--num-classes", num_classes is not None)):
            if given:
                raise ExportError("for a spec file only; a run's trials are exported for the run's dataset",
                                  file=str(path), key=key)
        return export_trial(path, out_dir, trial=trial, max_latency_ms=max_latency_ms, min_accuracy=min_accuracy,
                            knee=knee, opset=opset, force=force, latency_repeats=latency_repeats,
                            rank_with=rank_with)
    for key, given in (("--trial", trial is not None), ("--knee", knee), ("--rank-with", rank_with is not None),
                       ("--max-latency-ms", max_latency_ms is not None), ("--min-accuracy", min_accuracy is not None)):
        if given:
            raise ExportError("for a search run folder only; this is not one", file=str(path), key=key)
    if path.is_dir() and not (path / ARCH_FILE).is_file():
        raise ExportError("is a folder but not a search run (no run.json) nor an export (no arch.json); give a run "
                          "folder, an export or a spec file", file=str(path))
    spec, recorded = read_spec(path)
    if input_shape is not None:
        input_shape = check_input_shape(input_shape, spec.input, key="--input-shape", file=str(path))
    if num_classes is not None:
        num_classes = check_num_classes(num_classes, key="--num-classes", file=str(path))
    pre = None
    if (input_shape is None or num_classes is None) and dataset is None and recorded is not None:
        input_shape = input_shape or recorded[0]  # an export's arch.json: the input it was exported for
        num_classes = num_classes or recorded[1]
    if input_shape is None or num_classes is None:
        if dataset is None:
            raise ExportError("a spec file needs --dataset (or --input-shape and --num-classes) to know the input "
                              "and classes", file=str(path), key="--dataset")
        data, pre = dataset_preprocessing(dataset, data_dir=data_dir)
        check_input_kind(data, spec.input, dataset, what="the spec", file=str(path), key="--dataset",
                         error=ExportError)
        input_shape = input_shape or data.input_shape
        num_classes = num_classes or data.num_classes
    out = Path(out_dir) if out_dir is not None else Path("exports") / spec.hash()
    check_target_dir(out, spec.hash(), force)
    source = {"spec_file": str(path)}
    if dataset:
        source["dataset"] = dataset
    return export_model(spec, out, input_shape=input_shape, num_classes=int(num_classes), source=source,
                        opset=opset, preprocessing=pre, latency_repeats=latency_repeats)
