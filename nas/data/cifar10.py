"""``cifar10``: ``<data_dir>/cifar10.npz``, else ``cifar10_small.npz``, else the official ``cifar-10-python.tar.gz``
(or its extracted ``cifar-10-batches-py/`` folder), read through a restricted unpickler that resolves only the
globals a pickled numpy array needs. :func:`download_cifar10` fetches the official tarball, on request only.
"""
from __future__ import annotations

import hashlib
import http.client
import io
import os
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from nas.data.dataset import Dataset
from nas.data.paths import missing_dataset, resolve_data_dir
from nas.data.registry import DATASETS
from nas.data.splits import image_dataset, read_npz
from nas.errors import DataError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TARBALL = "cifar-10-python.tar.gz"
CIFAR10_SIZE = 170498071  # bytes of the official tarball


@DATASETS.register("cifar10")
def load_cifar10(name: str, arg: str | None, *, data_dir: Path, val_fraction: float, seed: int,
                 train_subset: int | None) -> Dataset:
    root = data_dir
    split_args = dict(val_fraction=val_fraction, seed=seed, train_subset=train_subset)
    candidates = [root / "cifar10.npz", root / "cifar10_small.npz", root / CIFAR10_TARBALL,
                  root / "cifar-10-batches-py"]
    for path in candidates[:2]:
        if path.is_file():
            return image_dataset("cifar10", read_npz(path), source=str(path), num_classes=10, file=path,
                                 augment=("crop", "flip"), **split_args)
    tar = candidates[2]
    if tar.is_file():
        # A file with the official tarball's size is checked against the official md5 before parsing; a file of
        # another size is a user-made tarball in the same layout (e.g. a tiny one in tests) and is parsed as is.
        arrays = read_cifar10_tarball(tar, verify_md5=tar.stat().st_size == CIFAR10_SIZE)
        return image_dataset("cifar10", arrays, source=str(tar), num_classes=10, file=tar,
                             augment=("crop", "flip"), **split_args)
    folder = candidates[3]
    if folder.is_dir():
        arrays = _read_cifar10_batches(
            lambda member: (folder / member).read_bytes() if (folder / member).is_file() else None, folder)
        return image_dataset("cifar10", arrays, source=str(folder), num_classes=10, file=folder,
                             augment=("crop", "flip"), **split_args)
    raise missing_dataset(
        "cifar10", candidates,
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
