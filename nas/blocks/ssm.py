"""Selective state-space mixer in the style of Mamba (Gu & Dao, 2023), after johnma2006/mamba-minimal.

The channels-first input (N, C_in, *S) is flattened to a token sequence in raster order (l = H*W or L), mixed
causally along it, and restored to (N, C_out, *S).

Glossary (as in mamba-minimal):

    b       batch size                                  (N)
    l       sequence length                             (T = H*W or L)
    d       hidden width of the scan, d_inner           (round(C_in * expansion_ratio))
    n       state size per channel                      (state_size)
    r       rank of Δ's projection, dt_rank             (ceil(C_in / 16))
    Δ       input-dependent step size                   delta, (b, l, d), softplus(dt_proj(x_proj(x)))
    A       state matrix (diagonal per channel)         (d, n), A = -exp(A_log), A_log init log(1..n)
    B, C    input-dependent input / output matrices     (b, l, n)
    D       skip from the scan input to its output      (d,)
    h       the state                                   (b, d, n)

Discretised recurrence (zero-order hold on A, Euler on B, as Mamba does):

    h_t = exp(Δ_t A) * h_{t-1} + Δ_t B_t u_t
    y_t = <h_t, C_t> + D u_t

Two implementations give the same result: :func:`selective_scan_reference`, a plain sequential loop over l, and
:func:`selective_scan_chunked`, which solves each chunk in closed form with cumulative sums of the log decay ΔA and
carries the state between chunks. :func:`selective_scan` picks one per situation (:func:`scan_plan`, measured by
experiments/bench_ssm_scan.py).

Both use only elementwise operations and reductions (no matmul / einsum), so ``torch.utils.flop_counter`` counts
none of the scan; the block reports its FLOPs through :meth:`SelectiveSSM.extra_flops` instead.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.layers import BlockContext, from_tokens, make_norm, to_tokens
from nas.blocks.registry import register

SCAN_IMPL: str | None = None
"""Module-level scan: None picks one per situation (:func:`scan_plan`); "chunked" (closed form per chunk, with
:data:`SCAN_CHUNK` and :data:`SCAN_DTYPE`) or "reference" (the sequential loop) forces one everywhere."""

SCAN_CHUNK = 64
"""Chunk length of the chunked scan where no plan gives one."""

SCAN_DTYPE = torch.float64
"""Working precision of the chunked scan where no plan gives one."""

SCAN_LOOP_BLOCK = 64
"""Steps whose decays and inputs the sequential loop computes at once (:func:`selective_scan_reference`)."""

# Largest chunk decay -cum (nats) for which the chunked scan uses exp(-cum) directly, per working precision: exp
# overflows past ~709 in float64 and ~88 in float32; the margin leaves room for the size of the injected terms.
_MAX_LOG_GROWTH = {torch.float64: 600.0, torch.float32: 60.0}


def scan_plan(device: torch.device | str, training: bool,
              tracing: bool = False) -> tuple[str, int, torch.dtype | None]:
    """(implementation, steps computed at once: the chunk length or the loop's block, working precision of the
    chunked scan or None: the input's) of the scan on ``device``, for training (the autograd graph is built) or
    inference, and while a graph is traced or exported (``tracing``).

    Traced or exported: the loop on every device. A traced graph keeps only the branch its example input took, and
    the loop is the one path that is right for every input (a chunk's closed form overflows where its decay passes
    exp's range). CPU, measured by experiments/bench_ssm_scan.py (d = 96, n = 16, lengths 64-784, Mamba's initial Δ
    and 10x it): for training (batch 64) the loop, computing its decays 64 steps at a time: 11-18x faster than
    chunks of 64 in float64 (the earlier setting for every device) at the initial Δ and 1.7-4.2x at 10x Δ, within
    10% of or faster than float32 chunks of 8-32 steps, and saving 0.3x and 0.6x their memory for the backward (the
    chunked scan keeps several (b, l, d, n) tensors). For inference (batch 1) chunks of 16 steps in float32:
    1.5-2.4x faster than 64 in float64 at the initial Δ, a near tie with the loop (which is 10-15% faster where
    large Δ makes chunks run step by step). CUDA: chunks of 64 in float64, measured on an H200
    (results/bench_ssm_scan_cuda.md, same shapes): at the initial Δ faster than float32 chunks of 32 (1.15-1.19x in
    training, 1.18-1.49x in inference) and 5-9x faster than the loop; at 10x Δ, where chunks run step by step, the
    loop or float32 chunks of 32 take 0.84-1.01x its time in training and the loop 0.92-0.96x in inference.
    """
    if tracing or (torch.device(device).type == "cpu" and training):
        return "reference", SCAN_LOOP_BLOCK, None
    if torch.device(device).type == "cpu":
        return "chunked", 16, torch.float32
    return "chunked", SCAN_CHUNK, SCAN_DTYPE


def _recur(h: torch.Tensor, decay: tuple[torch.Tensor, ...], inject: tuple[torch.Tensor, ...],
           readout: tuple[torch.Tensor, ...]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The recurrence step by step from state h (b, d, n): h = decay_t * h + inject_t (each (b, d, n)), y_t =
    <h, readout_t> over n (readout_t (b, n)). Returns ([y_t (b, d)], the last state)."""
    ys = []
    for a, x, c in zip(decay, inject, readout):
        h = a * h + x  # (b, d, n)
        ys.append((h * c.unsqueeze(1)).sum(-1))  # (b, d)
    return ys, h


def selective_scan_reference(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                             C: torch.Tensor, D: torch.Tensor, block: int | None = SCAN_LOOP_BLOCK) -> torch.Tensor:
    """The selective scan as a plain sequential loop over l (correct for any l >= 1).

    u: (b, l, d), delta: (b, l, d), A: (d, n), B: (b, l, n), C: (b, l, n), D: (d,) -> y: (b, l, d).
    The per-step decays and inputs are computed ``block`` steps at a time (None: all l at once); the result is the
    same, but a long sequence's (b, l, d, n) intermediates are not all alive at once (1.04-2.6x faster for training
    at l = 256-784 on the CPU: experiments/bench_ssm_scan.py).
    """
    b, l, d = u.shape
    block = block or l
    h = u.new_zeros((b, d, A.shape[1]))  # (b, d, n)
    ys = []
    for start in range(0, l, block):
        stop = min(start + block, l)
        delta_b = delta[:, start:stop]
        # unbind (not indexing) so that the backward pass stacks the step gradients once instead of once per step
        delta_A = torch.exp(delta_b.unsqueeze(-1) * A).unbind(1)  # c x (b, d, n)
        delta_B_u = ((delta_b * u[:, start:stop]).unsqueeze(-1) * B[:, start:stop].unsqueeze(2)).unbind(1)
        steps, h = _recur(h, delta_A, delta_B_u, C[:, start:stop].unbind(1))
        ys += steps
    return torch.stack(ys, dim=1) + u * D  # (b, l, d)


def selective_scan_chunked(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                           C: torch.Tensor, D: torch.Tensor, chunk: int | None = None,
                           dtype: torch.dtype | None = None) -> torch.Tensor:
    """The selective scan, solved in closed form within chunks of ``chunk`` steps (default :data:`SCAN_CHUNK`);
    same shapes as the reference.

    Within a chunk starting from state h_0, with cum_t = Σ_{s<=t} Δ_s A (the cumulative log decay, relative to the
    chunk start, so cum_t <= 0) and x_s = Δ_s B_s u_s:

        h_t = exp(cum_t) * (h_0 + Σ_{s<=t} exp(-cum_s) * x_s)

    computed with one cumsum over the chunk in the working precision ``dtype`` (float64 or float32, default
    :data:`SCAN_DTYPE`; cast back to the input dtype at the end). Relative to the chunk start, exp(-cum_s) stays
    finite while the chunk's total decay -cum_last is below the precision's exp range (~709 nats in float64, ~88 in
    float32). The sum's rounding is relative to its largest term exp(-cum_s) x_s, which exp(cum_t) scales back to
    at most |x_s|: in float32 the result stays within ~3e-7 of max |y| of a float64 loop, as the float32 loop does
    (tested). A chunk whose total decay exceeds :data:`_MAX_LOG_GROWTH` (possible with very
    large Δ or A; this check costs one device sync per chunk) is run step by step instead, as the reference does.
    The state is carried sequentially from one chunk to the next.
    """
    b, l, d = u.shape
    chunk = chunk or SCAN_CHUNK
    work = dtype or SCAN_DTYPE
    if work not in _MAX_LOG_GROWTH:
        raise ValueError(f"the chunked scan works in float64 or float32, not {work}")
    A_w = A.to(work)  # (d, n)
    fastest = (-A_w.detach()).amax(-1)  # (d,): the largest decay rate per channel
    h = u.new_zeros((b, d, A.shape[1]), dtype=work)  # (b, d, n)
    ys = []
    for start in range(0, l, chunk):
        stop = min(start + chunk, l)
        delta_c = delta[:, start:stop].to(work)  # (b, c, d)
        inject = (delta_c * u[:, start:stop].to(work)).unsqueeze(-1) * B[:, start:stop].to(work).unsqueeze(2)
        C_c = C[:, start:stop].to(work)  # (b, c, n)
        # the chunk's largest total decay, max -cum_last, from (b, d) sums: a chunk that will run step by step
        # costs no cumsum first
        if float((delta_c.detach().sum(1) * fastest).max()) <= _MAX_LOG_GROWTH[work]:
            cum = (delta_c.unsqueeze(-1) * A_w).cumsum(dim=1)  # (b, c, d, n), <= 0 and decreasing in c
            states = torch.exp(cum) * (h.unsqueeze(1) + (torch.exp(-cum) * inject).cumsum(dim=1))  # (b, c, d, n)
            ys.append((states * C_c.unsqueeze(2)).sum(-1))  # (b, c, d)
            h = states[:, -1]  # (b, d, n)
        else:  # exp(-cum) would overflow: this chunk step by step
            decay = torch.exp(delta_c.unsqueeze(-1) * A_w)  # (b, c, d, n)
            steps, h = _recur(h, decay.unbind(1), inject.unbind(1), C_c.unbind(1))
            ys.append(torch.stack(steps, dim=1))  # (b, c, d)
    return torch.cat(ys, dim=1).to(u.dtype) + u * D  # (b, l, d)


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor, impl: str | None = None) -> torch.Tensor:
    """Dispatch: ``impl`` (default :data:`SCAN_IMPL`) "chunked" or "reference"; None follows :func:`scan_plan`
    (training when autograd records the scan; tracing under ``torch.jit.trace`` or an export). The chunked scan is
    used only for l > 1."""
    impl = impl or SCAN_IMPL
    if impl is None:
        training = torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C, D))
        tracing = torch.jit.is_tracing() or torch.compiler.is_exporting()  # ONNX export traces too
        impl, steps, dtype = scan_plan(u.device, training, tracing)
    elif impl == "chunked":
        steps, dtype = SCAN_CHUNK, SCAN_DTYPE
    elif impl == "reference":
        steps, dtype = SCAN_LOOP_BLOCK, None
    else:
        raise ValueError(f"unknown scan implementation {impl!r}")
    if impl == "chunked" and u.shape[1] > 1:
        return selective_scan_chunked(u, delta, A, B, C, D, steps, dtype)
    return selective_scan_reference(u, delta, A, B, C, D, steps)


@register("ssm")
class SelectiveSSM(nn.Module):
    """Mamba block F over tokens: in_proj -> (x, z); causal depthwise conv on x; SiLU; selective scan; * SiLU(z);
    out_proj; then a norm over channels (``ctx.norm``) on the channels-first result. No residual (the wrapper's).

    in_proj Linear(C_in, 2d), causal depthwise Conv1d(d, kernel conv_kernel, padded left), x_proj Linear(d, r + 2n)
    giving (Δ_raw, B, C), dt_proj Linear(r, d) + softplus giving Δ, A = -exp(A_log), D, out_proj Linear(d, C_out).
    Initialisation follows Mamba: A_log = log(1..n) per channel, D = 1, dt_proj's bias set so that softplus(bias) is
    log-uniform in [1e-3, 1e-1].
    """

    scan_impl: str | None = None  # None follows the module-level SCAN_IMPL; set "reference" / "chunked" per block

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, state_size: int = 16,
                 expansion_ratio: float = 2.0, conv_kernel: int = 4):
        super().__init__()
        d_inner = max(1, int(round(in_channels * expansion_ratio)))
        dt_rank = math.ceil(in_channels / 16)
        self.d_inner, self.dt_rank, self.state_size = d_inner, dt_rank, state_size
        self.in_proj = nn.Linear(in_channels, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, conv_kernel, groups=d_inner, padding=conv_kernel - 1, bias=True)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * state_size, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, state_size + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, out_channels, bias=False)
        self.norm = make_norm(ctx.norm, out_channels, ctx.dims, ctx.norm_groups)
        with torch.no_grad():  # Mamba's Δ initialisation
            nn.init.uniform_(self.dt_proj.weight, -dt_rank ** -0.5, dt_rank ** -0.5)
            dt = torch.exp(torch.rand(d_inner) * (math.log(1e-1) - math.log(1e-3)) + math.log(1e-3))
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse of softplus

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, C_out, *S); causal in the raster order of S."""
        spatial = x.shape[2:]
        tokens = to_tokens(x)  # (b, l, C_in)
        l = tokens.shape[1]
        u, z = self.in_proj(tokens).split([self.d_inner, self.d_inner], dim=-1)  # 2 x (b, l, d)
        u = self.conv1d(u.transpose(1, 2))[:, :, :l].transpose(1, 2)  # causal: pad left, crop right; (b, l, d)
        u = F.silu(u)
        y = self.ssm(u)  # (b, l, d)
        y = y * F.silu(z)  # (b, l, d)
        return self.norm(from_tokens(self.out_proj(y), spatial))  # (b, l, C_out) -> (N, C_out, *S)

    def ssm(self, u: torch.Tensor) -> torch.Tensor:
        """Input-dependent Δ, B, C and the selective scan: (b, l, d) -> (b, l, d)."""
        A = -torch.exp(self.A_log.float())  # (d, n)
        delta_raw, B, C = self.x_proj(u).split([self.dt_rank, self.state_size, self.state_size], dim=-1)
        delta = F.softplus(self.dt_proj(delta_raw))  # (b, l, d)
        return selective_scan(u, delta, A, B, C, self.D.float(), self.scan_impl)

    def extra_flops(self, inputs: tuple, output: torch.Tensor) -> int:
        """FLOPs of the elementwise scan, which FlopCounterMode does not count (the projections and conv it does).

        Per (b, l, d, n) element: Δ*A and its exp (2), Δ*B*u (2), state update h = dA*h + dBu (2), readout h*C and
        its sum over n (2): 8*b*l*d*n; plus the D skip u*D + y (2*b*l*d). ``inputs`` is the forward hook's input
        tuple, inputs[0] of shape (N, C_in, *S): b = N, l = prod(S).
        """
        x = inputs[0]
        b, l = x.shape[0], math.prod(x.shape[2:])
        return 8 * b * l * self.d_inner * self.state_size + 2 * b * l * self.d_inner

