"""The :class:`Dataset` object: a classification dataset held as tensors on one device, with its batching,
normalisation and on-device augmentation (random crop with zero padding, horizontal flip).

Batches are produced by :meth:`Dataset.batches` directly from the tensors on their device (no DataLoader):
indexing, augmentation and normalisation all run as batched tensor operations on the data's device.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterator

import torch

from nas.errors import DataError


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

        Indexing, augmentation and normalisation run on a block of whole batches at once (:func:`block_batches`,
        up to ``BLOCK_BYTES`` of float32 input), and each batch is a slice of its block: on a GPU each of those
        operations is a kernel launch, and a small model's step is bound by its launches.
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
        block = batch_size * block_batches(batch_size, x[0].numel())
        for first in range(0, stop, block):
            last = min(first + block, stop)
            if order is None:
                xs, ys = x[first:last], y[first:last]
            else:
                idx = order[first:last]
                xs, ys = x.index_select(0, idx), y.index_select(0, idx)
            if do_aug:
                xs = self.augment_batch(xs, generator=generator)
            xs = self.normalize(xs)
            for start in range(0, last - first, batch_size):
                yield xs[start:start + batch_size], ys[start:start + batch_size]

    def augment_batch(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Apply this dataset's augmentations to a raw image batch ``(B, C, H, W)``; shape and dtype are kept."""
        if self.kind != "image":
            return x
        if "crop" in self.augment:
            x = random_crop(x, crop_padding(x.shape[-2]), generator=generator)
        if "flip" in self.augment:
            x = random_flip(x, generator=generator)
        return x


BLOCK_BYTES = 32 * 2**20  # float32 input of one block of batches (see Dataset.batches)


def block_batches(batch_size: int, values_per_example: int) -> int:
    """Whole batches per block in :meth:`Dataset.batches`: as many as fit ``BLOCK_BYTES`` of float32 input, at
    least one (e.g. 5 batches of 512 CIFAR-10 images, 42 batches of 64)."""
    return max(1, BLOCK_BYTES // (4 * values_per_example * batch_size))


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
