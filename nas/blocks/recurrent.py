"""Recurrent mixers: LSTM and GRU over the positions of a stage (the raster order of pixels for images).

(N, C_in, *S) -> tokens (N, T, C_in) -> recurrent layer (batch_first) -> (N, T, C_out) -> (N, C_out, *S) -> norm.

Glossary: N batch, T tokens (= H*W or L), C_in / C_out input / output channels.

Widths: one direction has hidden = C_out. Bidirectional layers have hidden = ceil(C_out / 2) per direction; their
concatenation (2 * ceil(C_out / 2) channels) equals C_out when C_out is even, and when C_out is odd a
Linear(C_out + 1, C_out) maps it to C_out.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from nas.blocks.layers import BlockContext, from_tokens, make_norm, to_tokens
from nas.blocks.registry import register


class _Recurrent(nn.Module):
    """Shared body of :class:`LSTMBlock` and :class:`GRUBlock`; ``rnn_class`` is nn.LSTM or nn.GRU."""

    rnn_class: type[nn.RNNBase]

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, bidirectional: bool = False):
        super().__init__()
        hidden = math.ceil(out_channels / 2) if bidirectional else out_channels
        self.rnn = self.rnn_class(in_channels, hidden, batch_first=True, bidirectional=bidirectional)
        width = hidden * (2 if bidirectional else 1)
        self.fix_width: nn.Module = nn.Linear(width, out_channels) if width != out_channels else nn.Identity()
        self.norm = make_norm(ctx.norm, out_channels, ctx.dims, ctx.norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, C_out, *S)."""
        spatial = x.shape[2:]
        y, _ = self.rnn(to_tokens(x))  # (N, T, C_in) -> (N, T, hidden * directions)
        y = self.fix_width(y)  # (N, T, C_out)
        return self.norm(from_tokens(y, spatial))  # (N, C_out, *S)


@register("lstm")
class LSTMBlock(_Recurrent):
    """One LSTM layer over the tokens (see the module note for the widths), then a norm over channels."""

    rnn_class = nn.LSTM

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, bidirectional: bool = False):
        super().__init__(in_channels, out_channels, ctx, bidirectional=bidirectional)


@register("gru")
class GRUBlock(_Recurrent):
    """One GRU layer over the tokens (see the module note for the widths), then a norm over channels."""

    rnn_class = nn.GRU

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, bidirectional: bool = False):
        super().__init__(in_channels, out_channels, ctx, bidirectional=bidirectional)
