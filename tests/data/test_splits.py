"""nas.data.splits: the seeded, class-stratified train / val / test splits (on sklearn's digits)."""
from __future__ import annotations

import torch

from nas.data import Dataset, load_dataset


def test_digits_splits():
    ds = load_dataset("digits", seed=0)
    assert isinstance(ds, Dataset)
    assert (ds.kind, ds.num_classes, ds.input_shape, ds.augment) == ("image", 10, (1, 8, 8), ("crop",))
    for split in ("train", "val", "test"):
        x, y = ds.split(split)
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 8, 8) and len(x) == len(y) > 0
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797
    assert ds.x_train.max() == 255  # 0..16 scaled to 0..255
    tr, va = set(ds.indices["train"].tolist()), set(ds.indices["val"].tolist())
    assert not tr & va and len(tr | va) == len(ds.y_train) + len(ds.y_val)
    assert abs(len(ds.y_val) / (len(ds.y_train) + len(ds.y_val)) - 0.1) < 0.02
    assert torch.bincount(ds.y_val, minlength=10).min() >= 12  # stratified
    assert ds.mean.shape == (1,) and ds.std.shape == (1,)
    # val carved deterministically from the seed; the test split never depends on it
    again, other = load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert torch.equal(again.x_val, ds.x_val) and torch.equal(again.x_train, ds.x_train)
    assert set(other.indices["val"].tolist()) != va
    assert torch.equal(other.x_test, ds.x_test) and torch.equal(other.y_test, ds.y_test)


def test_train_subset_is_class_balanced_and_deterministic():
    ds = load_dataset("digits", train_subset=100, seed=3)
    assert len(ds.y_train) + len(ds.y_val) == 100
    counts = torch.bincount(torch.cat([ds.y_train, ds.y_val]), minlength=10)
    assert counts.tolist() == [10] * 10
    assert torch.equal(load_dataset("digits", train_subset=100, seed=3).x_train, ds.x_train)
    # every prefix of the train split is class-balanced, so a data fraction stays balanced
    assert torch.bincount(ds.y_train[:50], minlength=10).tolist() == [5] * 10
