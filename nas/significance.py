"""Is one accuracy really higher than another? Accuracy margins on a finite validation set.

Every trial of a run is scored on the same validation examples (the split depends only on the run's data settings).
A margin of 0.003 on 300 examples is one example; whether it means anything depends on how many examples the two
models disagree on. So the trainer keeps, for its last evaluation, which validation examples the model got right
(:func:`pack_correct`: one bit per example, base64; 300 examples take 52 characters), the search stores it as the
trial attribute ``val_correct``, and two models are compared with McNemar's exact test on the examples exactly one
of them got right (:func:`compare`). A run stored before ``val_correct`` existed still gets the margin in examples
and a Wilson interval per model (:func:`wilson_interval`), from the validation-set size.

scipy (installed with scikit-learn) does the binomial arithmetic. This module imports numpy only at import time.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Sequence

import numpy as np

ALPHA = 0.05  # a difference is called significant below this two-sided p


def pack_correct(correct: Sequence[bool] | np.ndarray) -> str:
    """One bit per example (in the split's order), packed and base64-encoded."""
    bits = np.asarray(correct, dtype=bool).ravel()
    return base64.b64encode(np.packbits(bits).tobytes()).decode("ascii")


def unpack_correct(packed: str, n: int) -> np.ndarray:
    """The boolean vector :func:`pack_correct` packed, for a split of ``n`` examples."""
    raw = np.frombuffer(base64.b64decode(packed.encode("ascii"), validate=True), dtype=np.uint8)
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"packed correctness holds {len(raw)} bytes, a split of {n} examples needs {(n + 7) // 8}")
    return np.unpackbits(raw, count=n).astype(bool)


def wilson_interval(accuracy: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of an accuracy measured on ``n`` examples."""
    from scipy.stats import binomtest

    k = int(round(accuracy * n))
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class Comparison:
    """Model A against model B on the same ``n`` validation examples."""

    n: int
    margin: int  # examples A got right minus examples B got right
    a_only: int | None = None  # examples only A got right (None: per-example results not stored)
    b_only: int | None = None
    p_value: float | None = None  # McNemar's exact two-sided test on the discordant examples

    @property
    def paired(self) -> bool:
        return self.p_value is not None

    @property
    def significant(self) -> bool | None:
        return None if self.p_value is None else self.p_value < ALPHA

    def test_text(self) -> str:
        """E.g. ``7 vs 3 discordant, p=0.34`` (empty when not paired)."""
        return f"{self.a_only} vs {self.b_only} discordant, p={self.p_value:.2g}" if self.paired else ""

    def text(self) -> str:
        """E.g. ``+4 of 300 examples, 7 vs 3 discordant, p=0.34``: the margin in examples, then the test."""
        return ", ".join(filter(None, [f"{self.margin:+d} of {self.n} examples", self.test_text()]))


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value: the discordant examples split as a fair coin would split them?"""
    from scipy.stats import binomtest

    discordant = a_only + b_only
    return 1.0 if discordant == 0 else float(binomtest(a_only, discordant, 0.5).pvalue)


def compare(acc_a: float, acc_b: float, n: int, packed_a: str | None = None, packed_b: str | None = None
            ) -> Comparison:
    """Compare two accuracies measured on the same ``n`` examples; with both models' packed correctness, paired."""
    margin = int(round(acc_a * n)) - int(round(acc_b * n))
    if not packed_a or not packed_b:
        return Comparison(n=n, margin=margin)
    a, b = unpack_correct(packed_a, n), unpack_correct(packed_b, n)
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    return Comparison(n=n, margin=a_only - b_only, a_only=a_only, b_only=b_only, p_value=mcnemar_p(a_only, b_only))
