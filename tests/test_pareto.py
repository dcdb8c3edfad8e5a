"""Tests of nas.pareto against brute force: O(n^2) peeling for ranks, exact grid union for hypervolume."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.pareto import (
    crowding_distance,
    dominates,
    hypervolume,
    hypervolume_history,
    hypervolume_improvements,
    knee_point,
    non_dominated_sort,
    pareto_mask,
    to_minimization,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------------------ brute force
def brute_ranks(values, directions):
    v = to_minimization(values, directions)
    n = len(v)
    ranks = np.full(n, -1)
    remaining = [i for i in range(n) if not np.isnan(v[i]).any()]
    rank = 0
    while remaining:
        front = [i for i in remaining if not any(dominates(v[j], v[i]) for j in remaining if j != i)]
        for i in front:
            ranks[i] = rank
        remaining = [i for i in remaining if i not in front]
        rank += 1
    return ranks


def brute_hv(values, directions, reference):
    """Exact union volume: cells of the grid on the unique coordinates, a cell counts if a point dominates it."""
    v = to_minimization(values, directions)
    ref = to_minimization(np.asarray(reference, float)[None, :], directions)[0]
    v = v[~np.isnan(v).any(axis=1)]
    v = v[np.all(v < ref, axis=1)]
    if len(v) == 0:
        return 0.0
    m = v.shape[1]
    axes = [np.unique(np.concatenate([v[:, j], [ref[j]]])) for j in range(m)]
    total = 0.0
    for cell in itertools.product(*[range(len(a) - 1) for a in axes]):
        lower = np.array([axes[j][c] for j, c in enumerate(cell)])
        if np.any(np.all(v <= lower, axis=1)):
            total += float(np.prod([axes[j][c + 1] - axes[j][c] for j, c in enumerate(cell)]))
    return total


@st.composite
def problems(draw, min_m=2, max_m=4, max_n=14, nan=True):
    m = draw(st.integers(min_m, max_m))
    n = draw(st.integers(0, max_n))
    directions = draw(st.lists(st.sampled_from(["minimize", "maximize"]), min_size=m, max_size=m))
    # small integer grid: many ties and exact duplicates
    cells = st.one_of(st.integers(-3, 3).map(float), st.just(np.nan)) if nan else st.integers(-3, 3).map(float)
    rows = draw(st.lists(st.lists(cells, min_size=m, max_size=m), min_size=n, max_size=n))
    values = np.array(rows, dtype=float).reshape(n, m)
    return values, directions


def reference_for(directions, margin=4.0):
    return np.array([margin if d == "minimize" else -margin for d in directions])


# ------------------------------------------------------------------------------------------------ basics
def test_to_minimization_negates_maximized_columns():
    v = np.array([[1.0, 2.0, 3.0]])
    out = to_minimization(v, ["minimize", "maximize", "minimize"])
    assert out.tolist() == [[1.0, -2.0, 3.0]]
    assert v.tolist() == [[1.0, 2.0, 3.0]]  # input untouched
    assert to_minimization(np.empty(0), ["minimize", "maximize"]).shape == (0, 2)


@pytest.mark.parametrize(
    "values,directions",
    [(np.zeros((2, 2)), ["minimize"]), (np.zeros((2, 2)), ["minimize", "up"]), (np.zeros((2, 2)), "minimize")],
)
def test_bad_directions(values, directions):
    with pytest.raises(ValueError):
        to_minimization(values, directions)


def test_dominates():
    assert dominates([1, 2], [1, 3])
    assert not dominates([1, 2], [1, 2])
    assert not dominates([1, 3], [2, 2])
    assert not dominates([np.nan, 0], [1, 1])
    assert not dominates([0, 0], [np.nan, 1])


# ------------------------------------------------------------------------------------------------ sorting
@FAST
@given(problems())
def test_non_dominated_sort_matches_brute_force(problem):
    values, directions = problem
    ranks = non_dominated_sort(values, directions)
    assert ranks.dtype.kind == "i"
    np.testing.assert_array_equal(ranks, brute_ranks(values, directions))
    np.testing.assert_array_equal(pareto_mask(values, directions), ranks == 0)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_non_dominated_sort_random_continuous(m):
    rng = np.random.default_rng(m)
    values = rng.random((60, m))
    values[rng.random(60) < 0.1, rng.integers(0, m)] = np.nan
    values[5] = values[7]  # a duplicate
    directions = ["maximize" if j % 2 else "minimize" for j in range(m)]
    np.testing.assert_array_equal(non_dominated_sort(values, directions), brute_ranks(values, directions))


def test_sort_ties_duplicates_nan():
    values = np.array([[1, 1], [1, 1], [1, 2], [2, 1], [np.nan, 0], [0, np.nan], [2, 2]], float)
    ranks = non_dominated_sort(values, ["minimize", "minimize"])
    assert ranks.tolist() == [0, 0, 1, 1, -1, -1, 2]
    # the NaN rows never dominate: -inf-like entries next to NaN must not push others back
    values = np.array([[np.nan, -100.0], [0.0, 0.0]])
    assert non_dominated_sort(values, ["minimize", "minimize"]).tolist() == [-1, 0]


def test_sort_single_and_empty():
    assert non_dominated_sort(np.array([[3.0, 4.0]]), ["minimize", "maximize"]).tolist() == [0]
    assert non_dominated_sort(np.empty((0, 3)), ["minimize"] * 3).tolist() == []
    assert non_dominated_sort(np.full((2, 2), np.nan), ["minimize"] * 2).tolist() == [-1, -1]
    assert non_dominated_sort(np.array([[3.0], [1.0], [3.0]]), ["minimize"]).tolist() == [1, 0, 1]


def test_sort_large_2d_is_fast_and_consistent():
    rng = np.random.default_rng(0)
    values = rng.random((3000, 2))
    ranks = non_dominated_sort(values, ["minimize", "maximize"])
    v = to_minimization(values, ["minimize", "maximize"])
    # every point of rank r > 0 is dominated by some point of rank r - 1, none of the same rank dominates it
    sample = rng.choice(3000, 40, replace=False)
    for i in sample:
        dom = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1)
        assert not np.any(dom & (ranks == ranks[i]))
        if ranks[i] > 0:
            assert np.any(dom & (ranks == ranks[i] - 1))


# ------------------------------------------------------------------------------------------------ crowding
def test_crowding_hand_made_front():
    front = np.array([[0.0, 10.0], [1.0, 6.0], [3.0, 3.0], [4.0, 0.0]])
    d = crowding_distance(front, ["minimize", "minimize"])
    assert np.isinf(d[0]) and np.isinf(d[3])
    # point 1: (3 - 0)/4 + (10 - 3)/10 ; point 2: (4 - 1)/4 + (6 - 0)/10
    assert d[1] == pytest.approx(0.75 + 0.7)
    assert d[2] == pytest.approx(0.75 + 0.6)
    # direction does not matter for distances
    flipped = front * np.array([1.0, -1.0])
    np.testing.assert_allclose(crowding_distance(flipped, ["minimize", "maximize"]), d)


def test_crowding_small_fronts_zero_range_and_nan():
    assert np.isinf(crowding_distance(np.array([[0.0, 1.0], [1.0, 0.0]]), ["minimize"] * 2)).all()
    assert np.isinf(crowding_distance(np.array([[0.0, 1.0]]), ["minimize"] * 2)).all()
    assert crowding_distance(np.empty((0, 2)), ["minimize"] * 2).shape == (0,)
    same = np.ones((4, 2))
    np.testing.assert_array_equal(crowding_distance(same, ["minimize"] * 2), np.zeros(4))
    flat = np.array([[0.0, 5.0], [1.0, 5.0], [3.0, 5.0], [4.0, 5.0]])
    d = crowding_distance(flat, ["minimize"] * 2)
    assert np.isinf(d[[0, 3]]).all() and d[1] == pytest.approx(0.75) and d[2] == pytest.approx(0.75)
    with_nan = np.array([[0.0, 2.0], [np.nan, 1.0], [1.0, 1.0], [2.0, 0.0]])
    d = crowding_distance(with_nan, ["minimize"] * 2)
    assert np.isnan(d[1]) and np.isinf(d[[0, 3]]).all() and d[2] == pytest.approx(2.0)


# ------------------------------------------------------------------------------------------------ hypervolume
@FAST
@given(problems(min_m=2, max_m=3, max_n=10))
def test_hypervolume_matches_grid_brute_force(problem):
    values, directions = problem
    ref = reference_for(directions, margin=2.5)  # some points are worse than the reference
    assert hypervolume(values, directions, ref) == pytest.approx(brute_hv(values, directions, ref), abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(problems(min_m=4, max_m=4, max_n=6))
def test_hypervolume_4d_matches_grid_brute_force(problem):
    values, directions = problem
    ref = reference_for(directions, margin=2.5)
    assert hypervolume(values, directions, ref) == pytest.approx(brute_hv(values, directions, ref), abs=1e-9)


@FAST
@given(problems(min_m=2, max_m=3, max_n=8), st.lists(st.lists(st.integers(-4, 4).map(float), min_size=3, max_size=3),
                                                      min_size=0, max_size=6))
def test_hypervolume_improvements_match_brute_force(problem, rows):
    """What each point would add to the front: the vectorised 2-D staircase (and the fallback for 3-D, NaN) against
    the grid brute force, on integer grids full of ties, duplicates, NaN and points beyond the reference."""
    values, directions = problem
    m = len(directions)
    points = np.array([r[:m] for r in rows], dtype=float).reshape(-1, m)
    ref = reference_for(directions, margin=2.5)
    got = hypervolume_improvements(values, points, directions, ref)
    base = brute_hv(values, directions, ref)
    want = [brute_hv(np.vstack([values, p]), directions, ref) - base for p in points]
    assert got.shape == (len(points),) and got == pytest.approx(want, abs=1e-9)


def test_hypervolume_improvements_continuous_and_nan_points():
    rng = np.random.default_rng(3)
    front, points = rng.random((7, 2)), rng.random((50, 2)) * 1.2 - 0.1
    directions, ref = ["maximize", "minimize"], [0.05, 0.95]
    base = hypervolume(front, directions, ref)
    want = [hypervolume(np.vstack([front, p]), directions, ref) - base for p in points]
    assert hypervolume_improvements(front, points, directions, ref) == pytest.approx(want, abs=1e-12)
    points[0, 1] = np.nan  # a NaN point adds nothing, the others are unchanged
    got = hypervolume_improvements(front, points, directions, ref)
    assert got[0] == 0.0 and got[1:] == pytest.approx(want[1:], abs=1e-12)
    assert hypervolume_improvements(np.empty((0, 2)), points[1:2], directions, ref)[0] == pytest.approx(
        hypervolume(points[1:2], directions, ref))


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_random_continuous(m):
    rng = np.random.default_rng(10 + m)
    values = rng.random((9, m))
    directions = ["maximize"] + ["minimize"] * (m - 1)
    ref = np.array([0.1] + [0.9] * (m - 1))
    assert hypervolume(values, directions, ref) == pytest.approx(brute_hv(values, directions, ref), rel=1e-12)


def test_hypervolume_edge_cases():
    mm = ["minimize", "minimize"]
    assert hypervolume(np.empty((0, 2)), mm, [1, 1]) == 0.0
    assert hypervolume(np.array([[0.5, 0.5]]), mm, [1, 1]) == pytest.approx(0.25)
    assert hypervolume(np.array([[2.0, 0.0], [1.0, 3.0], [1.0, 0.5]]), mm, [1, 1]) == 0.0  # none strictly better
    assert hypervolume(np.array([[0.5, 0.5], [np.nan, 0.0]]), mm, [1, 1]) == pytest.approx(0.25)
    dup = np.array([[0.5, 0.5], [0.5, 0.5], [0.0, 0.5], [0.5, 0.0], [0.0, 0.5]])
    assert hypervolume(dup, mm, [1, 1]) == pytest.approx(0.75)
    # maximisation: reference in original directions
    assert hypervolume(np.array([[3.0, 2.0]]), ["maximize", "maximize"], [1, 1]) == pytest.approx(2.0)
    assert hypervolume(np.array([[3.0, 0.5]]), ["maximize", "minimize"], [1, 1]) == pytest.approx(1.0)
    assert hypervolume(np.array([[0.5, 0.5, 0.5]]), ["minimize"] * 3, [1, 1, 1]) == pytest.approx(0.125)
    assert hypervolume(np.array([[0.2], [0.5]]), ["minimize"], [1]) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        hypervolume(np.array([[0.5, 0.5]]), mm, [1, 1, 1])
    with pytest.raises(ValueError):
        hypervolume(np.array([[0.5, 0.5]]), mm, [1, np.nan])


def test_hypervolume_3d_larger_matches_slicing():
    rng = np.random.default_rng(3)
    x = rng.random((1500, 3))
    front = x / np.linalg.norm(x, axis=1, keepdims=True)  # all on the unit sphere: all non-dominated
    front[:, 1] = -front[:, 1]
    directions = ["minimize", "maximize", "minimize"]
    ref = np.array([1.0, -1.0, 1.0])
    hv = hypervolume(front, directions, ref)
    # independent O(n^2 log n) reference: slabs along z, each a 2-D hypervolume of the points below it
    order = np.argsort(front[:, 2])
    pts, zs = front[order], np.append(front[order, 2], ref[2])
    slabs = sum(
        hypervolume(pts[: i + 1, :2], directions[:2], ref[:2]) * (zs[i + 1] - zs[i]) for i in range(len(pts))
    )
    assert hv == pytest.approx(slabs, rel=1e-10)
    # the cube minus the sphere octant (1 - pi/6) is the limit as the front fills up
    assert 1 - np.pi / 6 - 0.04 < hv < 1 - np.pi / 6


# ------------------------------------------------------------------------------------------------ history
@FAST
@given(problems(min_m=1, max_m=3, max_n=12))
def test_hypervolume_history_prefixes(problem):
    values, directions = problem
    ref = reference_for(directions, margin=2.5)
    hist = hypervolume_history(values, directions, ref)
    assert hist.shape == (len(values),)
    assert np.all(np.diff(hist) >= 0)
    for k in range(1, len(values) + 1):
        assert hist[k - 1] == pytest.approx(hypervolume(values[:k], directions, ref), abs=1e-9)


def test_hypervolume_history_2d_many_points():
    rng = np.random.default_rng(1)
    values = rng.random((4000, 2))
    values[rng.random(4000) < 0.05, 0] = np.nan
    directions = ["maximize", "minimize"]
    ref = [0.0, 1.0]
    hist = hypervolume_history(values, directions, ref)
    assert np.all(np.diff(hist) >= 0)
    assert hist[-1] == pytest.approx(hypervolume(values, directions, ref), rel=1e-12)
    assert hypervolume_history(np.empty((0, 2)), directions, ref).shape == (0,)


def test_hypervolume_history_3d_last_equals_total():
    rng = np.random.default_rng(2)
    values = rng.random((300, 3))
    directions = ["minimize", "maximize", "minimize"]
    ref = [1.0, 0.0, 1.0]
    hist = hypervolume_history(values, directions, ref)
    assert np.all(np.diff(hist) >= 0)
    assert hist[-1] == pytest.approx(hypervolume(values, directions, ref), rel=1e-12)


# ------------------------------------------------------------------------------------------------ knee
def test_knee_on_convex_front():
    front = np.array([[0.0, 1.0], [0.05, 0.5], [0.2, 0.2], [0.5, 0.05], [1.0, 0.0]])
    dominated = np.array([[0.9, 0.9], [0.3, 0.3]])
    values = np.vstack([dominated, front, [[np.nan, 0.0]]])
    assert knee_point(values, ["minimize", "minimize"]) == 4  # (0.2, 0.2)
    # maximising the second objective mirrors it: the knee is the same row
    mirrored = values * np.array([1.0, -1.0])
    assert knee_point(mirrored, ["minimize", "maximize"]) == 4


def test_knee_asymmetric_and_scaled():
    # objective 2 on a much larger scale: normalisation must remove it; the sharp bend is at (0.1, 100)
    front = np.array([[0.0, 1000.0], [0.1, 100.0], [0.5, 50.0], [1.0, 0.0]])
    assert knee_point(front, ["minimize", "minimize"]) == 1


def test_knee_3d_and_degenerate():
    front = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.2, 0.2], [0.5, 0.4, 0.3]])
    assert knee_point(front, ["minimize"] * 3) == 3
    assert knee_point(np.array([[5.0, 5.0], [6.0, 6.0], [np.nan, 1.0]]), ["minimize"] * 2) == 0
    assert knee_point(np.array([[0.0, 1.0], [1.0, 0.0]]), ["minimize"] * 2) == 0
    assert knee_point(np.array([[3.0], [1.0], [1.0]]), ["minimize"]) == 1
    with pytest.raises(ValueError):
        knee_point(np.full((2, 2), np.nan), ["minimize"] * 2)
    with pytest.raises(ValueError):
        knee_point(np.empty((0, 2)), ["minimize"] * 2)


def test_dominating_agrees_with_dominates_row_by_row():
    from nas import pareto

    rng = np.random.default_rng(0)
    values = rng.integers(0, 4, size=(60, 3)).astype(float)
    values[5, 1] = np.nan
    directions = ["maximize", "minimize", "minimize"]
    for point in (values[0], np.array([2.0, 1.0, 2.0]), np.array([np.nan, 1.0, 1.0])):
        mask = pareto.dominating(values, point, directions)
        p = pareto.to_minimization(point[None], directions)[0]
        expected = [pareto.dominates(u, p) for u in pareto.to_minimization(values, directions)]
        assert mask.tolist() == expected
