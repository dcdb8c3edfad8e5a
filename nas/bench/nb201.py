"""NAS-Bench-201 architectures as specs of the shipped ``nb201`` space, and back.

An NB201 index is six digits ``Op0..Op5``, one per edge in the order ``e1_0, e2_0, e2_1, e3_0, e3_1, e3_2`` (the edge
from node i to node j is the DAG cell's option ``e{j}_{i}``), each digit an operation: 0 none, 1 skip, 2 conv_1x1,
3 conv_3x3, 4 avg_pool_3x3 (NB201's none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3). The best cell
on CIFAR-10 is ``333132``.

    >>> to_index(from_index("333132"))
    '333132'
"""
from __future__ import annotations

import functools

from nas.bench.nb201_table import EDGES, OPS, all_indices, index_of, is_index, ops_of
from nas.errors import SpecError
from nas.grammar import load_space
from nas.spec import ArchSpec

SPACE = "nb201"


@functools.lru_cache(maxsize=1)
def space():
    """The shipped ``nb201`` space (search_spaces/nb201.yaml)."""
    return load_space(SPACE)


def params_of(index: str) -> dict[str, object]:
    """The ``nb201`` space's parameter values (an Optuna trial's params) of the architecture ``index``."""
    check_index(index)
    values: dict[str, object] = {"cell.mixer": "dag", "cell.dag.nodes": 4}
    values.update({f"cell.dag.{edge}": op for edge, op in ops_of(index).items()})
    return values


def check_index(index: object) -> str:
    if not is_index(index):
        raise SpecError(f"{index!r} is not a NAS-Bench-201 index (six digits 0-4, one per edge e1_0, e2_0, e2_1, "
                        "e3_0, e3_1, e3_2)", key="nb201_index")
    return index


@functools.lru_cache(maxsize=16384)
def from_index(index: str) -> ArchSpec:
    """The spec of NB201 architecture ``index`` (the ``nb201`` space's network with that cell)."""
    return space().replay(params_of(index))


def to_index(spec: ArchSpec) -> str:
    """The NB201 index of ``spec``; a spec that is not one of NB201's 15,625 networks is a one-line SpecError."""
    first = spec.stages[0].mixer
    if first.type != "dag" or first.options.get("nodes") != 4:
        raise SpecError("not a NAS-Bench-201 architecture (its cell is not a 4-node DAG)", key="stages.0.mixer")
    try:
        index = index_of({edge: first.options[edge] for edge in EDGES})
    except SpecError:
        raise SpecError("not a NAS-Bench-201 architecture (an edge's operation is not one of "
                        f"{', '.join(OPS)})", key="stages.0.mixer") from None
    if from_index(index).hash() != spec.hash():
        raise SpecError(f"not a NAS-Bench-201 architecture (its cell is {index}, but the rest of the network is not "
                        "NB201's)", key="stages")
    return index


WIDTHS = (16, 32, 64)  # the three stages' channels; 5 cells each
CELLS_PER_STAGE = 5
# parameters of the network around the cells: stem conv 3->16 + BN, the two residual reductions (16->32, 32->64), the
# head's BN; the classifier (64 x classes + classes) is added per dataset
REDUCTIONS = ((16, 32), (32, 64))
FIXED_PARAMS = (3 * 16 * 9 + 2 * 16  # stem
                + sum(9 * a * b + 2 * b + 9 * b * b + 2 * b + a * b for a, b in REDUCTIONS)  # conv_a, conv_b, shortcut
                + 2 * 64)  # the head's BN


def edge_params(op: str, width: int) -> int:
    """Parameters of one edge's operation at ``width`` channels (conv + BN; none, skip and pooling have none)."""
    return {"conv_1x1": width * width + 2 * width, "conv_3x3": 9 * width * width + 2 * width}.get(op, 0)


def param_count(index: str, num_classes: int = 10) -> int:
    """The parameters of NB201 network ``index`` with ``num_classes`` outputs, counted without building it (equal to
    the built network's count for all 15,625 cells: tests/bench/test_nb201.py)."""
    check_index(index)
    cells = sum(edge_params(OPS[int(d)], w) for d in index for w in WIDTHS) * CELLS_PER_STAGE
    return FIXED_PARAMS + cells + 64 * num_classes + num_classes


__all__ = ["SPACE", "space", "params_of", "check_index", "from_index", "to_index", "all_indices", "param_count",
           "edge_params"]
