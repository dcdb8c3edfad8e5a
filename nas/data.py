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
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import http.client
import io
import math
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from nas.errors import DataError

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
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TARBALL = "cifar-10-python.tar.gz"
CIFAR10_SIZE = 170498071  # bytes of the official tarball

DEFAULT_DATA_DIR = "~/.cache/nas/data"
TEST_SPLIT_SEED = 20240607  # fixed: test splits we carve ourselves never depend on the user's seed
TEST_FRACTION = 0.2  # share of the examples held out as test for sources without a test set

# Synthetic selective-copy task: NUM_TOKENS binary symbols, one per equal segment of the sequence.
SC_TOKENS = 4
SC_POOL = 4000
SC_TEST = 1000
SC_MIN_LENGTH = 8
SC_MAX_LENGTH = 16384

_BUILTIN = ("digits", "mnist", "fashion_mnist", "cifar10")
_ALIASES = {"fashion-mnist": "fashion_mnist", "fmnist": "fashion_mnist", "cifar-10": "cifar10", "cifar": "cifar10"}
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def dataset_names() -> list[str]:
    """The dataset names :func:`load_dataset` accepts (patterns in upper case), for help texts and errors."""
    return list(_BUILTIN) + ["npz:PATH", "folder:PATH", "selective_copy:LENGTH", "NAME:rows", "NAME:pixels"]


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$NAS_DATA_DIR``, else ``~/.cache/nas/data`` (user-expanded)."""
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get("NAS_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


# ---------------------------------------------------------------------------------------------------------------
# The dataset object
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A classification dataset held as tensors on one device.

    ``x_*`` are ``uint8`` (images ``(N, C, H, W)``, sequences ``(N, L, C)``) or ``float32`` (sequences only, already
    scaled); ``y_*`` are ``int64``. ``mean`` / ``std`` are per channel in the [0, 1] scale, computed on the train split
    (for sequence views of images: the image's channel statistics tiled over the step's features; for the synthetic
    one-hot task: 0 and 1, so inputs stay exactly one-hot).
    """

    name: str
    kind: str  # "image" | "sequence"
    num_classes: int
    input_shape: tuple  # image: (C, H, W); sequence: (L, C)
    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_val: torch.Tensor = field(repr=False)
    y_val: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    mean: torch.Tensor = field(repr=False)
    std: torch.Tensor = field(repr=False)
    augment: tuple = ()
    source: str = ""  # where the data came from (file / folder / generator)
    # Indices into the training pool (the source's training set) of the train and val splits, for provenance.
    indices: dict = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, kind={self.kind}, classes={self.num_classes}, input_shape={self.input_shape}, "
            f"train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)}, device={self.device}, "
            f"augment={self.augment})"
        )

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw ``(x, y)`` tensors of ``split`` ("train", "val" or "test")."""
        if split not in ("train", "val", "test"):
            raise DataError(f"unknown split {split!r}, expected 'train', 'val' or 'test'", key="split")
        return getattr(self, "x_" + split), getattr(self, "y_" + split)

    def size(self, split: str) -> int:
        return int(self.split(split)[1].shape[0])

    def to(self, device) -> "Dataset":
        """A copy with every tensor on ``device`` (the same object if it is already there)."""
        device = torch.device(device)
        if self.x_train.device == device:
            return self
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return dataclasses.replace(self, **moved)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``uint8`` batch -> float32: ``x / 255`` then ``(x - mean) / std`` per channel. Float input (an already
        scaled float32 sequence) is returned as float32 unchanged."""
        if x.dtype != torch.uint8:
            return x.float()
        mean = self.mean.to(x.device)
        std = self.std.to(x.device)
        if self.kind == "image":
            shape = (1, -1, 1, 1)
        else:
            shape = (1, 1, -1)
        return (x.float().div_(255.0) - mean.view(shape)).div_(std.view(shape))

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        augment: bool = False,
        fraction: float = 1.0,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield normalised float ``(x, y)`` batches of ``split`` on the data's device.

        ``fraction`` uses only the first ``ceil(fraction * N)`` examples of the split (the train split is stored in a
        seeded, class-interleaved order, so every prefix of it is a class-balanced random subset). ``shuffle`` draws
        a permutation from ``generator`` (a CPU generator; the random numbers are drawn on the CPU and moved, so the
        result is the same on every device). ``augment`` applies this dataset's augmentations (``self.augment``).
        ``drop_last`` drops a final short batch, unless it would be the only one.
        """
        x, y = self.split(split)
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}", key="batch_size")
        if not (0.0 < fraction <= 1.0):
            raise DataError(f"fraction must be in (0, 1], got {fraction}", key="fraction")
        n = min(len(y), max(1, math.ceil(fraction * len(y))))
        if shuffle:
            order = torch.randperm(n, generator=generator).to(x.device)
        else:
            order = None
        stop = n
        if drop_last and n >= batch_size:
            stop = n - n % batch_size
        do_aug = augment and self.kind == "image" and bool(self.augment)
        for start in range(0, stop, batch_size):
            end = min(start + batch_size, stop)
            if order is None:
                xb, yb = x[start:end], y[start:end]
            else:
                idx = order[start:end]
                xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            if do_aug:
                xb = self.augment_batch(xb, generator=generator)
            yield self.normalize(xb), yb

    def augment_batch(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply this dataset's augmentations to a raw image batch ``(B, C, H, W)``; shape and dtype are kept."""
        if self.kind != "image":
            return x
        if "crop" in self.augment:
            x = random_crop(x, crop_padding(x.shape[-2]), generator=generator)
        if "flip" in self.augment:
            x = random_flip(x, generator=generator)
        return x


def crop_padding(height: int) -> int:
    """Zero padding for random-crop augmentation: 4 pixels for 28..32-pixel images, 1 for 8x8 images."""
    return max(1, round(height / 8))


def random_crop(x: torch.Tensor, pad: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop of the same size from a zero-padded batch ``(B, C, H, W)``, one shift per image, by gathering
    from one padded tensor (works for any dtype, on any device)."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    shifts = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(x.device)
    rows = (shifts[0][:, None] + torch.arange(h, device=x.device)[None, :])  # (B, H)
    cols = (shifts[1][:, None] + torch.arange(w, device=x.device)[None, :])  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image of ``(B, C, H, W)`` horizontally with probability 1/2."""
    mask = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


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
    for suffix in (":rows", ":pixels"):
        if name.endswith(suffix) and len(name) > len(suffix):
            view, base = suffix[1:], name[: -len(suffix)]
            break
    ds = _load_base(base, data_dir=data_dir, val_fraction=val_fraction, seed=seed, train_subset=train_subset)
    if view is not None:
        if ds.kind != "image":
            raise DataError(f"'{view}' view needs an image dataset, but {base!r} is a {ds.kind} dataset", key="dataset")
        ds = _sequence_view(ds, view)
        ds.name = name
    return ds.to(device)


def _load_base(name: str, *, data_dir, val_fraction: float, seed: int, train_subset: int | None) -> Dataset:
    split_args = dict(val_fraction=val_fraction, seed=seed, train_subset=train_subset)
    lower = name.lower()
    lower = _ALIASES.get(lower, lower)
    if lower == "digits":
        return _load_digits(**split_args)
    if lower in ("mnist", "fashion_mnist"):
        path = resolve_data_dir(data_dir) / f"{lower}.npz"
        if not path.is_file():
            raise _missing(lower, [path])
        arrays = _read_npz(path)
        return _image_dataset(lower, arrays, source=str(path), num_classes=10, file=path, **split_args)
    if lower == "cifar10":
        return _load_cifar10(resolve_data_dir(data_dir), **split_args)
    prefix, _, arg = name.partition(":")
    prefix = prefix.lower()
    if prefix == "npz" and arg:
        path = Path(arg).expanduser()
        if not path.is_file():
            raise DataError(f"npz file not found (from dataset name {name!r})", file=path, key="dataset")
        return _image_dataset(name, _read_npz(path), source=str(path), num_classes=None, file=path, **split_args)
    if prefix == "folder" and arg:
        return _load_folder(name, Path(arg).expanduser(), **split_args)
    if prefix == "selective_copy":
        try:
            length = int(arg)
        except ValueError:
            raise DataError(f"selective_copy needs an integer LENGTH, e.g. selective_copy:1024, got {name!r}",
                            key="dataset") from None
        return _load_selective_copy(length, **split_args)
    known = dataset_names()
    close = difflib.get_close_matches(lower, list(_BUILTIN) + ["selective_copy"], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DataError(f"unknown dataset {name!r}{hint}; known: {', '.join(known)}", key="dataset")


def _missing(name: str, looked: list[Path], extra: str = "") -> DataError:
    where = ", ".join(str(p) for p in looked)
    return DataError(
        f"dataset {name!r} not found: looked for {where}; set NAS_DATA_DIR or pass --data-dir (data_dir=) "
        f"to the folder holding it{extra}",
        key="dataset",
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of an npz file, read without pickle."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in _NPZ_KEYS if k not in f.files]
            if missing:
                raise DataError(f"missing array(s) {', '.join(missing)}; expected keys {', '.join(_NPZ_KEYS)}",
                                file=path, key=missing[0])
            return {k: f[k] for k in _NPZ_KEYS}
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"not a readable .npz file ({msg})", file=path) from None


def _check_arrays(arrays: dict[str, np.ndarray], *, file=None, num_classes: int | None) -> tuple:
    """Validate npz-style arrays; return (x_train, y_train, x_test, y_test, num_classes) with x as (N, C, H, W)."""
    xs = {}
    for split in ("train", "test"):
        xk, yk = "x_" + split, "y_" + split
        x, y = arrays[xk], arrays[yk]
        if x.dtype != np.uint8:
            raise DataError(f"{xk} has dtype {x.dtype}, expected uint8 (pixel values 0..255)", file=file, key=xk)
        if x.ndim == 3:
            x = x[:, None, :, :]
        elif x.ndim == 4 and 1 <= x.shape[3] <= 4:
            x = x.transpose(0, 3, 1, 2)
        else:
            raise DataError(f"{xk} has shape {tuple(x.shape)}, expected (N, H, W) grey or (N, H, W, C) "
                            "channels-last with C <= 4", file=file, key=xk)
        if x.shape[0] == 0:
            raise DataError(f"{xk} is empty", file=file, key=xk)
        if min(x.shape[2:]) < 1:
            raise DataError(f"{xk} has shape {tuple(arrays[xk].shape)} with an empty image axis", file=file, key=xk)
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{yk} has dtype {y.dtype}, expected an integer type (uint8)", file=file, key=yk)
        if y.ndim != 1:
            raise DataError(f"{yk} has shape {tuple(y.shape)}, expected (N,)", file=file, key=yk)
        if len(y) != x.shape[0]:
            raise DataError(f"{xk} has {x.shape[0]} images but {yk} has {len(y)} labels", file=file, key=yk)
        xs[split] = (x, y.astype(np.int64))
    (x_tr, y_tr), (x_te, y_te) = xs["train"], xs["test"]
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(f"x_test images have shape {_hwc(x_te)} but x_train images {_hwc(x_tr)}", file=file,
                        key="x_test")
    for yk, y in (("y_train", y_tr), ("y_test", y_te)):
        if int(y.min()) < 0:
            raise DataError(f"{yk} has negative label {int(y.min())}; labels must be 0..num_classes-1", file=file,
                            key=yk)
    if num_classes is None:
        num_classes = int(y_tr.max()) + 1
        if num_classes < 2:
            raise DataError(f"y_train has a single class ({num_classes - 1}); need at least 2", file=file,
                            key="y_train")
    for yk, y in (("y_train", y_tr), ("y_test", y_te)):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise DataError(f"{yk} has label {bad} out of range 0..{num_classes - 1}", file=file, key=yk)
    return x_tr, y_tr, x_te, y_te, num_classes


def _hwc(x: np.ndarray) -> tuple:
    c, h, w = x.shape[1:]
    return (h, w, c)


def _image_dataset(name, arrays, *, source, num_classes, file, val_fraction, seed, train_subset,
                   augment: tuple | None = None) -> Dataset:
    x_tr, y_tr, x_te, y_te, num_classes = _check_arrays(arrays, file=file, num_classes=num_classes)
    if augment is None:
        augment = ("crop", "flip") if x_tr.shape[1] >= 3 else ("crop",)
    return _assemble(name, "image", num_classes, x_tr, y_tr, x_te, y_te, augment=augment, source=source,
                     val_fraction=val_fraction, seed=seed, train_subset=train_subset)


# ---------------------------------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------------------------------


def _balanced_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(len(y))`` in which every prefix is as class-balanced as possible:
    the k-th example of every class (in a random order) comes before the (k+1)-th of any class."""
    perm = rng.permutation(len(y))
    ys = y[perm]
    rank = np.empty(len(y), dtype=np.int64)
    for c in np.unique(ys):
        pos = np.flatnonzero(ys == c)
        rank[pos] = np.arange(len(pos))
    return perm[np.lexsort((np.arange(len(y)), rank))]


def _stratified_holdout(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of ``y`` into (rest, holdout): ``round(fraction * n_c)`` of each class held out (at least one
    for every class with two or more examples). Both sorted."""
    hold = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        hold.append(rng.permutation(idx)[:k])
    holdout = np.sort(np.concatenate(hold)) if hold else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[holdout] = False
    return np.flatnonzero(mask), holdout


def _assemble(name, kind, num_classes, x_pool, y_pool, x_test, y_test, *, augment, source, val_fraction, seed,
              train_subset, mean=None, std=None) -> Dataset:
    """Carve train / val from the pool (seeded, stratified), compute statistics, wrap as CPU tensors."""
    pool_idx = np.arange(len(y_pool))
    if train_subset is not None and train_subset < len(y_pool):
        order = _balanced_order(y_pool, np.random.default_rng([seed, 1]))
        pool_idx = np.sort(order[: int(train_subset)])
    rest, val_local = _stratified_holdout(y_pool[pool_idx], val_fraction, np.random.default_rng([seed, 2]))
    if len(val_local) == 0 or len(rest) == 0:
        raise DataError(f"{name}: {len(pool_idx)} training examples are too few to carve a validation split "
                        f"(val_fraction={val_fraction})", key="train_subset" if train_subset else "dataset")
    # The train split is stored in a seeded class-interleaved order, so every prefix is class-balanced.
    rest = rest[_balanced_order(y_pool[pool_idx][rest], np.random.default_rng([seed, 3]))]
    train_idx, val_idx = pool_idx[rest], pool_idx[val_local]
    x_train, y_train = x_pool[train_idx], y_pool[train_idx]
    if mean is None:
        mean, std = _channel_stats(x_train, kind)
    return Dataset(
        name=name,
        kind=kind,
        num_classes=int(num_classes),
        input_shape=tuple(int(s) for s in x_pool.shape[1:]),
        x_train=torch.from_numpy(np.ascontiguousarray(x_train)),
        y_train=torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.int64)),
        x_val=torch.from_numpy(np.ascontiguousarray(x_pool[val_idx])),
        y_val=torch.from_numpy(np.ascontiguousarray(y_pool[val_idx], dtype=np.int64)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test)),
        y_test=torch.from_numpy(np.ascontiguousarray(y_test, dtype=np.int64)),
        mean=torch.as_tensor(mean, dtype=torch.float32),
        std=torch.as_tensor(std, dtype=torch.float32),
        augment=tuple(augment),
        source=source,
        indices={"train": train_idx, "val": val_idx},
    )


def _channel_stats(x: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std in the [0, 1] scale, accumulated in float64 over chunks (bounded memory)."""
    c_axis = 1 if kind == "image" else x.ndim - 1
    axes = tuple(a for a in range(x.ndim) if a != c_axis)
    s = np.zeros(x.shape[c_axis])
    ss = np.zeros(x.shape[c_axis])
    count = 0
    for i in range(0, len(x), 4096):
        chunk = x[i:i + 4096].astype(np.float64) / 255.0
        s += chunk.sum(axis=axes)
        ss += (chunk * chunk).sum(axis=axes)
        count += chunk.size // x.shape[c_axis]
    mean = s / max(count, 1)
    var = np.maximum(ss / max(count, 1) - mean * mean, 0.0)
    std = np.sqrt(var)
    std[std < 1e-6] = 1.0  # constant channel: leave it unscaled
    return mean.astype(np.float32), std.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------------


def _load_digits(*, val_fraction, seed, train_subset) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[:, None, :, :]
    y = d.target.astype(np.int64)
    pool, test = _stratified_holdout(y, TEST_FRACTION, np.random.default_rng(TEST_SPLIT_SEED))
    return _assemble("digits", "image", 10, x[pool], y[pool], x[test], y[test], augment=("crop",),
                     source="sklearn.datasets.load_digits", val_fraction=val_fraction, seed=seed,
                     train_subset=train_subset)


def _load_cifar10(root: Path, *, val_fraction, seed, train_subset) -> Dataset:
    split_args = dict(val_fraction=val_fraction, seed=seed, train_subset=train_subset)
    candidates = [root / "cifar10.npz", root / "cifar10_small.npz", root / CIFAR10_TARBALL,
                  root / "cifar-10-batches-py"]
    for path in candidates[:2]:
        if path.is_file():
            return _image_dataset("cifar10", _read_npz(path), source=str(path), num_classes=10, file=path,
                                  augment=("crop", "flip"), **split_args)
    tar = candidates[2]
    if tar.is_file():
        # A file with the official tarball's size is checked against the official md5 before parsing; a file of
        # another size is a user-made tarball in the same layout (e.g. a tiny one in tests) and is parsed as is.
        arrays = read_cifar10_tarball(tar, verify_md5=tar.stat().st_size == CIFAR10_SIZE)
        return _image_dataset("cifar10", arrays, source=str(tar), num_classes=10, file=tar,
                              augment=("crop", "flip"), **split_args)
    folder = candidates[3]
    if folder.is_dir():
        arrays = _read_cifar10_batches(
            lambda member: (folder / member).read_bytes() if (folder / member).is_file() else None, folder)
        return _image_dataset("cifar10", arrays, source=str(folder), num_classes=10, file=folder,
                              augment=("crop", "flip"), **split_args)
    raise _missing("cifar10", candidates,
                   extra=f"; or fetch the official tarball with nas.data.download_cifar10() from {CIFAR10_URL}")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-10 batch files only: it resolves just the globals a pickled numpy array needs, so a
    tampered tarball cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 spell bytes
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")


def _unpickle_batch(raw: bytes) -> dict:
    # The official CIFAR-10 python release stores each batch as a (Python 2) pickled dict -- that pickle *is* the
    # official format, so it is read here, and only here, with encoding="bytes" as the release documents (through a
    # restricted unpickler that resolves only numpy-array globals).
    return _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()


def _read_cifar10_batches(read_member, where) -> dict[str, np.ndarray]:
    """Parse data_batch_1..5 and test_batch via ``read_member(name) -> bytes | None`` into npz-style arrays."""
    parts = {}
    for member in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        raw = read_member(member)
        if raw is None:
            raise DataError(f"CIFAR-10 archive has no {member}", file=where, key=member)
        try:
            d = _unpickle_batch(raw)
            data = np.asarray(d[b"data"])
            labels = np.asarray(d[b"labels"], dtype=np.int64)
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - any parse failure is a malformed file
            raise DataError(f"cannot parse CIFAR-10 batch ({type(e).__name__}: {e})", file=where,
                            key=member) from None
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise DataError(f"CIFAR-10 batch has data {data.dtype}{tuple(data.shape)} and {len(labels)} labels, "
                            "expected uint8 (N, 3072) and N labels", file=where, key=member)
        parts[member] = (data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels)
    train = [parts[f"data_batch_{i}"] for i in range(1, 6)]
    return {
        "x_train": np.concatenate([p[0] for p in train]),
        "y_train": np.concatenate([p[1] for p in train]),
        "x_test": parts["test_batch"][0],
        "y_test": parts["test_batch"][1],
    }


def read_cifar10_tarball(path: str | os.PathLike, *, verify_md5: bool = False) -> dict[str, np.ndarray]:
    """Parse the official ``cifar-10-python.tar.gz`` (``cifar-10-batches-py/data_batch_1..5`` and ``test_batch``)
    into npz-style arrays: ``x_*`` uint8 ``(N, 32, 32, 3)`` channels-last, ``y_*`` int64.

    ``verify_md5`` checks the file against the official md5 first (do so for the downloaded release; a tarball
    you built yourself in the same layout will not match).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("CIFAR-10 tarball not found", file=path)
    if verify_md5:
        got = _md5(path)
        if got != CIFAR10_MD5:
            raise DataError(f"md5 {got} does not match the official CIFAR-10 tarball ({CIFAR10_MD5}); "
                            "the file is corrupt or incomplete: delete it and download again", file=path)
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {}
            for m in tar.getmembers():
                if m.isfile():
                    members.setdefault(m.name.rsplit("/", 1)[-1], m)

            def read_member(name):
                m = members.get(name)
                if m is None:
                    return None
                f = tar.extractfile(m)
                return f.read() if f is not None else None

            return _read_cifar10_batches(read_member, path)
    except DataError:
        raise
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"not a readable tar.gz archive ({type(e).__name__}: {e})", file=path) from None


def download_cifar10(data_dir: str | os.PathLike | None = None, *, timeout: float = 30.0,
                     url: str = CIFAR10_URL) -> Path:
    """Download the official CIFAR-10 python tarball into the data folder (see :func:`resolve_data_dir`), verify its
    md5, and return its path. An existing file with the right md5 is kept. Offline -> :class:`DataError`."""
    root = resolve_data_dir(data_dir)
    dest = root / CIFAR10_TARBALL
    if dest.is_file() and _md5(dest) == CIFAR10_MD5:
        return dest
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create data folder ({e.strerror or e})", file=root) from None
    part = dest.with_name(dest.name + ".part")
    h = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise DataError(f"cannot download CIFAR-10 from {url} ({reason}); are you offline? Download it elsewhere "
                        f"and place {CIFAR10_TARBALL} in {root}", file=dest) from None
    if h.hexdigest() != CIFAR10_MD5:
        part.unlink(missing_ok=True)
        raise DataError(f"downloaded file has md5 {h.hexdigest()}, expected {CIFAR10_MD5}; try again", file=dest)
    os.replace(part, dest)
    return dest


def _load_folder(name: str, root: Path, *, val_fraction, seed, train_subset) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    if not root.is_dir():
        raise DataError("image folder not found", file=root, key="dataset")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError("image folder is empty: expected one sub-folder of images per class", file=root)
    files: list[tuple[Path, int]] = []
    for label, cls in enumerate(classes):
        imgs = sorted(p for p in (root / cls).iterdir()
                      if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _IMAGE_EXT)
        if not imgs:
            raise DataError(f"class folder {cls!r} has no images ({', '.join(sorted(_IMAGE_EXT))})",
                            file=root / cls)
        files.extend((p, label) for p in imgs)
    if len(classes) < 2:
        raise DataError(f"image folder has a single class folder {classes[0]!r}; need at least 2", file=root)
    decoded = []
    for p, _ in files:
        try:
            with Image.open(p) as im:
                im.load()
                grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
                decoded.append((im.convert("L") if grey else im.convert("RGB"), grey))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise DataError(f"unreadable image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                            file=p) from None
    all_grey = all(g for _, g in decoded)
    size0 = decoded[0][0].size
    arrays = []
    for (p, _), (im, _) in zip(files, decoded):
        if im.size != size0:
            raise DataError(f"image is {im.size[0]}x{im.size[1]} but {files[0][0].name} is {size0[0]}x{size0[1]}; "
                            "all images must have the same size", file=p)
        a = np.asarray(im if all_grey else im.convert("RGB"), dtype=np.uint8)
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    x = np.stack(arrays)
    y = np.array([label for _, label in files], dtype=np.int64)
    pool, test = _stratified_holdout(y, TEST_FRACTION, np.random.default_rng(TEST_SPLIT_SEED))
    if len(test) == 0:
        raise DataError(f"image folder has too few images ({len(y)}) to split off a test set", file=root)
    augment = ("crop", "flip") if x.shape[1] >= 3 else ("crop",)
    return _assemble(name, "image", len(classes), x[pool], y[pool], x[test], y[test], augment=augment,
                     source=str(root), val_fraction=val_fraction, seed=seed, train_subset=train_subset)


def _sequence_view(ds: Dataset, view: str) -> Dataset:
    """Image dataset -> sequence dataset: rows (L=H, C=W*channels) or pixels (L=H*W, C=channels)."""
    c, h, w = ds.input_shape

    def conv(x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # N, H, W, C
        if view == "rows":
            return x.reshape(x.shape[0], h, w * c).contiguous()
        return x.reshape(x.shape[0], h * w, c).contiguous()

    if view == "rows":
        shape, mean, std = (h, w * c), ds.mean.repeat(w), ds.std.repeat(w)
    else:
        shape, mean, std = (h * w, c), ds.mean.clone(), ds.std.clone()
    return dataclasses.replace(
        ds, kind="sequence", input_shape=shape, augment=(), mean=mean, std=std,
        x_train=conv(ds.x_train), x_val=conv(ds.x_val), x_test=conv(ds.x_test),
    )


def make_selective_copy(length: int, n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic selective-copy classification: ``(x, y)`` with x uint8 ``(n, length, 3)`` one-hot (values 0 / 255)
    and y int64 in ``0..2**SC_TOKENS - 1``.

    The sequence is split into ``SC_TOKENS`` (4) equal segments; each holds exactly one data token (symbol A or B,
    channels 1 and 2) at a uniformly random position, every other step is blank (channel 0). The label is the ordered
    copy of the four symbols read as a binary number (first segment = most significant bit). So the label depends on
    tokens spread over the whole sequence -- each of its bits on a different quarter -- and no proper subset of
    the sequence determines it; a model must both find the tokens and know which quarter each came from.
    """
    if not (SC_MIN_LENGTH <= length <= SC_MAX_LENGTH):
        raise DataError(f"selective_copy LENGTH must be in {SC_MIN_LENGTH}..{SC_MAX_LENGTH}, got {length}",
                        key="dataset")
    rng = np.random.default_rng([seed, length])
    bounds = [(i * length) // SC_TOKENS for i in range(SC_TOKENS + 1)]
    bits = rng.integers(0, 2, size=(n, SC_TOKENS))
    tokens = np.zeros((n, length), dtype=np.uint8)
    rows = np.arange(n)
    for i in range(SC_TOKENS):
        pos = bounds[i] + rng.integers(0, bounds[i + 1] - bounds[i], size=n)
        tokens[rows, pos] = 1 + bits[:, i]
    x = (np.eye(3, dtype=np.uint8) * 255)[tokens]
    y = (bits * (1 << np.arange(SC_TOKENS - 1, -1, -1))).sum(axis=1).astype(np.int64)
    return x, y


def _load_selective_copy(length: int, *, val_fraction, seed, train_subset) -> Dataset:
    # The data themselves are generated with a fixed seed (like a file on disk); ``seed`` only picks the val split.
    x, y = make_selective_copy(length, SC_POOL + SC_TEST, seed=TEST_SPLIT_SEED)
    return _assemble(
        f"selective_copy:{length}", "sequence", 2 ** SC_TOKENS, x[:SC_POOL], y[:SC_POOL], x[SC_POOL:], y[SC_POOL:],
        augment=(), source=f"generated (make_selective_copy, length {length})", val_fraction=val_fraction,
        seed=seed, train_subset=train_subset, mean=np.zeros(3, np.float32), std=np.ones(3, np.float32),
    )
