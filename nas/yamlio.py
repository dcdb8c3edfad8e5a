"""YAML loading that remembers the line of every key, so errors can name file, line and key."""
from __future__ import annotations

from typing import Any

import yaml

from nas.errors import NasError

Path_ = tuple  # a key path: ("stages", 1, "width")


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
