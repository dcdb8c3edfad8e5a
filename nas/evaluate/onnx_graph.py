"""ONNX graphs of a network for the evaluator and the export: the TorchScript-based exporter with this package's
fixes, quiet; a graph written in memory and an onnxruntime session over it, with fixed threads (how
``latency_runtime: onnxruntime`` times a candidate: onnxruntime is what many deploy, and it runs the graph without
PyTorch's eager overheads). The export's own writing and checking of model.onnx is :mod:`nas.export.graph`."""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from typing import Any, Iterable

from nas.errors import one_line

OPSET = 17  # the opset of the in-memory graph (nas export's default)


def movedim_symbolic():
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
def torchscript_onnx_fixes(opset: int):
    import torch

    torch.onnx.register_custom_op_symbolic("aten::movedim", movedim_symbolic(), opset)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            torch.onnx.unregister_custom_op_symbolic("aten::movedim", opset)


@contextlib.contextmanager
def quiet_exporters():
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


class OnnxExportError(RuntimeError):
    """No exporter wrote the graph; ``errors`` holds one line per exporter tried."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def written_opset(graph: bytes) -> int | None:
    """The default-domain (ai.onnx) opset an ONNX graph declares."""
    import onnx

    model = onnx.load_from_string(graph)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def input_names(count: int) -> list[str]:
    """The graph's input names: ``input`` for a network, ``input0``, ``input1``, ... for a part with several."""
    return ["input"] if count == 1 else [f"input{i}" for i in range(count)]


def _export(name: str, model, example, opset: int) -> bytes:
    import torch

    args = example if isinstance(example, tuple) else (example,)
    names = input_names(len(args))
    if name == "torchscript":
        buffer = io.BytesIO()
        with torchscript_onnx_fixes(opset):
            torch.onnx.export(model, args, buffer, dynamo=False, opset_version=opset, input_names=names,
                              output_names=["logits"],
                              dynamic_axes={**{n: {0: "batch"} for n in names}, "logits": {0: "batch"}})
        return buffer.getvalue()
    if name == "dynamo":
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.onnx")
            torch.onnx.export(model, args, path, dynamo=True, opset_version=opset, input_names=names,
                              output_names=["logits"], dynamic_shapes=tuple({0: "batch"} for _ in args),
                              external_data=False, verbose=False)
            with open(path, "rb") as f:
                return f.read()
    raise ValueError(f"unknown exporter {name!r}")


def onnx_bytes(model, example, *, opset: int = OPSET,
               exporters: Iterable[str] = ("torchscript", "dynamo")) -> tuple[bytes, str]:
    """``model`` (put in eval mode) as an ONNX graph in memory, for inputs shaped as ``example`` (a tensor, or a
    tuple of them for a model of several inputs, named by :func:`input_names`) with a free batch axis, and the
    exporter that wrote it: each of ``exporters`` in turn (the TorchScript-based one with this package's fixes, then
    the dynamo one), quiet. A graph that declares another opset than ``opset`` counts as failed (the dynamo exporter
    keeps opset 18 when its conversion fails). :class:`OnnxExportError` when none succeeds."""
    import torch

    model.eval()
    errors = []
    for name in exporters:
        try:
            with quiet_exporters(), torch.no_grad():
                graph = _export(name, model, example, opset)
            written = written_opset(graph)
            if written != opset:
                raise RuntimeError(f"wrote ONNX opset {written}, not the {opset} asked for")
            return graph, name
        except Exception as e:  # noqa: BLE001 - any exporter failure is reported as one line
            errors.append(f"{name} exporter: {one_line(e, 200)}")
    raise OnnxExportError(errors)


def ort_session(graph: bytes, threads: int | None = 1) -> Any:
    """An onnxruntime CPU session over ``graph`` with ``threads`` intra-op threads (one inter-op thread, sequential
    execution, full graph optimisation): the same settings in every process, so that timings compare."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
