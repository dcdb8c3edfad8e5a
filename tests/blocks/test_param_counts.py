"""Parameter counts of the convolutional blocks against their closed forms.

M = C_in, N = C_out, K = kernel size, d = spatial dims (a K x K kernel has K**d weights). "Conv weights" counts the
weight tensors of the conv layers only; with a norm after every conv, the convs have no bias, so conv weights are
exactly all parameters minus the norms' (checked too).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.blocks import registry
from nas.blocks.layers import BlockContext, conv_nd

CONVS = (nn.Conv1d, nn.Conv2d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


def ctx(dims: int = 2, norm: str = "batch") -> BlockContext:
    return BlockContext(dims=dims, tokens=64, norm=norm)


def conv_weights(block: nn.Module) -> int:
    return sum(m.weight.numel() for m in block.modules() if isinstance(m, CONVS))


def all_params(block: nn.Module) -> int:
    return sum(p.numel() for p in block.parameters())


def norm_params(block: nn.Module) -> int:
    return sum(p.numel() for m in block.modules() if isinstance(m, NORMS) for p in m.parameters(recurse=False))


def assert_no_conv_bias(block: nn.Module) -> None:
    assert all_params(block) - norm_params(block) == conv_weights(block)


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("M, N, K", [(3, 16, 3), (16, 32, 5), (7, 1, 1)])
def test_standard_conv_layer(M: int, N: int, K: int, dims: int) -> None:
    layer = conv_nd(dims, M, N, K)  # bias=False by default
    assert all_params(layer) == N * M * K ** dims
    x = torch.randn(1, M, *([9] * dims))
    assert layer(x).shape == (1, N, *([9] * dims))  # 'same' padding


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("num_convs", [1, 2, 3])
@pytest.mark.parametrize("M, N, K", [(8, 16, 3), (16, 16, 5)])
def test_conv_block(M: int, N: int, K: int, num_convs: int, dims: int) -> None:
    block = registry.create("conv", M, N, ctx(dims), {"kernel_size": K, "num_convs": num_convs})
    assert conv_weights(block) == N * M * K ** dims + (num_convs - 1) * N * N * K ** dims
    assert_no_conv_bias(block)
    assert norm_params(block) == num_convs * 2 * N  # a BatchNorm (weight, bias) after each conv


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("M, N, K", [(8, 16, 3), (32, 32, 3), (16, 8, 7)])
def test_depthwise_separable(M: int, N: int, K: int, dims: int) -> None:
    block = registry.create("dwsep", M, N, ctx(dims), {"kernel_size": K})
    depthwise = block.depthwise[0]
    assert depthwise.weight.numel() == M * K ** dims and depthwise.groups == M
    assert block.pointwise[0].weight.numel() == N * M
    assert conv_weights(block) == M * K ** dims + N * M
    assert_no_conv_bias(block)


@pytest.mark.parametrize("width", [128, 256, 512])
def test_depthwise_separable_saves_8_to_9x_at_k3(width: int) -> None:
    """The catalogue's claim: for K=3 at typical widths, a standard conv has ~8-9x the weights (1/N + 1/K^2)."""
    M = N = width
    K = 3
    standard = conv_weights(conv_nd(2, M, N, K))
    separable = conv_weights(registry.create("dwsep", M, N, ctx(2), {"kernel_size": K}))
    assert standard == N * M * K * K and separable == M * K * K + N * M
    ratio = standard / separable
    assert 8.0 < ratio < 9.0
    assert ratio == pytest.approx(1 / (1 / N + 1 / K ** 2))


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("M, N, K, reduction", [(64, 64, 3, 4.0), (16, 32, 5, 4.0), (8, 6, 3, 4.0), (8, 3, 3, 8.0)])
def test_bottleneck(M: int, N: int, K: int, reduction: float, dims: int) -> None:
    block = registry.create("bottleneck", M, N, ctx(dims), {"kernel_size": K, "reduction_ratio": reduction})
    h = max(1, round(N / reduction))
    assert block.hidden_channels == h
    assert conv_weights(block) == M * h + h * h * K ** dims + h * N
    assert_no_conv_bias(block)
    assert not isinstance(list(block.expand)[-1], (nn.ReLU, nn.GELU, nn.SiLU, nn.Hardswish))  # no final act


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("M, N, K, expansion", [(16, 16, 3, 4.0), (16, 24, 5, 6.0), (10, 8, 3, 2.5)])
def test_mbconv(M: int, N: int, K: int, expansion: float, dims: int) -> None:
    block = registry.create("mbconv", M, N, ctx(dims), {"kernel_size": K, "expansion_ratio": expansion})
    h = round(M * expansion)
    assert block.hidden_channels == h
    assert conv_weights(block) == M * h + h * K ** dims + h * N  # expand, depthwise, linear projection
    assert_no_conv_bias(block)


def test_mbconv_without_expansion_skips_the_expand_conv() -> None:
    M, N, K = 16, 24, 3
    block = registry.create("mbconv", M, N, ctx(2), {"kernel_size": K, "expansion_ratio": 1.0})
    assert isinstance(block.expand, nn.Identity)
    assert conv_weights(block) == M * K * K + M * N


@pytest.mark.parametrize("M, N, K, expansion", [(16, 16, 7, 4.0), (8, 12, 3, 2.0)])
def test_convnext_total_params(M: int, N: int, K: int, expansion: float) -> None:
    block = registry.create("convnext", M, N, ctx(2), {"kernel_size": K, "expansion_ratio": expansion})
    h = round(M * expansion)
    depthwise = M * K * K + M  # with bias
    layer_norm = 2 * M
    pointwise = (M * h + h) + (h * N + N)  # both with bias (ConvNeXt's Linear layers)
    gamma = N
    assert all_params(block) == depthwise + layer_norm + pointwise + gamma
    assert torch.all(block.gamma == 1e-6)


def test_glu_total_params() -> None:
    M, N, ratio = 8, 12, 1.5
    block = registry.create("glu", M, N, ctx(1), {"expansion_ratio": ratio})
    h = round(M * ratio)
    assert all_params(block) == 2 * (M * h + h) + h * N + 2 * N  # value, gate (with bias), proj, BatchNorm
