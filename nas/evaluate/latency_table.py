"""Latency predicted from a per-part table measured once on the target (Once-for-All's and nn-Meter's idea, on the
parts this package already splits a network into for counting).

A network is its parts (:func:`nas.builder.layout`: the stem, each downsampler, each cell, the fusion, the head),
each keyed by what decides its cost. :func:`make_table` times the distinct parts of a set of networks, network by
network: each part built alone and fed its own input at the table's batch size, called in turn with the other parts
of its network (as in the network, no part runs hot from its own previous call), in rounds after a warm-up, the
median kept; then it times ``overhead_networks`` whole networks as a search times them and fits the per-network
overhead, what the parts do not see, each network timed right after its own parts: the network's own glue (``whole
= sum of the parts + intercept``), or in a space of DAG cells the nodes' sums and each edge operation's cost inside
the whole graph (``whole = intercept + other parts + a slope per operation x its edges``).
:meth:`LatencyTable.predict` sums a network's parts and applies the fit: no build, no timing, the same number in
every process and on every machine for the same table. A part the table lacks is measured on demand
(:meth:`LatencyTable.fill`) and appended.

The table is a JSON file: the settings (space and its fingerprint, input, classes, runtime, threads, batch, device),
the machine and versions, every part (key hash -> median ms, its rounds, its kind) and the fit. Parts are written
as they are measured (atomically, every few networks), so a killed table resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.blocks.dag import edge_op, input_projection
from nas.builder import Part, build, layout
from nas.catalog import dag_edges
from nas.errors import ConfigError
from nas.evaluate.measure import Latency, cpu_name, measure_latency, versions
from nas.evaluate.onnx_graph import input_names, onnx_bytes, ort_session
from nas.io import write_atomic
from nas.spec import ArchSpec

TABLE_FORMAT = 1
SETTINGS = ("space", "space_fingerprint", "input_shape", "num_classes", "runtime", "threads", "batch_size", "device")
SAVE_EVERY = 10  # networks timed between two writes of the file
PART_REPEATS, PART_WARMUP = 10, 3  # calls of each part per round (after its warm-up calls)


def part_key(part: Part) -> str:
    """A stable name for a part: the hash of its key's text (channels, sizes, context, the cell's spec), the same in
    every process for the same version of the builder."""
    return hashlib.sha256(repr(part.key).encode()).hexdigest()[:20]


def parts_of(spec: ArchSpec, input_shape: Sequence[int], num_classes: int) -> list[Part]:
    """Every part of the network to time, in build order, repeats included (a network's latency sums all of them):
    the builder's parts, a DAG cell's split into its edges' operations (:func:`dag_parts`)."""
    return [q for part in layout(spec, input_shape, num_classes).parts() for q in dag_parts(part)]


def dag_parts(part: Part) -> list[Part]:
    """A DAG cell (NAS-Bench-201, DARTS) as the parts its latency is the sum of: its input projection (when the
    channels change) and one operation per edge, each keyed by the operation, channels, context and size. A space of
    DAG cells has a few such parts (NB201: 5 operations x 3 widths) where it has thousands of cells; the nodes' sums
    are left to the per-network overhead. Any other part is itself."""
    if part.key[0] != "cell":
        return [part]
    _, c_in, width, ctx, cell, size = part.key
    stage = json.loads(cell)
    mixer = stage["mixer"]
    if mixer["type"] != "dag":
        return [part]
    ctx = dataclasses.replace(ctx, stride=1)
    out = []
    if c_in != width:
        out.append(Part(("dag_pre", c_in, width, ctx, size), partial(input_projection, c_in, width, ctx),
                        _example((c_in, *size))))
    for edge in dag_edges(mixer["options"]["nodes"]):
        op = mixer["options"][edge]
        out.append(Part(("dag_edge", op, width, ctx, size), partial(edge_op, op, width, ctx),
                        _example((width, *size))))
    return out


def _example(shape: tuple) -> Callable[[], tuple]:
    return lambda: (torch.randn(1, *shape),)


@dataclass
class LatencyTable:
    """A latency table: settings, measured parts and the whole-network fit (see the module docstring)."""

    settings: dict[str, Any]
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    # -- prediction ---------------------------------------------------------------------------------------------
    def _parts(self, spec: ArchSpec) -> list[tuple[str, Part]]:
        """(key, part) of every part of the network at the table's input."""
        shape, classes = self.settings["input_shape"], self.settings["num_classes"]
        return [(part_key(part), part) for part in parts_of(spec, shape, classes)]

    def missing(self, spec: ArchSpec) -> list[Part]:
        """The distinct parts of ``spec`` the table lacks."""
        return distinct([part for key, part in self._parts(spec) if key not in self.parts])

    def _ms(self, key: str, part: Part) -> float:
        entry = self.parts.get(key)
        if entry is None:
            raise KeyError(f"the table has no {part.key[0]} part of this network (measure it with fill)")
        return float(entry["ms"])

    def predict(self, spec: ArchSpec, *, fill: bool = False) -> float:
        """Predicted latency in ms of the network at the table's input: the fit applied to the sum of its parts
        (``fill``: parts the table lacks are measured first and appended)."""
        keyed = self._parts(spec)
        if fill:
            self._fill(keyed)
        return apply_fit(self.fit, by_operation([(part, self._ms(key, part)) for key, part in keyed]))

    def fill(self, spec: ArchSpec, *, rounds: int = 3, progress: Callable[[str], None] | None = None) -> int:
        """Measure (and append, saving the file) the parts of ``spec`` the table lacks; how many were measured."""
        return self._fill(self._parts(spec), rounds=rounds, progress=progress)

    def _fill(self, keyed: list[tuple[str, Part]], *, rounds: int = 3,
              progress: Callable[[str], None] | None = None) -> int:
        if all(key in self.parts for key, _ in keyed):
            return 0
        return time_networks(self, [distinct([part for _, part in keyed])], rounds=rounds, progress=progress)

    def check_space(self, space) -> "LatencyTable":
        """This table, if it was made for ``space`` (its fingerprint); else a one-line error naming the file."""
        if self.settings["space_fingerprint"] != space.fingerprint():
            raise ConfigError(f"the table is for another space ({self.settings['space']!r}, or that space changed "
                              f"since), not {space.name!r}", file=str(self.path) if self.path else None)
        return self

    # -- file ------------------------------------------------------------------------------------------------
    def to_data(self) -> dict[str, Any]:
        return {"format": TABLE_FORMAT, "settings": self.settings, "machine": self.machine, "fit": self.fit,
                "parts": self.parts}

    def save(self, path: str | os.PathLike | None = None) -> None:
        target = Path(path) if path is not None else self.path
        if target is None:
            return
        write_atomic(target, json.dumps(self.to_data(), indent=1, sort_keys=True))
        self.path = target

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatencyTable":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("no such latency table", file=str(path)) from None
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"not a latency table (unreadable JSON: {e})", file=str(path)) from None
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT or not isinstance(data.get("parts"),
                                                                                                dict):
            raise ConfigError(f"not a latency table of format {TABLE_FORMAT}", file=str(path))
        settings = data.get("settings") or {}
        missing = [k for k in SETTINGS if k not in settings]
        if missing:
            raise ConfigError(f"latency table lacks setting {missing[0]!r}", file=str(path), key="settings")
        settings["input_shape"] = tuple(settings["input_shape"])
        return cls(settings=settings, parts=data["parts"], fit=data.get("fit") or {},
                   machine=data.get("machine") or {}, path=path)


_loaded: dict[str, LatencyTable] = {}


def cached(path: str | os.PathLike) -> LatencyTable:
    """The table at ``path``, loaded once per process (it grows as missing parts are measured)."""
    key = str(Path(path).resolve())
    if key not in _loaded:
        _loaded[key] = LatencyTable.load(path)
    return _loaded[key]


def predicted(table: LatencyTable, spec: ArchSpec, input_shape: Sequence[int]) -> Latency:
    """The network's latency as the table predicts it, as a :class:`~nas.evaluate.measure.Latency` record
    (``source`` table, no spread, nothing timed), at the table's input, which must be ``input_shape``."""
    s = check_input(table, input_shape).settings
    return Latency(device=s["device"], batch_size=int(s["batch_size"]), median_ms=table.predict(spec, fill=True),
                   iqr_ms=0.0, repeats=0, warmup=0, threads=int(s["threads"]), runtime=s["runtime"], source="table")


def for_run(path: str | os.PathLike, space, input_shape: Sequence[int]) -> LatencyTable:
    """The run's table, checked before anything trains: a table of ``space`` at the run's input (else a ConfigError
    with key ``latency_table``)."""
    try:
        table = cached(path).check_space(space)
    except ConfigError as e:
        raise ConfigError(e.message, file=e.file, key="latency_table") from None
    return check_input(table, input_shape)


def check_input(table: LatencyTable, input_shape: Sequence[int]) -> LatencyTable:
    """``table`` if it was made at ``input_shape``, else a ConfigError (key ``latency_table``) naming both."""
    if tuple(int(x) for x in input_shape) != tuple(table.settings["input_shape"]):
        raise ConfigError(f"{table.path} is a table for input {tuple(table.settings['input_shape'])}; this run's "
                          f"networks take {tuple(input_shape)} (nas latency-table --input-shape)", key="latency_table")
    return table


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "cpu": cpu_name(), "cpu_count": os.cpu_count(), **versions(),
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}


# -- timing --------------------------------------------------------------------------------------------------
def _batch_inputs(part: Part, batch_size: int) -> tuple:
    """The part's example inputs (tensors, or lists of them for the fusion) at ``batch_size``, seeded."""
    gen = torch.Generator().manual_seed(0)

    def at_batch(x):
        if isinstance(x, (list, tuple)):
            return type(x)(at_batch(v) for v in x)
        return torch.randn(batch_size, *x.shape[1:], generator=gen)

    return tuple(at_batch(x) for x in part.example())


def distinct(parts: Sequence[Part]) -> list[Part]:
    """``parts`` without repeats (by :func:`part_key`), in order."""
    found: dict[str, Part] = {}
    for part in parts:
        found.setdefault(part_key(part), part)
    return list(found.values())


def time_networks(table: LatencyTable, networks: Sequence[Sequence[Part]], *, rounds: int = 3,
                  repeats: int = PART_REPEATS, warmup: int = PART_WARMUP,
                  progress: Callable[[str], None] | None = None) -> int:
    """Time into ``table`` the parts it lacks, network by network: each of ``networks`` is the distinct parts of one
    network, and a network with a part the table lacks has all its parts timed together in ``rounds`` rounds; in
    each, the parts are built afresh, called ``warmup`` times each, then ``repeats`` times one call at a time in turn
    (a shuffled order per pass). A part is so timed beside the parts it runs beside in its network, with the caches
    such a network leaves it, and in the same way when the table is made and when a missing part is measured on
    demand (timing a table's parts in larger mixed groups put their sums 6-15% off the same networks' on-demand
    sums). A part's value is the median of its rounds' medians; only the parts the table lacks are recorded (the
    first measurement of a part stands). The file is saved every :data:`SAVE_EVERY` networks and at the end, so a
    killed table resumes there; returns how many parts were recorded."""
    s = table.settings
    if s["device"] != "cpu":
        raise ConfigError("per-part tables are measured on the cpu", key="device")
    groups = [list(group) for group in networks]
    rng = random.Random(0)
    recorded = 0
    for n, group in enumerate(groups, 1):
        if all(part_key(part) in table.parts for part in group):  # nothing new (an earlier network had them)
            continue
        found = [_time_together(group, s, repeats, warmup, rng) for _ in range(rounds)]
        for i, part in enumerate(group):
            key = part_key(part)
            if key not in table.parts:
                rounds_ms = [r[i] for r in found]
                table.parts[key] = {"ms": float(np.median(rounds_ms)), "rounds": rounds_ms, "kind": str(part.key[0])}
                recorded += 1
        if n % SAVE_EVERY == 0:
            table.save()
            if progress:
                progress(f"networks {n}/{len(groups)}, {recorded} parts timed")
    if recorded:
        table.save()
    return recorded


def _time_together(parts: Sequence[Part], settings: dict[str, Any], repeats: int, warmup: int,
                   rng: random.Random) -> list[float]:
    """Each part's median ms over ``repeats`` calls, the parts made afresh and called in turn (see
    :func:`time_networks`). With onnxruntime a part's time is net of a session call's own cost (timed in turn with
    the parts on a one-element graph), since a network pays that once, not once per part; and a DAG edge's operation
    runs :data:`ORT_CHAIN` times in a row in its graph, the time divided among them, so that the session call's
    jitter (a few microseconds, as much as such a part computes) is divided too. Torch runs with the table's threads
    meanwhile (the setting before is restored)."""
    calls = [part_call(part, settings) for part in parts]
    null = settings["runtime"] == "onnxruntime"
    if null:
        calls.append((_null_call(settings), 1))
    found: list[list[float]] = [[] for _ in calls]
    before = torch.get_num_threads()
    torch.set_num_threads(int(settings["threads"]))
    try:
        with torch.inference_mode():
            for call, _ in calls:
                for _ in range(warmup):
                    call()
            for _ in range(repeats):
                order = list(range(len(calls)))
                rng.shuffle(order)
                for i in order:
                    t0 = time.perf_counter_ns()
                    calls[i][0]()
                    found[i].append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        torch.set_num_threads(before)
    medians = [float(np.median(times)) for times in found]
    base = medians.pop() if null else 0.0
    return [max(0.0, ms - base) / chain for ms, (_, chain) in zip(medians, calls)]


def _null_call(settings: dict[str, Any]) -> Callable[[], Any]:
    """A session call that does nearly nothing (a ReLU of one number): what every onnxruntime call costs."""
    graph, _ = onnx_bytes(torch.nn.ReLU(), torch.zeros(1, 1))
    session = ort_session(graph, int(settings["threads"]))
    return partial(session.run, None, {"input": np.zeros((1, 1), dtype=np.float32)})


ORT_CHAIN = 8  # calls of a DAG edge's operation in one onnxruntime graph


def part_call(part: Part, settings: dict[str, Any]) -> tuple[Callable[[], Any], int]:
    """One call of ``part`` on its example input at the table's batch size, in the table's runtime, and how many
    times that call runs the part: the module itself, once (torch); or its ONNX graph, written in memory, in an
    onnxruntime session with the table's threads (the graph's inputs are the part's input tensors, flattened), which
    runs a DAG cell's edge operation (tiny, shape-keeping) :data:`ORT_CHAIN` times, each on the last one's output.
    (Chaining every shape-keeping part raised the error of the spaces without DAG cells: vision / mobile / sequence
    MAPE 4.7 / 4.7 / 2.5% unchained, 13.5 / 17.1 / 8.8% chained, experiments/bench_latency_table.py.)"""
    torch.manual_seed(0)
    module = part.make().eval()
    inputs = _batch_inputs(part, int(settings["batch_size"]))
    if settings["runtime"] == "torch":
        return partial(module, *inputs), 1
    chain = ORT_CHAIN if part.key[0] == "dag_edge" else 1
    flat: list[torch.Tensor] = []
    structure = _flatten(inputs, flat)
    graph, _ = onnx_bytes(_Flat(module, structure, chain), tuple(flat))
    session = ort_session(graph, int(settings["threads"]))
    feed = {name: x.numpy() for name, x in zip(input_names(len(flat)), flat)}
    return partial(session.run, None, feed), chain


def _flatten(value: Any, out: list[torch.Tensor]) -> Any:
    """``value`` (tensors in tuples and lists) with each tensor replaced by its index in ``out``, appended there."""
    if isinstance(value, (list, tuple)):
        return type(value)(_flatten(v, out) for v in value)
    out.append(value)
    return len(out) - 1


def _unflatten(structure: Any, tensors: Sequence[torch.Tensor]) -> Any:
    if isinstance(structure, (list, tuple)):
        return type(structure)(_unflatten(v, tensors) for v in structure)
    return tensors[structure]


class _Flat(torch.nn.Module):
    """A part taking its inputs as flat tensors (an ONNX graph's inputs), rebuilt into the part's own structure; with
    ``chain`` > 1 (a part of one input that keeps its shape), the part applied that many times in a row."""

    def __init__(self, module: torch.nn.Module, structure: tuple, chain: int = 1):
        super().__init__()
        self.module, self.structure, self.chain = module, structure, chain

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        out = self.module(*_unflatten(self.structure, tensors))
        for _ in range(self.chain - 1):
            out = self.module(out)
        return out


def by_operation(timed: Sequence[tuple[Part, float]]) -> dict[str, float]:
    """The ms of a network's parts (each (part, ms), repeats included) summed by what the fit scales apart: a DAG
    edge's operation (``"conv_3x3"``, ...) and everything else (``""``)."""
    sums: dict[str, float] = {}
    for part, ms in timed:
        op = str(part.key[1]) if part.key[0] == "dag_edge" else ""
        sums[op] = sums.get(op, 0.0) + ms
    return sums


def apply_fit(fit: dict[str, Any], sums: dict[str, float]) -> float:
    """A network's predicted ms from its parts summed by :func:`by_operation` and the table's fit: ``intercept +
    slope x sum``, where a DAG edge's operation has its own slope (``slopes``; 1 for an operation the fit did not
    see, and for every part in the forms without them)."""
    slopes = fit.get("slopes") or {}
    total = sum(ms * float(slopes.get(op, 1.0)) for op, ms in sums.items() if op)
    return float(fit.get("intercept_ms", 0.0) + fit.get("slope", 1.0) * (sums.get("", 0.0) + total))


def fit_text(fit: dict[str, Any]) -> str:
    """The fit in words: ``its parts + 0.039 ms``, ``0.042 ms + its parts, DAG edges x (avg_pool_3x3 0.81, ...)``,
    or (a table of an earlier form) ``1.163 x its parts``."""
    intercept = float(fit.get("intercept_ms", 0.0))
    if fit.get("slopes"):
        ops = ", ".join(f"{op} {b:.2f}" for op, b in sorted(fit["slopes"].items()))
        return f"{intercept:.3f} ms + its parts, DAG edges x ({ops})"
    if fit.get("slope", 1.0) != 1.0:
        return f"{fit['slope']:.3f} x its parts"
    return f"its parts {'+-'[intercept < 0]} {abs(intercept):.3f} ms"


def fit_overhead(table: LatencyTable, specs: Sequence[ArchSpec], *, rounds: int = 3, repeats: int = 30,
                 warmup: int = 5, progress: Callable[[str], None] | None = None) -> None:
    """Fit the per-network overhead, what the parts do not see, on ``specs``: each network is timed right after its
    own parts, ``rounds`` times in a row: its distinct parts together as :func:`time_networks` times them, then the
    network whole as a search times it (``repeats`` calls after ``warmup``, the table's settings). Each network so
    gives its parts' sum and its whole measured in the same moment (the medians of its rounds): a drift of the
    machine between the table's parts and the fit's networks does not enter the fit (timing the networks whole
    apart from their parts moved the vision space's intercept from +0.02 to +0.27 ms between two runs on a 2.5 ms
    median network). Medians keep the odd network a burst of another process slowed from moving the fit.

    A space without DAG cells: the overhead is a network's own glue, a cost per network (form ``added``: ``whole =
    sum + intercept``, the median remainder). A space of DAG cells (form ``per_operation``): ``whole = intercept +
    other parts + sum over the edges' operations of slope x the operation's edges``, the intercept and slopes fitted
    by non-negative least squares. The nodes' sums grow with the cells' work (torch: whole / sum 1.19-1.26 on NB201),
    and a tiny operation's cost inside the whole graph is not its cost alone: under onnxruntime NB201's ``none`` edge
    (a multiply by zero) costs 2.3-3.4x and its pools 0.66-0.92x what each measures in its own graph (fits on 20-40
    networks); one slope for all left Spearman's rho at 0.93 where the per-operation slopes give 0.97-0.98 on
    networks outside the fit (experiments/bench_latency_table.py). (Per-kind slopes in the other spaces fitted
    noise: the vision space's error rose from 8.9 to 11.2%; and choosing the form per table by its error on the
    fit's networks followed their noise too.)"""
    s = table.settings
    shape, classes = s["input_shape"], s["num_classes"]
    rng = random.Random(1)
    points: list[tuple[dict[str, float], float]] = []
    for n, spec in enumerate(specs, 1):
        parts = parts_of(spec, shape, classes)
        group = distinct(parts)
        counts = Counter(part_key(part) for part in parts)
        torch.manual_seed(0)
        model = build(spec, shape, classes).eval()
        pair_sums, pair_whole = [], []
        for _ in range(rounds):
            ms = _time_together(group, s, PART_REPEATS, PART_WARMUP, rng)
            pair_sums.append(by_operation([(part, counts[part_key(part)] * t) for part, t in zip(group, ms)]))
            pair_whole.append(measure_latency(model, shape, batch_size=int(s["batch_size"]), warmup=warmup,
                                              repeats=repeats, threads=int(s["threads"]),
                                              runtime=s["runtime"]).median_ms)
        points.append(({op: float(np.median([p[op] for p in pair_sums])) for op in pair_sums[0]},
                       float(np.median(pair_whole))))
        if progress and (n % SAVE_EVERY == 0 or n == len(specs)):
            progress(f"whole networks beside their parts: {n}/{len(specs)}")
    sums = np.array([sum(p.values()) for p, _ in points])
    measured = np.array([w for _, w in points])
    ops = sorted({op for p, _ in points for op in p if op})
    if ops:
        from scipy.optimize import nnls

        x = np.array([[1.0] + [p.get(op, 0.0) for op in ops] for p, _ in points])
        coef, _ = nnls(x, measured - np.array([p.get("", 0.0) for p, _ in points]))
        table.fit = {"form": "per_operation", "intercept_ms": float(coef[0]), "slope": 1.0,
                     "slopes": {op: float(b) for op, b in zip(ops, coef[1:])}}
    else:
        table.fit = {"form": "added", "intercept_ms": float(np.median(measured - sums)), "slope": 1.0}
    table.fit.update(networks=len(specs), points=[[float(a), float(b)] for a, b in zip(sums, measured)],
                     by_operation=[p for p, _ in points])
    table.save()


def new_table(space, *, input_shape: Sequence[int] | None = None, num_classes: int | None = None,
              runtime: str = "torch", threads: int = 1, batch_size: int = 1, device: str = "cpu",
              path: str | os.PathLike | None = None) -> LatencyTable:
    shape, classes = space.reference_input
    settings = {"space": space.name, "space_fingerprint": space.fingerprint(),
                "input_shape": tuple(int(x) for x in (input_shape or shape)),
                "num_classes": int(num_classes or classes), "runtime": runtime, "threads": int(threads),
                "batch_size": int(batch_size), "device": device}
    return LatencyTable(settings=settings, machine=machine(), path=Path(path) if path is not None else None)


def make_table(space, path: str | os.PathLike, *, networks: int = 200, overhead_networks: int = 20,
               rounds: int = 3, seed: int = 0, input_shape: Sequence[int] | None = None,
               num_classes: int | None = None, runtime: str = "torch", threads: int = 1, batch_size: int = 1,
               device: str = "cpu", progress: Callable[[str], None] | None = None) -> LatencyTable:
    """Measure a table for ``space`` at ``path`` (resuming one that a kill left there with the same settings): the
    distinct parts of ``networks`` sampled networks (seeds ``seed`` ...), then the fit on ``overhead_networks`` of
    them timed whole."""
    table = new_table(space, input_shape=input_shape, num_classes=num_classes, runtime=runtime, threads=threads,
                      batch_size=batch_size, device=device, path=path)
    if Path(path).exists():
        old = LatencyTable.load(path)
        changed = [k for k in SETTINGS if _plain(old.settings.get(k)) != _plain(table.settings[k])]
        if changed:
            raise ConfigError(f"holds a table with another {changed[0]} ({old.settings.get(changed[0])!r}, not "
                              f"{table.settings[changed[0]]!r}); choose another --out", file=str(path))
        table.parts, table.machine = old.parts, old.machine or table.machine
    specs = sample_networks(space, networks, seed, table)
    shape, classes = table.settings["input_shape"], table.settings["num_classes"]
    groups = [distinct(parts_of(spec, shape, classes)) for spec in specs]
    if progress:
        lacking = len({part_key(q) for group in groups for q in group} - set(table.parts))
        progress(f"{lacking} parts to time ({len(table.parts)} already in the table), from {len(specs)} networks")
    time_networks(table, groups, rounds=rounds, progress=progress)
    fit_overhead(table, specs[:overhead_networks], rounds=rounds, progress=progress)
    return table


def sample_networks(space, n: int, seed: int, table: LatencyTable) -> list[ArchSpec]:
    """``n`` distinct networks of ``space`` that build at the table's input (seeds ``seed``, ``seed + 1``, ...)."""
    shape, classes = table.settings["input_shape"], table.settings["num_classes"]
    found: dict[str, ArchSpec] = {}
    k = seed
    while len(found) < n and k < seed + 20 * n:
        spec = space.sample(k)
        k += 1
        try:
            parts_of(spec, shape, classes)
        except Exception:  # noqa: BLE001 - a network that does not build at this input is not one to time
            continue
        found.setdefault(spec.hash(), spec)
    return list(found.values())


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value

