"""``selective_copy:LENGTH``: a synthetic long-range sequence task (see :func:`make_selective_copy`), generated
with a fixed seed like a file on disk."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.data.dataset import Dataset
from nas.data.registry import DATASETS, family
from nas.data.splits import TEST_SPLIT_SEED, assemble
from nas.errors import DataError

# Synthetic selective-copy task: NUM_TOKENS binary symbols, one per equal segment of the sequence.
SC_TOKENS = 4
SC_POOL = 4000
SC_TEST = 1000
SC_MIN_LENGTH = 8
SC_MAX_LENGTH = 16384


def make_selective_copy(length: int, n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic selective-copy classification: ``(x, y)`` with x uint8 ``(n, length, 3)`` one-hot (values 0 / 255)
    and y int64 in ``0..2**SC_TOKENS - 1``.

    The sequence is split into ``SC_TOKENS`` (4) equal segments; each holds exactly one data token (symbol A or B,
    channels 1 and 2) at a uniformly random position, every other step is blank (channel 0). The label is the ordered
    copy of the four symbols read as a binary number (first segment = most significant bit). So the label depends on
    tokens spread over the whole sequence -- each of its bits on a different quarter -- and no proper subset of
    the sequence determines it; a model must both find the tokens and know which quarter each came from.
    """
    if not (SC_MIN_LENGTH <= length <= SC_MAX_LENGTH):
        raise DataError(f"selective_copy LENGTH must be in {SC_MIN_LENGTH}..{SC_MAX_LENGTH}, got {length}",
                        key="dataset")
    rng = np.random.default_rng([seed, length])
    bounds = [(i * length) // SC_TOKENS for i in range(SC_TOKENS + 1)]
    bits = rng.integers(0, 2, size=(n, SC_TOKENS))
    tokens = np.zeros((n, length), dtype=np.uint8)
    rows = np.arange(n)
    for i in range(SC_TOKENS):
        pos = bounds[i] + rng.integers(0, bounds[i + 1] - bounds[i], size=n)
        tokens[rows, pos] = 1 + bits[:, i]
    x = (np.eye(3, dtype=np.uint8) * 255)[tokens]
    y = (bits * (1 << np.arange(SC_TOKENS - 1, -1, -1))).sum(axis=1).astype(np.int64)
    return x, y


@DATASETS.register("selective_copy")
@family("LENGTH")
def load_selective_copy(name: str, arg: str | None, *, data_dir: Path, val_fraction: float, seed: int,
                        train_subset: int | None) -> Dataset:
    try:
        length = int(arg)
    except ValueError:
        raise DataError(f"selective_copy needs an integer LENGTH, e.g. selective_copy:1024, got {name!r}",
                        key="dataset") from None
    # The data themselves are generated with a fixed seed (like a file on disk); ``seed`` only picks the val split.
    x, y = make_selective_copy(length, SC_POOL + SC_TEST, seed=TEST_SPLIT_SEED)
    return assemble(
        f"selective_copy:{length}", "sequence", 2 ** SC_TOKENS, x[:SC_POOL], y[:SC_POOL], x[SC_POOL:], y[SC_POOL:],
        augment=(), source=f"generated (make_selective_copy, length {length})", val_fraction=val_fraction,
        seed=seed, train_subset=train_subset, mean=np.zeros(3, np.float32), std=np.ones(3, np.float32),
    )
