"""nas.significance: per-example results packed into a trial attribute, McNemar's exact test, Wilson intervals."""
from __future__ import annotations

import math

import numpy as np
import pytest

from nas.significance import ALPHA, compare, mcnemar_p, pack_correct, unpack_correct, wilson_interval


@pytest.mark.parametrize("n", [1, 7, 8, 9, 143, 300, 5000])
def test_pack_round_trip(n):
    bits = np.random.default_rng(n).random(n) < 0.7
    packed = pack_correct(bits)
    assert isinstance(packed, str) and len(packed) == 4 * math.ceil(math.ceil(n / 8) / 3)
    assert np.array_equal(unpack_correct(packed, n), bits)


def test_unpack_refuses_a_split_of_another_size():
    packed = pack_correct(np.ones(300, bool))  # 38 bytes
    for n in (290, 305):
        with pytest.raises(ValueError, match=f"a split of {n} examples needs"):
            unpack_correct(packed, n)


def test_mcnemar_exact_values():
    assert mcnemar_p(0, 0) == 1.0  # no discordant example: nothing to tell the models apart
    assert mcnemar_p(5, 5) == pytest.approx(1.0)
    assert mcnemar_p(10, 0) == pytest.approx(2 * 0.5 ** 10)  # two-sided: both tails of a fair coin
    assert mcnemar_p(3, 9) == pytest.approx(mcnemar_p(9, 3))
    # 3 vs 9 by hand: P(X <= 3) for Binomial(12, 1/2), doubled
    assert mcnemar_p(3, 9) == pytest.approx(2 * sum(math.comb(12, k) for k in range(4)) / 2 ** 12)


def test_wilson_interval_matches_the_formula():
    for acc, n in [(0.0, 10), (0.9, 300), (0.977, 300), (1.0, 143)]:
        k, z = round(acc * n), 1.959963984540054
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        low, high = wilson_interval(acc, n)
        assert low == pytest.approx(max(0.0, centre - half), abs=1e-9)
        assert high == pytest.approx(min(1.0, centre + half), abs=1e-9)
        assert low <= p <= high


def test_compare_paired_and_unpaired():
    n = 300
    rng = np.random.default_rng(0)
    a = rng.random(n) < 0.9
    b = a.copy()
    b[:40] = ~b[:40]  # the two disagree on 40 examples
    c = compare(a.mean(), b.mean(), n, pack_correct(a), pack_correct(b))
    assert c.paired and c.a_only + c.b_only == 40
    assert c.margin == int(a.sum()) - int(b.sum()) == c.a_only - c.b_only
    assert c.p_value == pytest.approx(mcnemar_p(c.a_only, c.b_only))
    assert c.significant == (c.p_value < ALPHA)
    assert c.text() == f"{c.margin:+d} of 300 examples, {c.a_only} vs {c.b_only} discordant, p={c.p_value:.2g}"

    old = compare(0.98, 0.977, n)  # a run stored before per-example results: the margin in examples only
    assert not old.paired and old.significant is None and old.margin == 1
    assert old.text() == "+1 of 300 examples"


def test_one_example_of_300_is_never_significant():
    a = np.ones(300, bool)
    b = a.copy()
    b[0] = False
    c = compare(1.0, 299 / 300, 300, pack_correct(a), pack_correct(b))
    assert c.margin == 1 and c.p_value == 1.0 and not c.significant
