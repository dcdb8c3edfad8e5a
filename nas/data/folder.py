"""``folder:PATH``: one sub-folder per class (classes in sorted order) holding images, all the same size; grey if
every image is grey, else RGB; test = fixed 20% split."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.data.dataset import Dataset
from nas.data.registry import DATASETS, family
from nas.data.splits import TEST_FRACTION, TEST_SPLIT_SEED, assemble, stratified_holdout
from nas.errors import DataError

_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}


@DATASETS.register("folder")
@family("PATH")
def load_folder(name: str, arg: str | None, *, data_dir: Path, val_fraction: float, seed: int,
                train_subset: int | None) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    if not arg:
        raise DataError(f"folder needs a PATH, e.g. folder:/data/images, got {name!r}", key="dataset")
    root = Path(arg).expanduser()
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
    pool, test = stratified_holdout(y, TEST_FRACTION, np.random.default_rng(TEST_SPLIT_SEED))
    if len(test) == 0:
        raise DataError(f"image folder has too few images ({len(y)}) to split off a test set", file=root)
    augment = ("crop", "flip") if x.shape[1] >= 3 else ("crop",)
    return assemble(name, "image", len(classes), x[pool], y[pool], x[test], y[test], augment=augment,
                    source=str(root), val_fraction=val_fraction, seed=seed, train_subset=train_subset)
