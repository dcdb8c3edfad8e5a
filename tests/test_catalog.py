"""nas.catalog's DAG helpers: the live paths of a DAG cell."""
from __future__ import annotations

import pytest

from nas.catalog import dag_edges, dag_live_paths


def _cell(nodes: int, **edges: str) -> dict:
    return {"nodes": nodes, **{e: edges.get(e, "none") for e in dag_edges(nodes)}}


def test_the_live_paths_of_nb201s_best_cell():
    """NAS-Bench-201's 333132 (0->1 conv3, 0->2 conv3, 1->2 conv3, 0->3 skip, 1->3 conv3, 2->3 conv1): four paths."""
    cell = _cell(4, e1_0="conv_3x3", e2_0="conv_3x3", e2_1="conv_3x3", e3_0="skip", e3_1="conv_3x3", e3_2="conv_1x1")
    paths = dag_live_paths(cell)
    assert sorted(tuple(cell[e] for e in p) for p in paths) == sorted([
        ("conv_3x3", "conv_3x3", "conv_1x1"), ("conv_3x3", "conv_3x3"), ("conv_3x3", "conv_1x1"), ("skip",)])
    assert all(p[0].endswith("_0") and p[-1].startswith("e3_") for p in paths)


@pytest.mark.parametrize("edges", [{}, {"e1_0": "skip", "e2_1": "skip"}, {"e3_1": "conv_3x3", "e3_2": "skip"}])
def test_a_cell_whose_output_is_cut_off_has_no_live_path(edges):
    assert dag_live_paths(_cell(4, **edges)) == []


def test_a_five_node_chain_is_one_path_and_dead_branches_are_not_paths():
    cell = _cell(5, e1_0="sep_conv_3x3", e2_1="skip", e3_2="dil_conv_5x5", e4_3="max_pool_3x3", e2_0="conv_1x1",
                 e4_1="none")
    assert [tuple(cell[e] for e in p) for p in dag_live_paths(cell)] == [
        ("sep_conv_3x3", "skip", "dil_conv_5x5", "max_pool_3x3"), ("conv_1x1", "dil_conv_5x5", "max_pool_3x3")]

