"""nas.data.selective_copy: the synthetic long-range task."""
from __future__ import annotations

import numpy as np
import torch

from nas.data import load_dataset, make_selective_copy


def test_selective_copy_deterministic_and_long_range():
    x1, y1 = make_selective_copy(64, 200, seed=7)
    x2, y2 = make_selective_copy(64, 200, seed=7)
    x3, _ = make_selective_copy(64, 200, seed=8)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and not np.array_equal(x1, x3)
    tokens = x1.argmax(axis=2)
    assert (x1.sum(axis=2) == 255).all()  # one-hot
    # exactly one data token per quarter; the label is the ordered copy of the four tokens, so it depends on all
    # quarters of the sequence
    decoded = np.zeros(200, dtype=np.int64)
    for q in range(4):
        seg = tokens[:, q * 16:(q + 1) * 16]
        assert ((seg > 0).sum(axis=1) == 1).all()
        decoded = decoded * 2 + (seg.max(axis=1) - 1)
    assert np.array_equal(decoded, y1)
    # tokens land all over the sequence, early and late
    pos = np.nonzero(tokens)[1]
    assert pos.min() < 4 and pos.max() >= 60
    ds = load_dataset("selective_copy:64", seed=1)
    assert (ds.kind, ds.num_classes, ds.input_shape, ds.augment) == ("sequence", 16, (64, 3), ())
    assert len(ds.y_train) + len(ds.y_val) == 4000 and len(ds.y_test) == 1000
    assert torch.equal(load_dataset("selective_copy:64", seed=1).x_val, ds.x_val)
    xb, _ = next(ds.batches("val", 8, shuffle=False))
    assert set(xb.unique().tolist()) == {0.0, 1.0}  # stays exactly one-hot after normalisation


def test_selective_copy_is_learnable():
    from sklearn.linear_model import LogisticRegression

    ds = load_dataset("selective_copy:16", train_subset=1000)
    x_tr = ds.normalize(ds.x_train).flatten(1).numpy()
    x_te = ds.normalize(ds.x_test).flatten(1).numpy()
    clf = LogisticRegression(max_iter=200).fit(x_tr, ds.y_train.numpy())
    assert clf.score(x_te, ds.y_test.numpy()) > 0.9  # chance is 1/16
