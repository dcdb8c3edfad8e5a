"""Attention mixers: multi-head self-attention and the transformer block, over the positions of a stage.

The channels-first input (N, C, *S) is flattened to tokens (N, T, C) in raster order (T = H*W or L), mixed, and
restored to (N, C_out, *S). Attention is bidirectional (no causal mask).

Glossary (nanoGPT style): N batch, T tokens, C channels (= C_out inside the attention), h heads, hs = C // h head
size, C_in input channels.

Heads: C must be divisible by the number of heads; when ``C_out % heads != 0`` the block uses the largest divisor of
C_out that is <= ``heads`` (``self.heads`` records the number actually used).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.layers import BlockContext, PositionEncoding, from_tokens, make_act, make_norm, to_tokens
from nas.blocks.registry import register


def usable_heads(channels: int, heads: int) -> int:
    """The largest divisor of ``channels`` that is <= ``heads`` (at least 1)."""
    for h in range(min(heads, channels), 0, -1):
        if channels % h == 0:
            return h
    return 1


class SelfAttention(nn.Module):
    """Multi-head self-attention on tokens: (N, T, C_in) -> (N, T, C_out).

    qkv = Linear(C_in, 3*C) with C = C_out, scaled dot-product attention per head, out = Linear(C, C_out).
    """

    def __init__(self, in_channels: int, out_channels: int, heads: int):
        super().__init__()
        self.heads = usable_heads(out_channels, heads)
        self.qkv = nn.Linear(in_channels, 3 * out_channels)
        self.out = nn.Linear(out_channels, out_channels)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T, C_in) -> (N, T, C_out)."""
        n, t, _ = tokens.shape  # (N, T, C_in)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)  # 3 x (N, T, C)
        c = q.shape[-1]
        q, k, v = (z.view(n, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))  # (N, h, T, hs)
        y = F.scaled_dot_product_attention(q, k, v)  # (N, h, T, hs)
        y = y.transpose(1, 2).reshape(n, t, c)  # (N, T, C)
        return self.out(y)  # (N, T, C_out)


@register("attention")
class AttentionBlock(nn.Module):
    """Multi-head self-attention over positions, then a norm over channels (``ctx.norm``).

    tokens = to_tokens(x) + position encoding (over C_in, sized for ``ctx.tokens``); qkv Linear(C_in, 3*C_out); SDPA
    with ``heads`` heads (see the module note on divisibility); out Linear(C_out, C_out); back to channels-first;
    ``make_norm(ctx.norm)``. No residual: the cell wrapper adds the skip.
    """

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, heads: int = 1,
                 pos_encoding: str = "sinusoidal"):
        super().__init__()
        self.position = PositionEncoding(pos_encoding, ctx.tokens, in_channels)
        self.attention = SelfAttention(in_channels, out_channels, heads)
        self.heads = self.attention.heads
        self.norm = make_norm(ctx.norm, out_channels, ctx.dims, ctx.norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, C_out, *S)."""
        spatial = x.shape[2:]
        tokens = self.position(to_tokens(x))  # (N, T, C_in)
        y = self.attention(tokens)  # (N, T, C_out)
        return self.norm(from_tokens(y, spatial))  # (N, C_out, *S)


class FeedForward(nn.Sequential):
    """Position-wise MLP: (N, T, C) -> (N, T, hidden) -> (N, T, C), hidden = round(mlp_ratio * C), one activation."""

    def __init__(self, channels: int, mlp_ratio: float, act: str):
        hidden = max(1, int(round(channels * mlp_ratio)))
        super().__init__(nn.Linear(channels, hidden), make_act(act), nn.Linear(hidden, channels))


@register("transformer")
class TransformerBlock(nn.Module):
    """Transformer encoder block over positions: self-attention and feed-forward, each with its own residual.

    If C_in != C_out a Linear(C_in, C_out) input projection comes first; then the position encoding (over C_out) is
    added once; then with C = C_out:

    - pre-norm (``norm_position='pre'``):  x = x + attn(LN(x)); x = x + FFN(LN(x))
    - post-norm (``norm_position='post'``): x = LN(x + attn(x)); x = LN(x + FFN(x))

    FFN = Linear(C, mlp_ratio*C), ``ctx.act``, Linear back. The norms here are always ``nn.LayerNorm`` over C,
    whatever ``ctx.norm`` says (a transformer's norm is part of its definition). The two internal residuals are part
    of the block; the cell wrapper may add its own skip around the whole block.
    """

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, heads: int = 1,
                 mlp_ratio: float = 4.0, norm_position: str = "pre", pos_encoding: str = "sinusoidal"):
        super().__init__()
        if norm_position not in ("pre", "post"):
            raise ValueError(f"unknown norm_position {norm_position!r}")
        self.norm_position = norm_position
        self.project_in: nn.Module = (nn.Linear(in_channels, out_channels) if in_channels != out_channels
                                      else nn.Identity())
        self.position = PositionEncoding(pos_encoding, ctx.tokens, out_channels)
        self.norm_attention = nn.LayerNorm(out_channels)
        self.attention = SelfAttention(out_channels, out_channels, heads)
        self.heads = self.attention.heads
        self.norm_mlp = nn.LayerNorm(out_channels)
        self.mlp = FeedForward(out_channels, mlp_ratio, ctx.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, C_out, *S)."""
        spatial = x.shape[2:]
        x = self.position(self.project_in(to_tokens(x)))  # (N, T, C)
        if self.norm_position == "pre":
            x = x + self.attention(self.norm_attention(x))  # (N, T, C)
            x = x + self.mlp(self.norm_mlp(x))  # (N, T, C)
        else:
            x = self.norm_attention(x + self.attention(x))  # (N, T, C)
            x = self.norm_mlp(x + self.mlp(x))  # (N, T, C)
        return from_tokens(x, spatial)  # (N, C_out, *S)
