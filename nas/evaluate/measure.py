"""Cost meters for any ``nn.Module``: parameters, FLOPs, activation memory, latency and throughput.

FLOP definition
---------------
:func:`count_flops` reports FLOPs the way :class:`torch.utils.flop_counter.FlopCounterMode` does: one
multiply-add is **2 FLOPs**, and only matrix products, convolutions and attention matmuls are counted
(``mm``/``addmm``/``bmm``/``baddbmm``/convolution/SDPA). Elementwise work (activations, normalisation, bias
adds, softmax, residual adds, pooling) is *not* counted. ``Conv2d(M, N, K, bias=False)`` on a batch of ``B``
gives ``2 * N * M * K * K * H_out * W_out * B``; ``Linear(I, O)`` gives ``2 * I * O`` per row. The count is
of one forward pass in eval mode under ``torch.no_grad()``.

Corrections applied on top of the counter (all measured on torch 2.13, CPU):

* ``F.scaled_dot_product_attention`` on CPU dispatches to ``aten._scaled_dot_product_flash_attention_for_cpu``,
  which the stock counter has no formula for (it reports 0). It is registered here with the counter's own
  SDPA formula (two batched matmuls, ``4 * B * heads * L_q * L_k * head_dim``; causal masks are not
  discounted, as in the counter).
* ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` in eval mode under no-grad take the fused
  "fast path" (``aten._native_multi_head_attention``, ...), invisible to the counter (0 FLOPs, projections
  included). The fast path is switched off (``torch.backends.mha.set_fastpath_enabled(False)``) while
  counting and restored afterwards, so the ordinary decomposed path is counted.
* Recurrent layers (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``): on CPU ``nn.LSTM`` runs as a fused
  ``aten.mkldnn_rnn_layer`` op (counter reports 0) while ``nn.GRU``/``nn.RNN`` are decomposed into
  ``mm``/``addmm`` (counted). To be independent of the backend, whatever the counter saw inside an
  ``nn.RNNBase`` module is *replaced* by the closed form (per token = per example per time step, per layer,
  per direction)::

      2 * G * H * (I_l + P)        G = 4 (LSTM), 3 (GRU), 1 (RNN); H = hidden_size;
                                   P = proj_size or H (size of the recurrent state h);
                                   I_l = input_size for layer 0, else P * num_directions
      + 2 * H * P                  LSTM with proj_size > 0 only (the projection h = W_hr (o * tanh c))

  i.e. exactly the matmul FLOPs the counter reports for the decomposed GRU/RNN; the elementwise gate
  arithmetic is excluded, like every other elementwise op here. For ``PackedSequence`` inputs the token
  count is the number of real (unpadded) tokens.

The ``extra_flops`` convention
------------------------------
Work the counter cannot see (e.g. a Mamba-style selective scan written as elementwise mul/add/exp in a Python
loop) is declared by the module itself: any module may define::

    def extra_flops(self, inputs: tuple, output) -> int

During :func:`count_flops` a forward hook on every module that has a callable ``extra_flops`` calls it with
the module's positional inputs and its output, and the returned integer is *added* to the total (on top of
what the counter saw inside that module, so it must only count what the counter misses). It is called once
per forward call of the module. It should depend on shapes only: it runs inside the counter, so any matmul it
executes would itself be counted.

Activation memory
-----------------
:func:`activation_memory_bytes` is the number of bytes held by tensors autograd saves for backward during one
training-mode forward pass (``torch.autograd.graph.saved_tensors_hooks``), each underlying storage counted
once (keyed by storage ``data_ptr``) and parameters and buffers excluded. It is deterministic and works on any
device; it does not include the parameters, the gradients, optimizer state, or transient buffers freed during
the forward. :func:`peak_memory_bytes` (CUDA only) measures the real allocator peak instead.
"""
from __future__ import annotations

import contextlib
import copy
import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas.catalog import LATENCY_RUNTIMES
from nas.errors import ConfigError
from nas.evaluate.onnx_graph import onnx_bytes, ort_session
from nas.version import __version__

__all__ = [
    "Latency",
    "activation_memory_bytes",
    "count_flops",
    "count_params",
    "measure_latency",
    "measure_throughput",
    "peak_memory_bytes",
    "rnn_flops",
]

_aten = torch.ops.aten


# ----------------------------------------------------------------------------------------------------- helpers
def _as_args(example_input: Any) -> tuple:
    """A tensor (or a namedtuple such as ``PackedSequence``) is one positional argument; a plain tuple/list is
    several."""
    if type(example_input) in (tuple, list):
        return tuple(example_input)
    return (example_input,)


class _ModesSaved:
    """Remember every module's ``training`` flag and restore it on exit."""

    def __init__(self, model: nn.Module):
        self._flags = [(m, m.training) for m in model.modules()]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for m, flag in self._flags:
            m.training = flag
        return False


class _MhaFastPathOff:
    """Disable the fused MHA / TransformerEncoderLayer inference fast path (invisible to the FLOP counter)."""

    def __enter__(self):
        mha = getattr(torch.backends, "mha", None)
        self._prev = None
        if mha is not None and hasattr(mha, "get_fastpath_enabled"):
            self._prev = mha.get_fastpath_enabled()
            mha.set_fastpath_enabled(False)
        return self

    def __exit__(self, *exc):
        if self._prev is not None:
            torch.backends.mha.set_fastpath_enabled(self._prev)
        return False


def _custom_flop_mapping() -> dict:
    """Formulas for fused attention ops the stock counter lacks (same formula as its own SDPA entry)."""
    from torch.utils.flop_counter import sdpa_flop_count

    def sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    mapping = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_fused_attention_overrideable"):
        if hasattr(_aten, name):
            mapping[getattr(_aten, name)] = sdpa_cpu_flop
    return mapping


# ------------------------------------------------------------------------------------------------------ params
def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``), each shared tensor counted once."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():  # parameters() already de-duplicates shared Parameters
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return int(total)


# ------------------------------------------------------------------------------------------------------- FLOPs
def _rnn_tokens(module: nn.RNNBase, inputs: tuple, kwargs: dict) -> int:
    x = inputs[0] if inputs else kwargs["input"]
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return int(x.data.shape[0])
    if x.dim() == 2:  # unbatched (T, I)
        return int(x.shape[0])
    return int(x.shape[0] * x.shape[1])


def rnn_flops(module: nn.RNNBase, tokens: int) -> int:
    """Closed-form matmul FLOPs of ``module`` (LSTM/GRU/RNN) over ``tokens`` (batch x time steps).

    See the module docstring for the formula; 2 FLOPs per multiply-add, elementwise gate work excluded.
    """
    mode = module.mode
    gates = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}[mode]
    hidden = module.hidden_size
    proj = getattr(module, "proj_size", 0) or 0
    state = proj if proj > 0 else hidden
    dirs = 2 if module.bidirectional else 1
    per_token = 0
    for layer in range(module.num_layers):
        in_size = module.input_size if layer == 0 else state * dirs
        per_dir = 2 * gates * hidden * (in_size + state)
        if proj > 0:
            per_dir += 2 * hidden * proj
        per_token += per_dir * dirs
    return int(per_token * tokens)


class _NoModuleTracker:
    """Stands in for ``FlopCounterMode``'s module tracker: every FLOP is attributed to "Global" only."""

    parents = frozenset({"Global"})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _TotalFlopCounter(FlopCounterMode):
    """``FlopCounterMode`` without its per-module breakdown. The stock counter tracks which modules each op runs
    in (global forward hooks on every module call plus a pytree walk of every module's inputs and outputs) to print
    its per-module table; a total does not need it. Same formulas, same total (tested against the stock counter
    over every shipped space), about 20 % less time at batch 1 (experiments/bench_flop_count.py: median ratio 0.81)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if hasattr(self, "mod_tracker"):  # a torch without one simply counts the stock way
            self.mod_tracker = _NoModuleTracker()


def count_flops(model: nn.Module, example_input: Any, *, per_module: bool = False) -> int:
    """Forward FLOPs of ``model`` on ``example_input`` (a tensor, or a tuple of positional arguments).

    Counted with ``FlopCounterMode(display=False)`` in eval mode under ``torch.no_grad()`` (2 FLOPs per
    multiply-add), with the corrections and the ``extra_flops`` convention described in the module docstring.
    The model's train/eval flags are restored afterwards. The batch dimension of ``example_input`` is included.
    ``per_module=True`` uses the stock counter with its module tracking (same total, slower; for checks).
    """
    args = _as_args(example_input)
    extra = 0
    handles = []
    kind = FlopCounterMode if per_module else _TotalFlopCounter
    counter = kind(display=False, custom_mapping=_custom_flop_mapping())
    rnn_before: dict[int, list[int]] = {}

    def extra_hook(module, inputs, output):
        nonlocal extra
        extra += int(module.extra_flops(inputs, output))

    def rnn_pre_hook(module, inputs, kwargs):
        rnn_before.setdefault(id(module), []).append(counter.get_total_flops())

    def rnn_hook(module, inputs, kwargs, output):
        nonlocal extra
        seen = counter.get_total_flops() - rnn_before[id(module)].pop()
        extra += rnn_flops(module, _rnn_tokens(module, inputs, kwargs)) - seen

    for m in model.modules():
        if isinstance(m, nn.RNNBase):
            handles.append(m.register_forward_pre_hook(rnn_pre_hook, with_kwargs=True))
            handles.append(m.register_forward_hook(rnn_hook, with_kwargs=True))
        if callable(getattr(m, "extra_flops", None)):
            handles.append(m.register_forward_hook(extra_hook))
    try:
        with _ModesSaved(model), _MhaFastPathOff(), torch.no_grad():
            model.eval()
            with counter:
                model(*args)
    finally:
        for h in handles:
            h.remove()
    return int(counter.get_total_flops() + extra)


# ----------------------------------------------------------------------------------------------------- memory
def _storage_key_and_size(t: torch.Tensor) -> tuple[Any, int]:
    try:
        st = t.untyped_storage()
        return (t.device, st.data_ptr()), int(st.nbytes())
    except Exception:  # tensor subclasses / sparse tensors without a plain storage
        return ("id", id(t)), int(t.numel() * t.element_size())


def activation_memory_bytes(model: nn.Module, example_input: Any) -> int:
    """Bytes of tensors saved for backward during ONE training-mode forward pass.

    Saved tensors are collected with ``torch.autograd.graph.saved_tensors_hooks``; each underlying storage is
    counted once (by ``data_ptr``, so a tensor saved twice, or two views of one storage, count once, at the
    storage's full size) and storages of parameters and buffers are excluded. The input itself counts when a
    layer saves it (it must be kept for backward). The input is *not* made to require grad. The model's
    train/eval flags, buffers (e.g. BatchNorm running statistics) and the global RNG state are restored.
    Deterministic; works on CPU.
    """
    args = _as_args(example_input)
    exclude = set()
    for t in list(model.parameters()) + list(model.buffers()):
        exclude.add(_storage_key_and_size(t)[0])
    seen: dict[Any, int] = {}

    def pack(t):
        if isinstance(t, torch.Tensor):
            key, size = _storage_key_and_size(t)
            if key not in exclude and key not in seen and size > 0:
                seen[key] = size
        return t

    def unpack(t):
        return t

    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    devices = sorted({a.device.index for a in args if isinstance(a, torch.Tensor) and a.is_cuda})
    try:
        with _ModesSaved(model), torch.random.fork_rng(devices=devices), torch.enable_grad():
            model.train()
            with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
                out = model(*args)
            del out
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    return int(sum(seen.values()))


def peak_memory_bytes(model: nn.Module, example_input: Any, *, backward: bool = True) -> int:
    """CUDA only: allocator peak (``torch.cuda.max_memory_allocated``) of one training step, minus the
    memory allocated before it (so parameters already resident are not included; gradients are).

    The step is a training-mode forward and, if ``backward``, a backward of the sum of the (first) output.
    Parameter gradients created here are removed again; train/eval flags and buffers are restored.
    """
    args = _as_args(example_input)
    if not torch.cuda.is_available():
        raise ConfigError("peak_memory_bytes needs a CUDA device, and torch.cuda.is_available() is False",
                          key="device")
    tensors = [a for a in args if isinstance(a, torch.Tensor)] + list(model.parameters())
    if not tensors or not all(t.is_cuda for t in tensors):
        raise ConfigError("peak_memory_bytes needs the model and the input on a CUDA device", key="device")
    device = tensors[0].device
    params = list(model.parameters())
    old_grads = [p.grad for p in params]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with _ModesSaved(model), torch.random.fork_rng(devices=[device.index or 0]), torch.enable_grad():
            model.train()
            for p in params:
                p.grad = None
            torch.cuda.synchronize(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            out = model(*args)
            if isinstance(out, (tuple, list)):
                out = out[0]
            if backward and out.requires_grad:
                out.float().sum().backward()
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
            del out
    finally:
        for p, g in zip(params, old_grads):
            p.grad = g
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    return int(max(0, peak - base))


# ---------------------------------------------------------------------------------------------------- latency
def versions() -> dict:
    """The versions a measurement or an export was made with: this package, torch, python, onnxruntime."""
    found = {"nas": __version__, "torch": torch.__version__, "python": platform.python_version()}
    with contextlib.suppress(ImportError):
        import onnxruntime

        found["onnxruntime"] = onnxruntime.__version__
    return found


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform says."""
    name = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return name or platform.processor() or platform.machine() or "unknown CPU"


@dataclass
class Latency:
    """Result of :func:`measure_latency` (times in milliseconds per forward call of ``batch_size`` samples)."""

    device: str
    batch_size: int
    median_ms: float
    iqr_ms: float
    repeats: int
    warmup: int
    threads: int | None
    runtime: str = "torch"  # what ran the network: torch (eager PyTorch) or onnxruntime (its ONNX graph)
    source: str = "measured"  # measured, or table: predicted from a latency table (nas.evaluate.latency_table)

    @property
    def samples_per_s(self) -> float:
        """Throughput implied by the median: ``batch_size / median``."""
        return float(self.batch_size / (self.median_ms / 1000.0)) if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["samples_per_s"] = self.samples_per_s
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "Latency":
        """The inverse of :meth:`to_dict` (the derived ``samples_per_s`` is dropped: it follows from the rest)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})  # runtime: torch before it was kept


def _check_positive(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", key=name)


def _model_on(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` itself if all its tensors are on ``device``, else a copy moved there (caller's model untouched)."""
    tensors: Iterable[torch.Tensor] = list(model.parameters()) + list(model.buffers())
    if all(t.device == device for t in tensors):
        return model
    return copy.deepcopy(model).to(device)


MAX_LATENCY_REPEATS = 10_000


def measure_latency(
    model: nn.Module,
    input_shape_without_batch: tuple[int, ...] | list[int],
    *,
    device: str = "cpu",
    batch_size: int = 1,
    warmup: int = 10,
    repeats: int = 50,
    threads: int | None = 1,
    dtype: torch.dtype = torch.float32,
    min_time_s: float = 0.0,
    runtime: str = "torch",
) -> Latency:
    """Median and interquartile range (75th - 25th percentile) of at least ``repeats`` timed forward calls.

    ``min_time_s`` keeps timing (up to ``MAX_LATENCY_REPEATS`` calls) until the timed calls add up to that many
    seconds: 30 calls of a 3 ms model span 0.1 s, short enough for one burst of another process on a shared CPU to
    move the median by 10-40% (experiments/results/bench_latency_repeatability.md); a window of half a second or
    more averages such bursts out. The number of calls actually timed is recorded in ``repeats``.

    The model runs in eval mode under ``torch.inference_mode()`` on a fixed random input of shape
    ``(batch_size, *input_shape_without_batch)`` (``dtype`` float: standard normal; integer dtypes, e.g. token
    ids: zeros), after ``warmup`` untimed calls. On CPU, ``torch.set_num_threads(threads)`` is in force during
    the measurement and restored afterwards (``threads=None`` keeps the current setting; the number actually
    used is recorded). On CUDA each repeat is timed with ``torch.cuda.Event(enable_timing=True)`` and
    synchronisation, and ``threads`` is recorded as ``None``. If the model is not on ``device`` a copy is
    moved there; the caller's model (and its train/eval flags) is left as it was.

    ``runtime="onnxruntime"`` (CPU only) times the model's ONNX graph, written in memory, in an onnxruntime session
    with ``threads`` intra-op threads (:mod:`nas.evaluate.onnx_graph`), on the same input.
    """
    _check_positive("batch_size", batch_size, 1)
    _check_positive("warmup", warmup, 0)
    _check_positive("repeats", repeats, 1)
    if isinstance(min_time_s, bool) or not isinstance(min_time_s, (int, float)) or not (0 <= min_time_s <= 60):
        raise ConfigError(f"must be a number of seconds in [0, 60], got {min_time_s!r}", key="min_time_s")
    if threads is not None:
        _check_positive("threads", threads, 1)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"not a torch device: {device!r}", key="device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available", key="device")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"latency is measured on 'cpu' or 'cuda', not {device!r}", key="device")
    if runtime not in LATENCY_RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r} (known: {', '.join(LATENCY_RUNTIMES)})", key="runtime")
    if runtime == "onnxruntime" and dev.type != "cpu":
        raise ConfigError("onnxruntime latency is measured on the cpu (CPUExecutionProvider)", key="device")

    shape = (batch_size, *tuple(int(s) for s in input_shape_without_batch))
    gen = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        x = torch.randn(shape, generator=gen, dtype=dtype)
    else:
        x = torch.zeros(shape, dtype=dtype)
    x = x.to(dev)
    net = _model_on(model, dev)
    if runtime == "onnxruntime":
        return _onnxruntime_latency(net, x, warmup=warmup, repeats=repeats, threads=threads, min_time_s=min_time_s)

    prev_threads = torch.get_num_threads()
    used_threads: int | None = None
    try:
        if dev.type == "cpu":
            if threads is not None:
                torch.set_num_threads(threads)
            used_threads = torch.get_num_threads()
        with _ModesSaved(net), torch.inference_mode():
            net.eval()
            for _ in range(warmup):
                net(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)

            def call_ms() -> float:
                if dev.type == "cuda":
                    start = torch.cuda.Event(enable_timing=True)
                    end = torch.cuda.Event(enable_timing=True)
                    start.record()
                    net(x)
                    end.record()
                    end.synchronize()
                    return float(start.elapsed_time(end))
                t0 = time.perf_counter_ns()
                net(x)
                return (time.perf_counter_ns() - t0) / 1e6

            times_ms = _timed_calls(call_ms, repeats, min_time_s)
    finally:
        if dev.type == "cpu":
            torch.set_num_threads(prev_threads)

    return _latency_of(times_ms, str(dev), batch_size, warmup, used_threads, "torch")


def _timed_calls(call_ms: Callable[[], float], repeats: int, min_time_s: float) -> list[float]:
    """The milliseconds of at least ``repeats`` calls of ``call_ms``, and more (up to ``MAX_LATENCY_REPEATS``) until
    they add up to ``min_time_s``."""
    times_ms: list[float] = []
    total_ms, min_total_ms = 0.0, 1000.0 * float(min_time_s)
    while len(times_ms) < repeats or (total_ms < min_total_ms and len(times_ms) < MAX_LATENCY_REPEATS):
        times_ms.append(call_ms())
        total_ms += times_ms[-1]
    return times_ms


def _onnxruntime_latency(net: nn.Module, x: torch.Tensor, *, warmup: int, repeats: int, threads: int | None,
                         min_time_s: float) -> Latency:
    with _ModesSaved(net):
        session = ort_session(onnx_bytes(net, x)[0], threads)
    feed = {session.get_inputs()[0].name: x.numpy()}
    for _ in range(warmup):
        session.run(None, feed)

    def call_ms() -> float:
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        return (time.perf_counter_ns() - t0) / 1e6

    return _latency_of(_timed_calls(call_ms, repeats, min_time_s), "cpu", int(x.shape[0]), warmup,
                       session.get_session_options().intra_op_num_threads or None, "onnxruntime")


def _latency_of(times_ms: list[float], device: str, batch_size: int, warmup: int, threads: int | None,
                runtime: str) -> Latency:
    arr = np.asarray(times_ms, dtype=np.float64)
    q25, q50, q75 = np.percentile(arr, [25, 50, 75])
    return Latency(device=device, batch_size=batch_size, median_ms=float(q50), iqr_ms=float(max(0.0, q75 - q25)),
                   repeats=len(times_ms), warmup=warmup, threads=threads, runtime=runtime)


def measure_throughput(
    model: nn.Module,
    input_shape_without_batch: tuple[int, ...] | list[int],
    *,
    device: str = "cpu",
    batch_size: int = 64,
    warmup: int = 5,
    repeats: int = 20,
    threads: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> Latency:
    """:func:`measure_latency` at a throughput-sized batch; read ``.samples_per_s`` (also in ``to_dict()``).

    ``threads=None`` (default) keeps the process's current CPU thread count.
    """
    return measure_latency(model, input_shape_without_batch, device=device, batch_size=batch_size,
                           warmup=warmup, repeats=repeats, threads=threads, dtype=dtype)
