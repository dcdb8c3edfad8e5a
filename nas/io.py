"""File helpers: reading user files, YAML loading that remembers the line of every key (errors name file, line and
key), folders a user names, and atomic writes.

Every file a user hands the engine (run configs, spaces, specs, a run's own config.yaml / space.yaml, warm-start
files, exported arch.json) is read with :func:`read_text`, so a missing file, a folder, an unreadable file or bytes
that are not UTF-8 all become one-line :class:`~nas.errors.NasError` naming the file.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
from pathlib import Path
from typing import Any

import yaml

from nas.errors import NasError, RunError

Path_ = tuple  # a key path: ("stages", 1, "width")


def read_text(path: str | os.PathLike, *, error: type[NasError] = NasError, what: str = "",
              key: str | None = None) -> str:
    """The UTF-8 text of the file at ``path``, with universal newlines (as ``Path.read_text`` gives).

    Any failure raises ``error`` as one line naming the file (and ``key``), worded ``cannot read <what>: <why>``:
    the OS reason (no such file, is a directory, permission denied) or, for bytes that are not UTF-8, the line and
    byte where decoding stopped.
    """
    file = str(path)
    prefix = f"cannot read {what}: " if what else "cannot read: "
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise error(prefix + (e.strerror or type(e).__name__), file=file, key=key) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise error(prefix + f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); save it as UTF-8",
                    file=file, line=line, key=key) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as Path.read_text gives


def load_yaml(text: str, *, file: str | None = None, error: type[NasError] = NasError) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML safely; return the data and a map from key path to 1-based line.

    Syntax errors and duplicate keys raise ``error`` naming the file and line.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[Path_, int] = {}
        _record_lines(node, (), lines, file, error)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = (e.problem or e.context or "invalid YAML").strip()
        raise error(f"YAML syntax error: {problem}", file=file, line=line) from None
    except yaml.YAMLError as e:
        raise error(f"YAML error: {e}", file=file) from None
    finally:
        loader.dispose()
    return data, lines


def _record_lines(node: yaml.Node, path: Path_, lines: dict, file, error) -> None:
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise error("duplicate key", file=file, line=key_node.start_mark.line + 1,
                            key=".".join(map(str, path + (key,))))
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _record_lines(value_node, path + (key,), lines, file, error)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _record_lines(item, path + (i,), lines, file, error)


def make_dir(path: Path, key: str) -> Path:
    """``mkdir -p`` for a folder the user named; a file in the way (or no permission) is a one-line RunError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        what = "a file is in the way" if isinstance(e, (FileExistsError, NotADirectoryError)) else e.strerror
        raise RunError(f"cannot make the folder: {what}", file=str(path), key=key) from None
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: a reader (or a crash) never sees half a
    file. For the JSON files of a run folder (run.json, the baselines cache)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def remove_file(path: Path) -> None:
    """Delete ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def now() -> str:
    """The local time to the second, ISO 8601 (timestamps in run.json, metrics.json and logs)."""
    return _dt.datetime.now().isoformat(timespec="seconds")
