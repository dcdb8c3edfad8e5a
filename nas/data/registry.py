"""The dataset registry: the extension point for dataset SOURCES.

Every name :func:`nas.data.load_dataset` accepts resolves to an entry of :data:`DATASETS` (a
:class:`nas.registry.Registry`):

* a plain name (``digits``, ``mnist``, ``fashion_mnist``, ``cifar10``) is the entry registered under that name.
  Names are matched as given, else in lower case; :data:`ALIASES` maps other spellings (``fmnist``, ``cifar``...);
* a prefixed family (``npz:PATH``, ``folder:PATH``, ``selective_copy:LENGTH``) is the entry registered under the
  prefix and marked with :func:`family`; it receives the text after the first colon;
* the views ``NAME:rows`` / ``NAME:pixels`` are not entries: :func:`nas.data.load_dataset` strips the suffix, loads
  ``NAME`` and converts it (:mod:`nas.data.views`), for any image dataset, registered by you or built in.

Every entry is a loader with this signature (:class:`Loader`)::

    def load(name: str, arg: str | None, *, data_dir: Path, val_fraction: float, seed: int,
             train_subset: int | None) -> Dataset

``name``
    for a plain entry the registered name (aliases resolved); for a family the whole name as given (stripped, view
    suffix removed), e.g. ``"npz:/data/x.npz"``. Use it as the :class:`~nas.data.dataset.Dataset`'s name.
``arg``
    ``None`` for a plain entry; for a family the text after the first colon (``""`` when there is none).
``data_dir``
    the data folder, already resolved (:func:`nas.data.paths.resolve_data_dir`).
``val_fraction``, ``seed``, ``train_subset``
    already checked by ``load_dataset``; pass them on to :func:`nas.data.splits.image_dataset` (npz-style arrays
    with a test set: checks them, then splits) or :func:`nas.data.splits.assemble` (after carving a fixed test
    split with :func:`nas.data.splits.stratified_holdout` and ``TEST_SPLIT_SEED``). These carve the class-stratified
    train / val split, compute the per-channel normalisation statistics on the train split and wrap everything as
    CPU tensors, exactly as for the built-in datasets.

It returns a CPU :class:`~nas.data.dataset.Dataset` (``load_dataset`` applies a view and moves it to the device)
and raises :class:`~nas.errors.DataError` for missing or malformed input.

Adding a dataset from your own module (any module imported before ``load_dataset`` is called)::

    from nas.data.registry import DATASETS
    from nas.data.splits import image_dataset, read_npz

    @DATASETS.register("my_data")
    def load_my_data(name, arg, *, data_dir, val_fraction, seed, train_subset):
        path = data_dir / "my_data.npz"
        # any dict of uint8 x_train / x_test (N, H, W) or (N, H, W, C) and integer y_train / y_test will do
        arrays = read_npz(path)
        return image_dataset(name, arrays, source=str(path), num_classes=None, file=path,
                             val_fraction=val_fraction, seed=seed, train_subset=train_subset)

    load_dataset("my_data"); load_dataset("my_data:rows")

A family is registered under its prefix and marked with the placeholder :func:`nas.data.dataset_names` shows::

    @DATASETS.register("my_family")
    @family("ARG")
    def load_my_family(name, arg, *, data_dir, val_fraction, seed, train_subset): ...

Registration order is the order of :func:`nas.data.dataset_names` (plain names first, then families, then views).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from nas.data.dataset import Dataset
from nas.errors import DataError
from nas.registry import Registry


class Loader(Protocol):
    """The signature of a dataset source (see the module doc)."""

    def __call__(self, name: str, arg: str | None, *, data_dir: Path, val_fraction: float, seed: int,
                 train_subset: int | None) -> Dataset: ...


DATASETS: Registry[Loader] = Registry("dataset", error=DataError, key="dataset")

# Other spellings of registered plain names (lower case).
ALIASES = {"fashion-mnist": "fashion_mnist", "fmnist": "fashion_mnist", "cifar-10": "cifar10", "cifar": "cifar10"}

L = TypeVar("L", bound=Callable)


def family(placeholder: str) -> Callable[[L], L]:
    """Mark a loader as a prefixed family: register it under its prefix, and ``PREFIX:ARG`` calls it with
    ``arg=ARG``; :func:`nas.data.dataset_names` lists it as ``PREFIX:PLACEHOLDER``."""
    if not isinstance(placeholder, str) or not placeholder:
        raise TypeError(f"a family's placeholder is a non-empty string, got {placeholder!r}")

    def mark(loader: L) -> L:
        loader.family_placeholder = placeholder
        return loader

    return mark


def family_placeholder(loader: Callable) -> str | None:
    """The placeholder of a family loader (``"PATH"`` for ``npz``), ``None`` for a plain one."""
    return getattr(loader, "family_placeholder", None)


def find_loader(name: str) -> tuple[str, Loader, str | None] | None:
    """``(registered name, loader, arg)`` for dataset ``name`` (no view suffix), or ``None`` if nothing matches:
    a plain entry (as given, else lower case with :data:`ALIASES` applied; ``arg`` is ``None``), else the family
    registered under the prefix before the first colon (``arg`` is the rest)."""
    lower = name.lower()
    for key in (name, ALIASES.get(lower, lower)):
        if key in DATASETS and family_placeholder(DATASETS.get(key)) is None:
            return key, DATASETS.get(key), None
    prefix, _, arg = name.partition(":")
    for key in (prefix, prefix.lower()):
        if key in DATASETS and family_placeholder(DATASETS.get(key)) is not None:
            return key, DATASETS.get(key), arg
    return None
