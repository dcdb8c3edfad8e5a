"""metrics.json and MODEL.md: what an export holds, how it was made and measured, rendered as a model card."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from nas.archjson import ARCH_FILE, export_dir, read_arch
from nas.catalog import RUNTIME_NAMES
from nas.data import load_dataset
from nas.errors import ExportError
from nas.export.graph import INIT_SEED, ONNX_FILE
from nas.export.weights import WEIGHTS_FILE
from nas.io import now, read_text, write_atomic
from nas.objectives import label as objective_label

METRICS_FORMAT = "patternnas-metrics"
CARD_FILE = "MODEL.md"
METRICS_FILE = "metrics.json"


def plain_data(value: Any) -> Any:
    """JSON-safe plain data (tuples -> lists, numpy / torch scalars -> numbers, non-finite floats -> None)."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) or hasattr(value, "item"):
        try:
            number = value.item() if hasattr(value, "item") else value
        except (ValueError, RuntimeError):
            return str(value)
        if isinstance(number, float) and not math.isfinite(number):
            return None
        return number
    return str(value)


def read_metrics(out_dir: str | os.PathLike) -> dict:
    """The ``metrics.json`` record of an export folder (ExportError if missing or foreign)."""
    file = export_dir(out_dir) / METRICS_FILE
    if not file.exists():
        raise ExportError("no such file (not an export folder made by nas export)", file=str(file))
    try:
        record = json.loads(read_text(file, error=ExportError))
    except json.JSONDecodeError as e:
        raise ExportError(f"cannot read: {getattr(e, 'msg', None) or e}", file=str(file)) from None
    if not isinstance(record, dict) or record.get("format") != METRICS_FORMAT:
        raise ExportError(f"not a patternnas metrics file (format is not {METRICS_FORMAT!r})", file=str(file),
                          key="format")
    return record


def update_card(out_dir: str | os.PathLike, **metrics: Any) -> dict:
    """Merge ``metrics`` (e.g. ``test_accuracy=0.97``; a value of None removes a metric) into ``metrics.json`` and
    rewrite ``MODEL.md`` from it. Returns the updated record."""
    out = export_dir(out_dir)
    record = read_metrics(out)
    _, _, _, arch = read_arch(out)
    if record.get("hash") != arch["hash"]:
        raise ExportError(f"metrics.json is for architecture {record.get('hash')}, but arch.json is {arch['hash']} "
                          "(re-export the folder)", file=str(out / METRICS_FILE), key="hash")
    merged = dict(record.get("metrics") or {})
    for key, value in metrics.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = plain_data(value)
    record["metrics"] = merged
    record["updated"] = now()
    write_atomic(out / METRICS_FILE, json.dumps(record, indent=2) + "\n")
    write_atomic(out / CARD_FILE, render_card(record, out))
    return record
_METRIC_LABELS = {
    "accuracy": "proxy accuracy (validation split, search budget)",
    "proxy_accuracy": "proxy accuracy (validation split, search budget)",
    "val_loss": "proxy validation loss (search budget)",
    "test_accuracy": "test accuracy (full training; test split used once)",
    "test_accuracy_95ci": "test accuracy, 95% Wilson interval (test split size)",
    "test_loss": "test loss (full training)",
    "val_accuracy": "validation accuracy (full training, last epoch)",
    "final_val_loss": "validation loss (full training, last epoch)",
    "training": "full training",
}


def _fmt_value(value: Any, nested: bool = False) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if nested or abs(value) >= 1e4 else f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}" if not nested else str(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt_value(v, True)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt_value(v, True) for v in value) + "]"
    return str(value)


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def render_card(record: dict, out_dir: str | os.PathLike) -> str:
    """``MODEL.md`` from a ``metrics.json`` record: a summary table, then its sections."""
    out = Path(out_dir)
    lines = [f"# Model {record.get('hash', '?')}", "", f"`{record.get('summary', '')}`", ""]
    for section in (_card_table, _card_metrics, _card_source, _card_preprocessing, _card_files, _card_usage):
        lines += section(record, out)
    return "\n".join(lines)


def _card_table(record: dict, out: Path) -> list[str]:
    shape = record.get("input_shape") or []
    layout = "(N, C, H, W) = (N, " + ", ".join(map(str, shape)) + ")" if len(shape) == 3 else \
        "(N, L, C) = (N, " + ", ".join(map(str, shape)) + ")"
    weights = record.get("weights") or {}
    cost = record.get("cost") or {}
    lines = ["| | |", "|---|---|", f"| architecture hash | `{record.get('hash', '?')}` |",
             f"| input | {layout}, float32 |",
             f"| classes | {record.get('num_classes')} (output: logits (N, {record.get('num_classes')})) |"]
    if "params" in cost:
        lines.append(f"| parameters | {cost['params']:,} ({_si(cost['params'])}) |")
    if "flops" in cost:
        lines.append(f"| FLOPs | {cost['flops']:,} ({_si(cost['flops'])}) per sample (2 per multiply-add; "
                     "matmul / conv / attention only) |")
    latency = cost.get("latency")
    if latency:
        lines.append(f"| CPU latency | median {latency['median_ms']:.3f} ms, IQR {latency['iqr_ms']:.3f} ms "
                     f"(batch {latency['batch_size']}, {latency['threads']} thread(s), {latency['device']}, "
                     f"{RUNTIME_NAMES.get(latency.get('runtime', 'torch'))}, "
                     f"{latency['repeats']} runs after {latency['warmup']} warm-up; "
                     f"{cost.get('latency_cpu', '')}) |")
    else:
        lines.append("| CPU latency | not measured |")
    if weights.get("trained"):
        lines.append(f"| weights | `{WEIGHTS_FILE}` |")
    else:
        lines.append(f"| weights | **none**: architecture only (ONNX / TorchScript hold an untrained "
                     f"initialisation, seed {weights.get('init_seed', INIT_SEED)}); train it with `nas train` |")
    return lines + [""]


def _card_metrics(record: dict, out: Path) -> list[str]:
    metrics = record.get("metrics") or {}
    lines = ["## Metrics", ""]
    if metrics:
        for key, value in metrics.items():
            lines.append(f"- {_METRIC_LABELS.get(key) or objective_label(key)}: {_fmt_value(value)}")
    else:
        lines.append("- none recorded")
    return lines + [""]


def _card_source(record: dict, out: Path) -> list[str]:
    source = record.get("source") or {}
    if not source:
        return []
    lines = ["## Source", ""]
    bits = []
    if "run" in source:
        bits.append(f"run `{source['run']}`")
    if "trial" in source:
        bits.append(f"trial #{source['trial']}")
    if bits:
        lines.append("- " + ", ".join(bits))
    for key, value in source.items():
        if key not in ("run", "trial"):
            lines.append(f"- {key}: {_fmt_value(value)}")
    return lines + [""]


def _card_preprocessing(record: dict, out: Path) -> list[str]:
    pre = record.get("preprocessing") or {}
    lines = ["## Input preprocessing", ""]
    if pre:
        lines.append(f"- dataset: {pre.get('dataset', '?')}")
        if pre.get("scale"):
            lines.append(f"- scale: {pre['scale']}")
        if pre.get("mean") is not None:
            lines.append(f"- per-channel mean: {_fmt_value(pre['mean'])}, std: {_fmt_value(pre['std'])} "
                         "(after scaling; x = (x - mean) / std)")
        if pre.get("resize"):
            lines.append(f"- resize to: {_fmt_value(pre['resize'])} (bilinear) before the model")
    else:
        lines.append("- float32 inputs normalised as `nas.data` does: uint8 / 255, then (x - mean) / std per "
                     "channel with the training split's statistics (`nas.data.load_dataset(...).normalize`)")
    return lines + [""]


def _card_files(record: dict, out: Path) -> list[str]:
    weights = record.get("weights") or {}
    files = record.get("files") or {}
    lines = ["## Files", "", f"- `{ARCH_FILE}`: the architecture (spec + input shape + classes)"]
    if weights.get("trained"):
        lines.append(f"- `{WEIGHTS_FILE}`: weights (safetensors; metadata `spec_hash`)")
    for fmt, label in (("onnx", "ONNX"), ("torchscript", "TorchScript")):
        info = files.get(fmt)
        if not info:
            continue
        if "error" in info:
            lines.append(f"- `{info['file']}`: **{label} export failed**: {info['error']}")
        elif fmt == "onnx":
            lines.append(f"- `{info['file']}`: ONNX opset {info['opset']} ({info['exporter']} exporter), batch "
                         f"axis dynamic; onnxruntime matches PyTorch to {info['max_abs_diff']:.2e} (max abs, "
                         f"tolerance {info['tolerance']:.3g}: 1e-4 + 1e-3 x the largest logit)")
        else:
            lines.append(f"- `{info['file']}`: TorchScript (torch.jit.trace), batch axis dynamic; matches PyTorch "
                         f"to {info['max_abs_diff']:.2e}")
    lines.append(f"- `{METRICS_FILE}`: the numbers on this card")
    return lines + [""]


def _card_usage(record: dict, out: Path) -> list[str]:
    shape = record.get("input_shape") or []
    weights = record.get("weights") or {}
    files = record.get("files") or {}
    metrics = record.get("metrics") or {}
    source = record.get("source") or {}
    pre = record.get("preprocessing") or {}
    dataset = (metrics.get("training") or {}).get("dataset") if isinstance(metrics.get("training"), dict) else None
    dataset = dataset or source.get("dataset") or pre.get("dataset") or "DATASET"
    x = "x = torch.randn(1, " + ", ".join(map(str, shape)) + ")  # normalised input"
    lines = ["## Load", "", "```python", "import nas.export", "",
             f'model = nas.export.load("{out}")  # eval mode' + (", trained weights" if weights.get("trained")
                                                                else ", untrained"),
             "import torch", x, "logits = model(x)", "", "from nas.builder import build",
             f'model = build("{out / ARCH_FILE}")  # the architecture alone, freshly initialised', "```", ""]
    if "onnx" in files and "error" not in files["onnx"]:
        np_x = "x = np.random.randn(1, " + ", ".join(map(str, shape)) + ").astype(np.float32)"
        lines += ["```python", "import numpy as np, onnxruntime as ort", "",
                  f'session = ort.InferenceSession("{out / ONNX_FILE}")', np_x,
                  'logits = session.run(None, {"input": x})[0]', "```", ""]
    lines += ["## Train", "", "```sh", f"nas train {out} --dataset {dataset} --epochs 50", "```", "",
              "Trains from scratch on the training split (the validation split is kept for monitoring), "
              "checkpoints every epoch (an interrupted run continues where it stopped), evaluates once on the "
              "test split, writes the weights and re-exports.", ""]
    return lines


def dataset_preprocessing(dataset: str, *, data_dir=None, train_subset=None, seed: int = 0,
                          val_fraction: float = 0.1) -> tuple[Any, dict]:
    data = load_dataset(dataset, data_dir=data_dir, seed=seed, train_subset=train_subset, val_fraction=val_fraction)
    return data, preprocessing_of(data)


def preprocessing_of(data, resize: Sequence[int] | None = None) -> dict:
    """What a caller must do to raw inputs of ``data`` before the model (for the card)."""
    scaled = data.x_train.dtype.is_floating_point is False
    pre = {"dataset": data.name, "scale": "uint8 / 255" if scaled else "none (float inputs)",
           "mean": [round(float(v), 6) for v in data.mean.flatten().tolist()],
           "std": [round(float(v), 6) for v in data.std.flatten().tolist()]}
    if data.kind == "image" and resize is not None and tuple(resize) != tuple(data.input_shape[1:]):
        pre["resize"] = list(resize)
    return pre
