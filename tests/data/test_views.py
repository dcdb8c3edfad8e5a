"""nas.data.views: NAME:rows and NAME:pixels sequence views of image datasets."""
from __future__ import annotations

import numpy as np
import torch

from nas.data import load_dataset
from tests.data.helpers import write_npz


def test_sequence_views():
    img = load_dataset("digits")
    rows = load_dataset("digits:rows")
    pix = load_dataset("digits:pixels")
    assert (rows.kind, rows.input_shape, rows.augment, rows.name) == ("sequence", (8, 8), (), "digits:rows")
    assert pix.input_shape == (64, 1) and pix.x_train.shape == (len(img.x_train), 64, 1)
    assert torch.equal(rows.x_train, img.x_train[:, 0])
    assert torch.equal(pix.x_val[:, :, 0], img.x_val.flatten(1))
    assert torch.equal(rows.y_test, img.y_test)
    assert rows.mean.shape == (8,) and pix.mean.shape == (1,)
    xb, yb = next(rows.batches("train", 16, shuffle=True, augment=True))
    assert xb.shape == (16, 8, 8) and xb.dtype == torch.float32


def test_sequence_view_of_colour_rows(tmp_path):
    path = write_npz(tmp_path / "rgb.npz", hw=(4, 5), channels=3)
    ds = load_dataset(f"npz:{path}:rows")
    assert ds.input_shape == (4, 15) and ds.mean.shape == (15,)
    raw = np.load(path)
    i = int(ds.x_test[0, 0, 0])
    np.testing.assert_array_equal(ds.x_test[0].numpy(), raw["x_test"][i].reshape(4, 15))
