"""The cell: a mixer wrapped by its skip pattern, with optional channel and spatial attention.

    none:      y = A(F(x))
    residual:  y = P(x) + drop_path(A(F(x)))
    preact:    h = act(norm(x)); y = P'(x, h) + drop_path(A(F(h)))   (He et al. 2016; token mixers: norm only)
    dense:     see :class:`DenseStage`: every cell sees the concatenation of all earlier outputs of the stage

A = squeeze-excitation and/or spatial attention on F's output (as in SE-ResNet and CBAM). A mixer with its own
residual adds (transformer) is used as defined, with no outer add.

P is the identity while the shape is kept. When the channels change or the cell strides (``ctx.stride``, a stage's
first cell under ``downsample: stride``), the stage's ``shortcut`` says what P is: ``projection``, a 1x1 conv with
that stride + norm (ResNet's option B; under preact a bare conv of the normalised input); ``zeropad``, the input
subsampled by the stride and zero-padded with channels (option A, no parameters); ``none``, no add at all (a
MobileNetV2 block that changes shape). With ``post_act`` the activation follows the add (ResNet) and F ends linear.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks import registry
from nas.blocks.layers import (
    BlockContext,
    ConvNormAct,
    DropPath,
    Excite,
    SpatialAttention,
    conv_nd,
    make_act,
    make_norm,
)
from nas.catalog import MIXERS
from nas.errors import BuildError
from nas.spec import StageSpec


class ZeroPadShortcut(nn.Module):
    """ResNet's option-A shortcut: (N, C_in, *S) -> (N, C_out, *ceil(S/stride)), the input subsampled by the stride
    and its channels zero-padded (half before, half after), no parameters. Needs C_out >= C_in."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.before = (out_channels - in_channels) // 2
        self.after = out_channels - in_channels - self.before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[(slice(None), slice(None)) + (slice(None, None, self.stride),) * (x.dim() - 2)]
        return F.pad(x, (0, 0) * (x.dim() - 2) + (self.before, self.after))


class Cell(nn.Module):
    """One cell of a stage: (N, C_in, *S) -> (N, C_out, *S'), S' = ceil(S / ctx.stride)."""

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, stage: StageSpec, *,
                 drop_path: float = 0.0, skip: str | None = None):
        super().__init__()
        info = MIXERS[stage.mixer.type]
        skip = skip or stage.skip
        if info.own_residual and skip != "dense":
            skip = "none"
        self.skip = skip
        self.pre: nn.Module = nn.Identity()
        if skip == "preact":
            layers = [make_norm(ctx.norm, in_channels, ctx.dims, ctx.norm_groups)]
            if not info.token_mixer:
                layers.append(make_act(ctx.act))
            self.pre = nn.Sequential(*layers)
        adds = skip in ("residual", "preact")
        reshaped = in_channels != out_channels or ctx.stride != 1
        if adds and reshaped and stage.shortcut == "none":
            adds = False  # MobileNetV2: a block that changes shape has no shortcut
        self.adds = adds
        self.shortcut_reads_pre = False  # preact's projection reads the normalised input
        excite = (Excite(stage.se_reduction, stage.se_base, stage.se_divisor, stage.se_gate, stage.se_act)
                  if stage.se_reduction else None)
        mixer_ctx = ctx
        if stage.post_act:
            mixer_ctx = dataclasses.replace(mixer_ctx, linear_end=True)
        if excite and stage.se_place == "inner":
            mixer_ctx = dataclasses.replace(mixer_ctx, excite=excite)
        self.mixer = registry.create(stage.mixer.type, in_channels, out_channels, mixer_ctx,
                                     dict(stage.mixer.options))
        attention = []
        if excite and stage.se_place == "output":
            attention.append(excite.make(out_channels, in_channels, ctx))
        if stage.spatial_attention:
            attention.append(SpatialAttention(ctx.dims))
        self.attention = nn.Sequential(*attention)
        self.shortcut: nn.Module = nn.Identity()
        if adds and reshaped:
            if stage.shortcut == "zeropad":
                if out_channels < in_channels:
                    raise BuildError(f"shortcut zeropad cannot narrow {in_channels} channels to {out_channels}",
                                     key="shortcut")
                self.shortcut = ZeroPadShortcut(in_channels, out_channels, ctx.stride)
            elif skip == "residual":
                self.shortcut = ConvNormAct(in_channels, out_channels, 1, ctx, stride=ctx.stride, act=False)
            else:  # pre-activation: the projection reads the already normalised input
                self.shortcut = conv_nd(ctx.dims, in_channels, out_channels, 1, stride=ctx.stride)
                self.shortcut_reads_pre = True
        self.drop_path = DropPath(drop_path) if adds else nn.Identity()
        self.post = make_act(ctx.act) if stage.post_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C_in, *S) -> (N, C_out, *S)
        h = self.pre(x)  # preact: norm (+ act); else the identity
        out = self.attention(self.mixer(h))
        if self.adds:
            out = self.shortcut(h if self.shortcut_reads_pre else x) + self.drop_path(out)
        return self.post(out)


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
