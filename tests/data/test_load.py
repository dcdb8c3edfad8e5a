"""nas.data.load: names, the data folder, the shared files and every bad input's one-line error."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import CIFAR10_TARBALL, dataset_names, load_dataset, resolve_data_dir
from nas.errors import DataError
from tests.data.helpers import SHARED, write_cifar_tarball, write_folder, write_npz


def test_dataset_names_and_data_dir(monkeypatch, tmp_path):
    names = dataset_names()
    for n in ("digits", "mnist", "fashion_mnist", "cifar10", "npz:PATH", "folder:PATH", "NAME:rows"):
        assert n in names
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)
    assert resolve_data_dir() == Path("~/.cache/nas/data").expanduser()
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    assert resolve_data_dir(tmp_path / "x") == tmp_path / "x"


@pytest.mark.skipif(SHARED is None, reason="shared data folder (/work/shared/data or NAS_DATA_DIR) not present")
@pytest.mark.parametrize("name,shape,n_test", [
    ("mnist", (1, 28, 28), 10000),
    ("fashion_mnist", (1, 28, 28), 10000),
    ("cifar10", (3, 32, 32), 2000),
])
def test_shared_files(name, shape, n_test):
    ds = load_dataset(name, data_dir=SHARED, train_subset=500)
    assert ds.input_shape == shape and ds.num_classes == 10
    assert len(ds.y_train) + len(ds.y_val) == 500 and len(ds.y_test) == n_test
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape[1:] == shape
    assert torch.bincount(torch.cat([ds.y_train, ds.y_val]), minlength=10).tolist() == [50] * 10
    assert ((ds.mean > 0.05) & (ds.mean < 0.6)).all()


@pytest.mark.skipif(SHARED is None, reason="shared data folder not present")
def test_shared_data_dir_from_env(monkeypatch):
    monkeypatch.setenv("NAS_DATA_DIR", str(SHARED))
    ds = load_dataset("mnist:rows", train_subset=100)
    assert ds.kind == "sequence" and ds.input_shape == (28, 28) and ds.x_test.shape == (10000, 28, 28)


# ------------------------------------------------------------------------------------------------ bad input


def _npz_case(**override):
    def make(tmp_path):
        return f"npz:{write_npz(tmp_path / 'bad.npz', **override)}", {}
    return make


def _named(name, **kwargs):
    return lambda tmp_path: (name, kwargs)


def _mnist_with_bad_label(tmp_path):
    write_npz(tmp_path / "mnist.npz", y_test=np.full(15, 12, dtype=np.uint8))
    return "mnist", {"data_dir": tmp_path}


def _not_a_zip(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip file")
    return f"npz:{tmp_path / 'junk.npz'}", {}


def _empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return f"folder:{tmp_path / 'empty'}", {}


def _class_without_images(tmp_path):
    root = write_folder(tmp_path / "f")
    (root / "zebra").mkdir()
    return f"folder:{root}", {}


def _unreadable_image(tmp_path):
    root = write_folder(tmp_path / "f")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG garbage")
    return f"folder:{root}", {}


def _mixed_sizes(tmp_path):
    from PIL import Image

    root = write_folder(tmp_path / "f")
    Image.new("L", (9, 9)).save(root / "eel" / "big.png")
    return f"folder:{root}", {}


def _cifar_missing_batch(tmp_path):
    write_cifar_tarball(tmp_path / CIFAR10_TARBALL, skip=("data_batch_3",))
    return "cifar10", {"data_dir": tmp_path}


def _cifar_corrupt(tmp_path):
    (tmp_path / CIFAR10_TARBALL).write_bytes(b"\x1f\x8b truncated")
    return "cifar10", {"data_dir": tmp_path}


BAD_INPUTS = [
    ("unknown", _named("imagenet"), "unknown dataset 'imagenet'"),
    ("lists-known", _named("imagenet"), "known: digits, mnist"),
    ("typo", _named("mnsit"), "did you mean 'mnist'"),
    ("missing-file", lambda p: ("mnist", {"data_dir": p}), "set NAS_DATA_DIR or pass --data-dir"),
    ("missing-file-where", lambda p: ("fashion_mnist", {"data_dir": p}), "fashion_mnist.npz"),
    ("missing-cifar", lambda p: ("cifar10", {"data_dir": p}), "cifar10_small.npz"),
    ("missing-npz", lambda p: (f"npz:{p / 'nope.npz'}", {}), "npz file not found"),
    ("missing-key", _npz_case(y_test=None), "missing array(s) y_test"),
    ("x-dtype", _npz_case(x_train=np.zeros((60, 6, 6), np.float32)), "x_train has dtype float32, expected uint8"),
    ("x-shape", _npz_case(x_train=np.zeros((60, 36), np.uint8)), "x_train has shape (60, 36), expected (N, H, W)"),
    ("channels-first", _npz_case(x_test=np.zeros((15, 3, 6, 6), np.uint8)), "(N, H, W, C) channels-last"),
    ("test-size", _npz_case(x_test=np.zeros((15, 5, 5), np.uint8)),
     "x_test images have shape (5, 5, 1) but x_train images (6, 6, 1)"),
    ("y-float", _npz_case(y_train=np.zeros(60, np.float32)), "y_train has dtype float32, expected an integer"),
    ("y-shape", _npz_case(y_train=np.zeros((60, 1), np.uint8)), "y_train has shape (60, 1), expected (N,)"),
    ("length-mismatch", _npz_case(y_train=np.zeros(59, np.uint8)), "x_train has 60 images but y_train has 59"),
    ("label-range", _npz_case(y_test=np.full(15, 7, np.uint8)), "y_test has label 7 out of range 0..2"),
    ("negative-label", _npz_case(y_train=np.arange(60, dtype=np.int64) % 3 - 1), "y_train has negative label -1"),
    ("one-class", _npz_case(y_train=np.zeros(60, np.uint8), y_test=np.zeros(15, np.uint8)),
     "y_train has a single class"),
    ("label-range-mnist", _mnist_with_bad_label, "y_test has label 12 out of range 0..9"),
    ("not-a-zip", _not_a_zip, "not a readable .npz file"),
    ("empty-folder", _empty_folder, "image folder is empty"),
    ("class-without-images", _class_without_images, "class folder 'zebra' has no images"),
    ("unreadable-image", _unreadable_image, "broken.png: unreadable image"),
    ("mixed-sizes", _mixed_sizes, "all images must have the same size"),
    ("cifar-missing-batch", _cifar_missing_batch, "CIFAR-10 archive has no data_batch_3"),
    ("cifar-corrupt", _cifar_corrupt, "not a readable tar.gz archive"),
    ("rows-of-sequence", _named("selective_copy:16:rows"), "'rows' view needs an image dataset"),
    ("copy-length-text", _named("selective_copy:long"), "needs an integer LENGTH"),
    ("copy-length-range", _named("selective_copy:2"), "LENGTH must be in 8..16384"),
    ("val-fraction", _named("digits", val_fraction=0.0), "val_fraction must be in (0, 1)"),
    ("train-subset", _named("digits", train_subset=1), "train_subset must be an integer >= 2"),
    ("too-few-for-val", lambda p: (f"npz:{write_npz(p / 'one.npz', n_train=2, classes=2)}", {}),
     "too few to carve a validation split"),
]


@pytest.mark.parametrize("make,fragment", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input(tmp_path, make, fragment):
    name, kwargs = make(tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset(name, **kwargs)
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg
