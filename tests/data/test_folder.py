"""nas.data.folder: folder:PATH, one sub-folder of images per class."""
from __future__ import annotations

import torch

from nas.data import load_dataset
from tests.data.helpers import write_folder


def test_folder_loader(tmp_path):
    root = write_folder(tmp_path / "imgs", per_class=10)
    ds = load_dataset(f"folder:{root}")
    assert (ds.kind, ds.num_classes, ds.input_shape) == ("image", 3, (1, 5, 6))
    total = len(ds.y_train) + len(ds.y_val) + len(ds.y_test)
    assert total == 30 and len(ds.y_test) == 6
    assert torch.bincount(ds.y_test).tolist() == [2, 2, 2]
    # test split is fixed; val depends on the seed
    assert torch.equal(load_dataset(f"folder:{root}", seed=5).x_test, ds.x_test)
    rgb = write_folder(tmp_path / "rgb", mode="RGB")
    ds = load_dataset(f"folder:{rgb}")
    assert ds.input_shape == (3, 5, 6) and ds.augment == ("crop", "flip")
