"""Export one architecture as a self-contained folder that rebuilds, loads and runs anywhere.

Rooms: ``folder`` writes a folder (the registered formats, :data:`EXPORT_FORMATS`), ``weights`` (safetensors),
``graph`` (ONNX and TorchScript, each checked), ``card`` (metrics.json and MODEL.md), ``choose`` (which trial of a run),
``run`` (what ``nas export`` calls); arch.json itself is :mod:`nas.archjson`.


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
from nas.archjson import ARCH_FILE, arch_record, read_arch, read_spec
from nas.export.card import CARD_FILE, METRICS_FILE, preprocessing_of, read_metrics, render_card, update_card
from nas.export.choose import select_trial
from nas.export.folder import EXPORT_FORMATS, FORMATS, export_model
from nas.export.graph import ONNX_FILE, TORCHSCRIPT_FILE, check_opset, export_onnx, export_torchscript, onnx_opsets
from nas.export.run import export_from, export_trial
from nas.export.weights import WEIGHTS_FILE, check_state, load, load_weights, save_weights

__all__ = ["export_model", "load", "read_arch", "read_spec", "arch_record", "onnx_opsets", "check_opset",
           "update_card", "read_metrics", "render_card", "load_weights", "save_weights", "check_state", "export_trial",
           "export_from", "select_trial", "preprocessing_of", "export_onnx", "export_torchscript", "EXPORT_FORMATS",
           "FORMATS", "ARCH_FILE", "WEIGHTS_FILE", "ONNX_FILE", "TORCHSCRIPT_FILE", "CARD_FILE", "METRICS_FILE"]
