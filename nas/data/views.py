"""Sequence views of image datasets: ``NAME:rows`` (one step per image row, ``(L=H, C=W*channels)``) and
``NAME:pixels`` (one step per pixel, ``(L=H*W, C=channels)``), for any image dataset NAME.

The view's channel statistics are the image's, tiled over the step's features; augmentation is off.
"""
from __future__ import annotations

import dataclasses

import torch

from nas.data.dataset import Dataset

VIEWS = ("rows", "pixels")  # the suffixes load_dataset recognises, in the order dataset_names lists them


def sequence_view(ds: Dataset, view: str) -> Dataset:
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
