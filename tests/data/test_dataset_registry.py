"""nas.data.registry: every built-in source loads through the registry, and a user's dataset registered from outside
the package loads through load_dataset with the same checks, splits and normalisation."""
from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import CIFAR10_TARBALL, Dataset, dataset_names, load_dataset, resolve_data_dir
from nas.data.registry import DATASETS, family, family_placeholder, find_loader
from nas.data.splits import TEST_FRACTION, TEST_SPLIT_SEED, assemble, image_dataset, stratified_holdout
from nas.errors import DataError
from tests.data.helpers import write_cifar_tarball, write_folder, write_npz

TODAYS_NAMES = ["digits", "mnist", "fashion_mnist", "cifar10", "npz:PATH", "folder:PATH", "selective_copy:LENGTH",
                "NAME:rows", "NAME:pixels"]
LOADER_PARAMETERS = [("name", "POSITIONAL_OR_KEYWORD"), ("arg", "POSITIONAL_OR_KEYWORD"), ("data_dir", "KEYWORD_ONLY"),
                     ("val_fraction", "KEYWORD_ONLY"), ("seed", "KEYWORD_ONLY"), ("train_subset", "KEYWORD_ONLY")]


@pytest.fixture
def restore_registry():
    """Undo the test's registrations afterwards (a plugin's entries otherwise last for the process)."""
    saved = DATASETS.snapshot()
    yield
    DATASETS.restore(saved)


def _shared_file(name: str, *candidates: str):
    """The built-in file dataset ``name`` from $NAS_DATA_DIR, skipped with the reason when no candidate is there."""
    def make(tmp_path):
        root = resolve_data_dir()
        if not any((root / c).exists() for c in candidates):
            pytest.skip(f"{name}: none of {', '.join(candidates)} in the data folder {root} (set NAS_DATA_DIR)")
        return name, {"train_subset": 200}
    return make


def _npz_file(tmp_path):
    return f"npz:{write_npz(tmp_path / 'tiny.npz')}", {}


def _image_folder(tmp_path):
    return f"folder:{write_folder(tmp_path / 'imgs', per_class=10)}", {}


# One small case per built-in entry; a new built-in without a case here fails test_builtin_entry_loads.
BUILTIN_CASES = {
    "digits": lambda tmp_path: ("digits", {"train_subset": 200}),
    "mnist": _shared_file("mnist", "mnist.npz"),
    "fashion_mnist": _shared_file("fashion_mnist", "fashion_mnist.npz"),
    "cifar10": _shared_file("cifar10", "cifar10.npz", "cifar10_small.npz", CIFAR10_TARBALL, "cifar-10-batches-py"),
    "npz": _npz_file,
    "folder": _image_folder,
    "selective_copy": lambda tmp_path: ("selective_copy:16", {"train_subset": 200}),
}


def test_dataset_names_are_derived_from_the_registry_in_todays_order():
    assert dataset_names() == TODAYS_NAMES
    assert DATASETS.names() == ["digits", "mnist", "fashion_mnist", "npz", "cifar10", "folder", "selective_copy"]


@pytest.mark.parametrize("entry", DATASETS.names())
def test_builtin_entry_loads(entry, tmp_path):
    loader = DATASETS.get(entry)
    params = inspect.signature(loader).parameters.values()
    assert [(p.name, p.kind.name) for p in params] == LOADER_PARAMETERS  # the signature the registry documents
    assert entry in BUILTIN_CASES, f"built-in dataset {entry!r} has no small case in BUILTIN_CASES"
    name, kwargs = BUILTIN_CASES[entry](tmp_path)
    ds = load_dataset(name, seed=1, **kwargs)
    assert isinstance(ds, Dataset) and ds.name == name and ds.num_classes >= 2
    for split in ("train", "val", "test"):
        x, y = ds.split(split)
        assert len(x) == len(y) > 0 and x.shape[1:] == ds.input_shape
        assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < ds.num_classes
    if "train_subset" in kwargs:
        assert len(ds.y_train) + len(ds.y_val) == kwargs["train_subset"]
    assert not set(ds.indices["train"].tolist()) & set(ds.indices["val"].tolist())
    assert ds.mean.shape == ds.std.shape == (ds.input_shape[0 if ds.kind == "image" else -1],)
    xb, _ = next(ds.batches("train", 16, shuffle=False))
    assert xb.dtype == torch.float32 and xb.shape[1:] == ds.input_shape


@pytest.mark.parametrize("alias,entry", [("fashion-mnist", "fashion_mnist"), ("fmnist", "fashion_mnist"),
                                         ("cifar-10", "cifar10"), ("cifar", "cifar10"), ("MNIST", "mnist")])
def test_aliases_find_their_entry(alias, entry):
    key, loader, arg = find_loader(alias)
    assert (key, loader, arg) == (entry, DATASETS.get(entry), None)


def test_alias_loads(tmp_path):
    write_cifar_tarball(tmp_path / CIFAR10_TARBALL)
    write_npz(tmp_path / "fashion_mnist.npz")
    assert load_dataset("cifar-10", data_dir=tmp_path, val_fraction=0.5).name == "cifar10"
    assert load_dataset("fmnist", data_dir=tmp_path).name == "fashion_mnist"


@pytest.mark.parametrize("name", ["npz", "npz:", "folder:"])
def test_family_without_argument_is_a_clear_error(name):
    with pytest.raises(DataError, match="needs a PATH"):
        load_dataset(name)


# ------------------------------------------------------------------------------------------------ a user's dataset


def _tiny_images(n, seed):
    """Synthetic 3-class RGB 6x6 images whose brightness depends on the class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = np.clip(rng.normal(60 + 60 * y[:, None, None, None], 20, size=(n, 6, 6, 3)), 0, 255).astype(np.uint8)
    return x, y.astype(np.uint8)


def test_user_dataset_loads_with_splits_and_normalisation(restore_registry, tmp_path):
    x_train, y_train = _tiny_images(90, 0)
    x_test, y_test = _tiny_images(30, 1)
    calls = []

    @DATASETS.register("tiny_user")
    def load_tiny_user(name, arg, *, data_dir, val_fraction, seed, train_subset):
        calls.append((name, arg, data_dir))
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        return image_dataset(name, arrays, source="synthetic", num_classes=None, file=None,
                             val_fraction=val_fraction, seed=seed, train_subset=train_subset)

    names = dataset_names()
    assert names.index("cifar10") < names.index("tiny_user") < names.index("npz:PATH")
    ds = load_dataset("tiny_user", data_dir=tmp_path, val_fraction=0.2, seed=3)
    assert calls == [("tiny_user", None, tmp_path)]
    assert (ds.name, ds.kind, ds.num_classes, ds.input_shape, ds.augment) == (
        "tiny_user", "image", 3, (3, 6, 6), ("crop", "flip"))
    # train / val carved from the training arrays, stratified and seeded; test is the user's test set
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (72, 18, 30)
    assert torch.bincount(ds.y_val).tolist() == [6, 6, 6]
    np.testing.assert_array_equal(ds.x_test.numpy(), x_test.transpose(0, 3, 1, 2))
    assert torch.equal(load_dataset("tiny_user", val_fraction=0.2, seed=3).x_val, ds.x_val)
    assert not np.array_equal(load_dataset("tiny_user", val_fraction=0.2, seed=4).indices["val"], ds.indices["val"])
    # normalisation: per-channel statistics of the train split
    train = x_train[ds.indices["train"]].astype(np.float64) / 255
    np.testing.assert_allclose(ds.mean.numpy(), train.mean(axis=(0, 1, 2)), atol=1e-5)
    np.testing.assert_allclose(ds.std.numpy(), train.std(axis=(0, 1, 2)), atol=1e-5)
    xb = torch.cat([xb for xb, _ in ds.batches("train", 32, shuffle=False)])
    assert xb.mean(dim=(0, 2, 3)).abs().max() < 1e-4 and (xb.std(dim=(0, 2, 3)) - 1).abs().max() < 0.02
    # the same options a built-in gets: a class-balanced subset, a sequence view, the argument checks
    sub = load_dataset("tiny_user", train_subset=30)
    assert torch.bincount(torch.cat([sub.y_train, sub.y_val])).tolist() == [10, 10, 10]
    assert load_dataset("tiny_user:rows").input_shape == (6, 18)
    with pytest.raises(DataError, match="val_fraction must be in"):
        load_dataset("tiny_user", val_fraction=1.0)


def test_user_arrays_get_the_builtin_checks(restore_registry):
    x, y = _tiny_images(30, 0)

    @DATASETS.register("tiny_float")
    def load_tiny_float(name, arg, *, data_dir, val_fraction, seed, train_subset):
        arrays = {"x_train": x.astype(np.float32), "y_train": y, "x_test": x, "y_test": y}
        return image_dataset(name, arrays, source="synthetic", num_classes=None, file=Path("tiny_float.npz"),
                             val_fraction=val_fraction, seed=seed, train_subset=train_subset)

    with pytest.raises(DataError, match="x_train has dtype float32, expected uint8"):
        load_dataset("tiny_float")


def test_user_family_without_test_set(restore_registry):
    @DATASETS.register("tiny_family")
    @family("N")
    def load_tiny_family(name, arg, *, data_dir, val_fraction, seed, train_subset):
        x, y = _tiny_images(int(arg), 0)
        x = x.transpose(0, 3, 1, 2)
        pool, test = stratified_holdout(y, TEST_FRACTION, np.random.default_rng(TEST_SPLIT_SEED))
        return assemble(name, "image", 3, x[pool], y[pool], x[test], y[test], augment=("crop",), source="synthetic",
                        val_fraction=val_fraction, seed=seed, train_subset=train_subset)

    assert family_placeholder(load_tiny_family) == "N"
    assert dataset_names()[-3:] == ["tiny_family:N", "NAME:rows", "NAME:pixels"]
    ds = load_dataset("tiny_family:60", seed=2)
    assert ds.name == "tiny_family:60" and (len(ds.y_train) + len(ds.y_val), len(ds.y_test)) == (48, 12)
    assert torch.equal(load_dataset("tiny_family:60", seed=5).x_test, ds.x_test)  # test split fixed


def test_loader_must_return_a_dataset(restore_registry):
    DATASETS.register("not_a_dataset", lambda name, arg, **kwargs: {"x_train": None})
    with pytest.raises(TypeError, match="returned dict, expected a nas.data.Dataset"):
        load_dataset("not_a_dataset")


def test_registrations_are_undone():
    assert not {"tiny_user", "tiny_float", "tiny_family", "not_a_dataset"} & set(DATASETS.names())
