"""Zero-cost proxies: cheap scores of an untrained network from one batch.

Every proxy has the signature ``proxy(model, batch, *, seed=0) -> float`` where ``batch = (x, y)``. Each works on
a ``copy.deepcopy`` of the model, so the caller's weights, gradients, buffers and train/eval flags are never
touched, and runs inside ``torch.random.fork_rng`` seeded with ``seed``, so it is deterministic for a seed
(e.g. dropout masks) and leaves the global RNG state as it was. ``x`` is a tensor (or a tuple of positional
arguments); the model's output is a tensor, or a tuple/list whose first element is used.

Loss (grad_norm, snip): if ``y`` has an integer dtype it is cross-entropy; an output ``(B, ..., C)`` whose leading
shape equals the targets' ``(B, ...)`` (e.g. per-token classification) is flattened to ``(N, C)``; otherwise
classes are dimension 1, as in ``F.cross_entropy``. A floating ``y`` of the
output's shape is treated as regression (mean squared error).

Parameters scored ("sum over params") are all parameters with ``requires_grad``, not only Conv2d/Linear
weights as in the reference implementation (Abdelfattah et al. 2021): recurrent weights and state-space
parameters (``A_log``, ``D``, ...) would otherwise be ignored.

Proxies and how they treat each kind of block
---------------------------------------------
``synflow`` (Tanaka et al. 2020). A float64 copy with every parameter replaced by its absolute value, in
**eval mode**, fed an all-ones input of ``x``'s shape (integer inputs such as token ids: all ones, i.e. token 1),
so it does not depend on the data; ``R = sum(output)``; score ``= sum_params |theta * dR/dtheta|``. All
examples of that batch are the same, so the score of a batch of B is B times that of one example: one example is
run and the score scaled by B (the value of the whole batch, at a B-th of the cost: 0.5-1.3 s per candidate saved
at B = 64 on a CPU). Equal in exact arithmetic for any block (even a norm over the batch sees B copies of one
example); in float64 the two agree to rounding, except in an ill-conditioned network (e.g. instance norm of the
constant input, whose gradients reach 1e17), where the score is rounding noise either way. Eval mode
because in train mode BatchNorm would normalise the constant all-ones batch to zero (zero variance) and kill
the signal; in eval mode at init it uses its running statistics (mean 0, var 1), i.e. an affine map.
Returned as the raw float64 sum, like NAS-Bench-Suite-Zero (rank-equivalent to its log); finite for ordinary
small and medium networks; if it overflows float64 the result is ``inf`` (a saturated score).
Blocks: convolutions behave as in the paper. Softmax attention: with a constant input and positive weights
all queries/keys are identical across positions, so attention is uniform (an average over positions);
attention still contributes through its projections. LayerNorm of a constant vector is zero (only |bias|
passes), so sub-networks right after a LayerNorm on the input receive little signal -- a known limitation of
SynFlow for transformers. Recurrent layers (LSTM/GRU) run with |weights| and saturate their gates (sigmoid of
a positive sum); their parameters still receive gradient. Mamba-style selective state-space blocks run with
|params| (e.g. ``A = -exp(|A_log|)`` stays a stable decay); the elementwise scan is differentiated like any op.

``naswot`` (Mellor et al. 2021). Real inputs, train mode, no grad. Forward hooks on the INPUT of every
activation module (``nn.ReLU``, ``ReLU6``, ``LeakyReLU``, ``PReLU``, ``RReLU``, ``ELU``, ``SELU``, ``CELU``,
``GELU``, ``SiLU``, ``Mish``, ``Hardswish``, ``Softplus``) give binary codes ``c = input > 0``, flattened per
example; ``K = sum_layers (C C^T + (1-C)(1-C)^T)`` in float64; score ``= slogdet(K)`` (log-determinant;
``-inf`` if K is singular, e.g. two identical examples). Activations applied functionally (``F.relu`` in a
``forward``) are invisible. Attention, recurrent and state-space blocks contribute only through the
activation modules they contain (e.g. a transformer's MLP GELU, a Mamba block's SiLU); the gates inside
``nn.LSTM``/``nn.GRU`` are invisible. **Fallback**: a model with no such activation module at all (pure
attention / recurrent models) is scored with codes ``output > 0`` of every ``nn.Linear``, ``nn.Conv1d/2d/3d``,
``nn.MultiheadAttention`` (its attention output) and ``nn.RNNBase`` (its output sequence) module.

``grad_norm`` (Abdelfattah et al. 2021). Train mode; gradient of the loss on the batch; score = **sum over
parameter tensors of the L2 norm of each tensor's gradient** (as in the reference implementation, which sums
per-layer norms), not the global L2 norm. Every block type is treated the same way: gradients flow through
attention softmax, recurrent unrolling and the scan loop.

``snip`` (Lee et al. 2019). Train mode; ``sum_params |theta * dL/dtheta|`` with the loss on the batch. Same
treatment of all block types as grad_norm.

``params`` / ``flops``. :func:`nas.evaluate.measure.count_params` and :func:`nas.evaluate.measure.count_flops`
on ``x`` (including its batch size). ``flops`` counts attention matmuls and recurrent layers by closed form;
an elementwise selective scan is counted only if the block declares ``extra_flops`` (see ``measure``).

:func:`score_all` runs several proxies and never raises because of a proxy: a proxy that fails gives
``float('nan')`` and the failure is logged (``logging`` warning with the traceback at debug level). Only an
unknown proxy *name* is an error (``ConfigError``), reported before any scoring.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import ConfigError
from nas.evaluate.measure import count_flops, count_params
from nas.registry import Registry

__all__ = ["PROXIES", "flops", "grad_norm", "naswot", "params", "score_all", "snip", "synflow"]

log = logging.getLogger(__name__)

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU,
    nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus,
)
FALLBACK_TYPES: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MultiheadAttention, nn.RNNBase,
)


# ----------------------------------------------------------------------------------------------------- helpers
def _args(x: Any) -> tuple:
    return tuple(x) if type(x) in (tuple, list) else (x,)  # a PackedSequence (namedtuple) is one argument


def _first(out: Any) -> torch.Tensor:
    while isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"model output is {type(out).__name__}, not a tensor (or tuple starting with one)")
    return out


def _devices_of(model: nn.Module, tensors: Iterable[Any]) -> list[int]:
    devs = {t.device.index or 0 for t in list(model.parameters()) + list(tensors)
            if isinstance(t, torch.Tensor) and t.is_cuda}
    return sorted(devs)


@contextlib.contextmanager
def _seeded(seed: int, model: nn.Module, tensors: Iterable[Any]):
    """Fork the CPU (and used CUDA devices') RNG, seed it, restore on exit."""
    with torch.random.fork_rng(devices=_devices_of(model, tensors)):
        torch.manual_seed(seed)
        yield


def _copy(model: nn.Module) -> nn.Module:
    net = copy.deepcopy(model)
    for p in net.parameters():
        p.grad = None
    return net


def _loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if y.dtype.is_floating_point:
        return F.mse_loss(out, y.to(out.dtype))
    if out.dim() > 2 and out.shape[:-1] == y.shape:
        # (B, ..., C) with targets (B, ...): per-position classification, classes last
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    return F.cross_entropy(out, y)  # (B, C) / (B, C, d1, ...) with (B,) / (B, d1, ...)


def _trainable(net: nn.Module) -> list[nn.Parameter]:
    return [p for p in net.parameters() if p.requires_grad]


def _loss_grads(model: nn.Module, batch: tuple, seed: int) -> tuple[nn.Module, list[nn.Parameter]]:
    """Copy, train mode, one forward/backward of the loss on ``batch``; returns the copy and its params."""
    x, y = batch
    with _seeded(seed, model, (*_args(x), y)):
        net = _copy(model)
        net.train()
        with torch.enable_grad():
            out = _first(net(*_args(x)))
            _loss(out, y).backward()
    return net, _trainable(net)


# ----------------------------------------------------------------------------------------------------- proxies
def synflow(model: nn.Module, batch: tuple, *, seed: int = 0) -> float:
    """SynFlow: ``sum |theta * dR/dtheta|``, R = sum of the output of a float64 |theta| copy on all-ones input."""
    x, _ = batch
    xs = _args(x)
    # every example of the all-ones batch is the same, so R over B examples is B x R over one, and so is the score
    # (in exact arithmetic, whatever the blocks): one example is scored and the sum scaled by B, B times cheaper
    size = next((a.shape[0] for a in xs if isinstance(a, torch.Tensor) and a.dim() > 0), 1)
    xs = tuple(a[:1] if isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == size else a for a in xs)
    with _seeded(seed, model, xs):
        net = _copy(model).double()
        net.eval()
        with torch.no_grad():
            for p in net.parameters():
                p.abs_()
        ones = tuple(
            torch.ones_like(a, dtype=torch.float64 if a.is_floating_point() else a.dtype)
            if isinstance(a, torch.Tensor) else a
            for a in xs
        )
        with torch.enable_grad():
            out = _first(net(*ones))
            out.double().sum().backward()
    total = torch.zeros((), dtype=torch.float64)
    for p in _trainable(net):
        if p.grad is not None:
            total = total + (p.detach() * p.grad).abs().sum().double().cpu()
    return float(total) * size


def naswot(model: nn.Module, batch: tuple, *, seed: int = 0) -> float:
    """NASWOT: log-determinant of the summed Hamming-similarity kernel of binary activation codes."""
    x, _ = batch
    xs = _args(x)
    kernel: list[torch.Tensor] = []  # one accumulator

    def add_codes(t: torch.Tensor) -> None:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() == 0:
            return
        c = (t.detach() > 0).reshape(t.shape[0], -1).double()
        k = c @ c.T + (1.0 - c) @ (1.0 - c).T
        if kernel:
            if kernel[0].shape != k.shape:  # a layer without a leading batch dim (e.g. unbatched RNN state)
                return
            kernel[0] = kernel[0] + k
        else:
            kernel.append(k)

    def input_hook(module, inputs, output):
        if inputs:
            add_codes(inputs[0])

    def output_hook(module, inputs, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        if isinstance(out, nn.utils.rnn.PackedSequence):
            out = out.data
        add_codes(out)

    with _seeded(seed, model, xs):
        net = _copy(model)
        net.train()
        acts = [m for m in net.modules() if isinstance(m, ACTIVATION_TYPES)]
        if acts:
            handles = [m.register_forward_hook(input_hook) for m in acts]
        else:
            handles = [m.register_forward_hook(output_hook) for m in net.modules() if isinstance(m, FALLBACK_TYPES)]
        if not handles:
            raise ValueError("naswot: model has no activation, Linear, Conv, attention or recurrent module to hook")
        try:
            with torch.no_grad():
                net(*xs)
        finally:
            for h in handles:
                h.remove()
    if not kernel:
        raise ValueError("naswot: no hooked module produced a floating-point output")
    _, logdet = torch.linalg.slogdet(kernel[0].cpu())
    return float(logdet)


def grad_norm(model: nn.Module, batch: tuple, *, seed: int = 0) -> float:
    """Sum over parameter tensors of the L2 norm of the loss gradient (Abdelfattah et al. 2021)."""
    _, ps = _loss_grads(model, batch, seed)
    return float(sum(float(p.grad.double().norm()) for p in ps if p.grad is not None))


def snip(model: nn.Module, batch: tuple, *, seed: int = 0) -> float:
    """SNIP saliency summed over parameters: ``sum |theta * dL/dtheta|``."""
    _, ps = _loss_grads(model, batch, seed)
    return float(sum(float((p.detach() * p.grad).abs().double().sum()) for p in ps if p.grad is not None))


def params(model: nn.Module, batch: tuple, *, seed: int = 0) -> float:
    """Trainable parameter count (``measure.count_params``)."""
    return float(count_params(model))


def flops(model: nn.Module, batch: tuple, *, seed: int = 0) -> float:
    """Forward FLOPs on the batch's inputs (``measure.count_flops``, 2 per multiply-add)."""
    x, _ = batch
    with _seeded(seed, model, _args(x)):
        return float(count_flops(_copy(model), x))


# The zero-cost proxies registry: ``(model, batch, *, seed) -> float`` (higher = predicted better); a plugin adds one
# with ``PROXIES.register("name", fn)``. score_all runs all of them by default, in this order.
PROXIES: Registry[Callable[..., float]] = Registry("zero-cost proxy", error=ConfigError, key="zero_cost")
for _name, _proxy in (("synflow", synflow), ("naswot", naswot), ("grad_norm", grad_norm), ("snip", snip),
                      ("params", params), ("flops", flops)):
    PROXIES.register(_name, _proxy)


def score_all(model: nn.Module, batch: tuple, *, seed: int = 0,
              names: Iterable[str] | None = None) -> dict[str, float]:
    """Run the named proxies (default: all of :data:`PROXIES`, in order); a failing proxy gives ``nan``.

    Raises :class:`ConfigError` only for an unknown proxy name (before scoring anything).
    """
    chosen = list(PROXIES) if names is None else list(names)
    unknown = [n for n in chosen if n not in PROXIES]
    if unknown:
        raise ConfigError(f"unknown zero-cost proxy {unknown[0]!r}; known: {', '.join(PROXIES)}", key="proxies")
    scores: dict[str, float] = {}
    for name in chosen:
        try:
            value = float(PROXIES[name](model, batch, seed=seed))
        except Exception as exc:  # noqa: BLE001 - a proxy must never take the search down
            log.warning("zero-cost proxy %s failed: %s: %s", name, type(exc).__name__, exc)
            log.debug("zero-cost proxy %s traceback", name, exc_info=True)
            value = math.nan
        scores[name] = value
    return scores
