"""Helpers every source shares: reading and checking npz-style arrays, the class-stratified splits, and assembling
a :class:`~nas.data.dataset.Dataset` (train / val carved from the training pool, per-channel statistics on the
train split).

* ``train`` / ``val``: both carved from the source's TRAINING set by :func:`assemble`. The validation split is
  class-stratified and depends only on ``seed`` (and ``val_fraction`` / ``train_subset``), so it is reproducible.
* ``test``: the source's own test set, or for sources without one a split carved by :func:`stratified_holdout`
  with :data:`TEST_SPLIT_SEED`, which does not depend on ``seed``. Search must never look at it.

A source with npz-style arrays (``x_train, y_train, x_test, y_test``) hands them to :func:`image_dataset`, which
checks them and calls :func:`assemble`.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from nas.data.dataset import Dataset
from nas.errors import DataError

TEST_SPLIT_SEED = 20240607  # fixed: test splits we carve ourselves never depend on the user's seed
TEST_FRACTION = 0.2  # share of the examples held out as test for sources without a test set

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_npz(path: Path) -> dict[str, np.ndarray]:
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


def image_dataset(name, arrays, *, source, num_classes, file, val_fraction, seed, train_subset,
                  augment: tuple | None = None) -> Dataset:
    """An image :class:`Dataset` from npz-style ``arrays`` (``x_*`` uint8 ``(N, H, W)`` or ``(N, H, W, C)``
    channels-last, ``y_*`` integer labels): checked (one-line :class:`DataError` naming ``file`` and the array),
    then split by :func:`assemble`. ``num_classes=None`` takes ``max(y_train) + 1``; ``augment=None`` crops, and
    flips images with 3 or more channels."""
    x_tr, y_tr, x_te, y_te, num_classes = _check_arrays(arrays, file=file, num_classes=num_classes)
    if augment is None:
        augment = ("crop", "flip") if x_tr.shape[1] >= 3 else ("crop",)
    return assemble(name, "image", num_classes, x_tr, y_tr, x_te, y_te, augment=augment, source=source,
                    val_fraction=val_fraction, seed=seed, train_subset=train_subset)


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


def stratified_holdout(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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


def assemble(name, kind, num_classes, x_pool, y_pool, x_test, y_test, *, augment, source, val_fraction, seed,
             train_subset, mean=None, std=None) -> Dataset:
    """Carve train / val from the pool (seeded, stratified), compute statistics, wrap as CPU tensors.

    ``x_pool`` / ``x_test``: uint8 images ``(N, C, H, W)`` (``kind="image"``) or sequences ``(N, L, C)``
    (``kind="sequence"``); ``y_*``: integer labels ``0..num_classes-1``. ``mean`` / ``std`` (per channel, [0, 1]
    scale) default to the train split's statistics."""
    pool_idx = np.arange(len(y_pool))
    if train_subset is not None and train_subset < len(y_pool):
        order = _balanced_order(y_pool, np.random.default_rng([seed, 1]))
        pool_idx = np.sort(order[: int(train_subset)])
    rest, val_local = stratified_holdout(y_pool[pool_idx], val_fraction, np.random.default_rng([seed, 2]))
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
