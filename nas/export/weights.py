"""model.safetensors: weights written and read with safetensors only (never unpickled), checked against the
architecture they are loaded into."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Mapping

from nas.archjson import export_dir, read_arch
from nas.builder import build
from nas.errors import ExportError, one_line
from nas.export.graph import INIT_SEED

WEIGHTS_FORMAT = "patternnas-weights"
WEIGHTS_FILE = "model.safetensors"


def plain_state(state_dict: Mapping[str, Any]) -> dict:
    """Detached, contiguous CPU copies (safetensors refuses shared or non-contiguous storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}


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
        raise ExportError(f"not a readable safetensors file ({one_line(e, 200)})", file=where) from None
    recorded = metadata.get("spec_hash")
    if spec_hash is not None and recorded is not None and recorded != spec_hash:
        raise ExportError(f"these weights are for architecture {recorded}, not {spec_hash}", file=where,
                          key="spec_hash")
    check_state(model, state, file=where)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # dtype problems and the like: keep it one line
        raise ExportError(f"cannot load the weights: {one_line(e, 200)}", file=where) from None
    return metadata


def save_weights(state_dict: Mapping[str, Any], path: str | os.PathLike, *, spec_hash: str,
                 extra: Mapping[str, str] | None = None) -> None:
    """Write ``state_dict`` as safetensors (atomically) with the spec hash in its metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    metadata = {"format": WEIGHTS_FORMAT, "spec_hash": spec_hash, **{k: str(v) for k, v in (extra or {}).items()}}
    save_file(plain_state(state_dict), str(tmp), metadata=metadata)
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o644)  # safetensors creates the file owner-only; weights are not secrets
    os.replace(tmp, path)


def load(path: str | os.PathLike, *, weights: bool = True):
    """The network of an export folder (or its ``arch.json``) in eval mode, with the weights of
    ``model.safetensors`` when that file exists (and ``weights`` is true); untrained otherwise, initialised as the
    export's graph files were (seed ``INIT_SEED``), so the model and a weightless ``model.onnx`` compute the same."""
    import torch

    spec, input_shape, num_classes, _ = read_arch(path)
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(INIT_SEED)
        model = build(spec, input_shape, num_classes)
    weights_file = export_dir(path) / WEIGHTS_FILE
    if weights and weights_file.is_file():
        load_weights(model, weights_file, spec_hash=spec.hash())
    model.eval()
    return model
