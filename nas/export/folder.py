"""Writing one export folder: arch.json, weights, the runnable graphs (the registered export formats), costs,
metrics.json and MODEL.md."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from nas.archjson import ARCH_FILE, arch_record
from nas.builder import build
from nas.errors import ExportError
from nas.evaluate.measure import count_flops, count_params, cpu_name, measure_latency, versions
from nas.export.card import CARD_FILE, METRICS_FILE, METRICS_FORMAT, plain_data, render_card
from nas.export.graph import (
    CHECK_SEED,
    INIT_SEED,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    check_opset,
    export_onnx,
    export_torchscript,
)
from nas.export.weights import WEIGHTS_FILE, check_state, save_weights
from nas.io import now, remove_file, write_atomic
from nas.registry import Registry
from nas.spec import ArchSpec


@dataclass(frozen=True)
class ExportFormat:
    """A runnable file an export folder may hold: ``write(model, input_shape, path, **options)`` writes it, checks
    it against the PyTorch model and returns a JSON-able record with at least ``max_abs_diff``; it raises
    :class:`ExportError` when the file cannot be written or does not match."""

    file: str
    write: Callable[..., dict]
    options: tuple[str, ...] = ()  # keyword options of export_model it takes (onnx: opset)


EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format", error=ExportError, key="formats")
EXPORT_FORMATS.register("torchscript", ExportFormat(TORCHSCRIPT_FILE, export_torchscript))
EXPORT_FORMATS.register("onnx", ExportFormat(ONNX_FILE, export_onnx, options=("opset",)))
FORMATS = ("onnx", "torchscript")  # the built-in formats, written by default


def export_model(spec: ArchSpec | Mapping[str, Any], out_dir: str | os.PathLike, *, input_shape: Sequence[int],
                 num_classes: int, state_dict: Mapping[str, Any] | None = None, metrics: dict | None = None,
                 source: dict | None = None, opset: int | None = None, preprocessing: dict | None = None,
                 formats: Sequence[str] = FORMATS, latency_repeats: int = 50, latency_runtime: str = "torch") -> dict:
    """Write the export folder ``out_dir`` for ``spec`` built for ``input_shape`` / ``num_classes``.

    ``state_dict`` (the trained weights) is checked against the architecture and written as ``model.safetensors``;
    without it there are no weights (ONNX / TorchScript then hold the seeded initialisation, and the card says so).
    ``metrics`` (e.g. ``{"accuracy": 0.93}`` from the search's proxy training), ``source`` (e.g. ``{"run": name,
    "trial": 12}``) and ``preprocessing`` (normalisation) go into ``metrics.json`` and ``MODEL.md``. ``formats``
    picks the runnable files (``onnx``, ``torchscript``); ``latency_repeats=0`` skips the latency measurement, and
    ``latency_runtime`` (``torch`` or ``onnxruntime``) says what runs the network while it is timed.

    Returns the paths written (``arch``, ``weights``, ``onnx``, ``torchscript``, ``metrics``, ``card``; None for a
    file not written) and ``onnx_max_abs_diff`` / ``torchscript_max_abs_diff``. If the ONNX or TorchScript export or
    its check fails, every other file is still written (the card records the failure) and then the first failure is
    raised as an :class:`ExportError` naming its file.
    """
    import torch

    if not isinstance(spec, ArchSpec):
        spec = ArchSpec.from_data(spec)
    if "onnx" in formats:
        opset = check_opset(opset)  # before anything is written
    for name in formats:
        EXPORT_FORMATS.get(name)  # an unknown name: one line listing the known ones
    input_shape = tuple(int(s) for s in input_shape)
    num_classes = int(num_classes)
    spec_hash = spec.hash()
    out = Path(out_dir)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = build(spec, input_shape, num_classes)
    if state_dict is not None:
        check_state(model, state_dict)
        model.load_state_dict({k: v.detach().to("cpu") for k, v in state_dict.items()}, strict=True)
    model.eval()

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Any] = {"dir": str(out), "arch": str(out / ARCH_FILE), "weights": None,
                             "metrics": str(out / METRICS_FILE), "card": str(out / CARD_FILE)}
    for fmt in EXPORT_FORMATS:
        paths[fmt] = paths[f"{fmt}_max_abs_diff"] = None
    write_atomic(out / ARCH_FILE, json.dumps(arch_record(spec, input_shape, num_classes), indent=2) + "\n")
    if state_dict is not None:
        save_weights(model.state_dict(), out / WEIGHTS_FILE, spec_hash=spec_hash)
        paths["weights"] = str(out / WEIGHTS_FILE)
    else:
        remove_file(out / WEIGHTS_FILE)  # never leave the weights of an earlier export next to a new arch.json

    cost = _costs(model, input_shape, latency_repeats, latency_runtime)
    files, failures = _write_formats(model, input_shape, out, formats, {"opset": opset}, paths)

    record = {
        "format": METRICS_FORMAT,
        "format_version": 1,
        "hash": spec_hash,
        "summary": spec.summary(),
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "weights": ({"file": WEIGHTS_FILE, "trained": True} if state_dict is not None
                    else {"file": None, "trained": False, "init_seed": INIT_SEED}),
        "cost": cost,
        "metrics": plain_data(dict(metrics or {})),
        "source": plain_data(dict(source)) if source else None,
        "preprocessing": plain_data(dict(preprocessing)) if preprocessing else None,
        "files": files,
        "exported": now(),
        "versions": versions(),
    }
    write_atomic(out / METRICS_FILE, json.dumps(record, indent=2) + "\n")
    write_atomic(out / CARD_FILE, render_card(record, out))
    if failures:
        raise failures[0]
    return paths


def check_target_dir(out: Path, spec_hash: str, force: bool) -> None:
    """Refuse (unless ``force``) to export over another export, over trained weights, or into a foreign folder."""
    if not out.exists() or force:
        return
    if not out.is_dir():
        raise ExportError("exists and is not a folder", file=str(out))
    arch = out / ARCH_FILE
    if arch.is_file():
        try:
            existing = json.loads(arch.read_text()).get("hash")
        except (OSError, ValueError, AttributeError):
            existing = None
        if existing != spec_hash:
            raise ExportError(f"already holds another export (architecture {existing}); choose another folder or "
                              "overwrite it with --force", file=str(out))
        if (out / WEIGHTS_FILE).is_file():
            raise ExportError("already holds this architecture with trained weights; exporting again would "
                              "delete them (use --force to do so)", file=str(out))
    elif any(out.iterdir()):
        raise ExportError("is not empty and not an export folder; choose another folder or use --force",
                          file=str(out))


def _costs(model, input_shape: Sequence[int], latency_repeats: int, runtime: str = "torch") -> dict[str, Any]:
    """Params, FLOPs (on the seeded check input) and, unless ``latency_repeats`` is 0, the CPU latency (batch 1, one
    thread, run by ``runtime``) of the model, with the CPU's name."""
    import torch

    example = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(CHECK_SEED))
    cost: dict[str, Any] = {"params": count_params(model), "flops": count_flops(model, example)}
    if latency_repeats > 0:
        latency = measure_latency(model, input_shape, device="cpu", batch_size=1, warmup=min(10, latency_repeats),
                                  repeats=int(latency_repeats), threads=1, runtime=runtime)
        cost["latency"] = latency.to_dict()
    cost["latency_cpu"] = cpu_name()
    return cost


def _write_formats(model, input_shape: Sequence[int], out: Path, formats: Sequence[str], options: dict[str, Any],
                   paths: dict[str, Any]) -> tuple[dict[str, Any], list[ExportError]]:
    """Each registered format asked for, written and checked (a file of a format not asked for is removed); its
    record or its error per format, the failures, and ``paths`` filled in for the files kept."""
    files: dict[str, Any] = {}
    failures: list[ExportError] = []
    for fmt, entry in EXPORT_FORMATS.items():
        filename = entry.file
        if fmt not in formats:
            remove_file(out / filename)
            continue
        try:
            info = entry.write(model, input_shape, out / filename, **{k: options[k] for k in entry.options})
        except ExportError as e:
            files[fmt] = {"file": filename, "error": e.message}
            failures.append(e)
            continue
        files[fmt] = info
        paths[fmt] = str(out / filename)
        paths[f"{fmt}_max_abs_diff"] = info["max_abs_diff"]
    return files, failures
