"""Attention and transformer blocks: position encodings, permutation equivariance, heads, pre/post norm."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas.blocks import registry
from nas.blocks.attention import usable_heads
from nas.blocks.layers import BlockContext
from nas.catalog import POS_ENCODINGS


def ctx(dims: int = 1, tokens: int = 12, norm: str = "none") -> BlockContext:
    return BlockContext(dims=dims, tokens=tokens, norm=norm, act="gelu")


@pytest.mark.parametrize("name", ["attention", "transformer"])
@pytest.mark.parametrize("pos_encoding", POS_ENCODINGS)
@pytest.mark.parametrize("dims", [1, 2])
def test_position_encodings_work(name: str, pos_encoding: str, dims: int) -> None:
    spatial = (12,) if dims == 1 else (3, 4)
    block = registry.create(name, 6, 8, ctx(dims, tokens=12, norm="batch"), {"pos_encoding": pos_encoding, "heads": 2})
    x = torch.randn(2, 6, *spatial, requires_grad=True)
    y = block(x)
    assert y.shape == (2, 8, *spatial) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    # another token count than the stage's: a learned table is interpolated, sinusoidal recomputed per forward
    other = (20,) if dims == 1 else (4, 5)
    assert block(torch.randn(2, 6, *other)).shape == (2, 8, *other)


@pytest.mark.parametrize("name", ["attention", "transformer"])
def test_learned_table_is_a_parameter(name: str) -> None:
    learned = registry.create(name, 8, 8, ctx(tokens=12), {"pos_encoding": "learned"})
    table = learned.position.table
    assert isinstance(table, nn.Parameter) and table.shape == (12, 8)
    assert any(p is table for p in learned.parameters())
    sinusoidal = registry.create(name, 8, 8, ctx(tokens=12), {"pos_encoding": "sinusoidal"})
    assert not isinstance(sinusoidal.position.table, nn.Parameter)
    assert "position.table" not in sinusoidal.state_dict()  # a fixed, non-persistent buffer
    none = registry.create(name, 8, 8, ctx(tokens=12), {"pos_encoding": "none"})
    assert none.position.table is None
    assert sum(p.numel() for p in learned.parameters()) == sum(p.numel() for p in none.parameters()) + 12 * 8


@pytest.mark.parametrize("options", [
    {"heads": 1}, {"heads": 2}, {"heads": 4},
], ids=lambda o: f"heads{o['heads']}")
@pytest.mark.parametrize("name", ["attention", "transformer"])
@pytest.mark.parametrize("channels", [(8, 8), (6, 8)])
def test_without_position_encoding_attention_is_permutation_equivariant(name, options, channels) -> None:
    torch.manual_seed(0)
    in_channels, out_channels = channels
    block = registry.create(name, in_channels, out_channels, ctx(dims=1, tokens=10, norm="none"),
                            {**options, "pos_encoding": "none"}).eval()
    x = torch.randn(2, in_channels, 10)
    perm = torch.randperm(10)
    with torch.no_grad():
        torch.testing.assert_close(block(x[:, :, perm]), block(x)[:, :, perm], atol=1e-5, rtol=1e-5)


def test_position_encoding_breaks_permutation_equivariance() -> None:
    torch.manual_seed(0)
    block = registry.create("attention", 8, 8, ctx(tokens=10), {"pos_encoding": "sinusoidal"}).eval()
    x = torch.randn(2, 8, 10)
    perm = torch.roll(torch.arange(10), 3)
    with torch.no_grad():
        assert not torch.allclose(block(x[:, :, perm]), block(x)[:, :, perm], atol=1e-4)


def test_attention_matches_a_hand_written_single_head() -> None:
    torch.manual_seed(0)
    block = registry.create("attention", 4, 6, ctx(tokens=5), {"pos_encoding": "none", "heads": 1})
    x = torch.randn(1, 4, 5)
    tokens = x[0].T  # (T, C_in)
    q, k, v = block.attention.qkv(tokens).chunk(3, dim=-1)  # (T, C) each
    weights = torch.softmax(q @ k.T / math.sqrt(6), dim=-1)  # (T, T)
    expected = block.attention.out(weights @ v).T.unsqueeze(0)  # (1, C_out, T)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels, heads, used", [(8, 2, 2), (12, 5, 4), (7, 4, 1), (6, 6, 6), (4, 9, 4)])
def test_heads_fall_back_to_a_divisor(channels: int, heads: int, used: int) -> None:
    assert usable_heads(channels, heads) == used
    for name in ("attention", "transformer"):
        block = registry.create(name, 3, channels, ctx(), {"heads": heads})
        assert block.heads == used
        assert block(torch.randn(2, 3, 12)).shape == (2, channels, 12)


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("norm_position", ["pre", "post"])
def test_transformer_pre_and_post(norm_position: str, dims: int) -> None:
    torch.manual_seed(0)
    spatial = (12,) if dims == 1 else (3, 4)
    block = registry.create("transformer", 6, 8, ctx(dims, tokens=12, norm="batch"),
                            {"norm_position": norm_position, "heads": 2, "mlp_ratio": 2.0})
    assert isinstance(block.project_in, nn.Linear)  # C_in != C_out
    assert isinstance(block.norm_attention, nn.LayerNorm) and isinstance(block.norm_mlp, nn.LayerNorm)
    assert block.mlp[0].out_features == 16
    x = torch.randn(2, 6, *spatial, requires_grad=True)
    y = block(x)
    assert y.shape == (2, 8, *spatial) and torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in block.parameters())
    per_token = y.detach().flatten(2)  # (N, C, T)
    if norm_position == "post":  # ends in a LayerNorm over C (weight 1, bias 0 at init)
        torch.testing.assert_close(per_token.mean(1), torch.zeros(2, 12), atol=1e-5, rtol=0)
    else:  # ends in a residual sum: not normalised
        assert per_token.mean(1).abs().max() > 1e-3


def test_transformer_same_width_has_no_input_projection() -> None:
    block = registry.create("transformer", 8, 8, ctx(), {})
    assert isinstance(block.project_in, nn.Identity)
