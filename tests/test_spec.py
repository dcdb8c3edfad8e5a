"""nas.spec: a spec's structural values have the same upper bounds as a space's (nas.catalog.MAX_VALUE)."""
from __future__ import annotations

import copy
import re
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


def _stage(**kw) -> dict:
    return {"depth": 3, "width": 16, "mixer": {"type": "mbconv", "options": {"kernel_size": 3}}, **kw}


def _arch(**kw) -> dict:
    return {"input": "image", "stem": {"type": "conv", "width": 8, "kernel_size": 3}, "stages": [_stage(**kw)]}


def test_per_block_values_are_canonical():
    listed = ArchSpec.from_data(_arch(per_block={"expansion_ratio": [6, 3, 3]}))
    assert listed.stages[0].per_block == {"expansion_ratio": (6.0, 3.0, 3.0)}
    assert listed.stages[0].mixer.options["expansion_ratio"] == 6.0
    # one value repeated is the option itself: the same architecture, the same hash
    repeated = ArchSpec.from_data(_arch(per_block={"expansion_ratio": [3, 3, 3]}))
    plain = ArchSpec.from_data(_arch(mixer={"type": "mbconv", "options": {"kernel_size": 3, "expansion_ratio": 3}}))
    assert repeated == plain and repeated.hash() == plain.hash() and "per_block" not in plain.canonical()["stages"][0]
    assert listed.hash() != plain.hash()
    assert ArchSpec.from_json(listed.to_json()).hash() == listed.hash()


@pytest.mark.parametrize("kw, words", [
    ({"per_block": {"expansion_ratio": [6, 3]}}, "per_block.expansion_ratio: expected a list of 3 values"),
    ({"per_block": {"heads": [1, 2, 2]}}, "per_block.heads: block 'mbconv' takes no option 'heads'"),
    ({"per_block": {"expansion_ratio": [6, -1, 3]}}, "per_block.expansion_ratio.1: option 'expansion_ratio'"),
    ({"per_block": {"expansion_ratio": [6, 3, 3]}, "skip": "dense", "growth_rate": 8}, "a dense stage"),
    ({"per_block": [6, 3, 3]}, "per_block maps a mixer option to a list"),
])
def test_bad_per_block_values_name_the_key(kw, words):
    with pytest.raises(SpecError, match=re.escape(words)):
        ArchSpec.from_data(_arch(**kw), file="arch.json")
