"""Full training of an exported architecture (``nas train DIR --dataset D --epochs E``), resumable.

:func:`train_full` trains the network of ``DIR/arch.json`` from scratch (seeded initialisation) on the dataset's
**train** split. The **val** split is *not* merged into training: it is evaluated after every epoch for monitoring
(the curve in the result and the card) and never used to pick weights (the last epoch's weights are the result).
The **test** split is evaluated exactly once, after the last epoch: it is the only place it is used.

Optimisation is the proxy trainer's: both step a :class:`nas.evaluate.train.Trainer` (AdamW with decoupled weight
decay on weights of dim >= 2, linear warm-up then cosine decay per step, label smoothing, gradient clipping, the same
augmentation and batching, bf16 autocast / channels-last on CUDA, the same evaluation). Defaults come from
:class:`~nas.budget.Budget` (lr 2e-3, weight decay 0.05, label smoothing 0.1, warm-up 10% of the steps). The loop
here runs whole epochs and checkpoints the trainer's state between them; the proxy budget's loop
(:func:`nas.evaluate.train.train`) adds fractional epochs, a BatchNorm window and a status for every failure.

Checkpoints (``DIR/checkpoint/``), written after every ``checkpoint_every`` epochs and whenever a call stops::

    latest.json             which files hold the latest epoch, the spec hash and the training settings (atomic)
    epoch-NNNN.safetensors  model weights and buffers (metadata: spec_hash, epoch)
    epoch-NNNN.pt           optimizer state, LR-schedule position (steps), epoch, curve, RNG states (the batch
                            generator's and torch's global one): tensors, dicts, lists, numbers and strings only,
                            loaded with ``torch.load(weights_only=True)``

A later call with the same settings continues from the latest checkpoint; on CPU the result is bit-identical to an
uninterrupted run with the same seed (same weights, optimizer state, step count and RNG states at the epoch
boundary). A checkpoint of another architecture (spec hash) or other settings is refused (:class:`ExportError`)
unless ``restart=True``. At the end the final weights go to ``DIR/model.safetensors``, ONNX and TorchScript are
re-exported with them (and checked again), and the test accuracy is written into ``MODEL.md`` via
:func:`nas.export.update_card`.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from nas.archjson import export_dir, read_arch
from nas.budget import Budget
from nas.control.progress import fmt_duration
from nas.builder import build
from nas.data import load_dataset
from nas.errors import BudgetError, ConfigError, ExportError
from nas.evaluate.evaluate import check_input_kind
from nas.evaluate.train import EpochStats, Runner, Trainer
from nas.export import (
    METRICS_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    WEIGHTS_FILE,
    export_model,
    load_weights,
    preprocessing_of,
    read_metrics,
    save_weights,
    update_card,
)
from nas.io import write_atomic
from nas.significance import wilson_interval

__all__ = ["train_full", "CHECKPOINT_DIR"]

CHECKPOINT_DIR = "checkpoint"
LATEST_FILE = "latest.json"
LOCK_FILE = "lock"
CHECKPOINT_FORMAT = "patternnas-checkpoint"
VAL_FRACTION = 0.1
EVAL_BATCH = 512


def _check_int(name: str, value: Any, minimum: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BudgetError(f"{name}={value!r} must be an integer >= {minimum}", key=name)


def _resolve_device(device: str):
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"not a torch device: {device!r}", key="device") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device is cuda but no CUDA GPU is available", key="device")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


@contextlib.contextmanager
def _locked(folder: Path):
    """One training process per export folder."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ExportError(f"another training process (pid {owner}) is using this folder", file=str(folder)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------------------


def _save_checkpoint(folder: Path, *, spec_hash: str, settings: dict, epoch: int, steps: int, schedule: dict,
                     model, opt, gen, curve: list, wall_s: float, device) -> None:
    import torch

    stem = f"epoch-{epoch:04d}"
    weights, state_file = f"{stem}.safetensors", f"{stem}.pt"
    save_weights(model.state_dict(), folder / weights, spec_hash=spec_hash, extra={"epoch": epoch})
    rng = {"generator": gen.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    state = {"format": CHECKPOINT_FORMAT, "spec_hash": spec_hash, "epoch": epoch, "steps": steps,
             "optimizer": opt.state_dict(), "scheduler": dict(schedule, steps_done=steps), "rng": rng,
             "curve": curve, "wall_s": float(wall_s)}
    tmp = folder / (state_file + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, folder / state_file)
    latest = {"format": CHECKPOINT_FORMAT, "format_version": 1, "hash": spec_hash, "epoch": epoch,
              "weights": weights, "state": state_file, "settings": settings,
              "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_atomic(folder / LATEST_FILE, json.dumps(latest, indent=2) + "\n")
    for old in folder.glob("epoch-*"):  # only the latest epoch is kept
        if old.name not in (weights, state_file):
            with contextlib.suppress(OSError):
                old.unlink()


def _plain_name(meta: dict, key: str, where: str) -> str:
    name = meta.get(key)
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise ExportError(f"invalid file name {name!r}", file=where, key=key)
    return name


def _load_checkpoint(folder: Path, *, spec_hash: str, settings: dict, model, opt, gen, device) -> dict | None:
    """Restore model, optimizer and RNG states from ``folder``; return the saved state (None: no checkpoint)."""
    import torch

    latest = folder / LATEST_FILE
    if not latest.is_file():
        return None
    where = str(latest)
    try:
        meta = json.loads(latest.read_text())
    except (OSError, ValueError) as e:
        raise ExportError(f"unreadable checkpoint record ({e}); delete the checkpoint folder or restart",
                          file=where) from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ExportError(f"not a patternnas checkpoint (format is not {CHECKPOINT_FORMAT!r})", file=where,
                          key="format")
    if meta.get("hash") != spec_hash:
        raise ExportError(f"the checkpoint is of another architecture ({meta.get('hash')}; arch.json is "
                          f"{spec_hash}); delete {folder} or pass --restart to train from scratch", file=where,
                          key="hash")
    saved = meta.get("settings") or {}
    for key, value in settings.items():
        if saved.get(key) != value:
            raise ExportError(f"the checkpoint was made with {key}={saved.get(key)!r}, this call asks for "
                              f"{value!r}; use the same settings to continue, or --restart", file=where, key=key)
    weights = folder / _plain_name(meta, "weights", where)
    state_path = folder / _plain_name(meta, "state", where)
    load_weights(model, weights, spec_hash=spec_hash)
    try:
        state = torch.load(state_path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise ExportError("no such file (named by latest.json)", file=str(state_path)) from None
    except Exception as e:  # noqa: BLE001 - truncated, foreign or unsafe (non-tensor pickles) files
        raise ExportError(f"unreadable checkpoint state: {type(e).__name__}: {' '.join(str(e).split())[:200]}",
                          file=str(state_path)) from None
    if not isinstance(state, dict) or state.get("spec_hash") != spec_hash or state.get("epoch") != meta.get("epoch"):
        raise ExportError("checkpoint state does not belong to latest.json (spec hash or epoch differ)",
                          file=str(state_path))
    try:
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"]["generator"].cpu())
        torch.set_rng_state(state["rng"]["torch"].cpu())
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), device)
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise ExportError(f"checkpoint state does not fit: {type(e).__name__}: {' '.join(str(e).split())[:200]}",
                          file=str(state_path)) from None
    return state


# ---------------------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------------------


def _check_data(data, spec, input_shape: tuple, num_classes: int, dataset: str, where: str) -> tuple | None:
    """The (H, W) to resize images to (None: none), after checking the dataset fits the architecture."""
    check_input_kind(data, spec.input, dataset, what="the architecture", file=where, key="dataset",
                     error=ExportError)
    if int(data.num_classes) != num_classes:
        raise ExportError(f"the architecture was exported for {num_classes} classes but dataset {dataset!r} has "
                          f"{data.num_classes}", file=where, key="num_classes")
    have = tuple(int(s) for s in data.input_shape)
    if data.kind == "image":
        if have[0] != input_shape[0]:
            raise ExportError(f"the architecture takes {input_shape[0]}-channel images but dataset {dataset!r} has "
                              f"{have[0]} channel(s)", file=where, key="input_shape")
        return tuple(input_shape[1:]) if have[1:] != tuple(input_shape[1:]) else None
    if have != tuple(input_shape):
        raise ExportError(f"the architecture takes sequences of shape {list(input_shape)} (L, C) but dataset "
                          f"{dataset!r} has {list(have)}", file=where, key="input_shape")
    return None


def train_full(path, *, dataset: str | None, epochs: int, data_dir: str | None = None, batch_size: int = 128,
               lr: float | None = None, seed: int = 0, device: str = "auto", checkpoint_every: int = 1,
               train_subset: int | None = None, max_epochs_this_call: int | None = None, restart: bool = False,
               threads: int | None = None, reexport: bool = True,
               log: Callable[[str], None] | None = None) -> dict:
    """Train the exported architecture at ``path`` (export folder or its ``arch.json``) for ``epochs`` epochs.

    ``dataset`` None takes the dataset recorded in the export's ``metrics.json`` (its source). ``lr`` None: the
    proxy trainer's default. ``checkpoint_every`` epochs a checkpoint is written (and always when a call stops);
    ``max_epochs_this_call`` stops after that many epochs (as an interruption would); ``restart`` discards an
    existing checkpoint. ``threads`` sets torch's CPU threads for the call (None: unchanged). ``reexport`` rewrites
    ONNX / TorchScript with the final weights. ``log`` receives one line per epoch.

    Returns ``status`` ("done", "paused" (stopped by ``max_epochs_this_call``; call again to continue) or
    "diverged"), ``epochs_done``, ``epochs``, ``resumed_from`` (epoch or None), ``curve`` (per epoch: train loss,
    val loss, val accuracy), and when done ``test_accuracy``, ``test_loss``, ``val_accuracy``, ``paths`` (what the
    re-export wrote) and ``export_error`` (one line, when the ONNX / TorchScript re-export failed; the weights and
    the card are written regardless).
    """
    import torch

    say = log or (lambda line: None)
    spec, input_shape, num_classes, _ = read_arch(path)
    out = export_dir(path)
    where = str(out)
    spec_hash = spec.hash()
    previous = read_metrics(out) if (out / METRICS_FILE).is_file() else {}
    if previous.get("hash") != spec_hash:  # stale (another architecture's): keep nothing of it
        previous = {}
    dataset = dataset if dataset is not None else _recorded_dataset(previous, where)
    _check_int("epochs", epochs, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("checkpoint_every", checkpoint_every, 1)
    _check_int("max_epochs_this_call", max_epochs_this_call, 1, optional=True)
    _check_int("seed", seed, 0)
    _check_int("threads", threads, 1, optional=True)
    budget = Budget(epochs=epochs, batch_size=batch_size, lr=Budget.lr if lr is None else lr)  # validates
    dev = _resolve_device(device)

    say(f"loading {dataset} ...")
    data = load_dataset(dataset, data_dir=data_dir, device=dev, val_fraction=VAL_FRACTION, seed=seed,
                        train_subset=train_subset)
    resize = _check_data(data, spec, input_shape, num_classes, dataset, where)
    # channels-last (image data only) on every device: one architecture for many epochs pays back cuDNN's one-off
    # cost per new shape on CUDA (see channels_last_default)
    runner = Runner(data, dev, resize, channels_last=True)
    settings = {"dataset": dataset, "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(budget.lr),
                "weight_decay": budget.weight_decay, "label_smoothing": budget.label_smoothing,
                "warmup_fraction": budget.warmup_fraction, "seed": int(seed), "train_subset": train_subset,
                "val_fraction": VAL_FRACTION}
    n_train = data.size("train")
    folder = out / CHECKPOINT_DIR

    prev_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"status": "paused", "epochs": int(epochs), "resumed_from": None,
                              "checkpoint": str(folder), "device": str(dev), "threads": torch.get_num_threads(),
                              "train_examples": n_train, "val_examples": data.size("val"),
                              "test_examples": data.size("test")}
    try:
        with _locked(folder), torch.random.fork_rng(devices=[dev.index] if dev.type == "cuda" else []):
            if restart:
                for old in list(folder.glob("epoch-*")) + [folder / LATEST_FILE]:
                    with contextlib.suppress(FileNotFoundError):
                        old.unlink()
            torch.manual_seed(seed)
            model = build(spec, input_shape, num_classes)
            trainer = Trainer(model, data, budget, device=dev, seed=seed, runner=runner)
            schedule = {"kind": "linear warm-up + cosine (nas.evaluate.train.lr_factor)",
                        "total_steps": trainer.total_steps, "warmup_steps": trainer.warmup_steps,
                        "steps_per_epoch": trainer.steps_per_epoch}

            say(f"data: {n_train:,} training / {data.size('val'):,} validation / {data.size('test'):,} test examples; "
                f"{epochs} epochs of {trainer.steps_per_epoch} steps on {dev} ({torch.get_num_threads()} thread(s))")
            state = _load_checkpoint(folder, spec_hash=spec_hash, settings=settings, model=model, opt=trainer.opt,
                                     gen=trainer.generator, device=dev)
            start, curve, wall_before = 0, [], 0.0
            if state is not None:
                start, trainer.steps = int(state["epoch"]), int(state["steps"])
                curve, wall_before = list(state.get("curve") or []), float(state.get("wall_s") or 0.0)
                result["resumed_from"] = start
                say(f"resumed from the checkpoint of epoch {start}/{epochs}")
            stop = epochs if max_epochs_this_call is None else min(epochs, start + max_epochs_this_call)

            model.train()
            started = time.perf_counter()
            for epoch in range(start, stop):
                epoch_start = time.perf_counter()
                k, loss_sum = 0, torch.zeros((), device=dev)
                for xb, yb in trainer.batches():
                    loss_sum += trainer.step(xb, yb)
                    k += 1
                train_loss = loss_sum.item() / max(k, 1)
                val_loss, val_acc = trainer.evaluate("val", EVAL_BATCH)
                wall = wall_before + time.perf_counter() - t0
                curve.append(asdict(EpochStats(epoch=epoch + 1, train_loss=train_loss, val_loss=val_loss,
                                               val_accuracy=val_acc, wall_s=wall)))
                now_s = time.perf_counter()
                per_epoch = (now_s - started) / (epoch + 1 - start)
                say(f"epoch {epoch + 1}/{epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                    f"val acc {val_acc:.4f} ({now_s - epoch_start:.1f} s this epoch, {fmt_duration(wall)} in all, "
                    f"ETA {fmt_duration(per_epoch * (stop - epoch - 1))})")
                if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                    result.update(status="diverged", reason=f"non-finite loss in epoch {epoch + 1}")
                    break
                if (epoch + 1) % checkpoint_every == 0 or epoch + 1 == stop:
                    _save_checkpoint(folder, spec_hash=spec_hash, settings=settings, epoch=epoch + 1,
                                     steps=trainer.steps, schedule=schedule, model=model, opt=trainer.opt,
                                     gen=trainer.generator, curve=curve, wall_s=wall, device=dev)
            result["curve"] = curve
            result["epochs_done"] = int(curve[-1]["epoch"]) if curve else start
            result["wall_s"] = wall_before + time.perf_counter() - t0
            if result["status"] == "diverged" or result["epochs_done"] < epochs:
                if result["status"] != "diverged":
                    say(f"stopped after epoch {result['epochs_done']}/{epochs}; run again to continue")
                return result

            # -- the end: the test split, once ---------------------------------------------------------------------
            model.eval()
            test_loss, test_acc = trainer.evaluate("test", EVAL_BATCH)
            test_ci = [round(v, 4) for v in wilson_interval(test_acc, data.size("test"))]
            say(f"test accuracy {test_acc:.4f} (95% interval {test_ci[0]:.4f}-{test_ci[1]:.4f}; test loss "
                f"{test_loss:.4f}, {data.size('test')} examples)")
            final = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    finally:
        if threads is not None:
            torch.set_num_threads(prev_threads)

    result.update(status="done", test_accuracy=test_acc, test_loss=test_loss, val_accuracy=curve[-1]["val_accuracy"])
    training = {"dataset": dataset, "epochs": int(epochs), "batch_size": int(batch_size), "lr": float(budget.lr),
                "seed": int(seed), "train_subset": train_subset, "train_examples": n_train,
                "val_examples": data.size("val"), "test_examples": data.size("test"), "device": str(dev),
                "wall_s": round(result["wall_s"], 1)}
    result["paths"], result["export_error"] = _write_trained(
        spec, out, input_shape, num_classes, final, previous, preprocessing_of(data, resize=resize), reexport, say,
        card={"test_accuracy": test_acc, "test_accuracy_95ci": test_ci, "test_loss": test_loss,
              "val_accuracy": curve[-1]["val_accuracy"],
              "training": {k: v for k, v in training.items() if v is not None}})
    return result


def _recorded_dataset(previous: dict, where: str) -> str:
    """The dataset an export records (its source, else its preprocessing), for ``nas train`` without --dataset."""
    dataset = (previous.get("source") or {}).get("dataset") or (previous.get("preprocessing") or {}).get("dataset")
    if not dataset:
        raise ExportError("no dataset given and none recorded in the export; pass --dataset", file=where,
                          key="dataset")
    return dataset


def _write_trained(spec, out: Path, input_shape, num_classes: int, final: dict, previous: dict, preprocessing: dict,
                   reexport: bool, say: Callable[[str], None], *, card: dict) -> tuple[dict, str | None]:
    """The trained weights into the export folder, ONNX / TorchScript re-exported with them (``reexport``) and the
    card updated with ``card``; returns (paths written, the re-export's error in one line or None). When the
    re-export fails, the weights, metrics.json and the card are written regardless."""
    export_error = None
    try:
        paths = export_model(spec, out, input_shape=input_shape, num_classes=num_classes, state_dict=final,
                             metrics=previous.get("metrics") or {}, source=previous.get("source"),
                             preprocessing=preprocessing, formats=("onnx", "torchscript") if reexport else ())
    except ExportError as e:  # the ONNX / TorchScript part: weights, metrics.json and card are written
        export_error = e.one_line()
        say(f"warning: re-export: {export_error}")
        paths = {"weights": str(out / WEIGHTS_FILE)}
        paths.update({fmt: str(out / name) for fmt, name in (("onnx", ONNX_FILE), ("torchscript", TORCHSCRIPT_FILE))
                      if (out / name).is_file()})  # the format that did not fail is kept
    update_card(out, **card)
    return paths, export_error
