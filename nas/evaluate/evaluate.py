"""``evaluate(spec, config) -> TrialResult``: build, measure, score and proxy-train one architecture.

Both controllers (Optuna on one machine, Ray Tune on a cluster) call this one function. What goes in is a spec and
a plain config; what comes out is plain data: objectives, the per-epoch curve, cost statistics, zero-cost scores and,
when the candidate failed, why. A failing candidate never raises; a bad config (unknown dataset, bad budget) does,
as a :class:`~nas.errors.NasError`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from nas.catalog import ZERO_COST_DEFAULT
from nas.budget import Budget
from nas.builder import example_input, lazy_model
from nas.data import load_dataset
from nas.errors import BuildError, ConfigError, NasError
from nas.evaluate import costs, latency_table, measure, zero_cost
from nas.evaluate.train import EpochStats, train
from nas.spec import ArchSpec

# (spec, get_model) -> (problems, relative excess per constraint, what was measured at the evaluation input)
Precheck = Callable[[Any, Callable[[], Any]], "tuple[list[str], dict[str, float], dict[str, Any]]"]

@dataclass(frozen=True)
class EvalConfig:
    """Everything ``evaluate`` needs besides the spec. Plain data: a run stores it with its results."""

    dataset: str = "digits"
    data_dir: str | None = None
    val_fraction: float = 0.1
    train_subset: int | None = None
    budget: Budget = field(default_factory=Budget)
    seed: int = 0
    device: str = "auto"  # training device: auto (cuda when present), cpu, cuda, cuda:1
    latency_device: str = "cpu"
    latency_batch_size: int = 1
    throughput_batch_size: int = 64
    latency_repeats: int = 30
    latency_warmup: int = 5
    latency_threads: int = 1
    latency_min_time_s: float = 0.5  # keep timing until the timed calls span this long (see measure_latency)
    latency_runtime: str = "torch"  # torch (eager) or onnxruntime (the ONNX graph), see measure_latency
    latency_source: str = "measured"  # measured, or table: predicted from latency_table (nas.evaluate.latency_table)
    latency_table: str | None = None
    zero_cost: tuple[str, ...] = ZERO_COST_DEFAULT
    zero_cost_batch_size: int = 64
    train_threads: int | None = None  # torch CPU threads while training; None: the process's (torch's default)
    repeat: int = 0  # which evaluation of one architecture this is: 0 the first, k > 0 the k-th repeat (confirm_best)

    @classmethod
    def from_options(cls, *, budget: dict | Budget | None = None, zero_cost: bool | tuple = True,
                     **options: Any) -> "EvalConfig":
        if isinstance(budget, dict):
            budget = Budget(**budget)
        if zero_cost is True:
            zero_cost = ZERO_COST_DEFAULT
        elif zero_cost is False:
            zero_cost = ()
        options = {k: v for k, v in options.items() if v is not None}
        return cls(budget=budget or Budget(), zero_cost=tuple(zero_cost), **options)

    @property
    def model_seed(self) -> int:
        """The seed of the network's initialisation and of the training order: the run's ``seed`` for a first
        evaluation, another seed for each repeat (an independent training of the same architecture). The data split
        and the zero-cost batch keep ``seed``: a repeat is measured on the same validation examples."""
        return self.seed if not self.repeat else (self.seed + 1_000_003 * self.repeat) % (2**31 - 1)

    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if not _is_device(self.device):
            raise ConfigError(f"unknown training device {self.device!r} (auto, cpu, cuda or cuda:N)", key="device")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("device is cuda but no CUDA GPU is available", key="device")
        return self.device

    def check_latency_device(self) -> None:
        """Before anything is trained: a CUDA latency device needs a GPU here (a search would fail every trial)."""
        if not _is_device(self.latency_device):
            raise ConfigError(f"unknown latency device {self.latency_device!r} (cpu, cuda or cuda:N)",
                              key="latency_device")
        if self.latency_device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"latency device {self.latency_device!r} requested but no CUDA GPU is available",
                              key="latency_device")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["zero_cost"] = list(self.zero_cost)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalConfig":
        data = dict(data)
        data["budget"] = Budget(**data.get("budget", {}))
        data["zero_cost"] = tuple(data.get("zero_cost", ZERO_COST_DEFAULT))
        return cls(**data)


def _is_device(name: Any) -> bool:
    """A device string training and latency run on: cpu, cuda or cuda:N."""
    try:
        return torch.device(name).type in ("cpu", "cuda")
    except (RuntimeError, TypeError):
        return False


@dataclass
class TrialResult:
    """Plain-data outcome of one evaluation."""

    spec_hash: str
    summary: str
    status: str  # ok | pruned | infeasible | diverged | oom | error
    reason: str | None = None
    objectives: dict[str, float] = field(default_factory=dict)  # accuracy, latency_ms, params, flops, activation_mb
    curve: list[dict[str, float]] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)
    zero_cost: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # incl. val_size, the validation examples scored
    val_correct: str = ""  # which validation examples the final evaluation got right (nas.significance)
    input_shape: tuple[int, ...] = ()
    num_classes: int = 0
    wall_s: float = 0.0
    precheck: dict[str, Any] = field(default_factory=dict)  # what the constraint check measured (evaluation input)
    constraint_excess: dict[str, float] = field(default_factory=dict)  # infeasible: relative excess per constraint
    attrs: dict[str, Any] = field(default_factory=dict)  # an evaluator's own trial attributes (e.g. nb201_index)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialResult":
        data = dict(data)
        data["input_shape"] = tuple(data.get("input_shape", ()))
        return cls(**data)

    def report(self) -> str:
        """A few readable lines for the CLI."""
        lines = [f"{self.spec_hash}  {self.summary}", f"status: {self.status}" + (f" ({self.reason})" if self.reason
                                                                                   else "")]
        if self.objectives:
            lines.append("objectives: " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.objectives.items()))
        latency = self.cost.get("latency")
        if latency:
            lines.append(f"latency: median {latency['median_ms']:.3f} ms, IQR {latency['iqr_ms']:.3f} ms "
                         f"(batch {latency['batch_size']}, {latency['device']}, {latency['threads']} thread(s), "
                         f"{latency.get('runtime', 'torch')})")
        if self.zero_cost:
            lines.append("zero-cost: " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.zero_cost.items()))
        for point in self.curve:
            lines.append(f"  epoch {point['epoch']:.2f}: train loss {point['train_loss']:.4f}, "
                         f"val loss {point['val_loss']:.4f}, val acc {point['val_accuracy']:.4f}")
        if self.training:
            lines.append(f"training: {self.training.get('wall_s', 0):.2f} s, "
                         f"{self.training.get('samples_per_s', 0):.0f} samples/s on {self.training.get('device')} "
                         f"({self.training.get('threads')} thread(s))")
        return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return f"{v:,}" if isinstance(v, int) else str(v)


_DATA_CACHE: dict[tuple, Any] = {}


def load_data(config: EvalConfig, device: str):
    """Load (and cache, per process) the dataset a config names, on ``device``."""
    key = (config.dataset, config.data_dir, config.val_fraction, config.seed, config.train_subset, device)
    if key not in _DATA_CACHE:
        if len(_DATA_CACHE) >= 2:
            _DATA_CACHE.pop(next(iter(_DATA_CACHE)))
        _DATA_CACHE[key] = load_dataset(config.dataset, data_dir=config.data_dir, device=device,
                                        val_fraction=config.val_fraction, seed=config.seed,
                                        train_subset=config.train_subset)
    return _DATA_CACHE[key]


def check_input_kind(data, kind: str, dataset: str, *, what: str, key: str, file: str | None = None,
                     error: type[NasError] = ConfigError) -> None:
    """Raise ``error`` (one line naming ``file`` and ``key``) when ``data`` is not of the ``kind`` of input
    (image / sequence) that ``what`` (a space, a spec) is for: the check of ``nas search``, ``nas eval`` and
    ``nas export``."""
    if data.kind != kind:
        raise error(f"{what} is for {kind} input but dataset {dataset!r} is {data.kind} data", file=file, key=key)


def evaluate(spec: ArchSpec, config: EvalConfig | None = None, *, data=None,
             callback: Callable[[EpochStats], bool | None] | None = None,
             weights_path: str | Path | None = None, precheck: Precheck | None = None) -> TrialResult:
    """Build, measure (params, FLOPs, activation memory, latency), score (zero-cost proxies) and proxy-train ``spec``.

    ``callback`` sees every epoch's stats (the controller prunes on it: return True to stop). ``weights_path``, when
    given, receives the trained weights as safetensors (only for a candidate that trained successfully, and not
    under a reduced-depth or reduced-width budget, whose trained network is not ``spec``: :func:`trained_spec`).

    ``precheck(spec, get_model) -> (problems, excess, measured)`` runs first (the controller's constraint check:
    :meth:`nas.control.engine.Engine.check_constraints`). ``get_model()`` builds the model at the evaluation input
    on first call (only a latency check needs it: params and FLOPs are counted by parts, without a build,
    :func:`nas.evaluate.costs.network_costs`, here too); the model it built is the one evaluated, and what ``measured``
    holds is not measured again (``params``, ``flops``; ``latency``: a
    :class:`~nas.evaluate.measure.Latency` as a dict). With ``problems`` the result is ``infeasible`` (``reason``:
    the problems, ``constraint_excess``: ``excess``) and nothing is measured or trained; ``result.precheck`` holds
    ``measured`` either way.
    """
    config = config or EvalConfig()
    device = config.resolved_device()
    data = data if data is not None else load_data(config, device)
    input_shape = config.budget.input_shape(data.input_shape)
    result = TrialResult(spec.hash(), spec.summary(), "ok", input_shape=tuple(input_shape),
                         num_classes=int(data.num_classes))
    start = time.perf_counter()
    get_model = lazy_model(spec, input_shape, data.num_classes, seed=config.model_seed)
    try:
        measured: dict[str, Any] = {}
        if precheck is not None:
            problems, excess, measured = precheck(spec, get_model)
            result.precheck = dict(measured)
            if problems:
                result.status, result.reason = "infeasible", "; ".join(problems)
                result.constraint_excess = dict(excess)
                result.wall_s = time.perf_counter() - start
                return result
        model = get_model()
        if "params" not in measured or "flops" not in measured:  # counted by parts, as the pre-check does
            measured = {**costs.network_costs(spec, input_shape, data.num_classes), **measured}
        params, flops = measured["params"], measured["flops"]
        activation = measure.activation_memory_bytes(model, example_input(model, 8)) / 8
        latency = (measure.Latency.from_dict(measured["latency"])
                   if "latency" in measured else measure_latency_for(model, input_shape, config, spec))
        throughput = measure.measure_throughput(model, input_shape, device=config.latency_device,
                                                batch_size=config.throughput_batch_size,
                                                warmup=2, repeats=max(5, config.latency_repeats // 3),
                                                threads=config.latency_threads)
        result.cost = {"params": params, "flops": flops, "activation_bytes_per_sample": activation,
                       "latency": latency.to_dict(), "throughput": throughput.to_dict()}
        result.objectives = {"params": params, "flops": flops, "latency_ms": latency.median_ms,
                             "activation_mb": activation / 2**20}
        if config.zero_cost:
            batch = proxy_batch(data, config, input_shape)
            result.zero_cost = zero_cost.score_all(model, batch, seed=config.seed, names=list(config.zero_cost))
        reduced = trained_spec(spec, config.budget)
        if reduced is not spec:  # a reduced proxy: the costs above are the whole network's, this one is trained
            del model
            model = lazy_model(reduced, input_shape, data.num_classes, seed=config.model_seed)()
    except NasError as e:
        if not isinstance(e, BuildError):  # a bad config or data set is the caller's error, not the candidate's
            raise
        result.status, result.reason = "error", e.one_line()
        result.wall_s = time.perf_counter() - start
        return result
    except Exception as e:  # a candidate that cannot even be built or measured fails, the caller goes on
        result.status, result.reason = "error", f"{type(e).__name__}: {e}".replace("\n", " ")
        result.wall_s = time.perf_counter() - start
        return result

    trained = train(model, data, config.budget, device=device, seed=config.model_seed, callback=callback,
                    threads=config.train_threads)
    result.curve = [dataclasses.asdict(point) for point in trained.curve]
    result.training = {k: v for k, v in trained.to_dict().items()
                       if k not in ("curve", "status", "reason", "val_correct")}
    result.val_correct = trained.val_correct
    result.status, result.reason = trained.status, trained.reason
    if trained.final is not None:
        result.objectives["accuracy"] = trained.final.val_accuracy
        result.objectives["val_loss"] = trained.final.val_loss
    if trained.status == "ok" and weights_path is not None and reduced is spec:  # (not the reduced proxy's)
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(weights_path), metadata={"spec_hash": result.spec_hash})
    result.wall_s = time.perf_counter() - start
    del model
    return result


# the objectives it reports (a run asking for another is refused before any trial: nas.evaluate.evaluators)
evaluate.reports = ("accuracy", "latency_ms", "params", "flops", "activation_mb", "val_loss")


def trained_spec(spec: ArchSpec, budget) -> ArchSpec:
    """The network proxy training trains for ``spec`` under ``budget``: ``spec`` itself, or with ``budget.depth`` /
    ``budget.width`` below 1 the spec with its depth / width multiplier scaled by it (at least one block per stage;
    channels rounded to a multiple of 8)."""
    update = {}
    if budget.depth < 1:
        update["depth_multiplier"] = spec.depth_multiplier * budget.depth
    if budget.width < 1:
        update["width_multiplier"] = spec.width_multiplier * budget.width
    return spec.model_copy(update=update) if update else spec


def measure_latency_for(model, input_shape, config: EvalConfig, spec: ArchSpec | None = None):
    """:func:`nas.evaluate.measure.measure_latency` with the latency settings of ``config`` (what the latency
    objective and the ``max_latency_ms`` pre-check both measure). With ``latency_source: table`` and the network's
    ``spec``: its latency predicted by the table (no timing; ``model`` may be None), parts the table lacks measured
    on demand and appended."""
    if config.latency_source == "table" and spec is not None:
        return latency_table.predicted(latency_table.cached(config.latency_table), spec, input_shape)
    return measure.measure_latency(model, input_shape, device=config.latency_device,
                                   batch_size=config.latency_batch_size, warmup=config.latency_warmup,
                                   repeats=config.latency_repeats, threads=config.latency_threads,
                                   min_time_s=config.latency_min_time_s, runtime=config.latency_runtime)


def proxy_batch(data, config: EvalConfig, input_shape) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch of training data (seeded) for the zero-cost proxies, at the model's input size."""
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    n = min(config.zero_cost_batch_size, len(data.y_train))
    index = torch.randperm(len(data.y_train), generator=generator)[:n].to(data.y_train.device)
    x = data.normalize(data.x_train[index])
    if x.dim() == 4 and tuple(x.shape[2:]) != tuple(input_shape[1:]):
        x = torch.nn.functional.interpolate(x, size=tuple(input_shape[1:]), mode="bilinear", align_corners=False)
    return x.cpu(), data.y_train[index].cpu()


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
