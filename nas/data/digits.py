"""``digits``: sklearn's bundled 8x8 digits (1 channel, 10 classes, 0..16 scaled to 0..255); test = fixed 20% split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.data.dataset import Dataset
from nas.data.registry import DATASETS
from nas.data.splits import TEST_FRACTION, TEST_SPLIT_SEED, assemble, stratified_holdout


@DATASETS.register("digits")
def load_sklearn_digits(name: str, arg: str | None, *, data_dir: Path, val_fraction: float, seed: int,
                        train_subset: int | None) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None, :, :]
    y = d.target.astype(np.int64)
    pool, test = stratified_holdout(y, TEST_FRACTION, np.random.default_rng(TEST_SPLIT_SEED))
    return assemble("digits", "image", 10, x[pool], y[pool], x[test], y[test], augment=("crop",),
                    source="sklearn.datasets.load_digits", val_fraction=val_fraction, seed=seed,
                    train_subset=train_subset)
