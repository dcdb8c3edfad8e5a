"""The cell: a mixer wrapped by its skip pattern, with optional channel and spatial attention.

    none:      y = A(F(x))
    residual:  y = P(x) + drop_path(A(F(x)))                P = identity, or 1x1 conv + norm when channels change
    preact:    h = act(norm(x)); y = P'(x, h) + drop_path(A(F(h)))   (He et al. 2016; token mixers: norm only)
    dense:     see :class:`DenseStage`: every cell sees the concatenation of all earlier outputs of the stage

A = squeeze-excitation and/or spatial attention on F's output (as in SE-ResNet and CBAM). A mixer with its own
residual adds (transformer) is used as defined, with no outer add.
"""
from __future__ import annotations

import torch
from torch import nn

from nas.blocks import registry
from nas.blocks.layers import (
    BlockContext,
    ConvNormAct,
    DropPath,
    SpatialAttention,
    SqueezeExcite,
    conv_nd,
    make_act,
    make_norm,
)
from nas.catalog import MIXERS
from nas.spec import StageSpec


class Cell(nn.Module):
    """One cell of a stage: (N, C_in, *S) -> (N, C_out, *S)."""

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, stage: StageSpec, *,
                 drop_path: float = 0.0, skip: str | None = None):
        super().__init__()
        info = MIXERS[stage.mixer.type]
        skip = skip or stage.skip
        if info.own_residual and skip != "dense":
            skip = "none"
        self.skip = skip
        self.pre = nn.Identity()
        if skip == "preact":
            layers = [make_norm(ctx.norm, in_channels, ctx.dims, ctx.norm_groups)]
            if not info.token_mixer:
                layers.append(make_act(ctx.act))
            self.pre = nn.Sequential(*layers)
        self.mixer = registry.create(stage.mixer.type, in_channels, out_channels, ctx, dict(stage.mixer.options))
        attention = []
        if stage.se_reduction:
            attention.append(SqueezeExcite(out_channels, stage.se_reduction, act=ctx.act))
        if stage.spatial_attention:
            attention.append(SpatialAttention(ctx.dims))
        self.attention = nn.Sequential(*attention)
        self.shortcut: nn.Module = nn.Identity()
        if skip in ("residual", "preact") and in_channels != out_channels:
            if skip == "residual":
                self.shortcut = ConvNormAct(in_channels, out_channels, 1, ctx, act=False)
            else:  # pre-activation: the projection reads the already normalised input
                self.shortcut = conv_nd(ctx.dims, in_channels, out_channels, 1)
        self.drop_path = DropPath(drop_path) if skip in ("residual", "preact") else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C_in, *S) -> (N, C_out, *S)
        if self.skip == "preact":
            h = self.pre(x)
            identity = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(h)
            return identity + self.drop_path(self.attention(self.mixer(h)))
        out = self.attention(self.mixer(x))
        if self.skip == "residual":
            return self.shortcut(x) + self.drop_path(out)
        return out


class DenseStage(nn.Module):
    """DenseNet-style stage: cell i maps concat(input, out_1..out_{i-1}) to ``growth_rate`` channels; a 1x1
    transition maps the concatenation of everything to the stage width.

    (N, C_in, *S) -> (N, C_out, *S)
    """

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, stage: StageSpec, depth: int):
        super().__init__()
        growth = int(stage.growth_rate)
        self.cells = nn.ModuleList(
            Cell(in_channels + i * growth, growth, ctx, stage, skip="none") for i in range(depth)
        )
        self.transition = ConvNormAct(in_channels + depth * growth, out_channels, 1, ctx)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for cell in self.cells:
            features.append(cell(torch.cat(features, dim=1)))  # (N, C_in + i*g, *S) -> (N, g, *S)
        return self.transition(torch.cat(features, dim=1))
