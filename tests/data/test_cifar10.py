"""nas.data.cifar10: the official tarball's parser (restricted unpickler) and the download."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from nas.data import CIFAR10_TARBALL, download_cifar10, load_dataset, read_cifar10_tarball
from nas.errors import DataError
from tests.data.helpers import write_cifar_tarball


def test_cifar_tarball_parser(tmp_path):
    path = tmp_path / CIFAR10_TARBALL
    batches = write_cifar_tarball(path)
    arrays = read_cifar10_tarball(path)
    assert arrays["x_train"].shape == (20, 32, 32, 3) and arrays["x_test"].shape == (4, 32, 32, 3)
    assert arrays["x_train"].dtype == np.uint8
    first = batches["data_batch_1"][b"data"][0]
    np.testing.assert_array_equal(arrays["x_train"][0, :, :, 0], first[:1024].reshape(32, 32))  # red plane
    np.testing.assert_array_equal(arrays["x_train"][0, :, :, 2], first[2048:].reshape(32, 32))  # blue plane
    assert arrays["y_train"].tolist() == list(range(10)) * 2
    # load_dataset finds the tarball in the data dir (no npz there), without checking the official md5
    ds = load_dataset("cifar10", data_dir=tmp_path, val_fraction=0.5)
    assert (ds.input_shape, ds.num_classes, ds.augment) == ((3, 32, 32), 10, ("crop", "flip"))
    assert len(ds.y_train) + len(ds.y_val) == 20 and len(ds.y_test) == 4
    np.testing.assert_array_equal(ds.x_test.numpy(), arrays["x_test"].transpose(0, 3, 1, 2))
    with pytest.raises(DataError, match="md5"):
        read_cifar10_tarball(path, verify_md5=True)


def test_cifar_tarball_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.tar.gz"
    write_cifar_tarball(path, extra={"test_batch": pickle.dumps({b"data": Evil()}, protocol=2)})
    with pytest.raises(DataError, match="test_batch.*not allowed"):
        read_cifar10_tarball(path)


def test_download_offline_is_a_clear_error(tmp_path):
    # a closed local port stands in for being offline; nothing is fetched from the internet
    with pytest.raises(DataError, match="cannot download CIFAR-10") as info:
        download_cifar10(tmp_path, timeout=2, url="http://127.0.0.1:9/cifar-10-python.tar.gz")
    assert "\n" not in str(info.value)
    assert not list(tmp_path.glob("*.part"))
