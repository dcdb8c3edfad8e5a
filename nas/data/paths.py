"""Where dataset files live: the data folder, and the one-line error for a dataset file that is not there.

The data folder is ``data_dir`` if given, else the environment variable ``NAS_DATA_DIR``, else
``~/.cache/nas/data``. Nothing is ever downloaded implicitly.
"""
from __future__ import annotations

import os
from pathlib import Path

from nas.errors import DataError

DEFAULT_DATA_DIR = "~/.cache/nas/data"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$NAS_DATA_DIR``, else ``~/.cache/nas/data`` (user-expanded)."""
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get("NAS_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def missing_dataset(name: str, looked: list[Path], extra: str = "") -> DataError:
    """The error (to raise) for dataset ``name`` whose file is in none of the places ``looked``."""
    where = ", ".join(str(p) for p in looked)
    return DataError(
        f"dataset {name!r} not found: looked for {where}; set NAS_DATA_DIR or pass --data-dir (data_dir=) "
        f"to the folder holding it{extra}",
        key="dataset",
    )
