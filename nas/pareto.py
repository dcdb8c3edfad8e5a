"""Pareto maths on numpy arrays: dominance, non-dominated sorting, crowding distance, hypervolume, knee point.

Conventions shared by every function here:

* ``values`` is an ``(n, m)`` array, one row per trial and one column per objective; ``directions`` holds one
  ``"minimize"`` or ``"maximize"`` per column. Internally everything is turned into minimisation by negating the
  maximised columns (:func:`to_minimization`).
* A row with any NaN is a failed trial: it gets rank ``-1``, is never on a front, never dominates anything and adds
  nothing to a hypervolume.
* Exact duplicate rows do not dominate each other, so they share a rank.
* A hypervolume ``reference`` point is given in the ORIGINAL directions (same units and signs as ``values``). Only
  points strictly better than the reference in every objective contribute.

Pure numpy; no torch, no pandas.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Sequence

import numpy as np

__all__ = [
    "crowding_distance",
    "dominates",
    "hypervolume",
    "hypervolume_history",
    "hypervolume_improvements",
    "knee_point",
    "non_dominated_sort",
    "pareto_mask",
    "to_minimization",
]

_DIRECTIONS = ("minimize", "maximize")
# Largest number of pairwise comparisons (block rows x n x m) materialised at once by the general-m sort.
_BLOCK_ELEMENTS = 4_000_000


# --------------------------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------------------------
def _signs(directions: Sequence[str]) -> np.ndarray:
    if isinstance(directions, str):
        raise ValueError(f"directions must be a sequence of 'minimize'/'maximize', not the string {directions!r}")
    signs = []
    for d in directions:
        name = str(d).strip().lower()
        if name not in _DIRECTIONS:
            raise ValueError(f"unknown direction {d!r}: expected 'minimize' or 'maximize'")
        signs.append(-1.0 if name == "maximize" else 1.0)
    if not signs:
        raise ValueError("directions is empty: at least one objective is needed")
    return np.asarray(signs, dtype=float)


def to_minimization(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Return a float copy of ``values`` (n, m) with the ``"maximize"`` columns negated, so that smaller is better.

    A 1-D array is read as one point when ``m > 1`` and as a column when ``m == 1``; an empty array as ``(0, m)``.
    NaNs are kept (they mark failed trials).
    """
    signs = _signs(directions)
    m = signs.size
    arr = np.array(values, dtype=float)  # copy
    if arr.size == 0:
        arr = arr.reshape(0, m)
    elif arr.ndim == 1:
        arr = arr.reshape(-1, 1) if m == 1 else arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"values must be a 2-D (n, m) array, got shape {np.shape(values)}")
    if arr.shape[1] != m:
        raise ValueError(f"values has {arr.shape[1]} objective column(s) but {m} direction(s) were given")
    return arr * signs


def _reference_min(reference, directions: Sequence[str]) -> np.ndarray:
    signs = _signs(directions)
    ref = np.asarray(reference, dtype=float).reshape(-1)
    if ref.size != signs.size:
        raise ValueError(f"reference has {ref.size} coordinate(s) but {signs.size} direction(s) were given")
    if not np.all(np.isfinite(ref)):
        raise ValueError(f"reference must be finite, got {ref.tolist()}")
    return ref * signs


def dominates(a, b) -> bool:
    """True when minimisation vector ``a`` Pareto-dominates ``b``: ``a <= b`` everywhere and ``a < b`` somewhere.

    Any NaN in either vector gives False.
    """
    a = np.asarray(a, dtype=float).reshape(-1)
    b = np.asarray(b, dtype=float).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"cannot compare vectors of lengths {a.size} and {b.size}")
    return bool(np.all(a <= b) and np.any(a < b))


def dominating(values: np.ndarray, point, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the rows of ``values`` (n, m) that Pareto-dominate ``point`` (m,), both in ``directions``.
    A row or point with a NaN gives False."""
    u = to_minimization(values, directions)
    p = to_minimization(np.asarray(point, dtype=float)[None], directions)[0]
    return np.all(u <= p, axis=1) & np.any(u < p, axis=1)


# --------------------------------------------------------------------------------------------------------------
# Non-dominated sorting
# --------------------------------------------------------------------------------------------------------------
def _ranks_unique_2d(u: np.ndarray) -> np.ndarray:
    """Ranks of distinct, lexicographically sorted 2-D minimisation points, O(n log n).

    Processing in lexicographic order, every earlier point has a smaller-or-equal first coordinate, so front k
    dominates the new point iff the last (lowest second coordinate) member of front k has y <= the new y. Those
    last values stay sorted across fronts, so the rank is a bisection (patience sorting).
    """
    last_y: list[float] = []
    ranks = np.empty(len(u), dtype=np.int64)
    for i, y in enumerate(u[:, 1].tolist()):
        k = bisect_right(last_y, y)
        if k == len(last_y):
            last_y.append(y)
        else:
            last_y[k] = y
        ranks[i] = k
    return ranks


def _ranks_unique_general(u: np.ndarray) -> np.ndarray:
    """Ranks of distinct minimisation points by Deb's counting on a dominance matrix (O(n^2 m) time, n^2 bits)."""
    n, m = u.shape
    dom = np.empty((n, n), dtype=bool)  # dom[i, j]: i dominates j (points are distinct, so <= everywhere suffices)
    block = max(1, _BLOCK_ELEMENTS // max(1, n * m))
    for start in range(0, n, block):
        stop = min(n, start + block)
        dom[start:stop] = np.all(u[start:stop, None, :] <= u[None, :, :], axis=2)
    np.fill_diagonal(dom, False)
    count = dom.sum(axis=0)
    ranks = np.full(n, -1, dtype=np.int64)
    rank = 0
    front = np.flatnonzero(count == 0)
    while front.size:
        ranks[front] = rank
        count[front] = -1  # never selected again
        count -= dom[front].sum(axis=0)
        front = np.flatnonzero(count == 0)
        rank += 1
    return ranks


def _ranks_min(v: np.ndarray) -> np.ndarray:
    """Ranks of minimisation rows ``v`` (n, m); NaN rows get -1."""
    n, m = v.shape
    ranks = np.full(n, -1, dtype=np.int64)
    valid = ~np.isnan(v).any(axis=1)
    if not valid.any():
        return ranks
    uniq, inverse = np.unique(v[valid], axis=0, return_inverse=True)  # sorted lexicographically
    inverse = np.asarray(inverse).reshape(-1)
    if m == 1:
        uranks = np.arange(len(uniq), dtype=np.int64)
    elif m == 2:
        uranks = _ranks_unique_2d(uniq)
    else:
        uranks = _ranks_unique_general(uniq)
    ranks[valid] = uranks[inverse]
    return ranks


def non_dominated_sort(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Pareto rank of every row: 0 = the Pareto front, 1 = the front once rank 0 is removed, and so on.

    Rows with any NaN (failed trials) get rank -1 and dominate nothing; exact duplicates share a rank.
    Two objectives take O(n log n); more take O(n^2 m) time and an n x n boolean matrix (n = distinct rows).
    """
    return _ranks_min(to_minimization(values, directions))


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the Pareto front (rank 0); NaN rows are False."""
    return non_dominated_sort(values, directions) == 0


# --------------------------------------------------------------------------------------------------------------
# Crowding distance
# --------------------------------------------------------------------------------------------------------------
def crowding_distance(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """NSGA-II crowding distance of the rows of ONE front (the caller selects the front).

    Per objective with a non-zero range, the two boundary points get ``inf`` and each interior point adds the gap
    between its neighbours divided by the range; an objective with zero range adds nothing. A front of <= 2
    points is all ``inf``. NaN rows get NaN and are left out of the others' computation. Ties keep row order.
    """
    v = to_minimization(values, directions)
    n = v.shape[0]
    out = np.full(n, np.nan)
    valid = np.flatnonzero(~np.isnan(v).any(axis=1))
    k = valid.size
    if k == 0:
        return out
    if k <= 2:
        out[valid] = np.inf
        return out
    f = v[valid]
    dist = np.zeros(k)
    for j in range(f.shape[1]):
        order = np.argsort(f[:, j], kind="stable")
        col = f[order, j]
        span = col[-1] - col[0]
        if not span > 0:  # zero range (or non-finite): this objective cannot separate the points
            continue
        dist[order[0]] = np.inf
        dist[order[-1]] = np.inf
        with np.errstate(invalid="ignore"):
            gaps = (col[2:] - col[:-2]) / span
        dist[order[1:-1]] += np.nan_to_num(gaps, nan=0.0, posinf=np.inf)
    out[valid] = dist
    return out


# --------------------------------------------------------------------------------------------------------------
# Hypervolume
# --------------------------------------------------------------------------------------------------------------
class _Staircase:
    """2-D dominated area (minimisation) with respect to a reference, updated point by point.

    Members are kept non-dominated, sorted by x ascending (so y strictly descending). Amortised O(log n) search plus
    list splicing per insertion; the area gain of each insertion is a sum of non-negative terms.
    """

    __slots__ = ("r1", "r2", "xs", "ys", "area")

    def __init__(self, r1: float, r2: float):
        self.r1, self.r2 = r1, r2
        self.xs: list[float] = []
        self.ys: list[float] = []
        self.area = 0.0

    def add(self, x: float, y: float) -> float:
        """Insert a point with ``x < r1`` and ``y < r2``; return the area it adds (0 if weakly dominated)."""
        xs, ys = self.xs, self.ys
        k = bisect_right(xs, x) - 1
        if k >= 0 and ys[k] <= y:
            return 0.0
        j = bisect_left(xs, x)
        e = j
        while e < len(xs) and ys[e] >= y:  # members the new point dominates: a contiguous run from j
            e += 1
        top = ys[j - 1] if j > 0 else self.r2
        gain = 0.0
        prev_x = x
        for i in range(j, e):
            gain += (xs[i] - prev_x) * (top - y)
            prev_x, top = xs[i], ys[i]
        end = xs[e] if e < len(xs) else self.r1
        gain += (end - prev_x) * (top - y)
        xs[j:e] = [x]
        ys[j:e] = [y]
        self.area += gain
        return gain


def _hv2d(p: np.ndarray, ref: np.ndarray) -> float:
    order = np.lexsort((p[:, 1], p[:, 0]))
    x, y = p[order, 0], p[order, 1]
    ymin = np.minimum.accumulate(y)
    prev = np.concatenate(([ref[1]], ymin[:-1]))
    return float(np.sum((ref[0] - x) * (prev - ymin)))


def _hv3d(p: np.ndarray, ref: np.ndarray) -> float:
    """Sweep along z, keeping the 2-D staircase of the points seen so far (O(n log n) searches)."""
    order = np.argsort(p[:, 2], kind="stable")
    pts = p[order].tolist()
    stair = _Staircase(float(ref[0]), float(ref[1]))
    total = 0.0
    for i, (x, y, z) in enumerate(pts):
        stair.add(x, y)
        z_next = pts[i + 1][2] if i + 1 < len(pts) else float(ref[2])
        total += stair.area * (z_next - z)
    return total


def _hv_min(p: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of finite minimisation points ``p`` that are all strictly better than ``ref``."""
    n, m = p.shape
    if n == 0:
        return 0.0
    if m == 1:
        return float(ref[0] - p[:, 0].min())
    if m == 2:
        return _hv2d(p, ref)
    if n > 1:
        p = np.unique(p, axis=0)
        p = p[_ranks_min(p) == 0]
    if m == 3:
        return _hv3d(p, ref)
    # m >= 4: slice along the last objective; each slab is a (m-1)-D hypervolume. O(n^(m-2) log n).
    order = np.argsort(p[:, -1], kind="stable")
    p = p[order]
    total = 0.0
    for i in range(len(p)):
        z_next = p[i + 1, -1] if i + 1 < len(p) else ref[-1]
        height = z_next - p[i, -1]
        if height > 0:
            total += _hv_min(p[: i + 1, :-1], ref[:-1]) * height
    return float(total)


def _contributing(v: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Mask of rows without NaN that are strictly better than ``ref`` in every objective."""
    with np.errstate(invalid="ignore"):
        return np.all(v < ref, axis=1)  # NaN compares False


def hypervolume(values: np.ndarray, directions: Sequence[str], reference) -> float:
    """Exact hypervolume dominated by ``values`` and bounded by ``reference``.

    ``reference`` is given in the ORIGINAL directions (a maximised objective's reference is a low value). Rows
    with NaN, and rows not strictly better than the reference in every objective, contribute nothing; an empty
    input gives 0.0. Cost: 1-D O(n), 2-D O(n log n), 3-D O(n log n) searches (z-sweep over a 2-D staircase), more
    objectives by slicing, O(n^(m-2) log n): fine for small sets only.
    """
    v = to_minimization(values, directions)
    ref = _reference_min(reference, directions)
    p = v[_contributing(v, ref)]
    if p.size and not np.all(np.isfinite(p)):
        return float("inf")  # a -inf in a minimised objective (or +inf maximised) dominates an unbounded region
    return _hv_min(p, ref)


def hypervolume_history(values: np.ndarray, directions: Sequence[str], reference) -> np.ndarray:
    """Hypervolume of the first k rows for k = 1..n (trial order), as a float array of length n.

    Same conventions as :func:`hypervolume`. Non-decreasing by construction. 1-D and 2-D are incremental
    (2-D: O(n log n) searches, fine for many thousands of points); 3+ objectives recompute on the current
    non-dominated archive only when a new point enlarges it.
    """
    v = to_minimization(values, directions)
    ref = _reference_min(reference, directions)
    n, m = v.shape
    out = np.zeros(n)
    if n == 0:
        return out
    good = _contributing(v, ref)
    infinite = good & ~np.all(np.isfinite(v), axis=1)
    good &= ~infinite
    if m == 1:
        best = np.where(good, v[:, 0], ref[0])
        out = ref[0] - np.minimum.accumulate(best)
    elif m == 2:
        stair = _Staircase(float(ref[0]), float(ref[1]))
        for i in range(n):
            if good[i]:
                stair.add(float(v[i, 0]), float(v[i, 1]))
            out[i] = stair.area
    else:
        archive = np.empty((0, m))
        current = 0.0
        for i in range(n):
            if good[i]:
                q = v[i]
                if not (archive.size and np.any(np.all(archive <= q, axis=1))):  # not weakly dominated
                    keep = ~np.all(q <= archive, axis=1)
                    archive = np.vstack([archive[keep], q])
                    current = _hv_min(archive, ref)
            out[i] = current
        out = np.maximum.accumulate(out)  # guard against rounding differences between recomputations
    if infinite.any():
        out[int(np.argmax(infinite)):] = np.inf
    return out


def hypervolume_improvements(front: np.ndarray, points: np.ndarray, directions: Sequence[str],
                             reference) -> np.ndarray:
    """For each row of ``points``, the hypervolume it would add to ``front`` on its own: ``hypervolume(front + [p]) -
    hypervolume(front)``, as a float array of length ``len(points)``. Same conventions as :func:`hypervolume`.

    Two objectives (what expected-improvement acquisition evaluates thousands of times per trial) are vectorised:
    the front's dominated region is a staircase, and a point adds the part of its box ``[a, r0] x [b, r1]`` that lies
    below the staircase, summed over the staircase's steps, one numpy expression for all points. Other numbers of
    objectives fall back to :func:`hypervolume`, point by point."""
    v = to_minimization(np.asarray(front, dtype=float).reshape(-1, len(directions)), directions)
    q = to_minimization(np.asarray(points, dtype=float).reshape(-1, len(directions)), directions)
    ref = _reference_min(reference, directions)
    if q.shape[0] == 0:
        return np.zeros(0)
    minimize = ["minimize"] * len(directions)
    if len(directions) != 2 or not (np.all(np.isfinite(v)) and np.all(np.isfinite(q))):
        base = hypervolume(v, minimize, ref)
        return np.array([hypervolume(np.vstack([v, p]), minimize, ref) - base for p in q])
    v = v[_contributing(v, ref)]
    order = np.lexsort((v[:, 1], v[:, 0]))  # by the first objective, ties by the second
    xs, heights = v[order, 0], np.minimum.accumulate(v[order, 1])
    # step k covers x in [lo_k, hi_k) where the front dominates everything above heights_k; step 0 (left of the
    # front) has nothing dominated, i.e. height r1
    lo = np.concatenate([[-np.inf], xs])
    hi = np.concatenate([xs, [ref[0]]])
    height = np.concatenate([[ref[1]], heights])
    width = np.clip(np.minimum(hi[None, :], ref[0]) - np.maximum(lo[None, :], q[:, :1]), 0.0, None)
    depth = np.clip(np.minimum(height[None, :], ref[1]) - q[:, 1:], 0.0, None)
    return (width * depth).sum(axis=1)


# --------------------------------------------------------------------------------------------------------------
# Knee point
# --------------------------------------------------------------------------------------------------------------
def knee_point(values: np.ndarray, directions: Sequence[str]) -> int:
    """Row index of the knee of the Pareto front.

    The front (rank 0) is min-max normalised per objective (in minimisation form); the extreme point of each
    objective is the member best in it (ties: best sum of the others). The knee is the member farthest from the
    hyperplane through the extreme points, on the side of the ideal point (signed distance, so concave dents are
    not taken for knees); if the extremes do not span a hyperplane, the plane sum(f) = 1 is used. A single-member
    front returns that member; ties go to the lowest row index. Raises ValueError when no row is valid.
    """
    v = to_minimization(values, directions)
    ranks = _ranks_min(v)
    members = np.flatnonzero(ranks == 0)
    if members.size == 0:
        raise ValueError("knee_point needs at least one row without NaN")
    if members.size == 1 or v.shape[1] == 1:
        return int(members[0])
    f = v[members]
    if not np.all(np.isfinite(f)):
        raise ValueError("knee_point needs finite objective values on the Pareto front")
    lo, hi = f.min(axis=0), f.max(axis=0)
    span = hi - lo
    norm = np.divide(f - lo, span, out=np.zeros_like(f), where=span > 0)
    m = f.shape[1]
    extremes = []
    for j in range(m):
        others = norm.sum(axis=1) - norm[:, j]
        extremes.append(np.lexsort((others, norm[:, j]))[0])
    e = norm[extremes]
    w = None
    try:
        w = np.linalg.solve(e, np.ones(m))
        if not np.all(np.isfinite(w)) or not np.allclose(e @ w, 1.0):
            w = None
    except np.linalg.LinAlgError:
        w = None
    if w is None or not np.any(w):
        w = np.ones(m)
    dist = (1.0 - norm @ w) / np.linalg.norm(w)
    return int(members[int(np.argmax(dist))])
