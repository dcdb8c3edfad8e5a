"""Export one architecture as a self-contained folder that rebuilds, loads and runs anywhere.

    arch.json          {"format": "patternnas-arch", "format_version": 1, "hash", "summary", "spec",
                        "input_shape", "num_classes"}: ``nas.builder.build("DIR/arch.json")`` rebuilds the network
    model.safetensors  the weights (only when there are any: a search trial has none until ``nas train``), with the
                       spec hash in the file's metadata
    model.onnx         ONNX graph (batch axis dynamic), checked against PyTorch with onnxruntime right after export
    model.ts           TorchScript (``torch.jit.trace``), checked against PyTorch likewise
    metrics.json       costs, metrics, source and check results: the source of truth MODEL.md is rendered from
    MODEL.md           the model card

Which exporters, and why (measured on torch 2.13 CPU, every block type in ``nas.blocks.registry`` + FPN heads):

* ONNX: the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``), opset 17 by default. The dynamo
  exporter (``torch.export`` underneath) cannot export the selective-scan (ssm) block: the chunked scan chooses its
  numerically safe path with a data-dependent ``float(tensor)`` test, which ``torch.export`` refuses
  (GuardOnDataDependentSymNode); it is also 10-100x slower (2-20 s vs 0.1-0.4 s per small model). The TorchScript
  exporter handles every block; its one bug that concerns us (``aten::movedim`` with a negative dim becomes a
  Transpose with a negative ``perm``, which onnxruntime rejects: ConvNeXt / ``layer`` norm) is fixed by a corrected
  symbolic registered only for the duration of the export. Should the TorchScript exporter itself fail (e.g. a torch
  that has removed it), the dynamo exporter is tried as a fallback; ``metrics.json`` records which one wrote the file.
  The opsets accepted are those the TorchScript exporter supports (:func:`onnx_opsets`: 7 to 20 on torch 2.13),
  checked before anything is written. The dynamo exporter writes opset 18 and up natively and converts to older
  ones, which can fail and then leaves opset 18: the opset in the written file is read back, a file of another
  opset than asked for counts as a failed export, and ``metrics.json`` / ``MODEL.md`` record the read-back opset.
* TorchScript rather than ``torch.export`` (``.pt2``), for the same reason: ``torch.export`` fails on the ssm block,
  ``torch.jit.trace`` works for all of them.

Both are traces at the recorded input shape (only the batch axis is free): Python control flow is frozen as taken
for the seeded example input. The ssm block's scan is therefore traced as its sequential loop (the block's
``nas.blocks.ssm.scan_plan`` while tracing), the one path that is right for every input: the chunked closed form,
which the block runs for inference, would be frozen with the branch its example took, and overflows for an input
whose decay passes exp's range in a chunk. The price, measured for the Mamba baseline at length 784: an 8.7 MB
graph instead of 2.0 MB, 40 s to export instead of 16 s, 117 ms per onnxruntime call instead of 83 ms (CPU, a busy
machine).

Loading never unpickles: weights are read with ``safetensors`` only, and checked against the architecture.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from nas.control.rundir import write_atomic
from nas.errors import ExportError, NasError, SpecError
from nas.spec import ArchSpec
from nas.yamlio import read_text

__all__ = ["export_model", "load", "read_arch", "read_spec", "onnx_opsets", "check_opset", "update_card",
           "read_metrics", "load_weights", "check_state", "export_trial", "export_from", "ARCH_FILE", "WEIGHTS_FILE",
           "ONNX_FILE", "TORCHSCRIPT_FILE", "CARD_FILE", "METRICS_FILE"]

FORMAT = "patternnas-arch"
FORMAT_VERSION = 1
METRICS_FORMAT = "patternnas-metrics"
WEIGHTS_FORMAT = "patternnas-weights"

ARCH_FILE = "arch.json"
WEIGHTS_FILE = "model.safetensors"
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.ts"
CARD_FILE = "MODEL.md"
METRICS_FILE = "metrics.json"

DEFAULT_OPSET = 17
# Allowed max abs difference of the logits, exported file vs PyTorch, on seeded random inputs: ONNX_TOLERANCE plus
# ONNX_RTOL times the largest |logit| (trained weights give logits of tens, and float32 kernels that sum in another
# order differ in proportion: a trained net missed a fixed 1e-4 by 1.34e-4). rtol as torch.onnx's own check.
ONNX_TOLERANCE = 1e-4
ONNX_RTOL = 1e-3
CHECK_SEED = 0
INIT_SEED = 0  # initialisation of an export without weights (graph only)
FORMATS = ("onnx", "torchscript")


# ---------------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------------


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


def _one_line(e: BaseException, limit: int = 300) -> str:
    if isinstance(e, NasError):
        return e.one_line()
    text = " ".join(str(e).split())
    text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _export_dir(path: str | os.PathLike) -> Path:
    """The export folder of ``path`` (the folder itself, or the folder of its arch.json)."""
    path = Path(path)
    if path.is_dir():
        return path
    return path.parent if path.is_file() or path.suffix == ".json" else path


def _arch_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / ARCH_FILE if path.is_dir() else path


def _shape(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, (list, tuple)) or not value:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        return None
    return tuple(value)


def _plain_state(state_dict: Mapping[str, Any]) -> dict:
    """Detached, contiguous CPU copies (safetensors refuses shared or non-contiguous storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}


# ---------------------------------------------------------------------------------------------------------------
# arch.json
# ---------------------------------------------------------------------------------------------------------------


def arch_record(spec: ArchSpec, input_shape: Sequence[int], num_classes: int) -> dict:
    """The content of ``arch.json`` for ``spec`` built for ``input_shape`` and ``num_classes``."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "hash": spec.hash(),
        "summary": spec.summary(),
        "spec": spec.model_dump(mode="json"),
        "input_shape": [int(s) for s in input_shape],
        "num_classes": int(num_classes),
    }


def read_arch(path: str | os.PathLike) -> tuple[ArchSpec, tuple, int, dict]:
    """Read and validate an exported ``arch.json`` (or the export folder holding it).

    Returns ``(spec, input_shape, num_classes, record)``. Raises :class:`ExportError` (one line, naming the file and
    key) for a missing / unreadable / foreign file or a hash that does not match the spec, and :class:`SpecError`
    (key prefixed ``spec.``) for an invalid spec.
    """
    file = _arch_path(path)
    where = str(file)
    if not file.is_file():
        if Path(path).is_dir():
            raise ExportError(f"not an export folder: no {ARCH_FILE} in it", file=str(path))
        raise ExportError("no such file or folder", file=where)
    text = read_text(file, error=ExportError)
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise ExportError(f"not valid JSON: {e.msg}", file=where, line=e.lineno) from None
    if not isinstance(record, dict) or "format" not in record:
        raise ExportError(f"not an exported architecture: no 'format' field (expected format {FORMAT!r}; "
                          "a bare spec is exported with nas export)", file=where, key="format")
    if record["format"] != FORMAT:
        raise ExportError(f"not an exported architecture: format is {record['format']!r}, expected {FORMAT!r}",
                          file=where, key="format")
    version = record.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ExportError(f"format_version must be an integer >= 1, got {version!r}", file=where,
                          key="format_version")
    if version > FORMAT_VERSION:
        raise ExportError(f"format_version {version} is newer than this version of nas reads ({FORMAT_VERSION})",
                          file=where, key="format_version")
    if "spec" not in record:
        raise ExportError("missing field", file=where, key="spec")
    try:
        spec = ArchSpec.from_data(record["spec"], file=where)
    except SpecError as e:
        key = f"spec.{e.key}" if e.key else "spec"
        raise SpecError(e.message, file=where, key=key) from None
    recorded = record.get("hash")
    actual = spec.hash()
    if not isinstance(recorded, str):
        raise ExportError(f"missing hash (the spec hashes to {actual})", file=where, key="hash")
    if recorded != actual:
        raise ExportError(f"hash mismatch: the file records {recorded} but its spec hashes to {actual} "
                          "(the spec was edited after export; re-export it)", file=where, key="hash")
    input_shape = _shape(record.get("input_shape"))
    want = 3 if spec.input == "image" else 2
    if input_shape is None or len(input_shape) != want:
        layout = "[C, H, W]" if spec.input == "image" else "[L, C]"
        raise ExportError(f"must be {layout} (positive integers) for a{'n' if spec.input == 'image' else ''} "
                          f"{spec.input} spec, got {record.get('input_shape')!r}", file=where, key="input_shape")
    check_input_shape(input_shape, spec.input, key="input_shape", file=where)  # within a space's bounds
    classes = record.get("num_classes")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ExportError(f"must be an integer >= 1, got {classes!r}", file=where, key="num_classes")
    from nas.grammar import MAX_CLASSES

    if classes > MAX_CLASSES:
        raise ExportError(f"must be at most {MAX_CLASSES:,} (as a space's reference input), got {classes}",
                          file=where, key="num_classes")
    return spec, input_shape, classes, record


def _declares_format(file: Path) -> bool:
    """Whether ``file`` is a JSON object with a ``format`` field (an export's arch.json, or a foreign file that
    :func:`read_arch` then refuses by name) rather than a bare spec."""
    try:
        return isinstance(data := json.loads(file.read_text()), dict) and "format" in data
    except (OSError, UnicodeDecodeError, ValueError):
        return False  # unreadable or not JSON: ArchSpec.load says why, naming the file and line


def read_spec(path: str | os.PathLike) -> tuple[ArchSpec, tuple[tuple[int, ...], int] | None]:
    """The spec of an export folder, an exported ``arch.json`` or a bare spec file (.json / .yaml).

    Returns ``(spec, recorded)``: ``recorded`` is ``(input_shape, num_classes)`` for an export (read and checked by
    :func:`read_arch`), None for a bare spec. The one reader of the commands that take a spec file (``nas space
    validate``, ``nas eval``, ``nas export``), of ``warm_start`` and of :func:`nas.builder.build`.
    """
    path = Path(path)
    if path.is_dir() or (path.suffix == ".json" and _declares_format(path)):
        spec, input_shape, num_classes, _ = read_arch(path)
        return spec, (input_shape, num_classes)
    return ArchSpec.load(path), None


# ---------------------------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------------------------


def check_state(model, state: Mapping[str, Any], *, file: str | None = None) -> None:
    """Raise :class:`ExportError` naming the first key of ``state`` that does not fit ``model`` (missing,
    unexpected, or of another shape)."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise ExportError(f"missing tensor for this architecture (the weights are for another one; "
                              f"{len(expected)} expected, {len(state)} in the file)", file=file, key=key)
        got = tuple(state[key].shape)
        if got != tuple(tensor.shape):
            raise ExportError(f"shape {list(got)} does not match the architecture's {list(tensor.shape)}",
                              file=file, key=key)
    for key in state:
        if key not in expected:
            raise ExportError("unexpected tensor: the architecture has no such parameter or buffer", file=file,
                              key=key)


def load_weights(model, path: str | os.PathLike, *, spec_hash: str | None = None) -> dict:
    """Load a safetensors file into ``model`` after checking it fits; return the file's metadata.

    Reads with ``safetensors`` only (never unpickles). A file whose metadata names another spec hash, or whose
    tensors do not fit the architecture, is an :class:`ExportError` naming the file and the first bad key.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    where = str(path)
    try:
        with safe_open(where, framework="pt") as f:
            metadata = dict(f.metadata() or {})
        state = load_file(where)
    except FileNotFoundError:
        raise ExportError("no such file", file=where) from None
    except Exception as e:  # noqa: BLE001 - SafetensorError, OSError, truncated / foreign files
        raise ExportError(f"not a readable safetensors file ({_one_line(e, 200)})", file=where) from None
    recorded = metadata.get("spec_hash")
    if spec_hash is not None and recorded is not None and recorded != spec_hash:
        raise ExportError(f"these weights are for architecture {recorded}, not {spec_hash}", file=where,
                          key="spec_hash")
    check_state(model, state, file=where)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # dtype problems and the like: keep it one line
        raise ExportError(f"cannot load the weights: {_one_line(e, 200)}", file=where) from None
    return metadata


def save_weights(state_dict: Mapping[str, Any], path: str | os.PathLike, *, spec_hash: str,
                 extra: Mapping[str, str] | None = None) -> None:
    """Write ``state_dict`` as safetensors (atomically) with the spec hash in its metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    metadata = {"format": WEIGHTS_FORMAT, "spec_hash": spec_hash, **{k: str(v) for k, v in (extra or {}).items()}}
    save_file(_plain_state(state_dict), str(tmp), metadata=metadata)
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o644)  # safetensors creates the file owner-only; weights are not secrets
    os.replace(tmp, path)


def load(path: str | os.PathLike, *, weights: bool = True):
    """The network of an export folder (or its ``arch.json``) in eval mode, with the weights of
    ``model.safetensors`` when that file exists (and ``weights`` is true); untrained otherwise."""
    from nas.builder import build

    spec, input_shape, num_classes, _ = read_arch(path)
    model = build(spec, input_shape, num_classes)
    weights_file = _export_dir(path) / WEIGHTS_FILE
    if weights and weights_file.is_file():
        load_weights(model, weights_file, spec_hash=spec.hash())
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------------------------
# ONNX and TorchScript
# ---------------------------------------------------------------------------------------------------------------


def _movedim_symbolic():
    """``aten::movedim`` for the TorchScript ONNX exporter with negative dims normalised (the stock symbolic
    writes them into Transpose's ``perm`` as they are, which is invalid ONNX)."""
    from torch.onnx import symbolic_helper

    @symbolic_helper.parse_args("v", "t", "t")
    def movedim(g, self, source, destination):
        rank = symbolic_helper._get_tensor_rank(self)
        if rank is None:
            raise RuntimeError("movedim: the input rank is unknown")
        src = [int(s) % rank for s in source.view(-1).tolist()]
        dst = [int(d) % rank for d in destination.view(-1).tolist()]
        perm: list[int | None] = [None] * rank
        for s, d in zip(src, dst):
            perm[d] = s
        rest = iter(i for i in range(rank) if i not in src)
        order = [p if p is not None else next(rest) for p in perm]
        if order == list(range(rank)):
            return self
        return g.op("Transpose", self, perm_i=order)

    return movedim


@contextlib.contextmanager
def _torchscript_onnx_fixes(opset: int):
    import torch

    torch.onnx.register_custom_op_symbolic("aten::movedim", _movedim_symbolic(), opset)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            torch.onnx.unregister_custom_op_symbolic("aten::movedim", opset)


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' deprecation and tracer warnings and the dynamo exporter's log lines (they concern
    torch, not the user's model; a failure is reported as one line)."""
    import logging

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for logger in loggers:
                logger.setLevel(logging.CRITICAL)
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _check_inputs(input_shape: Sequence[int]):
    """Two seeded standard-normal inputs (batch 2, and batch 3 to check that the batch axis stayed free)."""
    import torch

    gen = torch.Generator().manual_seed(CHECK_SEED)
    return [torch.randn(2, *input_shape, generator=gen), torch.randn(3, *input_shape, generator=gen)]


def tolerance_for(scale: float) -> float:
    """The allowed max abs difference for logits whose largest magnitude is ``scale``."""
    return ONNX_TOLERANCE + ONNX_RTOL * float(scale)


def _max_diff(ref, got) -> float:
    import numpy as np

    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape:
        return math.inf
    if not np.isfinite(got).all():
        return math.inf
    return float(np.abs(ref - got).max()) if ref.size else 0.0


def onnx_opsets() -> tuple[int, int]:
    """The ONNX opsets (lowest, highest) that ``nas export`` writes: the range torch's TorchScript-based exporter
    (the one used, see the module docstring) supports: ``torch.onnx._constants.ONNX_MIN_OPSET`` to
    ``ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET`` (7 to 20 on torch 2.13). Below, the exporter has no symbolics for
    common ops (opsets 1-5 fail on pooling, opset 6 writes a Gemm onnxruntime cannot load); above, torch warns that
    the opset is unsupported by it. The dynamo fallback writes opset 18 natively and converts to others, which can
    fail, so the opset of its file is read back and checked too."""
    try:
        from torch.onnx import _constants

        low = int(_constants.ONNX_MIN_OPSET)
        high = int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", _constants.ONNX_MAX_OPSET))
    except (ImportError, AttributeError, TypeError, ValueError):  # a torch that moved its constants
        low, high = 7, 20
    return low, high


def check_opset(opset: Any) -> int:
    """``opset`` (None: :data:`DEFAULT_OPSET`) as an int, or :class:`ExportError` (key ``--opset``) when it is not
    an opset the exporter can write (:func:`onnx_opsets`)."""
    if opset is None:
        return DEFAULT_OPSET
    low, high = onnx_opsets()
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        import torch

        raise ExportError(f"ONNX opset {opset!r} is not supported: the TorchScript-based exporter of torch "
                          f"{torch.__version__.split('+')[0]} writes opsets {low} to {high} (default {DEFAULT_OPSET})",
                          key="--opset")
    return int(opset)


def _written_opset(file: Path) -> int | None:
    """The default-domain (ai.onnx) opset an ONNX file declares."""
    import onnx

    model = onnx.load(str(file), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def export_onnx(model, input_shape: Sequence[int], path: str | os.PathLike, *, opset: int | None = None,
                exporters: Iterable[str] = ("torchscript", "dynamo")) -> dict:
    """Export ``model`` to ONNX at ``path`` and check it with onnxruntime against PyTorch.

    Returns ``{"file", "exporter", "opset", "max_abs_diff", "tolerance"}``, ``opset`` as read back from the written
    file. An opset outside :func:`onnx_opsets` is refused before anything is written; an exporter that writes
    another opset than asked for counts as failed. On an export failure or a difference above the tolerance
    (:func:`tolerance_for` the largest |logit|) raises :class:`ExportError` naming the file, and leaves no file at
    ``path``.
    """
    import torch

    path = Path(path)
    where = str(path)
    opset = check_opset(opset)
    tmp = path.with_name(path.stem + ".tmp.onnx")
    inputs = _check_inputs(input_shape)
    model.eval()
    errors = []
    exporter = None
    for name in exporters:
        _remove(tmp)
        try:
            with _quiet(), torch.no_grad():
                if name == "torchscript":
                    with _torchscript_onnx_fixes(opset):
                        torch.onnx.export(model, (inputs[0],), str(tmp), dynamo=False, opset_version=opset,
                                          input_names=["input"], output_names=["logits"],
                                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
                elif name == "dynamo":
                    torch.onnx.export(model, (inputs[0],), str(tmp), dynamo=True, opset_version=opset,
                                      input_names=["input"], output_names=["logits"],
                                      dynamic_shapes=({0: "batch"},), external_data=False, verbose=False)
                else:
                    raise ValueError(f"unknown exporter {name!r}")
            written = _written_opset(tmp)
            if written != opset:  # e.g. the dynamo exporter keeps opset 18 when its conversion fails
                raise RuntimeError(f"wrote ONNX opset {written}, not the {opset} asked for")
            exporter = name
            break
        except Exception as e:  # noqa: BLE001 - any exporter failure is reported as one line
            errors.append(f"{name} exporter: {_one_line(e, 200)}")
    if exporter is None:
        _remove(tmp)
        _remove(path)
        raise ExportError("ONNX export failed: " + "; ".join(errors), file=where)
    try:
        diff, scale = _onnx_diff(model, tmp, inputs)
    except ExportError as e:
        _remove(tmp)
        _remove(path)
        raise ExportError(e.message, file=where) from None
    tolerance = tolerance_for(scale)
    if not diff <= tolerance:
        _remove(tmp)
        _remove(path)
        raise ExportError(f"ONNX check failed: onnxruntime output differs from PyTorch by {diff:.3g} (max abs, "
                          f"tolerance {tolerance:.3g} for logits up to {scale:.3g}); the file was not kept",
                          file=where)
    os.replace(tmp, path)
    return {"file": path.name, "exporter": exporter, "opset": written, "max_abs_diff": diff,
            "tolerance": tolerance}


def _onnx_diff(model, file: Path, inputs) -> tuple[float, float]:
    """(max abs difference of onnxruntime's logits from PyTorch's, largest |logit| of PyTorch) over ``inputs``."""
    import numpy as np
    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("onnxruntime is needed to check the ONNX file (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        diff = scale = 0.0
        with torch.no_grad():
            for x in inputs:
                ref = model(x).numpy()
                got = session.run(None, {name: x.numpy()})[0]
                diff = max(diff, _max_diff(ref, got))
                scale = max(scale, float(np.abs(ref).max()) if ref.size else 0.0)
    except Exception as e:  # noqa: BLE001 - an invalid graph is an export failure
        raise ExportError(f"ONNX check failed: onnxruntime cannot run the file ({_one_line(e, 200)})") from None
    return diff, scale


def export_torchscript(model, input_shape: Sequence[int], path: str | os.PathLike) -> dict:
    """Trace ``model`` with ``torch.jit.trace``, save it at ``path``, load it back and compare it with PyTorch.

    Returns ``{"file", "exporter", "max_abs_diff", "tolerance"}``; raises :class:`ExportError` naming the file
    (and leaves no file there) when tracing fails or the traced module disagrees.
    """
    import torch

    path = Path(path)
    where = str(path)
    tmp = path.with_name(path.name + ".tmp")
    inputs = _check_inputs(input_shape)
    model.eval()
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(model, (inputs[0],), check_trace=False)
            traced.save(str(tmp))
            loaded = torch.jit.load(str(tmp), map_location="cpu")
            diff = scale = 0.0
            for x in inputs:
                ref = model(x).numpy()
                diff = max(diff, _max_diff(ref, loaded(x).numpy()))
                scale = max(scale, float(abs(ref).max()) if ref.size else 0.0)
    except Exception as e:  # noqa: BLE001
        _remove(tmp)
        _remove(path)
        raise ExportError(f"TorchScript export failed: {_one_line(e, 200)}", file=where) from None
    tolerance = tolerance_for(scale)
    if not diff <= tolerance:
        _remove(tmp)
        _remove(path)
        raise ExportError(f"TorchScript check failed: the traced module differs from PyTorch by {diff:.3g} "
                          f"(max abs, tolerance {tolerance:.3g} for logits up to {scale:.3g}); the file was not "
                          "kept", file=where)
    os.replace(tmp, path)
    return {"file": path.name, "exporter": "torch.jit.trace", "max_abs_diff": diff, "tolerance": tolerance}


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------


def export_model(spec: ArchSpec | Mapping[str, Any], out_dir: str | os.PathLike, *, input_shape: Sequence[int],
                 num_classes: int, state_dict: Mapping[str, Any] | None = None, metrics: dict | None = None,
                 source: dict | None = None, opset: int | None = None, preprocessing: dict | None = None,
                 formats: Sequence[str] = FORMATS, latency_repeats: int = 50) -> dict:
    """Write the export folder ``out_dir`` for ``spec`` built for ``input_shape`` / ``num_classes``.

    ``state_dict`` (the trained weights) is checked against the architecture and written as ``model.safetensors``;
    without it there are no weights (ONNX / TorchScript then hold the seeded initialisation, and the card says so).
    ``metrics`` (e.g. ``{"accuracy": 0.93}`` from the search's proxy training), ``source`` (e.g. ``{"run": name,
    "trial": 12}``) and ``preprocessing`` (normalisation) go into ``metrics.json`` and ``MODEL.md``. ``formats``
    picks the runnable files (``onnx``, ``torchscript``); ``latency_repeats=0`` skips the latency measurement.

    Returns the paths written (``arch``, ``weights``, ``onnx``, ``torchscript``, ``metrics``, ``card``; None for a
    file not written) and ``onnx_max_abs_diff`` / ``torchscript_max_abs_diff``. If the ONNX or TorchScript export or
    its check fails, every other file is still written (the card records the failure) and then the first failure is
    raised as an :class:`ExportError` naming its file.
    """
    import torch

    from nas.builder import build
    from nas.evaluate.measure import count_flops, count_params, measure_latency

    if not isinstance(spec, ArchSpec):
        spec = ArchSpec.from_data(spec)
    if "onnx" in formats:
        opset = check_opset(opset)  # before anything is written
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ExportError(f"unknown export format {unknown[0]!r} (known: {', '.join(FORMATS)})", key="formats")
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
    paths: dict[str, Any] = {"dir": str(out), "arch": str(out / ARCH_FILE), "weights": None, "onnx": None,
                             "torchscript": None, "metrics": str(out / METRICS_FILE), "card": str(out / CARD_FILE),
                             "onnx_max_abs_diff": None, "torchscript_max_abs_diff": None}
    write_atomic(out / ARCH_FILE, json.dumps(arch_record(spec, input_shape, num_classes), indent=2) + "\n")
    if state_dict is not None:
        save_weights(model.state_dict(), out / WEIGHTS_FILE, spec_hash=spec_hash)
        paths["weights"] = str(out / WEIGHTS_FILE)
    else:
        _remove(out / WEIGHTS_FILE)  # never leave the weights of an earlier export next to a new arch.json

    example = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(CHECK_SEED))
    cost: dict[str, Any] = {"params": count_params(model), "flops": count_flops(model, example)}
    if latency_repeats > 0:
        latency = measure_latency(model, input_shape, device="cpu", batch_size=1, warmup=min(10, latency_repeats),
                                  repeats=int(latency_repeats), threads=1)
        cost["latency"] = latency.to_dict()
    cost["latency_cpu"] = _cpu_name()

    files: dict[str, Any] = {}
    failures: list[ExportError] = []
    for fmt, filename, fn in (("torchscript", TORCHSCRIPT_FILE, export_torchscript),
                              ("onnx", ONNX_FILE, export_onnx)):
        if fmt not in formats:
            _remove(out / filename)
            continue
        kwargs = {"opset": opset} if fmt == "onnx" else {}
        try:
            info = fn(model, input_shape, out / filename, **kwargs)
        except ExportError as e:
            files[fmt] = {"file": filename, "error": e.message}
            failures.append(e)
            continue
        files[fmt] = info
        paths[fmt] = str(out / filename)
        paths[f"{fmt}_max_abs_diff"] = info["max_abs_diff"]

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
        "metrics": _plain(dict(metrics or {})),
        "source": _plain(dict(source)) if source else None,
        "preprocessing": _plain(dict(preprocessing)) if preprocessing else None,
        "files": files,
        "exported": _now(),
        "versions": _versions(),
    }
    write_atomic(out / METRICS_FILE, json.dumps(record, indent=2) + "\n")
    write_atomic(out / CARD_FILE, render_card(record, out))
    if failures:
        raise failures[0]
    return paths


def _plain(value: Any) -> Any:
    """JSON-safe plain data (tuples -> lists, numpy / torch scalars -> numbers, non-finite floats -> None)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
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


def _versions() -> dict:
    import platform

    import torch

    from nas import __version__

    versions = {"nas": __version__, "torch": torch.__version__, "python": platform.python_version()}
    with contextlib.suppress(ImportError):
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    return versions


def _cpu_name() -> str:
    import platform

    name = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return name or platform.processor() or platform.machine() or "unknown CPU"


# ---------------------------------------------------------------------------------------------------------------
# metrics.json and the model card
# ---------------------------------------------------------------------------------------------------------------


def read_metrics(out_dir: str | os.PathLike) -> dict:
    """The ``metrics.json`` record of an export folder (ExportError if missing or foreign)."""
    file = _export_dir(out_dir) / METRICS_FILE
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
    out = _export_dir(out_dir)
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
            merged[key] = _plain(value)
    record["metrics"] = merged
    record["updated"] = _now()
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
    """``MODEL.md`` from a ``metrics.json`` record."""
    out = Path(out_dir)
    shape = record.get("input_shape") or []
    image = len(shape) == 3
    layout = "(N, C, H, W) = (N, " + ", ".join(map(str, shape)) + ")" if image else \
        "(N, L, C) = (N, " + ", ".join(map(str, shape)) + ")"
    weights = record.get("weights") or {}
    cost = record.get("cost") or {}
    metrics = record.get("metrics") or {}
    source = record.get("source") or {}
    pre = record.get("preprocessing") or {}
    files = record.get("files") or {}
    dataset = (metrics.get("training") or {}).get("dataset") if isinstance(metrics.get("training"), dict) else None
    dataset = dataset or source.get("dataset") or pre.get("dataset") or "DATASET"

    lines = [f"# Model {record.get('hash', '?')}", "", f"`{record.get('summary', '')}`", ""]
    lines.append("| | |")
    lines.append("|---|---|")
    lines.append(f"| architecture hash | `{record.get('hash', '?')}` |")
    lines.append(f"| input | {layout}, float32 |")
    lines.append(f"| classes | {record.get('num_classes')} (output: logits (N, {record.get('num_classes')})) |")
    if "params" in cost:
        lines.append(f"| parameters | {cost['params']:,} ({_si(cost['params'])}) |")
    if "flops" in cost:
        lines.append(f"| FLOPs | {cost['flops']:,} ({_si(cost['flops'])}) per sample (2 per multiply-add; "
                     "matmul / conv / attention only) |")
    latency = cost.get("latency")
    if latency:
        lines.append(f"| CPU latency | median {latency['median_ms']:.3f} ms, IQR {latency['iqr_ms']:.3f} ms "
                     f"(batch {latency['batch_size']}, {latency['threads']} thread(s), {latency['device']}, "
                     f"PyTorch eager, {latency['repeats']} runs after {latency['warmup']} warm-up; "
                     f"{cost.get('latency_cpu', '')}) |")
    else:
        lines.append("| CPU latency | not measured |")
    if weights.get("trained"):
        lines.append(f"| weights | `{WEIGHTS_FILE}` |")
    else:
        lines.append(f"| weights | **none**: architecture only (ONNX / TorchScript hold an untrained "
                     f"initialisation, seed {weights.get('init_seed', INIT_SEED)}); train it with `nas train` |")
    lines.append("")

    lines += ["## Metrics", ""]
    if metrics:
        for key, value in metrics.items():
            lines.append(f"- {_METRIC_LABELS.get(key, key)}: {_fmt_value(value)}")
    else:
        lines.append("- none recorded")
    lines.append("")

    if source:
        lines += ["## Source", ""]
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
        lines.append("")

    lines += ["## Input preprocessing", ""]
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
    lines.append("")

    lines += ["## Files", ""]
    lines.append(f"- `{ARCH_FILE}`: the architecture (spec + input shape + classes)")
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
    lines.append("")

    x = "x = torch.randn(1, " + ", ".join(map(str, shape)) + ")  # normalised input"
    lines += ["## Load", "", "```python", "import nas.export", "",
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
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# export from a search run or a spec file (what `nas export` calls)
# ---------------------------------------------------------------------------------------------------------------


def _dataset_info(dataset: str, *, data_dir=None, train_subset=None, seed: int = 0,
                  val_fraction: float = 0.1) -> tuple[Any, dict]:
    from nas.data import load_dataset

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


def check_input_shape(shape: Any, kind: str, *, key: str = "input_shape",
                      file: str | None = None) -> tuple[int, ...]:
    """``shape`` as a tuple, or :class:`ExportError` naming ``key`` unless it is positive integers of the rank of
    ``kind`` input: (C, H, W) for image, (L, C) for sequence."""
    want, layout = (3, "C,H,W such as 3,32,32") if kind == "image" else (2, "L,C such as 784,1")
    checked = _shape(list(shape)) if isinstance(shape, (list, tuple)) else None
    if checked is None or len(checked) != want:
        shown = ",".join(map(str, shape)) if isinstance(shape, (list, tuple)) else repr(shape)
        raise ExportError(f"must be {want} positive integers {layout} for {kind} input, got {shown}", file=file,
                          key=key)
    from nas.grammar import MAX_REFERENCE_DIM

    most = MAX_REFERENCE_DIM.get(kind, MAX_REFERENCE_DIM["image"])
    if max(checked) > most:
        raise ExportError(f"each entry must be at most {most} for {kind} input (as a space's reference input), got "
                          f"{','.join(map(str, checked))}", file=file, key=key)
    return checked


def check_num_classes(num_classes: Any, *, key: str = "num_classes", file: str | None = None) -> int:
    """``num_classes`` if it is an integer >= 2 (a classifier needs two classes, as a dataset does), else
    :class:`ExportError` naming ``key``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ExportError(f"must be an integer >= 2, got {num_classes!r}", file=file, key=key)
    from nas.grammar import MAX_CLASSES

    if num_classes > MAX_CLASSES:
        raise ExportError(f"must be at most {MAX_CLASSES:,} (as a space's reference input), got {num_classes}",
                          file=file, key=key)
    return num_classes


def _check_target_dir(out: Path, spec_hash: str, force: bool) -> None:
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


def select_trial(study, objectives: list[str], *, max_latency_ms: float | None = None,
                 min_accuracy: float | None = None, knee: bool = False, where: str | None = None,
                 remeasured: dict | None = None):
    """Pick a COMPLETE trial by a rule: the most accurate within a latency bound, the fastest reaching an accuracy,
    or the knee of the Pareto front. A bound that no trial meets is an error saying what the closest trial offers.

    ``remeasured``: the run's ``nas measure`` record (``latency.json``). When latency is an objective and the record
    timed every member of the front, the knee is taken on the front with those latencies (the members timed
    together, in one process), and the reason says so."""
    import numpy as np

    from nas import pareto
    from nas.evaluate.evaluate import OBJECTIVES

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.values
                and "spec" in t.user_attrs]
    if not complete:
        raise ExportError("the run has no complete trial to export yet", file=where)

    def measured(t, name):
        if name in objectives:
            return float(t.values[objectives.index(name)])
        value = (t.user_attrs.get("objectives") or {}).get(name)
        if value is None:
            raise ExportError(f"trial #{t.number} has no measured {name}", file=where)
        return float(value)

    if knee:
        values = np.array([t.values for t in complete], dtype=float)
        directions = [OBJECTIVES[o] for o in objectives]
        mask = pareto.pareto_mask(values, directions)
        front = [t for t, on in zip(complete, mask) if on]
        timed = {m.get("number"): m for m in ((remeasured or {}).get("models") or {}).values()
                 if m.get("kind") == "trial"}
        if "latency_ms" in objectives and front and all(t.number in timed for t in front):
            j = objectives.index("latency_ms")
            values = np.array([t.values for t in front], dtype=float)
            values[:, j] = [timed[t.number]["median_ms"] for t in front]
            keep = pareto.pareto_mask(values, directions)
            members = [t for t, on in zip(front, keep) if on]
            index = pareto.knee_point(values[keep], directions)
            return members[index], (f"knee of the Pareto front with its latencies timed together (nas measure, "
                                    f"{remeasured.get('measured_at')}: {len(members)} of {len(front)} members stay "
                                    "on it)")
        index = pareto.knee_point(np.array([t.values for t in front], dtype=float), directions)
        return front[index], f"knee of the Pareto front ({len(front)} members)"
    if max_latency_ms is not None or min_accuracy is not None:
        fits = [t for t in complete
                if (max_latency_ms is None or measured(t, "latency_ms") <= max_latency_ms)
                and (min_accuracy is None or measured(t, "accuracy") >= min_accuracy)]
        if not fits:
            def offers(t) -> str:
                return f"trial #{t.number} with {measured(t, 'latency_ms'):.3g} ms at accuracy " \
                       f"{measured(t, 'accuracy'):.4f}"

            fast = [t for t in complete if max_latency_ms is not None and measured(t, "latency_ms") <= max_latency_ms]
            good = [t for t in complete if min_accuracy is not None and measured(t, "accuracy") >= min_accuracy]
            if max_latency_ms is not None and not fast:
                closest = min(complete, key=lambda t: measured(t, "latency_ms"))
                key, what = "--max-latency-ms", f"no trial runs within {max_latency_ms:g} ms"
            elif min_accuracy is not None and not good:
                closest = max(complete, key=lambda t: measured(t, "accuracy"))
                key, what = "--min-accuracy", f"no trial reaches accuracy {min_accuracy:g}"
            else:  # each bound is met by some trial, both by none
                best = max(fast, key=lambda t: measured(t, "accuracy"))
                quickest = min(good, key=lambda t: measured(t, "latency_ms"))
                raise ExportError(f"no trial both runs within {max_latency_ms:g} ms and reaches accuracy "
                                  f"{min_accuracy:g}: the most accurate of the {len(fast)} within "
                                  f"{max_latency_ms:g} ms is {offers(best)}; the fastest of the {len(good)} "
                                  f"reaching {min_accuracy:g} is {offers(quickest)}", file=where,
                                  key="--max-latency-ms/--min-accuracy")
            raise ExportError(f"{what}; the closest is {offers(closest)}", file=where, key=key)
        if max_latency_ms is not None:
            chosen = max(fits, key=lambda t: (measured(t, "accuracy"), -measured(t, "latency_ms")))
            return chosen, f"most accurate of {len(fits)} trials within {max_latency_ms:g} ms"
        chosen = min(fits, key=lambda t: (measured(t, "latency_ms"), -measured(t, "accuracy")))
        return chosen, f"fastest of {len(fits)} trials reaching accuracy {min_accuracy:g}"
    raise ValueError("select_trial needs a rule")


def export_trial(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, trial: int | None = None,
                 max_latency_ms: float | None = None, min_accuracy: float | None = None, knee: bool = False,
                 opset: int | None = None, force: bool = False, latency_repeats: int = 50) -> dict:
    """Export the architecture of ``trial`` of a search run (default: the best COMPLETE trial by the run's first
    objective). A search keeps no weights, so the folder holds the architecture and its proxy metrics; train it
    with :func:`nas.fulltrain.train_full`. Default folder: ``<run_dir>/exports/trial-<N>``."""
    from nas.control.config import load_config
    from nas.control.rundir import CONFIG_FILE, RunDir

    run = RunDir.open(run_dir)
    config, _ = load_config(run.path / CONFIG_FILE)
    study = run.load_study()
    trials = [t for t in study.get_trials(deepcopy=False) if "spec" in t.user_attrs]
    objectives = list(study.user_attrs.get("objectives") or config.objectives)
    rules = [trial is not None, max_latency_ms is not None or min_accuracy is not None, bool(knee)]
    if sum(rules) > 1:
        raise ExportError("choose one of --trial, --max-latency-ms / --min-accuracy, --knee", file=str(run.path))
    if trial is None and (knee or max_latency_ms is not None or min_accuracy is not None):
        from nas.remeasure import read_remeasured

        chosen, selected = select_trial(study, objectives, max_latency_ms=max_latency_ms,
                                        min_accuracy=min_accuracy, knee=knee, where=str(run.path),
                                        remeasured=read_remeasured(run.path) if knee else None)
    elif trial is None:
        complete = [t for t in trials if t.state.name == "COMPLETE" and t.values]
        if not complete:
            raise ExportError("the run has no complete trial to export yet", file=str(run.path), key="--trial")
        maximize = study.directions[0].name == "MAXIMIZE"
        chosen = (max if maximize else min)(complete, key=lambda t: (t.values[0], -t.number) if maximize
                                            else (t.values[0], t.number))
        selected = f"best {objectives[0]} of {len(complete)} complete trials"
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
    data, pre = _dataset_info(config.dataset, data_dir=config.data_dir, train_subset=config.train_subset,
                              seed=config.seed, val_fraction=config.val_fraction)
    shape = chosen.user_attrs.get("input_shape")
    if _shape(shape) is None:  # a trial stopped before evaluation (e.g. infeasible): the run's input shape
        from nas.evaluate.train import Budget

        shape = Budget(**config.budget.model_dump()).input_shape(data.input_shape)
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
    _check_target_dir(out, spec.hash(), force)
    return export_model(spec, out, input_shape=shape, num_classes=int(data.num_classes), metrics=metrics,
                        source=source, opset=opset, preprocessing=pre, latency_repeats=latency_repeats)


def export_from(target: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, trial: int | None = None,
                dataset: str | None = None, data_dir: str | None = None, input_shape: Sequence[int] | None = None,
                num_classes: int | None = None, opset: int | None = None, force: bool = False,
                latency_repeats: int = 50, max_latency_ms: float | None = None, min_accuracy: float | None = None,
                knee: bool = False) -> dict:
    """``nas export``: ``target`` is a search run folder (exports a trial, see :func:`export_trial`) or a spec file
    (.json / .yaml; the input shape and classes come from ``dataset`` or from ``input_shape`` + ``num_classes``).
    Default folder for a spec: ``exports/<hash>``. An existing folder holding another export is left alone unless
    ``force``."""
    from nas.control.rundir import RunDir
    from nas.evaluate.evaluate import check_input_kind

    opset = check_opset(opset)
    path = Path(target)
    if path.is_dir() and RunDir.is_run(path):
        for key, given in (("--dataset", dataset is not None), ("--input-shape", input_shape is not None),
                           ("--num-classes", num_classes is not None)):
            if given:
                raise ExportError("for a spec file only; a run's trials are exported for the run's dataset",
                                  file=str(path), key=key)
        return export_trial(path, out_dir, trial=trial, max_latency_ms=max_latency_ms, min_accuracy=min_accuracy,
                            knee=knee, opset=opset, force=force, latency_repeats=latency_repeats)
    for key, given in (("--trial", trial is not None), ("--knee", knee),
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
        data, pre = _dataset_info(dataset, data_dir=data_dir)
        check_input_kind(data, spec.input, dataset, what="the spec", file=str(path), key="--dataset",
                         error=ExportError)
        input_shape = input_shape or data.input_shape
        num_classes = num_classes or data.num_classes
    out = Path(out_dir) if out_dir is not None else Path("exports") / spec.hash()
    _check_target_dir(out, spec.hash(), force)
    source = {"spec_file": str(path)}
    if dataset:
        source["dataset"] = dataset
    return export_model(spec, out, input_shape=input_shape, num_classes=int(num_classes), source=source,
                        opset=opset, preprocessing=pre, latency_repeats=latency_repeats)
