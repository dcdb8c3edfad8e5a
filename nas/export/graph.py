"""model.onnx and model.ts: the runnable graphs of an export, each checked against PyTorch right after it is
written (ONNX with onnxruntime). Why these exporters: see :mod:`nas.export`."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from nas.errors import ExportError, one_line
from nas.evaluate.onnx_graph import OnnxExportError, onnx_bytes, quiet_exporters
from nas.io import remove_file

ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.ts"
DEFAULT_OPSET = 17


# Allowed max abs difference of the logits, exported file vs PyTorch, on seeded random inputs: ONNX_TOLERANCE plus
# ONNX_RTOL times the largest |logit| (trained weights give logits of tens, and float32 kernels that sum in another
# order differ in proportion: a trained net missed a fixed 1e-4 by 1.34e-4). rtol as torch.onnx's own check.
ONNX_TOLERANCE = 1e-4
ONNX_RTOL = 1e-3
CHECK_SEED = 0
INIT_SEED = 0  # initialisation of an export without weights (graph only)


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


def export_onnx(model, input_shape: Sequence[int], path: str | os.PathLike, *, opset: int | None = None,
                exporters: Iterable[str] = ("torchscript", "dynamo")) -> dict:
    """Export ``model`` to ONNX at ``path`` and check it with onnxruntime against PyTorch.

    Returns ``{"file", "exporter", "opset", "max_abs_diff", "tolerance"}``, ``opset`` as read back from the written
    file. An opset outside :func:`onnx_opsets` is refused before anything is written; an exporter that writes
    another opset than asked for counts as failed. On an export failure or a difference above the tolerance
    (:func:`tolerance_for` the largest |logit|) raises :class:`ExportError` naming the file, and leaves no file at
    ``path``.
    """

    path = Path(path)
    where = str(path)
    opset = check_opset(opset)
    tmp = path.with_name(path.stem + ".tmp.onnx")
    inputs = _check_inputs(input_shape)
    remove_file(tmp)
    try:
        graph, exporter = onnx_bytes(model, inputs[0], opset=opset, exporters=exporters)
    except OnnxExportError as e:
        remove_file(path)
        raise ExportError("ONNX export failed: " + "; ".join(e.errors), file=where) from None
    tmp.write_bytes(graph)
    try:
        diff, scale = _onnx_diff(model, tmp, inputs)
    except ExportError as e:
        remove_file(tmp)
        remove_file(path)
        raise ExportError(e.message, file=where) from None
    tolerance = tolerance_for(scale)
    if not diff <= tolerance:
        remove_file(tmp)
        remove_file(path)
        raise ExportError(f"ONNX check failed: onnxruntime output differs from PyTorch by {diff:.3g} (max abs, "
                          f"tolerance {tolerance:.3g} for logits up to {scale:.3g}); the file was not kept",
                          file=where)
    os.replace(tmp, path)
    return {"file": path.name, "exporter": exporter, "opset": opset, "max_abs_diff": diff,
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
        raise ExportError(f"ONNX check failed: onnxruntime cannot run the file ({one_line(e, 200)})") from None
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
        with quiet_exporters(), torch.no_grad():
            traced = torch.jit.trace(model, (inputs[0],), check_trace=False)
            traced.save(str(tmp))
            loaded = torch.jit.load(str(tmp), map_location="cpu")
            diff = scale = 0.0
            for x in inputs:
                ref = model(x).numpy()
                diff = max(diff, _max_diff(ref, loaded(x).numpy()))
                scale = max(scale, float(abs(ref).max()) if ref.size else 0.0)
    except Exception as e:  # noqa: BLE001
        remove_file(tmp)
        remove_file(path)
        raise ExportError(f"TorchScript export failed: {one_line(e, 200)}", file=where) from None
    tolerance = tolerance_for(scale)
    if not diff <= tolerance:
        remove_file(tmp)
        remove_file(path)
        raise ExportError(f"TorchScript check failed: the traced module differs from PyTorch by {diff:.3g} "
                          f"(max abs, tolerance {tolerance:.3g} for logits up to {scale:.3g}); the file was not "
                          "kept", file=where)
    os.replace(tmp, path)
    return {"file": path.name, "exporter": "torch.jit.trace", "max_abs_diff": diff, "tolerance": tolerance}
