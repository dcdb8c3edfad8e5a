"""Latency tables: parts timed once, networks predicted from them (nas.evaluate.latency_table, nas latency-table)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.errors import ConfigError
from nas.evaluate.latency_table import (LatencyTable, distinct, make_table, new_table, part_call, part_key, parts_of,
                                        time_networks)
from nas.grammar import Space, load_space

SPACE = """
name: small
input: image
stem: {type: conv, width: 8, kernel_size: 3}
cell:
  mixer:
    conv: {kernel_size: [3, 5]}
    mbconv: {kernel_size: 3, expansion_ratio: [2, 4]}
  act: [relu, silu]
stages:
  - {width: [8, 16], depth: {int: [1, 2]}}
  - {width: 16, depth: 1, downsample: [conv, pool]}
head: {type: pool}
constraints: {reference_input: {shape: [3, 16, 16], num_classes: 10}}
"""


@pytest.fixture(scope="module")
def space() -> Space:
    return Space.from_text(SPACE)


@pytest.fixture(scope="module")
def table(space, tmp_path_factory) -> LatencyTable:
    path = tmp_path_factory.mktemp("table") / "table.json"
    return make_table(space, path, networks=6, overhead_networks=4, rounds=2)


def test_a_table_predicts_its_networks_from_their_parts(space, table):
    data = json.loads(table.path.read_text())
    assert data["settings"]["space"] == "small" and data["settings"]["input_shape"] == [3, 16, 16]
    assert data["settings"]["runtime"] == "torch" and data["settings"]["threads"] == 1
    assert {"platform", "cpu", "torch", "nas", "created"} <= set(data["machine"])
    fit = data["fit"]
    assert fit["networks"] == 4 and len(fit["points"]) == 4
    # the per-network overhead of a space without DAG cells: the median remainder of the networks timed whole
    sums, whole = np.array(fit["points"]).T
    assert fit["form"] == "added" and fit["slope"] == 1.0
    assert fit["intercept_ms"] == pytest.approx(float(np.median(whole - sums)))
    for entry in data["parts"].values():
        assert entry["ms"] > 0 and len(entry["rounds"]) == 2 and entry["kind"] in ("stem", "cell", "downsample", "head")
    loaded = LatencyTable.load(table.path)
    for seed in range(6):
        spec = space.sample(seed)
        keys = [part_key(p) for p in parts_of(spec, (3, 16, 16), 10)]
        if all(k in loaded.parts for k in keys):
            total = sum(loaded.parts[k]["ms"] for k in keys)
            assert loaded.predict(spec) == pytest.approx(fit["intercept_ms"] + fit["slope"] * total)
            assert loaded.predict(spec) == table.predict(spec)


def test_the_overhead_is_fitted_on_networks_timed_beside_their_parts(space, table, monkeypatch):
    """Each fit network is timed right after its own parts, and the overhead is read from those pairs: a machine
    that slows down between the table's parts and the fit (here 1% per call, a clock faked in both timers) moves
    both of a pair alike, so the fit is the network's own 0.25 ms, not the drift."""
    import types

    from nas.evaluate import latency_table as lt

    clock = {"speed": 1.0}

    def parts_together(parts, settings, repeats, warmup, rng):
        clock["speed"] *= 1.01
        return [clock["speed"] * 0.1 * (i + 1) for i in range(len(parts))]

    def whole(model, shape, **kw):
        spec = specs[id(model)]
        parts = parts_of(spec, (3, 16, 16), 10)
        group = distinct(parts)
        ms = {part_key(q): clock["speed"] * 0.1 * (i + 1) for i, q in enumerate(group)}
        return types.SimpleNamespace(median_ms=sum(ms[part_key(q)] for q in parts) + 0.25)

    specs: dict[int, object] = {}
    real_build = lt.build

    def build(spec, shape, classes):
        model = real_build(spec, shape, classes)
        specs[id(model)] = spec
        return model

    monkeypatch.setattr(lt, "_time_together", parts_together)
    monkeypatch.setattr(lt, "measure_latency", whole)
    monkeypatch.setattr(lt, "build", build)
    copy = LatencyTable(settings=dict(table.settings), parts=dict(table.parts))
    lines = []
    lt.fit_overhead(copy, [space.sample(k) for k in range(4)], rounds=3, progress=lines.append)
    assert copy.fit["form"] == "added" and copy.fit["intercept_ms"] == pytest.approx(0.25)
    assert copy.fit["networks"] == 4 and clock["speed"] > 1.1  # 12 rounds: the parts' times drifted 13%
    assert lines == ["whole networks beside their parts: 4/4"]


def test_part_keys_and_predictions_are_the_same_in_another_process(space, table):
    spec = space.sample(3)
    code = (f"from nas.grammar import Space; from nas.evaluate.latency_table import LatencyTable, part_key, parts_of\n"
            f"space = Space.from_text({SPACE!r}); spec = space.sample(3)\n"
            f"print(','.join(part_key(p) for p in parts_of(spec, (3, 16, 16), 10)))\n"
            f"print(repr(LatencyTable.load({str(table.path)!r}).predict(spec, fill=True)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == ",".join(part_key(p) for p in parts_of(spec, (3, 16, 16), 10))
    assert float(out[1]) == LatencyTable.load(table.path).predict(spec)


def test_a_missing_part_is_measured_on_demand_and_appended(space, table, tmp_path):
    copy = tmp_path / "copy.json"
    copy.write_text(table.path.read_text())
    loaded = LatencyTable.load(copy)
    unseen = next(s for s in (space.sample(k) for k in range(100, 400)) if loaded.missing(s))
    with pytest.raises(KeyError, match="the table has no"):
        loaded.predict(unseen)
    before = len(loaded.parts)
    predicted = loaded.predict(unseen, fill=True)
    assert predicted > 0 and len(loaded.parts) > before
    assert len(json.loads(copy.read_text())["parts"]) == len(loaded.parts)  # saved with the new parts
    assert LatencyTable.load(copy).predict(unseen) == predicted


def test_a_table_continues_where_it_stopped_and_refuses_other_settings(space, table, tmp_path):
    path = tmp_path / "t.json"
    path.write_text(table.path.read_text())
    lines = []
    more = make_table(space, path, networks=8, overhead_networks=4, rounds=2, progress=lines.append)
    already = len(table.parts)
    assert f"({already} already in the table)" in lines[0]
    assert set(table.parts) <= set(more.parts)
    with pytest.raises(ConfigError, match="holds a table with another threads"):
        make_table(space, path, networks=2, overhead_networks=2, threads=2)
    with pytest.raises(ConfigError, match="the table is for another space"):
        LatencyTable.load(path).check_space(load_space("vision"))


@pytest.mark.parametrize("text, words", [("{", "not a latency table"), ('{"format": 1, "parts": {}}',
                                                                          "lacks setting 'space'")])
def test_a_broken_table_is_a_one_line_error(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words) as e:
        LatencyTable.load(path)
    assert str(path) in str(e.value)


def test_the_cli_makes_a_table_and_space_sample_prints_predictions(tmp_path):
    nas = [str(Path(sys.executable).with_name("nas"))]
    space_file = tmp_path / "small.yaml"
    space_file.write_text(SPACE)
    out = tmp_path / "t.json"
    made = subprocess.run([*nas, "latency-table", str(space_file), "--out", str(out), "--networks", "3",
                           "--overhead-networks", "2", "--rounds", "1"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "parts; a network = " in made.stdout and "its parts" in made.stdout and "networks timed whole" in made.stdout
    assert "parts to time" in made.stderr
    sampled = subprocess.run([*nas, "space", "sample", str(space_file), "-n", "2", "--latency-table", str(out)],
                             capture_output=True, text=True)
    assert sampled.returncode == 0 and sampled.stdout.count("latency=") == 2, sampled.stderr
    wrong = subprocess.run([*nas, "space", "sample", "vision", "--latency-table", str(out)], capture_output=True,
                           text=True)
    assert wrong.returncode == 2 and wrong.stderr.startswith(f"error: {out}: the table is for another space")


def test_a_nas_bench_201_table_holds_every_part_of_the_space(tmp_path):
    """DAG cells are timed as their edges' operations: 100 sampled NB201 networks give every part (5 operations x 3
    widths, the stem, the two residual reductions, the head), so any of its 15,625 networks is predicted without
    timing anything."""
    space = load_space("nb201")
    table = make_table(space, tmp_path / "nb201.json", networks=100, overhead_networks=8, rounds=1)
    kinds = sorted(entry["kind"] for entry in table.parts.values())
    assert kinds.count("dag_edge") == 15 and len(table.parts) == 19
    # the nodes' sums are not parts, and an edge's operation costs inside the whole graph what it does not alone:
    # a slope per operation, non-negative, fitted by least squares on the networks timed whole
    fit = table.fit
    assert fit["form"] == "per_operation" and fit["intercept_ms"] >= 0 and len(fit["by_operation"]) == 8
    assert set(fit["slopes"]) <= {"none", "skip", "conv_1x1", "conv_3x3", "avg_pool_3x3"}
    assert all(b >= 0 for b in fit["slopes"].values())
    x = np.array([[1.0] + [p.get(op, 0.0) for op in sorted(fit["slopes"])] for p in fit["by_operation"]])
    y = np.array([w for _, w in fit["points"]]) - np.array([p[""] for p in fit["by_operation"]])
    coef = np.array([fit["intercept_ms"]] + [fit["slopes"][op] for op in sorted(fit["slopes"])])
    residual = np.sum((x @ coef - y) ** 2)
    for k in range(len(coef)):  # no non-negative step away from the fit lowers the squared error
        for step in (0.01, -0.01):
            moved = coef.copy()
            moved[k] = max(0.0, moved[k] + step * max(1.0, moved[k]))
            assert np.sum((x @ moved - y) ** 2) >= residual - 1e-12
    from nas.bench.nb201 import from_index

    for index in ("000000", "333132", "444444", "123401"):
        spec = from_index(index)
        assert table.missing(spec) == [] and table.predict(spec) > 0
    spec = from_index("333132")
    ms = {op: 0.0 for op in ("", *fit["slopes"])}
    for q in parts_of(spec, (3, 32, 32), 10):
        ms[q.key[1] if q.key[0] == "dag_edge" else ""] += table.parts[part_key(q)]["ms"]
    expected = fit["intercept_ms"] + ms[""] + sum(fit["slopes"].get(op, 1.0) * v for op, v in ms.items() if op)
    assert table.predict(spec) == pytest.approx(expected)


@pytest.mark.parametrize("fit, expected, words", [
    ({"form": "added", "intercept_ms": 0.25, "slope": 1.0}, 0.25 + 1.0 + 2.0 + 0.5, "its parts + 0.250 ms"),
    ({"form": "per_operation", "intercept_ms": 0.1, "slope": 1.0, "slopes": {"none": 2.0, "conv_3x3": 0.5}},
     0.1 + 1.0 + 2.0 * 0.5 + 0.5 * 2.0, "0.100 ms + its parts, DAG edges x (conv_3x3 0.50, none 2.00)"),
    ({"form": "proportional", "intercept_ms": 0.0, "slope": 1.2}, 1.2 * 3.5, "1.200 x its parts"),  # older tables
])
def test_each_form_of_the_fit_is_applied_and_told(fit, expected, words):
    from nas.evaluate.latency_table import apply_fit, fit_text

    assert apply_fit(fit, {"": 1.0, "conv_3x3": 2.0, "none": 0.5}) == pytest.approx(expected)
    assert fit_text(fit) == words


def test_parts_are_timed_network_by_network_and_the_first_measurement_stands(space):
    """A network's parts are timed together (as they run beside each other); a part already in the table keeps its
    value, and a network with nothing new is not timed again."""
    table = new_table(space)
    shape, classes = table.settings["input_shape"], table.settings["num_classes"]
    groups = [distinct(parts_of(space.sample(k), shape, classes)) for k in range(4)]
    every = {part_key(q) for group in groups for q in group}
    assert time_networks(table, groups, rounds=1, repeats=2, warmup=1) == len(every) == len(table.parts)
    before = {key: entry["ms"] for key, entry in table.parts.items()}
    assert time_networks(table, groups, rounds=1, repeats=2, warmup=1) == 0
    assert {key: entry["ms"] for key, entry in table.parts.items()} == before


def test_an_onnxruntime_table_times_each_part_as_an_onnx_graph(space, tmp_path):
    """``--runtime onnxruntime``: each part runs as its own ONNX graph in a session (its time net of a session call's
    own cost), the networks timed whole the same way; predictions sum the parts plus the overhead."""
    table = make_table(space, tmp_path / "ort.json", networks=3, overhead_networks=2, rounds=1,
                       runtime="onnxruntime")
    data = json.loads((tmp_path / "ort.json").read_text())
    assert data["settings"]["runtime"] == "onnxruntime" and data["parts"]
    assert all(entry["ms"] >= 0 for entry in data["parts"].values())
    spec = space.sample(0)
    total = sum(table.parts[part_key(q)]["ms"] for q in parts_of(spec, (3, 16, 16), 10))
    assert table.fit["form"] == "added" and table.predict(spec) == pytest.approx(total + table.fit["intercept_ms"])


def test_a_part_of_several_inputs_runs_as_an_onnx_graph_and_computes_what_torch_computes():
    """The fusion of a multi-scale network takes a list of maps: its graph takes them as flat inputs."""
    space = load_space("sequence")
    shape, classes = space.reference_input
    fusion = next(q for k in range(200) for q in parts_of(space.sample(k), shape, classes) if q.key[0] == "fpn")
    settings = {"runtime": "onnxruntime", "threads": 1, "batch_size": 2}
    call, chain = part_call(fusion, settings)
    got = call()[0]
    assert chain == 1
    expected, _ = part_call(fusion, {**settings, "runtime": "torch"})
    with torch.inference_mode():
        want = expected()
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)
