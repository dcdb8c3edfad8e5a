"""Convolutional mixers: plain conv stack, depthwise separable, bottleneck, inverted bottleneck (MBConv), ConvNeXt.

Every block is only the transformation F of a cell, (N, C_in, *S) -> (N, C_out, *S'); the skip connection,
squeeze-excitation, spatial attention and drop-path are added around it by the cell wrapper. ``ctx.stride`` is the
stride of the block's spatial (K x K) conv (S' = ceil(S / stride)), as in ResNet v1.5 and MobileNet;
``ctx.linear_end`` drops a block's final activation (the cell applies it after the residual add, as ResNet).
Norms and activations follow ``ctx.norm`` / ``ctx.act`` (except ConvNeXt, whose norm is always LayerNorm).

Glossary: N batch, C_in / C_out input / output channels, S spatial dims ((H, W) or (L,)), K kernel size.
A conv followed by a norm has no bias (the norm's shift replaces it); with ``norm='none'`` it has one.
"""
from __future__ import annotations

import torch
from torch import nn

from nas.blocks.layers import BlockContext, ConvNormAct, LayerNormChannels, conv_nd, make_act
from nas.blocks.registry import register


def _expanded(channels: int, ratio: float) -> int:
    """round(channels * ratio), at least 1: the hidden width of expanding / reducing blocks."""
    return max(1, int(round(channels * ratio)))


@register("conv")
class ConvBlock(nn.Sequential):
    """``num_convs`` x (K x K conv, norm, act): the ResNet basic block's F when ``num_convs == 2``.

    The first conv maps C_in -> C_out (with the stride), the others C_out -> C_out. The last conv keeps its
    activation (a uniform stack) unless ``ctx.linear_end``: ResNet's basic block, whose last ReLU follows the sum.
    """

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, kernel_size: int = 3,
                 num_convs: int = 2):
        super().__init__(*[
            ConvNormAct(in_channels if i == 0 else out_channels, out_channels, kernel_size, ctx,
                        stride=ctx.stride if i == 0 else 1, act=not (ctx.linear_end and i == num_convs - 1))
            for i in range(num_convs)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, C_out, *S)."""
        return super().forward(x)


@register("dwsep")
class DepthwiseSeparable(nn.Module):
    """Depthwise separable conv (MobileNet): K x K depthwise conv, norm, act; 1x1 pointwise conv, norm, act.

    Conv weights: C_in*K*K (depthwise, groups=C_in) + C_out*C_in (pointwise), against C_out*C_in*K*K for a standard
    conv: a reduction of 1/C_out + 1/K^2, about 8-9x for K=3 at typical widths.
    """

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, kernel_size: int = 3):
        super().__init__()
        self.depthwise = ConvNormAct(in_channels, in_channels, kernel_size, ctx, groups=in_channels, stride=ctx.stride)
        self.pointwise = ConvNormAct(in_channels, out_channels, 1, ctx, act=not ctx.linear_end)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, C_in, *S) -> (N, C_out, *S)."""
        return self.pointwise(self.depthwise(x))


@register("bottleneck")
class Bottleneck(nn.Module):
    """ResNet bottleneck F: 1x1 reduce to hidden, K x K conv, 1x1 expand to C_out (norm, no act).

    hidden = max(1, round(C_out / reduction_ratio)) (large -> small -> large). The last conv has a norm but no
    activation, as in ResNet, where the activation follows the residual sum.
    """

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, kernel_size: int = 3,
                 reduction_ratio: float = 4.0):
        super().__init__()
        hidden = max(1, int(round(out_channels / reduction_ratio)))
        self.hidden_channels = hidden
        self.reduce = ConvNormAct(in_channels, hidden, 1, ctx)
        self.spatial = ConvNormAct(hidden, hidden, kernel_size, ctx, stride=ctx.stride)  # ResNet v1.5's stride
        self.expand = ConvNormAct(hidden, out_channels, 1, ctx, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, hidden, *S) -> (N, hidden, *S) -> (N, C_out, *S)."""
        return self.expand(self.spatial(self.reduce(x)))


@register("mbconv")
class MBConv(nn.Module):
    """Inverted bottleneck (MobileNetV2 / V3, EfficientNet MBConv).

    1x1 expand to hidden = round(C_in * expansion_ratio) with norm + act (skipped when expansion_ratio == 1, as in
    MobileNetV2, and then hidden = C_in), K x K depthwise with norm + act, squeeze-excitation of the hidden features
    when the stage puts it inside (``ctx.excite``; else the cell adds SE on the output), 1x1 linear projection to
    C_out with norm and no activation (the "linear bottleneck").
    """

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, kernel_size: int = 3,
                 expansion_ratio: float = 4.0):
        super().__init__()
        if expansion_ratio == 1:
            hidden = in_channels
            self.expand: nn.Module = nn.Identity()
        else:
            hidden = _expanded(in_channels, expansion_ratio)
            self.expand = ConvNormAct(in_channels, hidden, 1, ctx)
        self.hidden_channels = hidden
        self.depthwise = ConvNormAct(hidden, hidden, kernel_size, ctx, groups=hidden, stride=ctx.stride)
        # MobileNetV3 / EfficientNet: squeeze-excitation of the expanded features, before the projection
        self.excite = ctx.excite.make(hidden, in_channels, ctx) if ctx.excite else nn.Identity()
        self.project = ConvNormAct(hidden, out_channels, 1, ctx, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, hidden, *S) -> (N, hidden, *S) -> (N, C_out, *S)."""
        return self.project(self.excite(self.depthwise(self.expand(x))))


@register("convnext")
class ConvNeXtBlock(nn.Module):
    """ConvNeXt block F: K x K depthwise conv (with bias), LayerNorm over channels, 1x1 to hidden, ONE activation,
    1x1 to C_out, per-channel layer scale gamma (init 1e-6).

    hidden = round(C_in * expansion_ratio). The norm is always LayerNorm (as in ConvNeXt), whatever ``ctx.norm``
    says; the activation is ``ctx.act`` (GELU in the paper). The 1x1 convs have biases (they are ConvNeXt's
    Linear layers). When C_in != C_out nothing is added in front: the last 1x1 maps to C_out.

    Note: with gamma = 1e-6 the block starts as (almost) zero, which is meant to sit on a residual path; without a
    skip connection the signal through it is scaled by ~1e-6 at initialisation.
    """

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, kernel_size: int = 7,
                 expansion_ratio: float = 4.0):
        super().__init__()
        hidden = _expanded(in_channels, expansion_ratio)
        self.hidden_channels = hidden
        self.depthwise = conv_nd(ctx.dims, in_channels, in_channels, kernel_size, groups=in_channels, bias=True)
        self.norm = LayerNormChannels(in_channels)
        self.expand = conv_nd(ctx.dims, in_channels, hidden, 1, bias=True)
        self.act = make_act(ctx.act)
        self.project = conv_nd(ctx.dims, hidden, out_channels, 1, bias=True)
        self.gamma = nn.Parameter(torch.full((out_channels,), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, C_out, *S)."""
        x = self.norm(self.depthwise(x))  # (N, C_in, *S)
        x = self.project(self.act(self.expand(x)))  # (N, hidden, *S) -> (N, C_out, *S)
        return x * self.gamma.view(-1, *([1] * (x.dim() - 2)))
