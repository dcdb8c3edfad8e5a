"""Search quality on real data: do the architectures the search finds beat the hand-designed baselines?

One *study* = one search space on one dataset (``STUDIES`` below). Each study runs in resumable steps, each of which
can be cut to fit a 10-minute command (``--time-limit``) and simply run again to continue:

``search``     a multi-objective search (accuracy vs. CPU latency; NSGA-II unless the study names its own sampler)
               with ``nas.search`` on a class-balanced subset and a reduced proxy budget (profile ``cpu``) or the
               full data (profile ``gpu``); a ``*_warm`` study starts from the space's baselines (``warm_start``),
               which are then never counted as found;
               ``--sampler random`` (``tpe``, ``evolution``, ``predictor``) runs a twin of the study with another
               sampler, same settings and seed, for the sample-efficiency comparison
``baselines``  the space's hand-designed baselines (search_spaces/baselines) evaluated under the SAME proxy budget
               (``nas report``'s baseline evaluation, cached in the run folder)
``full``       ``nas export`` + ``nas train`` (nas.fulltrain.train_full, checkpointed every epoch) of the knee of the
               front, the most accurate and the fastest front member, and every baseline, with a longer budget
``measure``    test accuracy is recorded by ``full``; this step measures CPU latency of all fully trained models in
               ONE process, interleaved round by round (machine noise hits all models alike), and scores every one
               of them with the zero-cost proxies at initialisation
``seeds``      (after ``full``, on its own) the same models trained again with the same longer recipe and the seeds
               of ``--replicate-seeds`` (default 1,2): which wins after longer training survive the seed?
``summarize``  writes experiments/results/search_quality.md (+ .csv, plots) over every study that has results

``all STUDY``  runs search -> baselines -> full -> measure (each resumable); ``summarize`` after.

Where things go: the search runs and exports (journals, weights, ONNX) under ``runs/search_quality/`` (not
committed: git-ignored); the per-study records (trials CSV, baselines, fully-trained results, latencies) under
``experiments/results/search_quality/<study>/`` and the page ``experiments/results/search_quality.md``.

Examples (CPU, from the repository root, NAS_DATA_DIR pointing at the .npz files)::

    python experiments/search_quality.py all fmnist_vision --time-limit 540
    python experiments/search_quality.py search fmnist_vision --sampler random
    python experiments/search_quality.py summarize

On a GPU: ``--profile gpu`` (full training sets, longer budgets; latency is still measured on the CPU at batch 1).
No step reads the test split except ``full``'s final test evaluation; nothing is selected on test accuracy.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import time
from pathlib import Path

from _common import REPO_ROOT, RESULTS_DIR, Report, machine_info, median

NAME = "search_quality"
WORK = REPO_ROOT / "runs" / "search_quality"
OUT = RESULTS_DIR / "search_quality"

STUDIES: dict[str, dict] = {
    "fmnist_vision": {"space": "vision", "dataset": "fashion_mnist", "full": True},
    "fmnist_mobile": {"space": "mobile", "dataset": "fashion_mnist", "full": True},
    # fmnist_vision with the CPU profile's FLOPs cap raised from 100 to 250 MFLOPs: the ResNet baselines (188-247
    # MFLOPs at 28x28) are then inside the searched region. Does the search find nets of their class?
    "fmnist_vision_cap250": {"space": "vision", "dataset": "fashion_mnist", "full": True, "max_flops": 250e6},
    # fmnist_vision_cap250 warm-started from the space's hand-designed baselines (config key warm_start), with the
    # default sampler (predictor): the baselines are the first trials, so the search mutates them if they are on the
    # front. Does local search around a ResNet find a net that dominates it? Warm-start trials are not "found".
    "fmnist_vision_warm": {"space": "vision", "dataset": "fashion_mnist", "full": True, "max_flops": 250e6,
                           "sampler": "predictor", "warm_start": ["baselines"], "trials": 32},
    # the same study with other seeds (the search and the proxy evaluations; the longer training uses --seed, 0, in
    # every study, so a baseline trained longer is the same training in each; step `seeds` varies that seed)
    **{f"fmnist_vision_warm_s{seed}": {"space": "vision", "dataset": "fashion_mnist", "full": True, "max_flops": 250e6,
                                       "sampler": "predictor", "warm_start": ["baselines"], "trials": 32, "seed": seed}
       for seed in (1, 2)},
    # fmnist_vision_warm on the vision space of four families, whose baselines are the published designs (ResNet-20
    # option A, the pre-activation ResNet-20, ConvNeXt-atto with a 1x1 patch stem, six DeiT-Ti blocks on 4x4
    # patches), under the space's own caps (4M params, 400 MFLOPs at 32x32), which hold all four: under 250 MFLOPs
    # ConvNeXt-atto (258 MFLOPs at 28x28) and the ViT would be screened out and never mutated. The CIFAR-10 twin and
    # the mobile space's (MobileNetV2 / V3-Large / V3-Small / EfficientNet-B0 at CIFAR size) follow.
    "fmnist_vision_published_warm": {"space": "vision", "dataset": "fashion_mnist", "full": True, "max_flops": 400e6,
                                     "sampler": "predictor", "warm_start": ["baselines"], "trials": 32},
    "cifar10_vision_published_warm": {"space": "vision", "dataset": "cifar10", "full": True, "max_flops": 400e6,
                                      "sampler": "predictor", "warm_start": ["baselines"], "trials": 32},
    "fmnist_mobile_published_warm": {"space": "mobile", "dataset": "fashion_mnist", "full": True,
                                     "sampler": "predictor", "warm_start": ["baselines"], "trials": 32},
    "cifar10_mobile_published_warm": {"space": "mobile", "dataset": "cifar10", "full": True,
                                      "sampler": "predictor", "warm_start": ["baselines"], "trials": 32},
    "cifar10_vision": {"space": "vision", "dataset": "cifar10", "full": True},
    # the warm start on the other studies whose baselines stayed undominated (the ResNets at 247 MFLOPs on CIFAR-10
    # fit under the same 250 MFLOPs cap; MobileNetV3 is inside the mobile study's 100 MFLOPs)
    "cifar10_vision_warm": {"space": "vision", "dataset": "cifar10", "full": True, "max_flops": 250e6,
                            "sampler": "predictor", "warm_start": ["baselines"], "trials": 32},
    "fmnist_mobile_warm": {"space": "mobile", "dataset": "fashion_mnist", "full": True, "sampler": "predictor",
                           "warm_start": ["baselines"], "trials": 32},
    # a second seed of each (the predictor's default, all fresh candidates, as in the seed-0 studies)
    "cifar10_vision_warm_s1": {"space": "vision", "dataset": "cifar10", "full": True, "max_flops": 250e6,
                               "sampler": "predictor", "warm_start": ["baselines"], "trials": 32, "seed": 1},
    "fmnist_mobile_warm_s1": {"space": "mobile", "dataset": "fashion_mnist", "full": True, "sampler": "predictor",
                              "warm_start": ["baselines"], "trials": 32, "seed": 1},
    "cifar10_mobile": {"space": "mobile", "dataset": "cifar10", "full": True},
    # fmnist_mobile_warm at 2x the proxy epochs: MobileNetV3 is the one baseline no study dominated after
    # longer training, and the mobile space's proxy ranking is the weakest (tau 0.33 over its 4 models trained longer
    # on Fashion-MNIST). Does a longer proxy budget rank BatchNorm mobile nets better, and find one that dominates it?
    "fmnist_mobile_warm_e4": {"space": "mobile", "dataset": "fashion_mnist", "full": True, "sampler": "predictor",
                              "warm_start": ["baselines"], "trials": 32, "epochs_factor": 2},
    # ... and with 2.7x the proxy's training images instead (8,000, as the longer training; 2 epochs: 1.3x the
    # e4 study's compute): is it the data, not the epochs, that the proxy lacks to rank MobileNetV3 right?
    "fmnist_mobile_warm_d8k": {"space": "mobile", "dataset": "fashion_mnist", "full": True, "sampler": "predictor",
                               "warm_start": ["baselines"], "trials": 32, "subset_factor": 8 / 3},
    "seqmnist_rows": {"space": "sequence", "dataset": "mnist:rows", "full": False},
    # the classic pixel-by-pixel sequential MNIST (L=784): the long end of the mixer comparison on real data
    "seqmnist_pixels": {"space": "sequence", "dataset": "mnist:pixels", "full": False},
    "copy_64": {"space": "sequence", "dataset": "selective_copy:64", "full": False},
    "copy_256": {"space": "sequence", "dataset": "selective_copy:256", "full": False},
    # copy_256 at 4x the proxy epochs: seq_budget.py found ssm and attention nets at chance after 2
    # epochs solving the task after 8; does the front change when the budget is past that take-off point?
    "copy_256_e8": {"space": "sequence", "dataset": "selective_copy:256", "full": False, "epochs_factor": 4},
    # the other sequence tasks at the same 4x budget: the mixer comparison across lengths (28 rows, 64,
    # 256) with every study's budget past the take-off point that copy_256 needed
    "seqmnist_rows_e8": {"space": "sequence", "dataset": "mnist:rows", "full": False, "epochs_factor": 4},
    "copy_64_e8": {"space": "sequence", "dataset": "selective_copy:64", "full": False, "epochs_factor": 4},
    "seqmnist_pixels_e8": {"space": "sequence", "dataset": "mnist:pixels", "full": False, "epochs_factor": 4},
    # Mamba was the most accurate model of seqmnist_rows_e8 (0.977 at 2.52 ms; the search's best 0.967): does local
    # search around the baselines (warm start + the default predictor, as fmnist_vision_warm) find a net dominating it?
    "seqmnist_rows_e8_warm": {"space": "sequence", "dataset": "mnist:rows", "full": False, "epochs_factor": 4,
                              "sampler": "predictor", "warm_start": ["baselines"], "trials": 32},
    "seqmnist_rows_e8_warm_s1": {"space": "sequence", "dataset": "mnist:rows", "full": False, "epochs_factor": 4,
                                 "sampler": "predictor", "warm_start": ["baselines"], "trials": 32, "seed": 1},
    # a seconds-long run of every step on the bundled digits (profile "smoke"): checks the pipeline, not a result
    "digits_smoke": {"space": "vision", "dataset": "digits", "full": True, "smoke": True},
}

PROFILES: dict[str, dict] = {
    # 2-core CPU: a class-balanced subset, two proxy epochs, and a FLOPs cap (at the dataset's input) that keeps the
    # heaviest samples of the space out of a CPU run. "Longer" training = 2.7x the data and 2x the epochs of the
    # proxy budget (5.3x its compute), NOT a converged training: it compares architectures under one recipe.
    # One torch thread: on a shared 2-core machine a 2-thread OpenMP step waits for its descheduled thread (measured
    # under load 5: 0.81 s per step with 2 threads vs 0.10 s with 1 for a model of many small ops).
    "cpu": {"train_subset": 3000, "epochs": 2, "batch_size": 64, "lr": 0.003, "trials": 24, "population": 8,
            "max_flops": 100e6, "full_subset": 8000, "full_epochs": 4, "threads": 1, "seq_train_subset": 3000},
    "smoke": {"train_subset": None, "epochs": 0.5, "batch_size": 64, "lr": 0.003, "trials": 4, "population": 4,
              "max_flops": None, "full_subset": None, "full_epochs": 1, "threads": 2, "seq_train_subset": None},
    # a lent GPU: the whole training sets
    "gpu": {"train_subset": None, "epochs": 5, "batch_size": 256, "lr": 0.003, "trials": 64, "population": 16,
            "max_flops": None, "full_subset": None, "full_epochs": 40, "threads": None, "seq_train_subset": None},
}


def own_sampler(study: str) -> str:
    """The sampler of a study's own run (the one its baselines are compared with); other samplers run twins."""
    return STUDIES[study].get("sampler", "nsga2")


def run_name(study: str, sampler: str) -> str:
    return study if sampler == own_sampler(study) else f"{study}-{sampler}"


def config_for(study: str, profile: dict, sampler: str, seed: int) -> dict:
    s = STUDIES[study]
    seq = s["space"] == "sequence"
    subset = profile["seq_train_subset"] if seq else profile["train_subset"]
    if subset and s.get("subset_factor"):  # a study may scale its profile's training subset (as epochs_factor)
        subset = int(subset * s["subset_factor"])
    cfg = {
        "name": run_name(study, sampler),
        "description": f"search_quality study {study}: {s['space']} space on {s['dataset']}",
        "space": s["space"],
        "dataset": s["dataset"],
        "objectives": ["accuracy", "latency_ms"],
        "budget": {"epochs": profile["epochs"] * s.get("epochs_factor", 1), "batch_size": profile["batch_size"],
                   "lr": profile["lr"]},
        "sampler": sampler,
        "trials": s.get("trials", profile["trials"]),
        "seed": s.get("seed", seed),
        "device": "auto",
        "latency_device": "cpu",
        "latency_threads": 1,
    }
    if sampler in ("nsga2", "evolution", "predictor"):  # predictor: its random startup is min(10, population)
        cfg["population_size"] = profile["population"]
    if subset:
        cfg["train_subset"] = subset
    if profile["max_flops"]:  # a capped (CPU) profile; a study may set its own cap
        cfg["constraints"] = {"max_flops": s.get("max_flops", profile["max_flops"])}
    if profile["threads"]:
        cfg["train_threads"] = profile["threads"]
    if s.get("warm_start"):
        cfg["warm_start"] = list(s["warm_start"])
    return cfg


def study_out(study: str) -> Path:
    path = OUT / study
    path.mkdir(parents=True, exist_ok=True)
    return path


def baseline_hashes(study: str) -> set[str]:
    """Spec hashes of the study's baselines: trials of these architectures are not counted as found. Those the
    study evaluated (its baselines.json), since a study's warm start took the baselines of its day; else the space's
    baselines of today."""
    recorded = read_json(OUT / study / "baselines.json")
    if recorded is not None:
        return {entry["spec_hash"] for entry in recorded.values() if entry.get("spec_hash")}
    from nas.grammar import load_space, shipped_spaces_dir

    space = load_space(STUDIES[study]["space"])
    space.load_baselines(shipped_spaces_dir() / "baselines")
    return {spec.hash() for spec in space.baselines.values()}


def write_json(path: Path, data) -> None:
    from nas.io import write_atomic

    write_atomic(path, json.dumps(data, indent=1, default=float))


def read_json(path: Path, default=None):
    return json.loads(path.read_text()) if path.exists() else default


# ------------------------------------------------------------------------------------------------------ steps
def step_search(study: str, args) -> None:
    from nas.control.search import search

    profile = PROFILES[args.profile]
    sampler = args.sampler or own_sampler(study)
    cfg = config_for(study, profile, sampler, args.seed)
    t0 = time.time()
    overrides = {"time_budget_s": args.time_limit} if args.time_limit else None
    study_obj = search(cfg, overrides, name=cfg["name"], runs_dir=WORK / "runs", resume=True, quiet=True)
    n = len(study_obj.trials)
    print(f"[search {cfg['name']}] {n} trials stored ({time.time() - t0:.0f} s this call)", flush=True)
    export_trials(study, sampler)


def export_trials(study: str, sampler: str) -> None:
    """The run's trials as a CSV record under experiments/results (the journal itself stays under runs/)."""
    from nas.report import report_data

    data = report_data(WORK / "runs" / run_name(study, sampler), baselines=False)
    cols = [c for c in ["number", "state", "status", "accuracy", "latency_ms", "fidelity_epochs", "wall_s",
                        "on_front", "spec_hash", "summary", "reason", "val_size", "val_correct"]
            if c in data.trials.columns]  # val_correct: which validation examples it got right (paired tests)
    zc = [c for c in data.trials.columns if c.startswith("zc_")]
    frame = data.trials[cols + zc]
    frame.to_csv(study_out(study) / f"trials-{sampler}.csv", index=False)
    if sampler == own_sampler(study):  # the run's config beside its results: summarize's settings need no runs/
        shutil.copyfile(WORK / "runs" / study / "config.yaml", study_out(study) / "config.yaml")


def study_config(study: str) -> dict | None:
    """The config of a study's own run: the copy in its results folder, else the run folder (studies run before
    the copy existed), else None."""
    import yaml

    for path in (OUT / study / "config.yaml", WORK / "runs" / study / "config.yaml"):
        if path.exists():
            return yaml.safe_load(path.read_text())
    return None


def step_baselines(study: str, args) -> None:
    from nas.control.baselines import evaluate_baselines
    from nas.control.config import load_config
    from nas.control.rundir import RunDir
    from nas.grammar import load_space, shipped_spaces_dir
    from nas.report import write_report

    run_dir = WORK / "runs" / study
    config, _ = load_config(run_dir / "config.yaml")
    space = load_space(STUDIES[study]["space"])
    space.load_baselines(shipped_spaces_dir() / "baselines")
    # the baselines under the run's budget, one by one into the run's cache: --time-limit stops new ones
    deadline = time.time() + args.time_limit if args.time_limit else None
    cache = evaluate_baselines(RunDir.open(run_dir), config, space, deadline=deadline)
    missing = [name for name, spec in space.baselines.items() if f"{spec.hash()}:{config.budget_key()}" not in cache]
    if missing:
        print(f"[baselines {study}] time limit: {', '.join(missing)} not evaluated yet (run the step again)",
              flush=True)
        return
    paths = write_report(run_dir)  # the run's report, with the baselines from the cache
    rows = {}
    for name, spec in space.baselines.items():
        entry = cache.get(f"{spec.hash()}:{config.budget_key()}")
        if entry:
            rows[name] = {"spec_hash": spec.hash(), "summary": spec.summary(), **entry}
    write_json(study_out(study) / "baselines.json", rows)
    print(f"[baselines {study}] {len(rows)} baselines; report: {paths.get('html', paths)}", flush=True)


def chosen_members(study: str) -> dict[str, dict]:
    """knee, most accurate and fastest member of the front (distinct trials), plus every baseline."""
    import numpy as np

    from nas import pareto
    from nas.report import report_data

    data = report_data(WORK / "runs" / study, baselines=False)
    # found = searched: not a reused result, and not a baseline (a warm start, or one the search came across)
    trials = data.trials[~data.trials["spec_hash"].isin(baseline_hashes(study))]
    done = trials[(trials["state"] == "COMPLETE")]
    done = done[done["reused_from"].isna()] if "reused_from" in done else done
    values = done[["accuracy", "latency_ms"]].to_numpy(dtype=float)
    front = done[pareto.pareto_mask(values, ["maximize", "minimize"])] if len(done) else done
    values = front[["accuracy", "latency_ms"]].to_numpy(dtype=float)
    picked: dict[str, dict] = {}
    if len(front):
        order = [("knee", int(pareto.knee_point(values, ["maximize", "minimize"]))),
                 ("most_accurate", int(np.argmax(values[:, 0]))),
                 ("fastest", int(np.argmin(values[:, 1])))]
        used = set()
        for label, i in order:
            if i in used:  # the knee is also an extreme: take the next front member instead
                rest = [j for j in range(len(front)) if j not in used]
                if not rest:
                    continue
                key = (lambda j: -values[j, 0]) if label == "most_accurate" else (lambda j: values[j, 1])
                i = min(rest, key=key)
            used.add(i)
            row = front.iloc[i]
            picked[f"{label}-t{int(row['number'])}"] = {
                "kind": "found", "role": label, "trial": int(row["number"]), "spec_hash": row["spec_hash"],
                "summary": row["summary"], "proxy_accuracy": float(row["accuracy"]),
                "proxy_latency_ms": float(row["latency_ms"])}
    for name, b in (read_json(study_out(study) / "baselines.json", {}) or {}).items():
        obj = b.get("objectives") or {}
        picked[f"baseline-{name}"] = {"kind": "baseline", "role": name, "trial": None, "spec_hash": b["spec_hash"],
                                      "summary": b["summary"], "proxy_accuracy": obj.get("accuracy"),
                                      "proxy_latency_ms": obj.get("latency_ms"), "proxy_status": b.get("status")}
    return picked


def step_full(study: str, args) -> None:
    profile = PROFILES[args.profile]
    record_path = study_out(study) / "full.json"
    record = read_json(record_path, {}) or {}
    members = chosen_members(study)
    deadline = time.time() + args.time_limit if args.time_limit else math.inf
    for label, info in members.items():
        entry = record.get(label, {})
        if entry.get("status") == "done" and entry.get("spec_hash") == info["spec_hash"]:
            continue
        entry = _train_longer(study, label, info, WORK / "full" / study / label, args.seed, profile, deadline)
        if entry is None:
            break
        record[label] = entry
        write_json(record_path, record)
        if entry["status"] == "paused":
            break
    done = sum(1 for e in record.values() if e.get("status") == "done")
    print(f"[full {study}] {done}/{len(members)} models fully trained", flush=True)


def _train_longer(study: str, label: str, info: dict, out: Path, seed: int, profile: dict,
                  deadline: float) -> dict | None:
    """Export ``info`` (a found trial or a baseline) to ``out`` unless it is there, then train it with the longer
    recipe and ``seed``, an epoch per call until done or ``deadline`` (a later call continues from the checkpoint).
    The record of the training (status "done" or "paused"), or None if the deadline had already passed."""
    from nas.export import export_from
    from nas.fulltrain import train_full
    from nas.grammar import shipped_spaces_dir

    s = STUDIES[study]
    if not (out / "arch.json").exists():
        if info["kind"] == "found":
            export_from(WORK / "runs" / study, out, trial=info["trial"], force=True)
        else:
            export_from(shipped_spaces_dir() / "baselines" / f"{info['role']}.yaml", out, dataset=s["dataset"],
                        force=True)
    t0 = time.time()
    result = None
    while time.time() < deadline:
        result = train_full(out, dataset=s["dataset"], epochs=profile["full_epochs"],
                            train_subset=profile["full_subset"], batch_size=profile["batch_size"],
                            lr=profile["lr"], seed=seed, device="auto", threads=profile["threads"],
                            max_epochs_this_call=1, reexport=False)
        print(f"[full {study}] {label} (seed {seed}): {result['status']} epoch {result['epochs_done']}/"
              f"{result['epochs']}", flush=True)
        if result["status"] != "paused":
            break
    if result is None:
        return None
    return {**info, "status": result["status"], "epochs": result["epochs_done"], "seed": seed,
            "test_accuracy": result.get("test_accuracy"), "val_accuracy": result.get("val_accuracy"),
            "curve": result.get("curve"), "train_subset": profile["full_subset"],
            "wall_s_this_call": time.time() - t0}


def step_seeds(study: str, args) -> None:
    """The models of the full step trained again with the same longer recipe and other seeds (``--replicate-seeds``,
    default 1,2): how much of a win after longer training is the seed? Records in full_seeds.json
    ({label: {seed: record}}); resumable like the full step."""
    profile = PROFILES[args.profile]
    full = read_json(study_out(study) / "full.json", {}) or {}
    record_path = study_out(study) / "full_seeds.json"
    record = read_json(record_path, {}) or {}
    deadline = time.time() + args.time_limit if args.time_limit else math.inf
    seeds = [int(x) for x in args.replicate_seeds.split(",") if x.strip()]
    for seed in seeds:  # every model at one seed before any at the next: a cut-short step is still balanced
        for label, info in full.items():
            if info.get("status") != "done":
                continue
            have = record.get(label, {}).get(str(seed), {})
            if have.get("status") == "done" and have.get("spec_hash") == info["spec_hash"]:
                continue
            keep = {k: info[k] for k in ("kind", "role", "trial", "spec_hash", "summary") if k in info}
            entry = _train_longer(study, label, keep, WORK / "full_seeds" / study / f"{label}-s{seed}", seed,
                                  profile, deadline)
            if entry is not None:
                record.setdefault(label, {})[str(seed)] = entry
                write_json(record_path, record)
            if entry is None or entry["status"] == "paused":
                return  # out of time: a later call continues
    done = sum(1 for runs in record.values() for e in runs.values() if e.get("status") == "done")
    print(f"[seeds {study}] {done} extra trainings done (seeds {', '.join(map(str, seeds))})", flush=True)


def step_retime(study: str, args) -> None:
    """The proxy level timed together: ``nas measure`` on the study's run for the front of its found trials and
    the space's baselines (``--rounds`` interleaved rounds, the run's latency settings), so "is every baseline
    dominated at the proxy budget" is decided on latencies measured in one process rather than each in its own
    moment. The record is kept as the study's ``latency.json``. (A found net off the found front could dominate a
    baseline on these latencies where no front member does; the front alone is timed, to keep the step short.)"""
    import numpy as np

    from nas import pareto
    from nas.remeasure.timing import remeasure
    from nas.report import report_data

    run_dir = WORK / "runs" / study
    data = report_data(run_dir, baselines=False)
    trials = data.trials[~data.trials["spec_hash"].isin(baseline_hashes(study))]
    done = trials[trials["state"] == "COMPLETE"].dropna(subset=["accuracy", "latency_ms"])
    if not len(done):
        print(f"[retime {study}] no found trial yet", flush=True)
        return
    mask = pareto.pareto_mask(done[["accuracy", "latency_ms"]].to_numpy(dtype=float), ["maximize", "minimize"])
    numbers = [int(n) for n in np.asarray(done["number"])[mask]]
    record = remeasure(run_dir, trials=numbers, rounds=args.rounds,
                       progress=lambda line: print(f"[retime {study}] {line}", flush=True))
    write_json(study_out(study) / "latency.json", record)
    print(f"[retime {study}] {len(record['models'])} models timed together", flush=True)


def _paired_accuracy(done, baseline: dict) -> str:
    """The proxy-level accuracy margin that decides a baseline's verdict, paired (McNemar) where the trials CSV and
    the baseline record hold per-example results (runs that stored `val_correct`): against the most accurate dominating
    trial, or, for an undominated baseline, the most accurate trial at most as slow. ``-`` when not stored."""
    from nas.significance import compare

    obj = baseline.get("objectives") or {}
    n, packed = baseline.get("val_size"), baseline.get("val_correct")
    ba, bl = obj.get("accuracy"), obj.get("latency_ms")
    if not n or not packed or ba is None or bl is None or "val_correct" not in done:
        return "-"
    rows = [r for r in done.itertuples() if isinstance(r.val_correct, str) and r.latency_ms <= bl]
    dom = [r for r in rows if _dominates(r.accuracy, r.latency_ms, ba, bl)]
    pick = max(dom or rows, key=lambda r: r.accuracy, default=None)
    if pick is None:
        return "no found net as fast"
    c = compare(pick.accuracy, ba, int(n), pick.val_correct, packed)
    noise = "" if dom else (": beyond chance" if c.significant else ": within noise")
    return f"#{pick.number}: {c.text()}{noise}"


def _retimed(record: dict, name: str, objectives: dict) -> str:
    """A baseline's verdict on the latencies of ``nas measure`` (step ``retime``): its dominators with the paired
    rounds each was faster in, or the nearest miss (the fastest found front member at least as accurate)."""
    from nas.remeasure.record import paired, remeasured_frame

    values = {name: {"accuracy": objectives.get("accuracy"), "latency_ms": objectives.get("latency_ms")}}
    frame = remeasured_frame(record, ["accuracy", "latency_ms"], ["maximize", "minimize"], values)
    rows = frame[frame["model"] == f"baseline-{name}"]
    if not len(rows):
        return "-"
    row = rows.iloc[0]
    if row["dominators"]:
        return "yes (" + ", ".join(f"#{d['number']} faster in {d['faster_rounds']}/{d['rounds']}"
                                   for d in row["dominators"]) + ")"
    found = frame[(frame["kind"] == "trial") & (frame["accuracy"] >= row["accuracy"])]
    if not len(found):
        return "NO (no found net as accurate)"
    near = found.loc[found["latency_ms"].idxmin()]
    faster, n = paired(record["models"][near["model"]]["rounds_ms"], record["models"][row["model"]]["rounds_ms"])
    return (f"NO; nearest #{int(near['number'])}: {near['accuracy'] - row['accuracy']:+.3f} acc, "
            f"{near['latency_ms'] - row['latency_ms']:+.2f} ms, faster in {faster}/{n} rounds")


def step_measure(study: str, args) -> None:
    """CPU latency (batch 1, 1 thread) of every fully trained model, interleaved in this one process, and the
    zero-cost proxies of each architecture at initialisation."""
    import torch

    from nas.archjson import read_arch
    from nas.builder import build
    from nas.data import load_dataset
    from nas.evaluate.evaluate import EvalConfig, proxy_batch
    from nas.evaluate.measure import count_flops, count_params, measure_latency
    from nas.evaluate.zero_cost import score_all
    from nas.export import load
    from nas.remeasure.timing import time_in_rounds

    record_path = study_out(study) / "full.json"
    record = read_json(record_path, {}) or {}
    labels = [k for k, v in record.items() if v.get("status") == "done"]
    if not labels:
        print(f"[measure {study}] nothing fully trained yet", flush=True)
        return
    models, shapes = {}, {}
    for label in labels:
        out = WORK / "full" / study / label
        model = load(out)
        spec, shape, classes, _ = read_arch(out)
        models[label], shapes[label] = model.eval(), tuple(shape)
        record[label]["params"] = count_params(model)
        record[label]["flops"] = count_flops(model, torch.randn(1, *shape))
    times = time_in_rounds({label: (models[label], shapes[label]) for label in labels}, args.rounds,
                           lambda model, shape: measure_latency(model, shape, device="cpu", batch_size=1, warmup=10,
                                                                repeats=30, threads=1, min_time_s=0.5).median_ms)
    for label in labels:
        record[label]["latency_ms"] = median(times[label])
        record[label]["latency_rounds_ms"] = times[label]

    # zero-cost proxies at initialisation (same seed, same batch for every architecture)
    s = STUDIES[study]
    profile = PROFILES[args.profile]
    data = load_dataset(s["dataset"], train_subset=profile["full_subset"], seed=args.seed)
    for label in labels:
        spec, shape, classes, _ = read_arch(WORK / "full" / study / label)
        torch.manual_seed(args.seed)
        model = build(spec, shape, classes)
        batch = proxy_batch(data, EvalConfig(seed=args.seed), shape)
        record[label]["zero_cost"] = score_all(model, batch, seed=args.seed)
    write_json(record_path, record)
    print(f"[measure {study}] latency ({args.rounds} interleaved rounds) and zero-cost scores of "
          f"{len(labels)} models", flush=True)


# ---------------------------------------------------------------------------------------------------- summary
def _seed_rows(study: str, full: dict, extra: dict) -> list[list]:
    """Rows of the seeds table for one study: each model trained longer with seed 0 (full.json) and the seeds of
    full_seeds.json, its mean and sd, and for a baseline the found models that dominate it on the mean."""
    import statistics

    stats = {}
    for label, v in full.items():
        runs = [v] + [e for e in (extra.get(label) or {}).values() if e.get("status") == "done"]
        if v.get("status") != "done" or len(runs) < 2 or v.get("latency_ms") is None:
            continue
        acc = [r["test_accuracy"] for r in runs]
        stats[label] = (v, acc, statistics.mean(acc), statistics.stdev(acc))
    rows = []
    for label, (v, acc, mean, sd) in stats.items():
        verdict = "(found)"
        if v["kind"] == "baseline":
            dom = [f for f, (fv, _, fmean, _) in stats.items() if fv["kind"] == "found"
                   and _dominates(fmean, fv["latency_ms"], mean, v["latency_ms"])]
            verdict = ("yes (" + ", ".join(dom) + ")") if dom else "NO"
        rows.append([study, label, len(acc), " / ".join(f"{a:.3f}" for a in acc), _fmt(mean), _fmt(sd),
                     _fmt(v["latency_ms"], ".2f"), verdict])
    return rows


def _dominates(a_acc, a_lat, b_acc, b_lat) -> bool:
    return a_acc >= b_acc and a_lat <= b_lat and (a_acc > b_acc or a_lat < b_lat)


def _near_miss(found: dict[str, dict], baseline: dict) -> str | None:
    """For a baseline no found net dominates: the found net that comes closest on latency among those at least as
    accurate (after longer training), with its latency compared round by round. The measure step timed every model
    in the same interleaved rounds, so a paired difference per round says whether the gap is the architecture or
    the moment: "slower in 5 of 5 rounds" is a real miss, "in 3 of 5" is within the measurement's noise."""
    rounds_b = baseline.get("latency_rounds_ms") or []
    closer = [(fv["latency_ms"], name, fv) for name, fv in found.items()
              if fv.get("latency_ms") is not None and fv.get("test_accuracy") is not None
              and fv["test_accuracy"] >= baseline["test_accuracy"]]
    if not closer:
        return None
    _, name, fv = min(closer, key=lambda c: c[0])
    text = (f"{name}: {fv['test_accuracy'] - baseline['test_accuracy']:+.3f} acc, "
            f"{fv['latency_ms'] - baseline['latency_ms']:+.2f} ms")
    rounds_f = fv.get("latency_rounds_ms") or []
    if rounds_b and len(rounds_f) == len(rounds_b):
        gaps = [f - b for f, b in zip(rounds_f, rounds_b)]
        slower = sum(g > 0 for g in gaps)
        text += (f", slower in {slower} of {len(gaps)} paired rounds ({min(gaps):+.2f} to {max(gaps):+.2f} ms)"
                 + ("" if slower == len(gaps) else ": within the measurement's noise"))
    return text


def _fmt(x, spec=".3f"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _tau(a, b):
    from scipy.stats import kendalltau

    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return float("nan"), len(pairs)
    return float(kendalltau([p[0] for p in pairs], [p[1] for p in pairs]).statistic), len(pairs)


def _hv_curve(trials_csv: Path, reference):
    import numpy as np
    import pandas as pd

    from nas import pareto

    t = pd.read_csv(trials_csv)
    t = t.sort_values("number")
    vals = t[["accuracy", "latency_ms"]].to_numpy(dtype=float)
    ok = (t["state"] == "COMPLETE").to_numpy() & np.isfinite(vals).all(axis=1)
    hv, pts = [], []
    for i in range(len(t)):
        if ok[i]:
            pts.append(vals[i])
        hv.append(pareto.hypervolume(np.array(pts), ["maximize", "minimize"], reference) if pts else 0.0)
    return np.array(hv)


def _finish(plt, fig, ax, xlabel: str, ylabel: str, title: str, path: Path) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def step_summarize(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401
    import pandas as pd

    info = machine_info()
    default_out = OUT.resolve() == (RESULTS_DIR / "search_quality").resolve()

    def csv(name):  # the CSVs (and the page) go to experiments/results only for the default --out
        return name if default_out else None

    report = Report(NAME, "Search quality on real data: searched architectures vs. hand-designed baselines", info=info)
    report.text(
        "Every number below comes from `experiments/search_quality.py` (steps `search`, `baselines`, `full`, "
        "`measure`; this page from `summarize`). Objectives: validation accuracy (maximise) and CPU latency at "
        "batch 1, 1 thread (minimise). A baseline is *dominated* when a found architecture has accuracy >= and "
        "latency <= with one of them strictly better. Proxy latencies were measured by each trial in its own "
        "moment (noisy on this shared CPU, see bench_latency_repeatability.md); the fully-trained latencies were "
        "measured in one process, interleaved round by round, so they compare as ratios.", echo=False)
    profiles_used = {}
    headline, all_rows, tau_rows, seq_rows, hv_rows = [], [], [], [], []
    pooled: dict[str, dict[str, dict]] = {}  # dataset -> spec hash -> a model trained longer (first study's)
    seed_rows = []
    for study, s in STUDIES.items():
        d = OUT / study
        trials_csv = d / f"trials-{own_sampler(study)}.csv"
        if not trials_csv.exists():
            continue
        trials = pd.read_csv(trials_csv)
        trials = trials[~trials["spec_hash"].isin(baseline_hashes(study))]  # found = not a baseline
        cfg = study_config(study)
        if cfg:
            cap = (cfg.get("constraints") or {}).get("max_flops")
            profiles_used[study] = (f"subset {cfg.get('train_subset', 'all')}, {cfg['budget']['epochs']} epochs, "
                                    f"batch {cfg['budget'].get('batch_size')}, {cfg.get('trials')} trials, "
                                    f"sampler {cfg.get('sampler')}, seed {cfg.get('seed', 0)}"
                                    + (f", search constrained to <= {cap / 1e6:g} MFLOPs at the dataset's input "
                                       "(the baselines are not)" if cap else "")
                                    + (f", warm start: {', '.join(cfg['warm_start'])} (the first trials; not "
                                       "counted as found)" if cfg.get("warm_start") else ""))
        done = trials[trials["state"] == "COMPLETE"].dropna(subset=["accuracy", "latency_ms"]).copy()
        if len(done):  # the front of the found trials (a warm-start baseline is not one of them)
            from nas.pareto import pareto_mask

            done["on_front"] = pareto_mask(done[["accuracy", "latency_ms"]].to_numpy(dtype=float),
                                           ["maximize", "minimize"])
        base = read_json(d / "baselines.json", {}) or {}
        full = read_json(d / "full.json", {}) or {}
        retimed = read_json(d / "latency.json")  # step retime

        # (1) proxy level: is every baseline dominated by some found (complete) trial?
        for name, b in base.items():
            obj = b.get("objectives") or {}
            ba, bl = obj.get("accuracy"), obj.get("latency_ms")
            dom = [int(r.number) for r in done.itertuples()
                   if ba is not None and bl is not None and _dominates(r.accuracy, r.latency_ms, ba, bl)]
            best = max(done.itertuples(), key=lambda r: r.accuracy, default=None)
            all_rows.append([study, "proxy", name, _fmt(ba), _fmt(bl, ".2f"),
                             f"yes (#{dom[0]}{' +' + str(len(dom) - 1) if len(dom) > 1 else ''})" if dom else "NO",
                             _retimed(retimed, name, obj) if retimed and ba is not None else "-",
                             f"#{best.number}: {best.accuracy:.3f} @ {best.latency_ms:.2f} ms" if best else "-",
                             _paired_accuracy(done, b)])
        # (1) after full training
        found = {k: v for k, v in full.items() if v.get("kind") == "found" and v.get("status") == "done"}
        bases = {k: v for k, v in full.items() if v.get("kind") == "baseline" and v.get("status") == "done"}
        for k, v in list(found.items()) + list(bases.items()):
            if v.get("latency_ms") is None:
                continue
            if v["kind"] == "baseline":
                dom = [f for f, fv in found.items() if fv.get("latency_ms") is not None and _dominates(
                    fv["test_accuracy"], fv["latency_ms"], v["test_accuracy"], v["latency_ms"])]
                near = None if dom else _near_miss(found, v)
                verdict = ("yes (" + ", ".join(dom) + ")") if dom else "NO" + (f"; nearest: {near}" if near else "")
            else:
                verdict = "(found)"
            headline.append([study, k, v["summary"][:90], _fmt(v.get("proxy_accuracy")), _fmt(v["test_accuracy"]),
                             _fmt(v["latency_ms"], ".2f"), f"{v.get('params', 0):,}",
                             _fmt((v.get("flops") or float("nan")) / 1e6, ".1f"), verdict])
        # (3) proxy fidelity at scale over the fully trained set
        trained = [v for v in full.values() if v.get("status") == "done"]
        # the same architecture in several studies: trained with the same seed, once. Pooled over one proxy budget
        # only: a study at another budget (epochs_factor, subset_factor) has proxy accuracies of another scale
        if not s.get("smoke") and s.get("epochs_factor", 1) == 1 and s.get("subset_factor", 1) == 1:
            for v in trained:
                pooled.setdefault(s["dataset"], {}).setdefault(v["spec_hash"], v)
        seed_rows += _seed_rows(study, full, read_json(d / "full_seeds.json", {}) or {})
        if len(trained) >= 3:
            test = [v["test_accuracy"] for v in trained]
            rows = [("proxy-budget accuracy", [v.get("proxy_accuracy") for v in trained])]
            names = sorted({n for v in trained for n in (v.get("zero_cost") or {})})
            rows += [(f"zero-cost {n}", [(v.get("zero_cost") or {}).get(n) for v in trained]) for n in names]
            for label, scores in rows:
                tau, n = _tau(scores, test)
                tau_rows.append([study, label, n, _fmt(tau)])
        # (2) sequences: where each mixer family lands
        if s["space"] == "sequence" and len(done):
            front = done[done["on_front"]] if "on_front" in done else done.iloc[:0]
            from nas.catalog import MIXERS

            for f in [m.abbreviation for m in MIXERS.values()]:  # every mixer of the catalogue
                # the mixer in any stage: "<depth>x<width> <abbr>" then its options "(...)" or nothing
                # (a bare "lstm" has no options; "stem=conv5x32" and "↓conv" are not mixers)
                pattern = rf"\d+x\d+ {re.escape(f)}(?:\(|\s|$)"
                sub = done[done["summary"].str.contains(pattern, regex=True)]
                if not len(sub):
                    continue
                top = sub.loc[sub["accuracy"].idxmax()]
                fr = front[front["summary"].str.contains(pattern, regex=True)]
                seq_rows.append([study, s["dataset"], f, len(sub), _fmt(top["accuracy"]),
                                 _fmt(top["latency_ms"], ".2f"), len(fr)])
        # (4) sample efficiency: each guided sampler's run (nsga2, the study's own; tpe / evolution / predictor twins)
        # vs random
        rnd_csv = d / "trials-random.csv"
        if rnd_csv.exists():
            from nas.control.config import SAMPLERS

            own = own_sampler(study)
            order = [own] + [name for name in SAMPLERS if name not in (own, "random")]
            guided = {name: d / f"trials-{name}.csv" for name in order}
            guided = {name: path for name, path in guided.items() if path.exists()}
            frames = [pd.read_csv(path) for path in [rnd_csv, *guided.values()]]
            both = pd.concat(frames)
            both = both[both["state"] == "COMPLETE"].dropna(subset=["accuracy", "latency_ms"])
            ref = [0.0, float(both["latency_ms"].max()) * 1.1]
            hv_r = _hv_curve(rnd_csv, ref)
            target = hv_r[-1] if len(hv_r) else float("nan")
            fig, ax = plt.subplots(figsize=(5, 3.2))
            for name, path in guided.items():
                hv_g = _hv_curve(path, ref)
                reach = next((i + 1 for i, h in enumerate(hv_g) if h >= target), None)
                hv_rows.append([study, name, len(hv_g), _fmt(hv_g[-1] if len(hv_g) else None, ".4f"), len(hv_r),
                                _fmt(target, ".4f"), reach if reach else f"not within {len(hv_g)}",
                                "yes" if reach and reach <= len(hv_r) / 2 else "NO"])
                ax.plot(range(1, len(hv_g) + 1), hv_g, label=name)
            ax.plot(range(1, len(hv_r) + 1), hv_r, label="random", color="0.5")
            ax.set_xlabel("trials")
            ax.set_ylabel("hypervolume (acc x latency)")
            ax.set_title(study)
            ax.legend()
            fig.tight_layout()
            fig.savefig(d / "hypervolume.png", dpi=110)
            plt.close(fig)
        # plot: accuracy vs latency
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(done["latency_ms"], done["accuracy"], s=14, c="0.7", label="searched (proxy)")
        fr = done[done["on_front"]] if "on_front" in done else done.iloc[:0]
        ax.scatter(fr["latency_ms"], fr["accuracy"], s=22, c="tab:blue", label="Pareto front (proxy)")
        for name, b in base.items():
            obj = b.get("objectives") or {}
            if obj.get("accuracy") is not None:
                ax.scatter([obj["latency_ms"]], [obj["accuracy"]], marker="D", c="k", s=30)
                ax.annotate(name, (obj["latency_ms"], obj["accuracy"]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        ax.scatter([], [], marker="D", c="k", s=30, label="baselines (proxy)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        _finish(plt, fig, ax, "CPU latency, batch 1 (ms, log)", "validation accuracy (proxy budget)",
                f"{study}: {s['space']} on {s['dataset']}", d / "front.png")
        if found or bases:
            fig, ax = plt.subplots(figsize=(6, 4))
            for group, color, marker in ((found, "tab:blue", "*"), (bases, "k", "D")):
                for k, v in group.items():
                    if v.get("latency_ms") is None:
                        continue
                    ax.scatter([v["latency_ms"]], [v["test_accuracy"]], c=color, marker=marker, s=60)
                    ax.annotate(k.replace("baseline-", ""), (v["latency_ms"], v["test_accuracy"]), fontsize=7,
                                xytext=(3, 3), textcoords="offset points")
            ax.scatter([], [], c="tab:blue", marker="*", s=60, label="found (knee / most accurate / fastest)")
            ax.scatter([], [], c="k", marker="D", s=40, label="hand-designed baselines")
            _finish(plt, fig, ax, "CPU latency, batch 1 (ms, one process, interleaved)",
                    "test accuracy after longer training", f"{study}: after longer training", d / "full.png")

    if profiles_used:
        report.text("## Settings per study\n" + "\n".join(f"- `{k}`: {v}" for k, v in profiles_used.items()),
                    echo=False)
    report.text("## After longer training: test accuracy and latency (every baseline dominated?)")
    report.table(["study", "model", "architecture", "proxy acc", "test acc", "latency ms", "params", "MFLOPs",
                  "baseline dominated by"], headline, csv=csv(f"{NAME}_full.csv"))
    report.text("## Proxy budget: is every baseline dominated by a searched trial?")
    report.text("`timed together`: the same question on latencies measured again in one process, interleaved (step "
                "`retime`, `nas measure`: the front of the found trials and the baselines), with the rounds in "
                "which the dominating net was faster; `-` where the step has not run.", echo=False)
    proxy_columns = ["study", "level", "baseline", "proxy acc", "proxy latency ms", "dominated", "timed together",
                     "most accurate trial", "accuracy margin (paired)"]
    if all(row[-1] == "-" for row in all_rows):  # no study stored per-example results (`val_correct`)
        proxy_columns, all_rows = proxy_columns[:-1], [row[:-1] for row in all_rows]
    else:
        report.text("`accuracy margin (paired)`: the margin, in validation examples, of the most accurate "
                    "dominating trial (or, undominated, of the most accurate trial at most as slow) over the "
                    "baseline, with McNemar's exact p on the examples only one of the two got right.", echo=False)
    report.table(proxy_columns, all_rows, csv=csv(f"{NAME}_proxy.csv"))
    for dataset, by_hash in pooled.items():  # every study of a dataset has the same proxy and longer recipes
        trained = list(by_hash.values())
        if len(trained) < 8:
            continue
        test = [v["test_accuracy"] for v in trained]
        names = sorted({n for v in trained for n in (v.get("zero_cost") or {})})
        for label, scores in [("proxy-budget accuracy", [v.get("proxy_accuracy") for v in trained])] + [
                (f"zero-cost {n}", [(v.get("zero_cost") or {}).get(n) for v in trained]) for n in names]:
            tau, n = _tau(scores, test)
            tau_rows.append([f"all {dataset} studies (pooled)", label, n, _fmt(tau)])
    if tau_rows:
        report.text("## Proxy fidelity at scale: Kendall tau against test accuracy after longer training\n\n"
                    "Per study, then pooled over every study of a dataset at the profile's proxy budget (the same "
                    "proxy budget and the same longer recipe; an architecture trained in several studies, such as a "
                    "baseline, counts once; a study at another budget, e.g. `_e4` or `_d8k`, is left out of the pool).")
        report.table(["study", "score", "n", "Kendall tau"], tau_rows, csv=csv(f"{NAME}_tau.csv"))
    if seed_rows:
        report.text("## After longer training, over three seeds (step `seeds`): which wins survive the seed?\n\n"
                    "The models of the full step trained again with the same recipe and seeds 1 and 2 (the full step "
                    "used seed 0). A baseline counts as dominated here when a found net's MEAN test accuracy is at "
                    "least the baseline's at lower or equal latency (latency depends on the architecture only: "
                    "measured once, see above); 'sd' is over the seeds.")
        report.table(["study", "model", "seeds", "test acc per seed", "mean", "sd", "latency ms",
                      "baseline dominated on the mean by"], seed_rows, csv=csv(f"{NAME}_seeds.csv"))
    if seq_rows:
        report.text("## Sequences: where the mixer families land")
        report.table(["study", "dataset", "mixer (in any stage)", "trials", "best acc", "its latency ms",
                      "on the front"], seq_rows,
                     csv=csv(f"{NAME}_sequence.csv"))
    if hv_rows:
        report.text("## Sample efficiency: hypervolume of each guided sampler vs. random search on the same study\n\n"
                    "Same study settings and seed; the reference point is accuracy 0 and 1.1x the largest latency of "
                    "the runs compared. Target (issue 4): reach random's final hypervolume within half its trials.")
        report.table(["study", "sampler", "trials", "final HV", "random trials", "random final HV",
                      "trials to reach random's final HV", "within half"], hv_rows, csv=csv(f"{NAME}_hv.csv"))
    write_study_pages(report, {"full": headline, "proxy": all_rows, "tau": tau_rows, "sequence": seq_rows,
                               "hv": hv_rows}, profiles_used)
    plots = sorted(OUT.glob("*/*.png"))
    if plots:
        report.text("## Plots\n" + "\n".join(f"![{p.parent.name} {p.stem}]({os.path.relpath(p, RESULTS_DIR)})"
                                             for p in plots), echo=False)
    if default_out:
        report.write()
    else:
        page = OUT / f"{NAME}.md"
        page.write_text(report.header_markdown() + "\n\n" + "\n\n".join(report.parts) + "\n")
        print(f"wrote {page}")


# ------------------------------------------------------------------------------------------------------- main
STUDY_TABLES = {  # per-study page sections: (title, headers without the leading "study" column)
    "full": ("After longer training: test accuracy and latency",
             ["model", "architecture", "proxy acc", "test acc", "latency ms", "params", "MFLOPs",
              "baseline dominated by"]),
    "proxy": ("Proxy budget: is every baseline dominated by a searched trial?",
              ["level", "baseline", "proxy acc", "proxy latency ms", "dominated", "timed together",
               "most accurate trial", "accuracy margin (paired)"]),
    "tau": ("Proxy fidelity: Kendall tau against test accuracy after longer training", ["score", "n", "Kendall tau"]),
    "sequence": ("Where the mixer families land", ["dataset", "mixer (in any stage)", "trials", "best acc",
                                                   "its latency ms", "on the front"]),
    "hv": ("Sample efficiency against random search", ["sampler", "trials", "final HV", "random trials",
                                                       "random final HV", "trials to reach random's final HV",
                                                       "within half"]),
}


def write_study_pages(report, tables: dict[str, list], settings: dict[str, str]) -> None:
    """One Markdown page per study (its records folder, README.md): its rows of every table, its plots, its
    settings and, from steps.json, where and with which command each step last ran."""
    from _common import md_table

    for study in STUDIES:
        d = OUT / study
        if not (d / f"trials-{own_sampler(study)}.csv").exists():
            continue
        s = STUDIES[study]
        header = report.header_markdown()
        header = header.split("\n", 1)[1].strip() if header.startswith("# ") else header  # one title per page
        parts = [f"# Search quality: `{study}` ({s['space']} space on `{s['dataset']}`)", header,
                 "Part of [search_quality.md](../../search_quality.md), which explains the method; written by "
                 "`python experiments/search_quality.py summarize`."]
        if study in settings:
            parts.append(f"Settings: {settings[study]}.")
        steps = read_json(d / "steps.json", {}) or {}
        if steps:
            parts.append("## Where each step ran\n\n" + md_table(
                ["step", "profile", "device", "host", "last run", "calls", "seconds (last call)", "command"],
                [[k, v.get("profile"), v.get("device"), v.get("host"), v.get("date"), v.get("calls"),
                  v.get("seconds_last_call"), f"`{v.get('command')}`"] for k, v in steps.items()]))
        for key, (title, headers) in STUDY_TABLES.items():
            rows = [row[1:] for row in tables.get(key, []) if row and row[0] == study]
            if rows:  # (trailing optional columns, e.g. the paired margin, only where some row has them)
                parts.append(f"## {title}\n\n" + md_table(headers[:len(rows[0])], rows))
        files = sorted(p.name for p in d.iterdir() if p.suffix in (".csv", ".json") and p.name != "steps.json")
        parts.append("Records in this folder: " + ", ".join(f"`{f}`" for f in files) + ".")
        plots = sorted(d.glob("*.png"))
        if plots:
            parts.append("## Plots\n\n" + "\n\n".join(f"![{p.stem}]({p.name})" for p in plots))
        (d / "README.md").write_text("\n\n".join(parts) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("step", choices=["search", "baselines", "full", "measure", "seeds", "retime", "all", "summarize"],
                   help="all = search, baselines, full, measure; seeds (after full) and retime (after baselines: "
                        "the proxy-level front and the baselines timed together) are run on their own")
    p.add_argument("studies", nargs="*", help=f"study names (default: all): {', '.join(STUDIES)}")
    p.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    p.add_argument("--sampler", default=None,
                   help="search step: default the study's own sampler (nsga2 unless the study names one), or a twin "
                        "for the sample-efficiency comparison: "
                        "random, tpe, evolution, predictor")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds: start no new trial / epoch after this (run the step again to continue)")
    p.add_argument("--rounds", type=int, default=5, help="measure step: interleaved latency rounds")
    p.add_argument("--replicate-seeds", default="1,2", help="seeds step: the extra training seeds (default 1,2)")
    p.add_argument("--work", default=str(REPO_ROOT / "runs" / "search_quality"),
                   help="runs and exports (default: %(default)s)")
    p.add_argument("--out", default=str(RESULTS_DIR / "search_quality"),
                   help="per-study records (default: %(default)s)")
    args = p.parse_args()
    globals().update(WORK=Path(args.work), OUT=Path(args.out))
    if args.step == "summarize":
        step_summarize(args)
        return
    studies = args.studies or [k for k, v in STUDIES.items() if not v.get("smoke")]
    unknown = [s for s in studies if s not in STUDIES]
    if unknown:
        p.error(f"unknown study {unknown[0]!r}; known: {', '.join(STUDIES)}")
    for study in studies:
        steps = ["search", "baselines", "full", "measure"] if args.step == "all" else [args.step]
        if not STUDIES[study]["full"]:
            steps = [st for st in steps if st in ("search", "baselines", "retime")]
        for st in steps:
            t0 = time.time()
            {"search": step_search, "baselines": step_baselines, "full": step_full,
             "measure": step_measure, "seeds": step_seeds, "retime": step_retime}[st](study, args)
            record_step(study, st, args, time.time() - t0)


def record_step(study: str, step: str, args, seconds: float) -> None:
    """Where and how a step of ``study`` last ran (steps.json in its records): profile, device, date, command."""
    import platform

    import torch

    key = step if step != "search" or args.sampler in (None, own_sampler(study)) else f"search-{args.sampler}"
    path = study_out(study) / "steps.json"
    steps = read_json(path, {}) or {}
    device = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    calls = (steps.get(key, {}).get("calls") or 0) + 1  # entries written by hand have "calls": null
    steps[key] = {"profile": args.profile, "device": device, "host": platform.node(),
                  "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                  "command": "python experiments/search_quality.py " + " ".join(sys.argv[1:]),
                  "seconds_last_call": round(seconds, 1), "calls": calls}
    write_json(path, steps)


if __name__ == "__main__":
    sys.exit(main())
