"""npz files (uint8 ``x_train, y_train, x_test, y_test``): ``mnist`` and ``fashion_mnist`` as
``<data_dir>/<name>.npz``, and ``npz:PATH`` for a user's file (the number of classes is ``max(y_train) + 1``)."""
from __future__ import annotations

from pathlib import Path

from nas.data.dataset import Dataset
from nas.data.paths import missing_dataset
from nas.data.registry import DATASETS, family
from nas.data.splits import image_dataset, read_npz
from nas.errors import DataError


def load_named_npz(name: str, arg: str | None, *, data_dir: Path, val_fraction: float, seed: int,
                   train_subset: int | None) -> Dataset:
    """``<data_dir>/<name>.npz`` with 10 classes (mnist, fashion_mnist)."""
    split_args = dict(val_fraction=val_fraction, seed=seed, train_subset=train_subset)
    path = data_dir / f"{name}.npz"
    if not path.is_file():
        raise missing_dataset(name, [path])
    arrays = read_npz(path)
    return image_dataset(name, arrays, source=str(path), num_classes=10, file=path, **split_args)


DATASETS.register("mnist", load_named_npz)
DATASETS.register("fashion_mnist", load_named_npz)


@DATASETS.register("npz")
@family("PATH")
def load_npz(name: str, arg: str | None, *, data_dir: Path, val_fraction: float, seed: int,
             train_subset: int | None) -> Dataset:
    split_args = dict(val_fraction=val_fraction, seed=seed, train_subset=train_subset)
    if not arg:
        raise DataError(f"npz needs a PATH, e.g. npz:/data/my.npz, got {name!r}", key="dataset")
    path = Path(arg).expanduser()
    if not path.is_file():
        raise DataError(f"npz file not found (from dataset name {name!r})", file=path, key="dataset")
    return image_dataset(name, read_npz(path), source=str(path), num_classes=None, file=path, **split_args)
