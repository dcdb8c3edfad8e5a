"""arch.json: the file that names one architecture built for one input, and the reader of every spec file.

    {"format": "patternnas-arch", "format_version": 1, "hash", "summary", "spec", "input_shape", "num_classes"}

:func:`read_spec` is the one reader of the commands and functions that take a spec: an export folder, an exported
``arch.json`` or a bare spec file (.json / .yaml). Plain data: no torch.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from nas.catalog import MAX_CLASSES, MAX_REFERENCE_DIM
from nas.errors import ExportError, SpecError, unknown_key
from nas.io import load_yaml, read_text
from nas.spec import ArchSpec

FORMAT = "patternnas-arch"
FORMAT_VERSION = 1
ARCH_FILE = "arch.json"


def export_dir(path: str | os.PathLike) -> Path:
    """The export folder of ``path`` (the folder itself, or the folder of its arch.json)."""
    path = Path(path)
    if path.is_dir():
        return path
    return path.parent if path.is_file() or path.suffix == ".json" else path


def arch_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path / ARCH_FILE if path.is_dir() else path


def positive_shape(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, (list, tuple)) or not value:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        return None
    return tuple(value)


ARCH_KEYS = ("format", "format_version", "hash", "summary", "spec", "input_shape", "num_classes")


def key_line(text: str, key: str) -> int | None:
    """The line of a JSON object's ``"key":`` (the first one in the text), for an error that names it."""
    needle = json.dumps(key) + ":"
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line.replace('" :', '":'):
            return number
    return None


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
    file = arch_path(path)
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
    for key in record:
        if key not in ARCH_KEYS:
            raise ExportError(unknown_key(key, ARCH_KEYS), file=where, line=key_line(text, key))
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
    input_shape = positive_shape(record.get("input_shape"))
    want = 3 if spec.input == "image" else 2
    if input_shape is None or len(input_shape) != want:
        layout = "[C, H, W]" if spec.input == "image" else "[L, C]"
        raise ExportError(f"must be {layout} (positive integers) for a{'n' if spec.input == 'image' else ''} "
                          f"{spec.input} spec, got {record.get('input_shape')!r}", file=where, key="input_shape")
    check_input_shape(input_shape, spec.input, key="input_shape", file=where)  # within a space's bounds
    classes = record.get("num_classes")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ExportError(f"must be an integer >= 1, got {classes!r}", file=where, key="num_classes")

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


NETWORK_KEYS = ("name", "description", "published", "input_shape", "num_classes", "spec")
PUBLISHED_KEYS = ("params", "macs", "source")


def read_network(path: str | os.PathLike) -> tuple[ArchSpec, tuple[tuple[int, ...], int], dict[str, Any]]:
    """A network file (a zoo member, ``search_spaces/zoo/<name>.yaml``): a spec with the input it is defined for.

        name: resnet18
        description: ...
        published: {params: 11689512, macs: 1.814e9, source: torchvision.models.resnet18}
        input_shape: [3, 224, 224]
        num_classes: 1000
        spec: {input: image, stem: ..., stages: [...], head: ...}

    Returns ``(spec, (input_shape, num_classes), data)``; any other key, or a bad value, is a one-line error naming
    the file, line and key.
    """
    where = str(path)
    data, lines = load_yaml(read_text(Path(path), error=SpecError, what="network file"), file=where, error=SpecError)
    if not isinstance(data, dict) or "spec" not in data:
        raise SpecError("a network file is a mapping with a spec", file=where, key="spec")
    for key in data:
        if key not in NETWORK_KEYS:
            raise SpecError(unknown_key(key, NETWORK_KEYS), file=where,
                            line=lines.get((key,)), key=str(key))
    published = data.get("published", {})
    if not isinstance(published, dict) or any(k not in PUBLISHED_KEYS for k in published):
        raise SpecError(f"published takes {', '.join(PUBLISHED_KEYS)}", file=where, line=lines.get(("published",)),
                        key="published")
    spec = ArchSpec.from_data(data["spec"], file=where,
                              lines={k[1:]: v for k, v in lines.items() if k[:1] == ("spec",)})
    for key in ("input_shape", "num_classes"):
        if key not in data:
            raise SpecError("missing key (the input the network is defined for)", file=where, key=key)
    try:
        input_shape = check_input_shape(data["input_shape"], spec.input, file=where)
        classes = check_num_classes(data["num_classes"], file=where)
    except ExportError as e:
        raise SpecError(e.message, file=where, line=lines.get((e.key,)), key=e.key) from None
    return spec, (input_shape, classes), data


def is_network_file(path: Path) -> bool:
    """Whether a .yaml file is a network file (a top-level ``spec`` key) rather than a bare spec."""
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        return any(line.startswith("spec:") for line in path.read_text().splitlines())
    except (OSError, UnicodeDecodeError):
        return False  # ArchSpec.load says why, naming the file


def read_spec(path: str | os.PathLike) -> tuple[ArchSpec, tuple[tuple[int, ...], int] | None]:
    """The spec of an export folder, an exported ``arch.json``, a network file (:func:`read_network`) or a bare spec
    file (.json / .yaml).

    Returns ``(spec, recorded)``: ``recorded`` is ``(input_shape, num_classes)`` for an export (read and checked by
    :func:`read_arch`) or a network file, None for a bare spec. The one reader of the commands that take a spec file
    (``nas space validate``, ``nas eval``, ``nas export``), of ``warm_start`` and of :func:`nas.builder.build`.
    """
    path = Path(path)
    if path.is_dir() or (path.suffix == ".json" and _declares_format(path)):
        spec, input_shape, num_classes, _ = read_arch(path)
        return spec, (input_shape, num_classes)
    if is_network_file(path):
        spec, recorded, _ = read_network(path)
        return spec, recorded
    return ArchSpec.load(path), None


def check_input_shape(shape: Any, kind: str, *, key: str = "input_shape",
                      file: str | None = None) -> tuple[int, ...]:
    """``shape`` as a tuple, or :class:`ExportError` naming ``key`` unless it is positive integers of the rank of
    ``kind`` input: (C, H, W) for image, (L, C) for sequence."""
    want, layout = (3, "C,H,W such as 3,32,32") if kind == "image" else (2, "L,C such as 784,1")
    checked = positive_shape(list(shape)) if isinstance(shape, (list, tuple)) else None
    if checked is None or len(checked) != want:
        shown = ",".join(map(str, shape)) if isinstance(shape, (list, tuple)) else repr(shape)
        raise ExportError(f"must be {want} positive integers {layout} for {kind} input, got {shown}", file=file,
                          key=key)

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

    if num_classes > MAX_CLASSES:
        raise ExportError(f"must be at most {MAX_CLASSES:,} (as a space's reference input), got {num_classes}",
                          file=file, key=key)
    return num_classes
