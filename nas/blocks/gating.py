"""Gating mixer: a gated linear unit over channels (position-wise; mixes no positions).

Glossary: N batch, C_in / C_out input / output channels, S spatial dims, hidden = round(C_in * expansion_ratio).
"""
from __future__ import annotations

import torch
from torch import nn

from nas.blocks.layers import BlockContext, conv_nd, make_norm
from nas.blocks.registry import register


@register("glu")
class GatedLinearUnit(nn.Module):
    """GLU / gated MLP: y = norm(proj(sigmoid(gate(x)) * value(x))).

    value and gate are pointwise (1x1, i.e. a Linear over channels applied channels-first) projections
    C_in -> hidden with biases; proj is 1x1 hidden -> C_out (no bias when a norm follows); the norm is ``ctx.norm``.
    """

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, expansion_ratio: float = 2.0):
        super().__init__()
        hidden = max(1, int(round(in_channels * expansion_ratio)))
        self.hidden_channels = hidden
        self.value = conv_nd(ctx.dims, in_channels, hidden, 1, bias=True)
        self.gate = conv_nd(ctx.dims, in_channels, hidden, 1, bias=True)
        self.proj = conv_nd(ctx.dims, hidden, out_channels, 1, bias=ctx.norm == "none")
        self.norm = make_norm(ctx.norm, out_channels, ctx.dims, ctx.norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, hidden, *S) -> (N, C_out, *S)."""
        return self.norm(self.proj(torch.sigmoid(self.gate(x)) * self.value(x)))
