"""Datasets as device-resident tensors.

Every dataset is loaded once into memory as ``uint8`` tensors (images channels-first ``(N, C, H, W)``,
sequences ``(N, L, C)``) with ``int64`` labels, and split three ways:

* ``train`` / ``val``: both carved from the file's TRAINING set. The validation split is class-stratified and
  depends only on ``seed`` (and ``val_fraction`` / ``train_subset``), so it is reproducible.
* ``test``: the file's own test set (or, for sources without one, a split carved with a fixed seed that does not
  depend on ``seed``). Search must never look at it.

Batches are produced by :meth:`Dataset.batches` directly from the tensors on their device (no DataLoader):
indexing, augmentation (random crop with zero padding, horizontal flip where the dataset allows it) and
normalisation all run as batched tensor operations on the data's device.

Dataset names (see :func:`dataset_names`)::

    digits                 sklearn's bundled 8x8 digits (1 channel, 10 classes); test = fixed 20% split
    mnist, fashion_mnist   <data_dir>/<name>.npz
    cifar10                <data_dir>/cifar10.npz, else cifar10_small.npz, else the official
                           cifar-10-python.tar.gz (or its extracted cifar-10-batches-py/ folder)
    npz:PATH               a user .npz with uint8 x_train, y_train, x_test, y_test
    folder:PATH            one sub-folder per class holding images (all the same size); test = fixed 20% split
    selective_copy:LENGTH  synthetic long-range task (see :func:`make_selective_copy`)
    NAME:rows              sequence view of image dataset NAME: one step per image row, (L=H, C=W*channels)
    NAME:pixels            sequence view of image dataset NAME: one step per pixel, (L=H*W, C=channels)

The data folder is ``data_dir`` if given, else the environment variable ``NAS_DATA_DIR``, else
``~/.cache/nas/data``. Nothing is ever downloaded implicitly; :func:`download_cifar10` does it on request.

Layout (one module per room)::

    dataset.py         the Dataset object: batches, normalisation, on-device augmentation
    splits.py          shared helpers: npz reading and checks, stratified splits, assembling a Dataset
    paths.py           the data folder (resolve_data_dir) and the missing-file error
    registry.py        DATASETS, the registry of sources: the extension point (how to add a dataset)
    load.py            load_dataset and dataset_names
    views.py           NAME:rows / NAME:pixels
    digits.py, npz.py, cifar10.py, folder.py, selective_copy.py   the built-in sources
"""
from __future__ import annotations

# The sources register themselves in DATASETS on import; the order here is the order of dataset_names().
from nas.data import digits, npz, cifar10, folder, selective_copy  # noqa: F401  (imported to register)
from nas.data.cifar10 import CIFAR10_MD5, CIFAR10_SIZE, CIFAR10_TARBALL, CIFAR10_URL, download_cifar10
from nas.data.cifar10 import read_cifar10_tarball
from nas.data.dataset import Dataset, crop_padding, random_crop, random_flip
from nas.data.load import dataset_names, load_dataset
from nas.data.paths import DEFAULT_DATA_DIR, resolve_data_dir
from nas.data.selective_copy import SC_MAX_LENGTH, SC_MIN_LENGTH, SC_POOL, SC_TEST, SC_TOKENS, make_selective_copy
from nas.data.splits import TEST_FRACTION, TEST_SPLIT_SEED

__all__ = [
    "Dataset",
    "load_dataset",
    "dataset_names",
    "resolve_data_dir",
    "read_cifar10_tarball",
    "download_cifar10",
    "make_selective_copy",
    "CIFAR10_URL",
    "CIFAR10_MD5",
    # also public in the single-module nas.data (importable from it unchanged)
    "CIFAR10_TARBALL",
    "CIFAR10_SIZE",
    "DEFAULT_DATA_DIR",
    "TEST_SPLIT_SEED",
    "TEST_FRACTION",
    "SC_TOKENS",
    "SC_POOL",
    "SC_TEST",
    "SC_MIN_LENGTH",
    "SC_MAX_LENGTH",
    "crop_padding",
    "random_crop",
    "random_flip",
]
