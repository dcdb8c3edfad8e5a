"""Small data files for the nas.data tests: npz files with identifiable images, image folders, CIFAR-10 tarballs in
the official layout, and the shared data folder when it is there."""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch


def _shared_data_dir() -> Path | None:
    env = os.environ.get("NAS_DATA_DIR")
    for cand in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[3] / "shared" / "data"]:
        if (cand / "mnist.npz").is_file():
            return cand
    return None


SHARED = _shared_data_dir()


# ------------------------------------------------------------------------------------------------ helpers


def write_npz(path: Path, n_train=60, n_test=15, classes=3, hw=(6, 6), channels=None, **override):
    """A tiny npz whose images are unique: pixel (0, 0) holds the index, (0, 1) says train (1) or test (2)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n, tag in (("train", n_train, 1), ("test", n_test, 2)):
        shape = (n, *hw) + ((channels,) if channels else ())
        x = rng.integers(0, 256, size=shape, dtype=np.uint8)
        first = x[..., 0] if channels else x  # channel 0
        first[:, 0, 0] = np.arange(n)
        first[:, 0, 1] = tag
        arrays["x_" + split] = x
        arrays["y_" + split] = (np.arange(n) % classes).astype(np.uint8)
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez_compressed(path, **arrays)
    return path


def image_ids(x: torch.Tensor) -> set:
    """(tag, index) identities of images written by write_npz (x is N, C, H, W)."""
    return {(int(a), int(b)) for a, b in zip(x[:, 0, 0, 1], x[:, 0, 0, 0])}


def write_folder(root: Path, classes=("cat", "dog", "eel"), per_class=5, size=(6, 5), mode="L"):
    from PIL import Image

    rng = np.random.default_rng(1)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode).save(root / cls / f"{i}.png")
    (root / "cat" / "notes.txt").write_text("not an image; ignored")
    return root


def cifar_batch(n, seed, *, label_offset=0):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"batch",
        b"labels": [int((i + label_offset) % 10) for i in range(n)],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }


def write_cifar_tarball(path: Path, n_per_batch=4, skip=(), extra=None):
    """A tiny tarball in the official cifar-10-python.tar.gz layout (pickled dicts, protocol 2 like the release)."""
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for i, member in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
            if member in skip:
                continue
            batch = cifar_batch(n_per_batch, i, label_offset=i * n_per_batch)
            raw = extra.get(member) if extra and member in extra else pickle.dumps(batch, protocol=2)
            batches[member] = batch
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return batches
