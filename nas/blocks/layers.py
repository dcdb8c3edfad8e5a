"""Small layer factories shared by every block: norms, activations, convolutions, attention add-ons.

Layout: every block works on channels-first tensors with any number of spatial dims: images are (N, C, H, W)
(``dims=2``), sequences are (N, C, L) (``dims=1``). Token mixers flatten the spatial dims into (N, T, C) tokens
with :func:`to_tokens` and restore them with :func:`from_tokens`.

Glossary: N batch, C channels, H/W height/width, L sequence length, T tokens (= H*W or L).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BlockContext:
    """What every block needs to know about where it sits, besides its channels and its own options."""

    dims: int  # spatial dims of the channels-first input: 2 for images (N,C,H,W), 1 for sequences (N,C,L)
    tokens: int  # positions at this stage (H*W or L): learned position encodings need it
    norm: str = "batch"
    act: str = "relu"
    norm_groups: int | None = None
    stride: int = 1  # the stride of the block's spatial conv (a stage's first cell under downsample: stride)
    linear_end: bool = False  # the block ends without an activation (the cell applies it after the residual add)
    excite: "Excite | None" = None  # squeeze-excitation inside the block (se_place: inner), made by the block


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to a multiple of ``divisor``, never below it nor more than 10% down (as in MobileNet)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class Excite:
    """A stage's squeeze-excitation: hidden width = base // reduction (MobileNet's rounding to ``divisor`` when it is
    above 1), base = the gated channels or the block's input channels; its activation (None: the stage's) and
    gate."""

    reduction: int
    base: str = "gated"
    divisor: int = 1
    gate: str = "sigmoid"
    act: str | None = None

    def make(self, channels: int, in_channels: int, ctx: "BlockContext") -> "SqueezeExcite":
        """The module gating ``channels`` channels of a block whose input has ``in_channels``."""
        base = channels if self.base == "gated" else in_channels
        hidden = base // self.reduction
        hidden = make_divisible(hidden, self.divisor) if self.divisor > 1 else max(1, hidden)
        return SqueezeExcite(channels, self.reduction, act=self.act or ctx.act, hidden=hidden, gate=self.gate)


def conv_nd(dims: int, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1,
            bias: bool = False, padding: int | None = None) -> nn.Module:
    """A Conv1d or Conv2d with 'same' padding for odd kernels."""
    cls = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
    pad = kernel_size // 2 if padding is None else padding
    return cls(in_channels, out_channels, kernel_size, stride=stride, padding=pad, groups=groups, bias=bias)


class LayerNormChannels(nn.Module):
    """LayerNorm over the channel axis of a channels-first tensor (N, C, *S) -> (N, C, *S) (as in ConvNeXt)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def make_norm(name: str, channels: int, dims: int, groups: int | None = None) -> nn.Module:
    """Norm layer by name for channels-first input of any spatial dims.

    ``instance`` is GroupNorm with one group per channel: the same statistics as InstanceNorm with affine weights,
    but defined for 1x1 maps too (InstanceNorm refuses a single spatial element in training).
    ``group`` uses gcd(groups, channels) groups so every width the multipliers produce is valid.
    """
    if name == "batch":
        return {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims](channels)
    if name == "layer":
        return LayerNormChannels(channels)
    if name == "group":
        return nn.GroupNorm(math.gcd(groups or 8, channels), channels)
    if name == "instance":
        return nn.GroupNorm(channels, channels)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {name!r}")


def make_act(name: str) -> nn.Module:
    """Activation module by name (modules, not functions, so that hooks such as NASWOT's can see them)."""
    try:
        return {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "hardswish": nn.Hardswish, "relu6": nn.ReLU6,
                "hardsigmoid": nn.Hardsigmoid}[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}") from None


class ConvNormAct(nn.Sequential):
    """conv -> norm -> act, for 1-D or 2-D channels-first input: (N, C_in, *S) -> (N, C_out, *S')."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ctx: BlockContext, *, stride: int = 1,
                 groups: int = 1, norm: bool = True, act: bool = True, padding: int | None = None,
                 bias: bool | None = None):
        if bias is None:  # a norm's shift replaces the bias
            bias = not norm or ctx.norm == "none"
        layers = [conv_nd(ctx.dims, in_channels, out_channels, kernel_size, stride=stride, groups=groups,
                          padding=padding, bias=bias)]
        if norm:
            layers.append(make_norm(ctx.norm, out_channels, ctx.dims, ctx.norm_groups))
        if act:
            layers.append(make_act(ctx.act))
        super().__init__(*layers)


class PatchEmbed(nn.Module):
    """A patchify stem with its options: non-overlapping ``patch`` x ``patch`` conv (with ``bias``), ``norm``; then
    optionally (ViT) the patches as one sequence with a learned class token in front, and one learned position table
    added to every token.

    (N, C_in, *S) -> (N, C, *grid), or (N, C, 1 + prod(grid)) with a class token.
    """

    def __init__(self, dims: int, in_channels: int, width: int, patch: int, grid: list[int], *, norm: str,
                 norm_groups: int | None, bias: bool, class_token: bool, position: str):
        super().__init__()
        self.conv = conv_nd(dims, in_channels, width, patch, stride=patch, padding=0, bias=bias)
        self.norm = make_norm(norm, width, dims, norm_groups)
        self.class_token = nn.Parameter(torch.zeros(1, width, 1)) if class_token else None
        shape = [1 + math.prod(grid)] if class_token else list(grid)
        self.position = (nn.Parameter(torch.randn(1, width, *shape) * 0.02) if position == "learned" else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))  # (N, C, *grid)
        if self.class_token is not None:
            x = torch.cat([self.class_token.expand(x.shape[0], -1, -1).to(x.dtype), x.flatten(2)], dim=2)
        if self.position is not None:
            x = x + self.position.to(x.dtype)
        return x


class SqueezeExcite(nn.Module):
    """Channel attention (SE-Net): pool over positions, bottleneck MLP, a gate per channel (sigmoid, or
    MobileNetV3's hard sigmoid).

    (N, C, *S) -> (N, C, *S); hidden width = ``hidden``, by default max(1, C // reduction).
    """

    def __init__(self, channels: int, reduction: int, act: str = "relu", *, hidden: int | None = None,
                 gate: str = "sigmoid"):
        super().__init__()
        hidden = hidden or max(1, channels // reduction)
        self.reduce = nn.Linear(channels, hidden)
        self.act = make_act(act)
        self.expand = nn.Linear(hidden, channels)
        self.gate = nn.Sigmoid() if gate == "sigmoid" else make_act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.flatten(2).mean(-1)  # (N, C)
        gate = self.gate(self.expand(self.act(self.reduce(pooled))))  # (N, C)
        return x * gate.view(*gate.shape, *([1] * (x.dim() - 2)))


class SpatialAttention(nn.Module):
    """Spatial attention (CBAM): a k x k conv over [mean, max] across channels gives a sigmoid map per position.

    (N, C, *S) -> (N, C, *S).
    """

    def __init__(self, dims: int, kernel_size: int = 7):
        super().__init__()
        self.conv = conv_nd(dims, 2, 1, kernel_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)  # (N, 2, *S)
        return x * torch.sigmoid(self.conv(pooled))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p`` in training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(N, C, *S) -> (N, T, C) with T = prod(S), raster order."""
    return x.flatten(2).transpose(1, 2)


def from_tokens(tokens: torch.Tensor, spatial: torch.Size | tuple) -> torch.Tensor:
    """(N, T, C) -> (N, C, *S)."""
    n, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(n, c, *spatial)


def sinusoidal_positions(tokens: int, channels: int) -> torch.Tensor:
    """Fixed sine/cosine position encoding (Vaswani et al.), (T, C); odd C handled by truncation."""
    position = torch.arange(tokens, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    div = torch.exp(torch.arange(0, channels + 1, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    table = torch.zeros(tokens, channels + 1)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div[: table[:, 1::2].shape[1]])
    return table[:, :channels]


class PositionEncoding(nn.Module):
    """Adds a position encoding to tokens (N, T, C): learned (T, C) table, fixed sinusoidal, or none.

    A learned table is sized for the stage's token count; inputs with another count get it interpolated.
    """

    def __init__(self, kind: str, tokens: int, channels: int):
        super().__init__()
        self.kind = kind
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(tokens, channels) * 0.02)
        elif kind == "sinusoidal":
            self.register_buffer("table", sinusoidal_positions(tokens, channels), persistent=False)
        elif kind == "none":
            self.table = None
        else:
            raise ValueError(f"unknown position encoding {kind!r}")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            return tokens
        table = self.table
        if table.shape[0] != tokens.shape[1]:
            table = F.interpolate(table.T.unsqueeze(0), size=tokens.shape[1], mode="linear").squeeze(0).T
        return tokens + table.to(tokens.dtype)
