"""The selective scan and the Mamba-style ssm block.

Shapes (mamba-minimal glossary): u, Δ (b, l, d); A (d, n); B, C (b, l, n); D (d,).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nas.blocks import registry, ssm
from nas.blocks.layers import BlockContext
from nas.blocks.ssm import selective_scan, selective_scan_chunked, selective_scan_reference


def scan_inputs(b: int, l: int, d: int, n: int, delta_scale: float = 1.0, seed: int = 0,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, l, d, generator=g)
    delta = F.softplus(torch.randn(b, l, d, generator=g)) * delta_scale
    A = -torch.exp(torch.randn(d, n, generator=g))
    B = torch.randn(b, l, n, generator=g)
    C = torch.randn(b, l, n, generator=g)
    D = torch.randn(d, generator=g)
    return tuple(t.to(dtype) for t in (u, delta, A, B, C, D))


def explicit_recurrence(u, delta, A, B, C, D):
    """The discretised SSM written out step by step, per batch element and channel, in float64.

    h[b, c] (n,) <- exp(Δ[b,t,c] * A[c]) * h[b, c] + Δ[b,t,c] * B[b,t] * u[b,t,c];  y[b,t,c] = C[b,t] . h + D[c] u
    """
    u, delta, A, B, C, D = (t.double() for t in (u, delta, A, B, C, D))
    b, l, d = u.shape
    y = torch.zeros(b, l, d, dtype=torch.float64)
    for i in range(b):
        for c in range(d):
            h = torch.zeros(A.shape[1], dtype=torch.float64)
            for t in range(l):
                a_bar = torch.exp(delta[i, t, c] * A[c])  # (n,)
                b_bar = delta[i, t, c] * B[i, t]  # (n,)
                h = a_bar * h + b_bar * u[i, t, c]
                y[i, t, c] = torch.dot(C[i, t], h) + D[c] * u[i, t, c]
    return y


@pytest.mark.parametrize("l", [1, 2, 7, 130])
def test_reference_equals_explicit_recurrence(l: int) -> None:
    inputs = scan_inputs(2, l, 3, 4)
    expected = explicit_recurrence(*inputs)
    torch.testing.assert_close(selective_scan_reference(*inputs).double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("l, chunk", [(1, 64), (7, 7), (7, 3), (7, 64), (64, 16), (130, 64), (130, 5), (130, 1),
                                      (130, 200)])
def test_chunked_equals_reference(l: int, chunk: int) -> None:
    inputs = scan_inputs(2, l, 5, 6, seed=l + chunk)
    torch.testing.assert_close(selective_scan_chunked(*inputs, chunk=chunk), selective_scan_reference(*inputs),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("delta_scale", [30.0, 300.0])
def test_chunked_is_safe_when_the_decay_overflows_exp(delta_scale: float) -> None:
    """Large Δ: a chunk's total decay passes exp's range, so the chunk is run step by step; still exact."""
    inputs = scan_inputs(2, 130, 4, 8, delta_scale=delta_scale, seed=3, dtype=torch.float64)
    u, delta, A = inputs[:3]
    total = (-(delta[:, :64].unsqueeze(-1) * A)).sum(1).max()
    assert total > 2000  # far past float64's exp overflow (~709): the naive exp(-cum) would be inf
    chunked = selective_scan_chunked(*inputs, chunk=64)
    assert torch.isfinite(chunked).all()
    torch.testing.assert_close(chunked, selective_scan_reference(*inputs), atol=1e-9, rtol=1e-9)
    # tiny decays too (Δ -> 0: h just accumulates)
    small = scan_inputs(1, 50, 3, 2, delta_scale=1e-4, seed=4)
    torch.testing.assert_close(selective_scan_chunked(*small, chunk=16), selective_scan_reference(*small),
                               atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("delta_scale", [0.1, 1.0, 3.0, 30.0])
@pytest.mark.parametrize("chunk", [4, 16, 64])
def test_chunked_in_float32_is_as_close_to_float64_as_the_loop(chunk: int, delta_scale: float) -> None:
    """float32 working precision (the CPU inference plan): within a few float32 roundings of max |y| of a float64
    loop, like the float32 loop, whether its chunks are closed forms or (large Δ, decay past 60 nats) run step by
    step."""
    inputs = scan_inputs(2, 130, 5, 6, delta_scale=delta_scale, seed=chunk)
    exact = selective_scan_reference(*(t.double() for t in inputs))
    scale = exact.abs().max()
    chunked = selective_scan_chunked(*inputs, chunk=chunk, dtype=torch.float32)
    assert chunked.dtype == torch.float32
    assert (chunked.double() - exact).abs().max() / scale < 1e-6
    assert (selective_scan_reference(*inputs).double() - exact).abs().max() / scale < 1e-6
    with pytest.raises(ValueError, match="float64 or float32"):
        selective_scan_chunked(*inputs, dtype=torch.float16)


def test_chunked_gradients_equal_reference_gradients() -> None:
    inputs = scan_inputs(2, 45, 3, 4, seed=7)
    grads = []
    for scan in (selective_scan_reference, lambda *a: selective_scan_chunked(*a, chunk=16),
                 lambda *a: selective_scan_chunked(*a, chunk=8, dtype=torch.float32)):
        leaves = [t.clone().requires_grad_() for t in inputs]
        weights = torch.randn(2, 45, 3, generator=torch.Generator().manual_seed(1))
        (scan(*leaves) * weights).sum().backward()
        grads.append([t.grad for t in leaves])
    for other in grads[1:]:
        for chunked, reference in zip(other, grads[0]):
            torch.testing.assert_close(chunked, reference, atol=1e-4, rtol=1e-4)


def test_gradients_through_a_chunk_run_step_by_step() -> None:
    """A chunk whose decay passes exp's range is run as a loop inside the chunked scan: its gradients are the
    loop's."""
    inputs = scan_inputs(1, 24, 3, 4, delta_scale=40.0, seed=5, dtype=torch.float64)
    assert (-(inputs[1][:, :8].unsqueeze(-1) * inputs[2])).sum(1).max() > 60  # the first chunk falls back in float32
    grads = []
    for scan in (selective_scan_reference, lambda *a: selective_scan_chunked(*a, chunk=8, dtype=torch.float32)):
        leaves = [t.clone().requires_grad_() for t in inputs]
        scan(*leaves).sum().backward()
        grads.append([t.grad for t in leaves])
    for chunked, reference in zip(grads[1], grads[0]):
        torch.testing.assert_close(chunked, reference, atol=1e-5, rtol=1e-5)


def test_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = scan_inputs(1, 20, 2, 3)
    reference = selective_scan_reference(*inputs)
    for impl in (None, "chunked", "reference"):
        torch.testing.assert_close(selective_scan(*inputs, impl=impl), reference, atol=1e-5, rtol=1e-5)
    monkeypatch.setattr(ssm, "SCAN_IMPL", "reference")
    torch.testing.assert_close(selective_scan(*inputs), reference)
    monkeypatch.setattr(ssm, "SCAN_IMPL", "chunked")  # forced: the module-level chunk and precision
    assert torch.equal(selective_scan(*inputs), selective_scan_chunked(*inputs, chunk=64, dtype=torch.float64))
    with pytest.raises(ValueError):
        selective_scan(*inputs, impl="parallel")


def test_cpu_plan_loops_for_training_and_chunks_for_inference() -> None:
    """On the CPU (bench_ssm_scan.py): the loop when autograd records the scan, chunks of 16 in float32 when not."""
    assert ssm.scan_plan("cpu", training=True)[0] == "reference"
    assert ssm.scan_plan("cpu", training=False) == ("chunked", 16, torch.float32)
    assert ssm.scan_plan("cuda", training=True) == ("chunked", ssm.SCAN_CHUNK, ssm.SCAN_DTYPE)
    inputs = scan_inputs(2, 40, 3, 4)
    with torch.no_grad():
        assert torch.equal(selective_scan(*inputs), selective_scan_chunked(*inputs, chunk=16, dtype=torch.float32))
    assert torch.equal(selective_scan(*inputs), selective_scan_chunked(*inputs, chunk=16, dtype=torch.float32))
    leaves = [t.clone().requires_grad_() for t in inputs]
    assert torch.equal(selective_scan(*leaves), selective_scan_reference(*leaves))


def test_scan_is_invisible_to_the_flop_counter() -> None:
    """The scans use only elementwise ops and reductions, so extra_flops is not double-counting anything."""
    inputs = scan_inputs(1, 20, 2, 3)
    with FlopCounterMode(display=False) as counter:
        selective_scan_reference(*inputs)
        selective_scan_chunked(*inputs, chunk=8)
    assert counter.get_total_flops() == 0


def make_block(dims: int = 1, norm: str = "layer", **options) -> torch.nn.Module:
    return registry.create("ssm", 6, 10, BlockContext(dims=dims, tokens=16, norm=norm), options)


@pytest.mark.parametrize("norm", ["layer", "none", "batch"])
def test_block_is_causal(norm: str) -> None:
    torch.manual_seed(0)
    block = make_block(norm=norm, conv_kernel=4).eval()  # eval: BatchNorm uses running stats, per position
    x = torch.randn(2, 6, 16)
    changed = x.clone()
    changed[:, :, 10:] = torch.randn(2, 6, 6)
    with torch.no_grad():
        y, y_changed = block(x), block(changed)
    torch.testing.assert_close(y[:, :, :10], y_changed[:, :, :10], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(y[:, :, 10:], y_changed[:, :, 10:])


def test_block_is_causal_in_raster_order_for_images() -> None:
    torch.manual_seed(0)
    block = make_block(dims=2).eval()
    x = torch.randn(1, 6, 4, 4)
    changed = x.clone()
    changed[:, :, 2, 1] += 1.0  # raster position 9
    with torch.no_grad():
        y, y_changed = block(x).flatten(2), block(changed).flatten(2)
    torch.testing.assert_close(y[:, :, :9], y_changed[:, :, :9], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(y[:, :, 9:], y_changed[:, :, 9:])


def test_block_scan_implementations_agree() -> None:
    torch.manual_seed(0)
    block = make_block(state_size=8).eval()
    x = torch.randn(2, 6, 70)
    with torch.no_grad():
        chunked = block(x)
        block.scan_impl = "reference"
        reference = block(x)
    torch.testing.assert_close(chunked, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # shape arithmetic, constant at a fixed shape
def test_a_trace_takes_the_loop_which_is_right_for_every_input() -> None:
    """Traced (torch.jit.trace, ONNX export), the scan is the loop on every device: a traced chunked scan would keep
    the closed form its example took, which overflows for an input whose decay passes exp's range in a chunk."""
    assert ssm.scan_plan("cpu", training=False, tracing=True)[0] == "reference"
    assert ssm.scan_plan("cuda", training=False, tracing=True)[0] == "reference"
    traced = torch.jit.trace(selective_scan, scan_inputs(2, 40, 3, 4), check_trace=False)
    large = scan_inputs(2, 40, 3, 4, delta_scale=60.0, seed=1)  # every 16-step chunk passes float32's range
    assert (-(large[1][:, :16].unsqueeze(-1) * large[2])).sum(1).max() > 60
    expected = selective_scan_reference(*large)
    assert torch.isfinite(expected).all()
    torch.testing.assert_close(traced(*large), expected)


def test_block_initialisation_follows_mamba() -> None:
    block = make_block(state_size=5, expansion_ratio=2.0)
    assert block.d_inner == 12 and block.dt_rank == 1  # round(6 * 2), ceil(6 / 16)
    torch.testing.assert_close(block.A_log[3], torch.log(torch.arange(1.0, 6.0)))
    assert torch.all(block.D == 1)
    dt = F.softplus(block.dt_proj.bias)
    assert torch.all(dt >= 1e-3 * 0.999) and torch.all(dt <= 1e-1 * 1.001)
    assert registry.create("ssm", 40, 8, BlockContext(dims=1, tokens=4)).dt_rank == 3  # ceil(40 / 16)


def test_extra_flops_is_positive_and_linear_in_length() -> None:
    block = make_block(state_size=4)
    counts = {}
    hook = block.register_forward_hook(lambda module, inputs, output: counts.__setitem__(
        inputs[0].shape[-1], module.extra_flops(inputs, output)))
    with torch.no_grad():
        for length in (1, 8, 16, 32):
            block(torch.randn(3, 6, length))
    hook.remove()
    assert all(v > 0 for v in counts.values())
    per_step = counts[1]
    assert all(counts[length] == length * per_step for length in counts)
    b, d, n = 3, block.d_inner, block.state_size
    assert per_step == 8 * b * d * n + 2 * b * d  # the documented closed form at l = 1
    # images: l = H * W
    x = torch.randn(2, 6, 4, 5)
    assert block.extra_flops((x,), None) == 20 * block.extra_flops((torch.randn(2, 6, 1),), None)
