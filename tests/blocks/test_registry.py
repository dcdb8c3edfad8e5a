"""Every registered block: builds from the catalogue defaults, maps (N, C_in, *S) -> (N, C_out, *S), and trains.

Also the registry's own contract: the signature check, unknown names and options, and agreement with the catalogue.
"""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from nas import catalog
from nas.blocks import registry
from nas.blocks.layers import BlockContext
from nas.errors import BuildError

NAMES = sorted(registry.registered())
CHANNEL_PAIRS = [(8, 8), (6, 12), (12, 5)]  # equal, widening, narrowing to an odd width


def spatial_shape(dims: int) -> tuple[int, ...]:
    return (8, 8) if dims == 2 else (16,)


def context(dims: int, norm: str = "batch", act: str = "relu") -> BlockContext:
    return BlockContext(dims=dims, tokens=math.prod(spatial_shape(dims)), norm=norm, act=act, norm_groups=4)


def check_forward_backward(block: nn.Module, in_channels: int, out_channels: int, dims: int) -> None:
    """Forward + backward at batch 2: right shape, finite output, finite gradients reaching the parameters."""
    torch.manual_seed(0)
    x = torch.randn(2, in_channels, *spatial_shape(dims), requires_grad=True)
    y = block(x)
    assert y.shape == (2, out_channels, *spatial_shape(dims))
    assert torch.isfinite(y).all()
    # a random projection rather than sum(): a batch-normed output sums to ~0 and would give vanishing gradients
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    grads = [p.grad for p in block.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("channels", CHANNEL_PAIRS, ids=lambda c: f"{c[0]}to{c[1]}")
@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_block_shapes_and_gradients(name: str, dims: int, channels: tuple[int, int]) -> None:
    in_channels, out_channels = channels
    block = registry.create(name, in_channels, out_channels, context(dims))
    block.train()
    check_forward_backward(block, in_channels, out_channels, dims)


@pytest.mark.parametrize("norm", catalog.NORMS)
@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_block_with_every_norm(name: str, dims: int, norm: str) -> None:
    block = registry.create(name, 6, 10, context(dims, norm=norm, act="gelu"))
    check_forward_backward(block, 6, 10, dims)
    block.eval()
    with torch.no_grad():
        assert block(torch.randn(1, 6, *spatial_shape(dims))).shape == (1, 10, *spatial_shape(dims))


# every closed-set option value, plus a few edge values of the numeric ones
VARIANTS = [
    ("conv", {"num_convs": 1}), ("conv", {"num_convs": 3, "kernel_size": 5}),
    ("dwsep", {"kernel_size": 5}),
    ("bottleneck", {"reduction_ratio": 8.0}), ("bottleneck", {"reduction_ratio": 0.5, "kernel_size": 1}),
    ("mbconv", {"expansion_ratio": 1.0}), ("mbconv", {"expansion_ratio": 6, "kernel_size": 5}),
    ("convnext", {"kernel_size": 3, "expansion_ratio": 2.0}),
    ("attention", {"heads": 3, "pos_encoding": "learned"}), ("attention", {"heads": 2, "pos_encoding": "none"}),
    ("transformer", {"heads": 4, "norm_position": "post", "mlp_ratio": 2.0}),
    ("transformer", {"heads": 2, "pos_encoding": "learned"}), ("transformer", {"pos_encoding": "none"}),
    ("ssm", {"state_size": 1, "conv_kernel": 1, "expansion_ratio": 1.0}), ("ssm", {"state_size": 4}),
    ("lstm", {"bidirectional": True}), ("gru", {"bidirectional": True}),
    ("glu", {"expansion_ratio": 0.5}),
]


@pytest.mark.parametrize("out_channels", [6, 7])
@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("name, options", VARIANTS, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in VARIANTS])
def test_option_variants(name: str, options: dict, dims: int, out_channels: int) -> None:
    for key, value in options.items():
        assert catalog.MIXERS[name].options[key].accepts(value), (name, key, value)
    block = registry.create(name, 5, out_channels, context(dims, norm="group"), options)
    check_forward_backward(block, 5, out_channels, dims)


def test_catalog_and_registry_have_the_same_names() -> None:
    assert set(registry.registered()) == set(catalog.MIXERS)
    for name, cls in registry.registered().items():
        assert cls.block_name == name
        assert registry.get(name) is cls


def test_defaults_come_from_the_catalogue() -> None:
    ctx = context(1)
    for name, info in catalog.MIXERS.items():
        block = registry.create(name, 4, 4, ctx)
        assert isinstance(block, nn.Module)
        for option in info.options.values():
            assert option.accepts(option.default)


def test_wrong_options_signature_is_a_type_error() -> None:
    registry.registered()  # load every block first

    class MissingOption(nn.Module):
        def __init__(self, in_channels, out_channels, ctx, *, kernel_size=3):  # conv also takes num_convs
            super().__init__()

    class ExtraOption(nn.Module):
        def __init__(self, in_channels, out_channels, ctx, *, kernel_size=3, num_convs=2, dilation=1):
            super().__init__()

    class WrongPositional(nn.Module):
        def __init__(self, channels, ctx, *, kernel_size=3, num_convs=2):
            super().__init__()

    class OptionsNotKeywordOnly(nn.Module):
        def __init__(self, in_channels, out_channels, ctx, kernel_size=3, num_convs=2):
            super().__init__()

    for cls in (MissingOption, ExtraOption, WrongPositional, OptionsNotKeywordOnly):
        with pytest.raises(TypeError):
            registry.register("conv")(cls)
    assert registry.get("conv").__name__ != "MissingOption"


def test_registering_a_name_twice_is_a_type_error() -> None:
    existing = registry.get("glu")

    class AnotherGLU(nn.Module):
        def __init__(self, in_channels, out_channels, ctx, *, expansion_ratio=2.0):
            super().__init__()

    with pytest.raises(TypeError, match="twice"):
        registry.register("glu")(AnotherGLU)
    assert registry.get("glu") is existing


def test_unknown_block_is_a_build_error_listing_known_blocks() -> None:
    with pytest.raises(BuildError) as info:
        registry.get("nope")
    message = str(info.value)
    assert "nope" in message
    for name in NAMES:
        assert name in message


def test_unknown_option_is_a_build_error_naming_accepted_options() -> None:
    with pytest.raises(BuildError) as info:
        registry.create("mbconv", 4, 4, context(2), {"kernel_size": 3, "dilation": 2})
    message = str(info.value)
    assert "dilation" in message and "kernel_size" in message and "expansion_ratio" in message


@pytest.mark.parametrize("norm", ["batch", "layer", "group", "instance"])
@pytest.mark.parametrize("name", NAMES)
def test_block_channels_last(name: str, norm: str) -> None:
    """The trainer runs image models in channels-last memory format on the CPU (``nas train`` on every device): every
    block must accept channels-last input and weights and compute the same function (forward and input gradient) as
    in the default layout."""
    torch.manual_seed(0)
    block = registry.create(name, 6, 10, context(2, norm=norm, act="gelu")).eval()
    x = torch.randn(2, 6, 8, 8)
    x1 = x.clone().requires_grad_(True)
    y1 = block(x1)
    cl = copy.deepcopy(block).to(memory_format=torch.channels_last)
    x2 = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y2 = cl(x2)
    assert y2.shape == y1.shape
    torch.testing.assert_close(y2, y1, rtol=1e-4, atol=1e-5)
    g = torch.randn_like(y1)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm", ["batch", "layer"])
@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("name", NAMES)
def test_block_under_bf16_autocast(name: str, dims: int, norm: str) -> None:
    """The trainer runs under bf16 autocast on CUDA; the CPU's autocast runs the same dtype paths (float32 weights,
    bfloat16 activations where autocast casts, float64 inside the scan): finite output and gradients, and the
    function of float32 within bfloat16's rounding."""
    torch.manual_seed(0)
    block = registry.create(name, 6, 10, context(dims, norm=norm, act="gelu")).train()
    x = torch.randn(2, 6, *spatial_shape(dims))
    reference = copy.deepcopy(block)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x.clone().requires_grad_(True))
    assert y.shape == (2, 10, *spatial_shape(dims)) and torch.isfinite(y).all()
    g = torch.randn(y.shape)
    (y.float() * g).sum().backward()
    trained = [p for p in block.parameters() if p.requires_grad]
    assert trained and all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.dtype == p.dtype
                           for p in trained)
    y32 = reference(x)
    error = ((y.float() - y32).norm() / y32.norm()).item()
    assert error < 0.03, f"{name}: relative error {error:.3g} under bf16 autocast"
