"""nas.data.npz: npz files (npz:PATH; mnist and fashion_mnist are in test_load.py)."""
from __future__ import annotations

import numpy as np
import torch

from nas.data import load_dataset
from tests.data.helpers import image_ids, write_npz


def test_npz_loader_grey(tmp_path):
    path = write_npz(tmp_path / "tiny.npz")
    ds = load_dataset(f"npz:{path}", val_fraction=0.2)
    assert (ds.kind, ds.num_classes, ds.input_shape, ds.augment) == ("image", 3, (1, 6, 6), ("crop",))
    tr, va, te = image_ids(ds.x_train), image_ids(ds.x_val), image_ids(ds.x_test)
    assert len(tr) == len(ds.x_train) and len(va) == len(ds.x_val)
    assert not tr & va and not (tr | va) & te
    assert tr | va == {(1, i) for i in range(60)}  # val carved from the training set
    assert te == {(2, i) for i in range(15)}  # test is the file's test set
    assert len(va) == 12
    # labels travel with their images
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val)):
        assert torch.equal(y, x[:, 0, 0, 0].long() % 3)


def test_npz_loader_colour_is_channels_first(tmp_path):
    path = write_npz(tmp_path / "rgb.npz", hw=(8, 8), channels=3)
    raw = np.load(path)
    ds = load_dataset(f"npz:{path}")
    assert ds.input_shape == (3, 8, 8) and ds.augment == ("crop", "flip")
    assert ds.mean.shape == (3,)
    i = int(ds.x_test[0, 0, 0, 0])
    np.testing.assert_array_equal(ds.x_test[0].numpy(), raw["x_test"][i].transpose(2, 0, 1))
