"""Tests of nas.data: every loader on small data, the splits, sequence views, augmentation and bad input."""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import (
    CIFAR10_TARBALL,
    Dataset,
    dataset_names,
    download_cifar10,
    load_dataset,
    make_selective_copy,
    random_crop,
    read_cifar10_tarball,
    resolve_data_dir,
)
from nas.errors import DataError


def _shared_data_dir() -> Path | None:
    env = os.environ.get("NAS_DATA_DIR")
    for cand in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[2] / "shared" / "data"]:
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


# ------------------------------------------------------------------------------------------------ loaders


def test_dataset_names_and_data_dir(monkeypatch, tmp_path):
    names = dataset_names()
    for n in ("digits", "mnist", "fashion_mnist", "cifar10", "npz:PATH", "folder:PATH", "NAME:rows"):
        assert n in names
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)
    assert resolve_data_dir() == Path("~/.cache/nas/data").expanduser()
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    assert resolve_data_dir(tmp_path / "x") == tmp_path / "x"


def test_digits_splits():
    ds = load_dataset("digits", seed=0)
    assert isinstance(ds, Dataset)
    assert (ds.kind, ds.num_classes, ds.input_shape, ds.augment) == ("image", 10, (1, 8, 8), ("crop",))
    for split in ("train", "val", "test"):
        x, y = ds.split(split)
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        assert x.shape[1:] == (1, 8, 8) and len(x) == len(y) > 0
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797
    assert ds.x_train.max() == 255  # 0..16 scaled to 0..255
    tr, va = set(ds.indices["train"].tolist()), set(ds.indices["val"].tolist())
    assert not tr & va and len(tr | va) == len(ds.y_train) + len(ds.y_val)
    assert abs(len(ds.y_val) / (len(ds.y_train) + len(ds.y_val)) - 0.1) < 0.02
    assert torch.bincount(ds.y_val, minlength=10).min() >= 12  # stratified
    assert ds.mean.shape == (1,) and ds.std.shape == (1,)
    # val carved deterministically from the seed; the test split never depends on it
    again, other = load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert torch.equal(again.x_val, ds.x_val) and torch.equal(again.x_train, ds.x_train)
    assert set(other.indices["val"].tolist()) != va
    assert torch.equal(other.x_test, ds.x_test) and torch.equal(other.y_test, ds.y_test)


def test_train_subset_is_class_balanced_and_deterministic():
    ds = load_dataset("digits", train_subset=100, seed=3)
    assert len(ds.y_train) + len(ds.y_val) == 100
    counts = torch.bincount(torch.cat([ds.y_train, ds.y_val]), minlength=10)
    assert counts.tolist() == [10] * 10
    assert torch.equal(load_dataset("digits", train_subset=100, seed=3).x_train, ds.x_train)
    # every prefix of the train split is class-balanced, so a data fraction stays balanced
    assert torch.bincount(ds.y_train[:50], minlength=10).tolist() == [5] * 10


def test_npz_loader_grey(tmp_path):
    path = write_npz(tmp_path / "tiny.npz")
    ds = load_dataset(f"npz:{path}", val_fraction=0.2)
    assert (ds.kind, ds.num_classes, ds.input_shape, ds.augment) == ("image", 3, (1, 6, 6), ("crop",))
    tr, va, te = image_ids(ds.x_train), image_ids(ds.x_val), image_ids(ds.x_test)
    assert len(tr) == len(ds.x_train) and len(va) == len(ds.x_val)
    assert not tr & va and not (tr | va) & te
    assert tr | va == {(1, i) for i in range(60)}  # val carved from the training set
    assert te == {(2, i) for i in range(15)}  # test is the file's test set
    assert len(va) == 12
    # labels travel with their images
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val)):
        assert torch.equal(y, x[:, 0, 0, 0].long() % 3)


def test_npz_loader_colour_is_channels_first(tmp_path):
    path = write_npz(tmp_path / "rgb.npz", hw=(8, 8), channels=3)
    raw = np.load(path)
    ds = load_dataset(f"npz:{path}")
    assert ds.input_shape == (3, 8, 8) and ds.augment == ("crop", "flip")
    assert ds.mean.shape == (3,)
    i = int(ds.x_test[0, 0, 0, 0])
    np.testing.assert_array_equal(ds.x_test[0].numpy(), raw["x_test"][i].transpose(2, 0, 1))


def test_folder_loader(tmp_path):
    root = write_folder(tmp_path / "imgs", per_class=10)
    ds = load_dataset(f"folder:{root}")
    assert (ds.kind, ds.num_classes, ds.input_shape) == ("image", 3, (1, 5, 6))
    total = len(ds.y_train) + len(ds.y_val) + len(ds.y_test)
    assert total == 30 and len(ds.y_test) == 6
    assert torch.bincount(ds.y_test).tolist() == [2, 2, 2]
    # test split is fixed; val depends on the seed
    assert torch.equal(load_dataset(f"folder:{root}", seed=5).x_test, ds.x_test)
    rgb = write_folder(tmp_path / "rgb", mode="RGB")
    ds = load_dataset(f"folder:{rgb}")
    assert ds.input_shape == (3, 5, 6) and ds.augment == ("crop", "flip")


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


@pytest.mark.skipif(SHARED is None, reason="shared data folder (/work/shared/data or NAS_DATA_DIR) not present")
@pytest.mark.parametrize("name,shape,n_test", [
    ("mnist", (1, 28, 28), 10000),
    ("fashion_mnist", (1, 28, 28), 10000),
    ("cifar10", (3, 32, 32), 2000),
])
def test_shared_files(name, shape, n_test):
    ds = load_dataset(name, data_dir=SHARED, train_subset=500)
    assert ds.input_shape == shape and ds.num_classes == 10
    assert len(ds.y_train) + len(ds.y_val) == 500 and len(ds.y_test) == n_test
    assert ds.x_train.dtype == torch.uint8 and ds.x_train.shape[1:] == shape
    assert torch.bincount(torch.cat([ds.y_train, ds.y_val]), minlength=10).tolist() == [50] * 10
    assert ((ds.mean > 0.05) & (ds.mean < 0.6)).all()


@pytest.mark.skipif(SHARED is None, reason="shared data folder not present")
def test_shared_data_dir_from_env(monkeypatch):
    monkeypatch.setenv("NAS_DATA_DIR", str(SHARED))
    ds = load_dataset("mnist:rows", train_subset=100)
    assert ds.kind == "sequence" and ds.input_shape == (28, 28) and ds.x_test.shape == (10000, 28, 28)


def test_sequence_views():
    img = load_dataset("digits")
    rows = load_dataset("digits:rows")
    pix = load_dataset("digits:pixels")
    assert (rows.kind, rows.input_shape, rows.augment, rows.name) == ("sequence", (8, 8), (), "digits:rows")
    assert pix.input_shape == (64, 1) and pix.x_train.shape == (len(img.x_train), 64, 1)
    assert torch.equal(rows.x_train, img.x_train[:, 0])
    assert torch.equal(pix.x_val[:, :, 0], img.x_val.flatten(1))
    assert torch.equal(rows.y_test, img.y_test)
    assert rows.mean.shape == (8,) and pix.mean.shape == (1,)
    xb, yb = next(rows.batches("train", 16, shuffle=True, augment=True))
    assert xb.shape == (16, 8, 8) and xb.dtype == torch.float32


def test_sequence_view_of_colour_rows(tmp_path):
    path = write_npz(tmp_path / "rgb.npz", hw=(4, 5), channels=3)
    ds = load_dataset(f"npz:{path}:rows")
    assert ds.input_shape == (4, 15) and ds.mean.shape == (15,)
    raw = np.load(path)
    i = int(ds.x_test[0, 0, 0])
    np.testing.assert_array_equal(ds.x_test[0].numpy(), raw["x_test"][i].reshape(4, 15))


def test_selective_copy_deterministic_and_long_range():
    x1, y1 = make_selective_copy(64, 200, seed=7)
    x2, y2 = make_selective_copy(64, 200, seed=7)
    x3, _ = make_selective_copy(64, 200, seed=8)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and not np.array_equal(x1, x3)
    tokens = x1.argmax(axis=2)
    assert (x1.sum(axis=2) == 255).all()  # one-hot
    # exactly one data token per quarter; the label is the ordered copy of the four tokens, so it depends on all
    # quarters of the sequence
    decoded = np.zeros(200, dtype=np.int64)
    for q in range(4):
        seg = tokens[:, q * 16:(q + 1) * 16]
        assert ((seg > 0).sum(axis=1) == 1).all()
        decoded = decoded * 2 + (seg.max(axis=1) - 1)
    assert np.array_equal(decoded, y1)
    # tokens land all over the sequence, early and late
    pos = np.nonzero(tokens)[1]
    assert pos.min() < 4 and pos.max() >= 60
    ds = load_dataset("selective_copy:64", seed=1)
    assert (ds.kind, ds.num_classes, ds.input_shape, ds.augment) == ("sequence", 16, (64, 3), ())
    assert len(ds.y_train) + len(ds.y_val) == 4000 and len(ds.y_test) == 1000
    assert torch.equal(load_dataset("selective_copy:64", seed=1).x_val, ds.x_val)
    xb, _ = next(ds.batches("val", 8, shuffle=False))
    assert set(xb.unique().tolist()) == {0.0, 1.0}  # stays exactly one-hot after normalisation


def test_selective_copy_is_learnable():
    from sklearn.linear_model import LogisticRegression

    ds = load_dataset("selective_copy:16", train_subset=1000)
    x_tr = ds.normalize(ds.x_train).flatten(1).numpy()
    x_te = ds.normalize(ds.x_test).flatten(1).numpy()
    clf = LogisticRegression(max_iter=200).fit(x_tr, ds.y_train.numpy())
    assert clf.score(x_te, ds.y_test.numpy()) > 0.9  # chance is 1/16


# ---------------------------------------------------------------------------------------------- batches / augmentation


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


# ------------------------------------------------------------------------------------------------ bad input


def _npz_case(**override):
    def make(tmp_path):
        return f"npz:{write_npz(tmp_path / 'bad.npz', **override)}", {}
    return make


def _named(name, **kwargs):
    return lambda tmp_path: (name, kwargs)


def _mnist_with_bad_label(tmp_path):
    write_npz(tmp_path / "mnist.npz", y_test=np.full(15, 12, dtype=np.uint8))
    return "mnist", {"data_dir": tmp_path}


def _not_a_zip(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip file")
    return f"npz:{tmp_path / 'junk.npz'}", {}


def _empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return f"folder:{tmp_path / 'empty'}", {}


def _class_without_images(tmp_path):
    root = write_folder(tmp_path / "f")
    (root / "zebra").mkdir()
    return f"folder:{root}", {}


def _unreadable_image(tmp_path):
    root = write_folder(tmp_path / "f")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG garbage")
    return f"folder:{root}", {}


def _mixed_sizes(tmp_path):
    from PIL import Image

    root = write_folder(tmp_path / "f")
    Image.new("L", (9, 9)).save(root / "eel" / "big.png")
    return f"folder:{root}", {}


def _cifar_missing_batch(tmp_path):
    write_cifar_tarball(tmp_path / CIFAR10_TARBALL, skip=("data_batch_3",))
    return "cifar10", {"data_dir": tmp_path}


def _cifar_corrupt(tmp_path):
    (tmp_path / CIFAR10_TARBALL).write_bytes(b"\x1f\x8b truncated")
    return "cifar10", {"data_dir": tmp_path}


BAD_INPUTS = [
    ("unknown", _named("imagenet"), "unknown dataset 'imagenet'"),
    ("lists-known", _named("imagenet"), "known: digits, mnist"),
    ("typo", _named("mnsit"), "did you mean 'mnist'"),
    ("missing-file", lambda p: ("mnist", {"data_dir": p}), "set NAS_DATA_DIR or pass --data-dir"),
    ("missing-file-where", lambda p: ("fashion_mnist", {"data_dir": p}), "fashion_mnist.npz"),
    ("missing-cifar", lambda p: ("cifar10", {"data_dir": p}), "cifar10_small.npz"),
    ("missing-npz", lambda p: (f"npz:{p / 'nope.npz'}", {}), "npz file not found"),
    ("missing-key", _npz_case(y_test=None), "missing array(s) y_test"),
    ("x-dtype", _npz_case(x_train=np.zeros((60, 6, 6), np.float32)), "x_train has dtype float32, expected uint8"),
    ("x-shape", _npz_case(x_train=np.zeros((60, 36), np.uint8)), "x_train has shape (60, 36), expected (N, H, W)"),
    ("channels-first", _npz_case(x_test=np.zeros((15, 3, 6, 6), np.uint8)), "(N, H, W, C) channels-last"),
    ("test-size", _npz_case(x_test=np.zeros((15, 5, 5), np.uint8)),
     "x_test images have shape (5, 5, 1) but x_train images (6, 6, 1)"),
    ("y-float", _npz_case(y_train=np.zeros(60, np.float32)), "y_train has dtype float32, expected an integer"),
    ("y-shape", _npz_case(y_train=np.zeros((60, 1), np.uint8)), "y_train has shape (60, 1), expected (N,)"),
    ("length-mismatch", _npz_case(y_train=np.zeros(59, np.uint8)), "x_train has 60 images but y_train has 59"),
    ("label-range", _npz_case(y_test=np.full(15, 7, np.uint8)), "y_test has label 7 out of range 0..2"),
    ("negative-label", _npz_case(y_train=np.arange(60, dtype=np.int64) % 3 - 1), "y_train has negative label -1"),
    ("one-class", _npz_case(y_train=np.zeros(60, np.uint8), y_test=np.zeros(15, np.uint8)),
     "y_train has a single class"),
    ("label-range-mnist", _mnist_with_bad_label, "y_test has label 12 out of range 0..9"),
    ("not-a-zip", _not_a_zip, "not a readable .npz file"),
    ("empty-folder", _empty_folder, "image folder is empty"),
    ("class-without-images", _class_without_images, "class folder 'zebra' has no images"),
    ("unreadable-image", _unreadable_image, "broken.png: unreadable image"),
    ("mixed-sizes", _mixed_sizes, "all images must have the same size"),
    ("cifar-missing-batch", _cifar_missing_batch, "CIFAR-10 archive has no data_batch_3"),
    ("cifar-corrupt", _cifar_corrupt, "not a readable tar.gz archive"),
    ("rows-of-sequence", _named("selective_copy:16:rows"), "'rows' view needs an image dataset"),
    ("copy-length-text", _named("selective_copy:long"), "needs an integer LENGTH"),
    ("copy-length-range", _named("selective_copy:2"), "LENGTH must be in 8..16384"),
    ("val-fraction", _named("digits", val_fraction=0.0), "val_fraction must be in (0, 1)"),
    ("train-subset", _named("digits", train_subset=1), "train_subset must be an integer >= 2"),
    ("too-few-for-val", lambda p: (f"npz:{write_npz(p / 'one.npz', n_train=2, classes=2)}", {}),
     "too few to carve a validation split"),
]


@pytest.mark.parametrize("make,fragment", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input(tmp_path, make, fragment):
    name, kwargs = make(tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset(name, **kwargs)
    msg = str(info.value)
    assert fragment in msg
    assert "\n" not in msg
