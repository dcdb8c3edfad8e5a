"""nas.data.dataset: batches, normalisation and on-device augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.data import load_dataset, random_crop


def test_batches_cover_split_and_normalise():
    ds = load_dataset("digits")
    seen = [y for _, y in ds.batches("val", 50, shuffle=False)]
    assert [len(y) for y in seen] == [50, 50, len(ds.y_val) - 100]
    assert torch.equal(torch.cat(seen), ds.y_val)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = [y for _, y in ds.batches("train", 64, shuffle=True, generator=g1, drop_last=True)]
    b = [y for _, y in ds.batches("train", 64, shuffle=True, generator=g2, drop_last=True)]
    assert all(torch.equal(p, q) for p, q in zip(a, b)) and all(len(y) == 64 for y in a)
    assert sorted(torch.cat(a).tolist()) != torch.cat(a).tolist()  # shuffled
    half = sum(len(y) for _, y in ds.batches("train", 64, shuffle=True, fraction=0.5))
    assert half == -(-len(ds.y_train) // 2)
    x = torch.cat([xb for xb, _ in ds.batches("train", 500, shuffle=False)])
    assert x.dtype == torch.float32
    assert abs(x.mean().item()) < 1e-3 and abs(x.std().item() - 1) < 1e-3


def _gradient_dataset(tmp_path, channels):
    # images that get brighter from left to right: a horizontal flip makes the left half the brighter one
    ramp = np.linspace(50, 250, 16).astype(np.uint8)
    img = np.broadcast_to(ramp, (16, 16))
    if channels:
        img = np.repeat(img[:, :, None], channels, axis=2)
    x = np.ascontiguousarray(np.broadcast_to(img, (40,) + img.shape))
    y = (np.arange(40) % 2).astype(np.uint8)
    path = tmp_path / f"ramp{channels}.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
    return load_dataset(f"npz:{path}", val_fraction=0.25)


@pytest.mark.parametrize("channels,flips", [(None, False), (3, True)])
def test_augmentation_keeps_shape_and_flips_only_where_allowed(tmp_path, channels, flips):
    ds = _gradient_dataset(tmp_path, channels)
    assert ("flip" in ds.augment) is flips
    g = torch.Generator().manual_seed(0)
    raw = ds.x_train
    aug = ds.augment_batch(raw, generator=g)
    assert aug.shape == raw.shape and aug.dtype == torch.uint8
    left = aug[..., :8].float().mean(dim=(1, 2, 3))
    right = aug[..., 8:].float().mean(dim=(1, 2, 3))
    flipped = int((left > right).sum())
    if flips:
        assert 0 < flipped < len(raw)
    else:
        assert flipped == 0
    assert not torch.equal(aug, raw)  # crops moved something
    for xb, _ in ds.batches("train", 8, shuffle=True, generator=g, augment=True):
        assert xb.shape[1:] == raw.shape[1:] and xb.dtype == torch.float32


def test_random_crop_is_a_shifted_window():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (6, 2, 7, 7), dtype=torch.uint8, generator=g)
    out = random_crop(x, 2, generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        windows = [padded[i, :, dy:dy + 7, dx:dx + 7] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


@pytest.mark.parametrize("block_bytes", [1, 64 * 64 * 4 * 3, 2**30])  # one batch per block, three, the whole split
def test_batches_are_slices_of_blocks_with_the_same_batches_whatever_the_block(monkeypatch, block_bytes):
    import nas.data.dataset as dataset

    ds = load_dataset("digits")
    monkeypatch.setattr(dataset, "BLOCK_BYTES", block_bytes)
    calls = []
    augment = dataset.Dataset.augment_batch
    monkeypatch.setattr(dataset.Dataset, "augment_batch",
                        lambda self, x, generator=None: calls.append(len(x)) or augment(self, x, generator=generator))
    g = torch.Generator().manual_seed(3)
    out = list(ds.batches("train", 64, shuffle=True, generator=g, augment=True, drop_last=True))
    n = len(ds.y_train) - len(ds.y_train) % 64
    per_block = dataset.block_batches(64, ds.x_train[0].numel())
    assert [len(y) for _, y in out] == [64] * (n // 64)
    assert len(calls) == -(-(n // 64) // per_block) and sum(calls) == n  # augmented once per block, every example
    order = torch.randperm(len(ds.y_train), generator=torch.Generator().manual_seed(3))[:n]
    assert torch.equal(torch.cat([y for _, y in out]), ds.y_train[order])  # one permutation, whatever the block
    plain = list(ds.batches("val", 50, shuffle=False))
    assert torch.equal(torch.cat([x for x, _ in plain]), ds.normalize(ds.x_val))
