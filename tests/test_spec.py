"""nas.spec: a spec's structural values have the same upper bounds as a space's (nas.catalog.MAX_VALUE)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from nas.catalog import MAX_VALUE
from nas.errors import SpecError
from nas.spec import ArchSpec

BASELINES = sorted((Path(__file__).resolve().parents[1] / "search_spaces" / "baselines").glob("*.yaml"))


def _places(data: dict) -> dict[str, list[tuple]]:
    """Where each bounded key occurs in a spec's data: key -> paths."""
    found: dict[str, list[tuple]] = {}

    def visit(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in MAX_VALUE and isinstance(v, (int, float)) and not isinstance(v, bool):
                    found.setdefault(k, []).append(path + (k,))
                visit(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                visit(v, path + (i,))

    visit(data, ())
    return found


CASES = sorted({(key, file.name, path) for file in BASELINES
                for key, paths in _places(yaml.safe_load(file.read_text())).items() for path in paths[:1]})


def test_the_baselines_carry_most_bounded_keys():
    assert {"depth", "width", "kernel_size", "heads", "expansion_ratio", "mlp_ratio", "state_size"} <= \
        {key for key, _, _ in CASES}


@pytest.mark.parametrize("key,name,path", CASES, ids=lambda c: str(c) if not isinstance(c, tuple) else ".".join(
    map(str, c)))
def test_a_value_above_its_bound_is_refused_naming_the_key(key, name, path):
    data = yaml.safe_load((BASELINES[0].parent / name).read_text())
    ArchSpec.from_data(data)  # valid as shipped
    bad = copy.deepcopy(data)
    node = bad
    for k in path[:-1]:
        node = node[k]
    limit = MAX_VALUE[key]
    node[path[-1]] = limit * 2 + 1 if isinstance(limit, int) else limit * 2
    with pytest.raises(SpecError) as info:
        ArchSpec.from_data(bad, file=name)
    assert ".".join(map(str, path)) in info.value.one_line()
