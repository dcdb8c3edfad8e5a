"""Loading a dataset by name: :func:`load_dataset` checks the split arguments, finds the name's source in the
registry (:mod:`nas.data.registry`), applies a sequence view (:mod:`nas.data.views`) and moves the result to the
device; :func:`dataset_names` lists the names it accepts."""
from __future__ import annotations

import difflib
import os

from nas.data.dataset import Dataset
from nas.data.paths import resolve_data_dir
from nas.data.registry import DATASETS, family_placeholder, find_loader
from nas.data.views import VIEWS, sequence_view
from nas.errors import DataError


def dataset_names() -> list[str]:
    """The dataset names :func:`load_dataset` accepts (patterns in upper case), for help texts and errors: the
    registry's plain names, then its families as ``PREFIX:PLACEHOLDER``, then the views, each in registration
    order."""
    entries = DATASETS.items()
    plain = [name for name, loader in entries if family_placeholder(loader) is None]
    families = [f"{name}:{family_placeholder(loader)}" for name, loader in entries
                if family_placeholder(loader) is not None]
    return plain + families + [f"NAME:{view}" for view in VIEWS]


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    device="cpu",
    val_fraction: float = 0.1,
    seed: int = 0,
    train_subset: int | None = None,
) -> Dataset:
    """Load dataset ``name`` (see the module doc / :func:`dataset_names`) onto ``device``.

    ``train_subset`` caps the training pool (train + val together, before the val carve) at that many examples,
    chosen class-balanced and deterministically for ``seed``. ``val_fraction`` of the (possibly capped) pool,
    stratified by class, becomes the validation split. The test split never depends on ``seed``.
    """
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"empty dataset name; known: {', '.join(dataset_names())}", key="dataset")
    if not (0.0 < val_fraction < 1.0):
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}", key="val_fraction")
    if train_subset is not None and (isinstance(train_subset, bool) or int(train_subset) != train_subset
                                     or train_subset < 2):
        raise DataError(f"train_subset must be an integer >= 2, got {train_subset}", key="train_subset")
    name = name.strip()
    view = None
    base = name
    for suffix in (":" + v for v in VIEWS):
        if name.endswith(suffix) and len(name) > len(suffix):
            view, base = suffix[1:], name[: -len(suffix)]
            break
    ds = _load_base(base, data_dir=data_dir, val_fraction=val_fraction, seed=seed, train_subset=train_subset)
    if view is not None:
        if ds.kind != "image":
            raise DataError(f"'{view}' view needs an image dataset, but {base!r} is a {ds.kind} dataset", key="dataset")
        ds = sequence_view(ds, view)
        ds.name = name
    return ds.to(device)


def _load_base(name: str, *, data_dir, val_fraction: float, seed: int, train_subset: int | None) -> Dataset:
    found = find_loader(name)
    if found is None:
        known = dataset_names()
        close = difflib.get_close_matches(name.lower(), DATASETS.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"unknown dataset {name!r}{hint}; known: {', '.join(known)}", key="dataset")
    key, loader, arg = found
    ds = loader(key if arg is None else name, arg, data_dir=resolve_data_dir(data_dir), val_fraction=val_fraction,
                seed=seed, train_subset=train_subset)
    if not isinstance(ds, Dataset):
        raise TypeError(f"dataset loader {key!r} ({getattr(loader, '__qualname__', loader)}) returned "
                        f"{type(ds).__name__}, expected a nas.data.Dataset")
    return ds
