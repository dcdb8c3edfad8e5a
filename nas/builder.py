"""ArchSpec -> nn.Module: the only place that turns specs into torch.

The network tracks channels and resolution through the stages: it knows its input shape, resizes inputs by the
resolution multiplier, applies the width and depth multipliers, and skips a downsampling that would shrink a map
below one position.

Inputs: images (N, C, H, W); sequences (N, L, C) (transposed to channels-first (N, C, L) inside).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.archjson import read_spec
from nas.blocks.cell import Cell, DenseStage
from nas.blocks.fusion import ClassifierHead, FPNFusion
from nas.blocks.layers import (
    BlockContext,
    ConvNormAct,
    PatchEmbed,
    conv_nd,
    make_act,
    make_divisible,
    make_norm,
)
from nas.errors import BuildError
from nas.spec import ArchSpec, StageSpec, scaled_depth



def scaled_width(width: int, multiplier: float) -> int:
    return width if multiplier == 1.0 else make_divisible(width * multiplier)


def scaled_size(size: int, multiplier: float) -> int:
    return max(1, int(round(size * multiplier)))


def conv_output(size: int, kernel: int, stride: int) -> int:
    """The output length of a conv (or pooling) with 'same' padding ``kernel // 2`` and ``stride``."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class ResidualReduction(nn.Module):
    """NAS-Bench-201's reduction block between stages: act -> 3x3 conv stride 2 -> norm, act -> 3x3 conv -> norm,
    plus a shortcut of 2x2 average pooling (stride 2) then a 1x1 conv without norm (when the channels change).
    (N, C_in, *S) -> (N, C_out, *ceil(S/2))."""

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext):
        super().__init__()
        norm = lambda c: make_norm(ctx.norm, c, ctx.dims, ctx.norm_groups)  # noqa: E731
        self.conv_a = nn.Sequential(make_act(ctx.act), conv_nd(ctx.dims, in_channels, out_channels, 3, stride=2),
                                    norm(out_channels))
        self.conv_b = nn.Sequential(make_act(ctx.act), conv_nd(ctx.dims, out_channels, out_channels, 3),
                                    norm(out_channels))
        pool = {1: nn.AvgPool1d, 2: nn.AvgPool2d}[ctx.dims](2, stride=2, ceil_mode=True, count_include_pad=False)
        self.shortcut = (nn.Sequential(pool, conv_nd(ctx.dims, in_channels, out_channels, 1))
                         if in_channels != out_channels else pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Downsample(nn.Module):
    """Halve the resolution between stages: strided 3x3 conv + norm (``conv``), max pooling (``pool``, channels
    unchanged), Swin-style patch merging (a 2x2 stride-2 conv, i.e. concat 2x2 neighbours + linear, then norm),
    ConvNeXt's (``norm_patch``: the norm, then a 2x2 stride-2 conv with bias), or NAS-Bench-201's residual reduction
    block (``resblock``, :class:`ResidualReduction`).

    (N, C_in, *S) -> (N, C_out, *ceil(S/2)) for conv / pool; (N, C_out, *floor(S/2)) for patch merging.
    """

    def __init__(self, kind: str, in_channels: int, out_channels: int, ctx: BlockContext):
        super().__init__()
        self.kind = kind
        if kind == "conv":
            self.op = ConvNormAct(in_channels, out_channels, 3, ctx, stride=2, act=False)
        elif kind == "patch_merge":
            self.op = nn.Sequential(conv_nd(ctx.dims, in_channels, out_channels, 2, stride=2, padding=0),
                                    make_norm(ctx.norm, out_channels, ctx.dims, ctx.norm_groups))
        elif kind == "pool":
            self.op = {1: nn.MaxPool1d, 2: nn.MaxPool2d}[ctx.dims](2, ceil_mode=True)
        elif kind == "resblock":
            self.op = ResidualReduction(in_channels, out_channels, ctx)
        elif kind == "norm_patch":  # ConvNeXt: the norm first, then a 2x2 stride-2 conv with bias
            self.op = nn.Sequential(make_norm(ctx.norm, in_channels, ctx.dims, ctx.norm_groups),
                                    conv_nd(ctx.dims, in_channels, out_channels, 2, stride=2, padding=0, bias=True))
        else:
            raise ValueError(kind)
        self.out_channels = self.output_channels(kind, in_channels, out_channels)

    @staticmethod
    def output_channels(kind: str, in_channels: int, out_channels: int) -> int:
        return in_channels if kind == "pool" else out_channels

    @staticmethod
    def output_size(kind: str, size: int) -> int:
        return size // 2 if kind in ("patch_merge", "norm_patch") else (size + 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


@dataclass(frozen=True)
class Part:
    """One piece of a :class:`Network` (the stem, a downsampler, a cell, a dense stage, the fusion, the head) whose
    parameters and FLOPs depend only on ``key``: built alone by ``make`` and fed ``example()`` (batch of one), it
    counts what it counts inside the network. Two parts with one key cost the same, so counting a network is
    counting its distinct parts (:func:`network_costs`)."""

    key: tuple
    make: Callable[[], nn.Module] = field(compare=False)
    example: Callable[[], tuple] = field(compare=False)


@dataclass
class Layout:
    """Everything :class:`Network` builds, as parts in build order, worked out without building any."""

    dims: int
    model_size: tuple[int, ...]
    stem: Part
    stages: list[list[Part]]
    stage_widths: list[int]
    stage_sizes: list[tuple[int, ...]]
    fusion: Part | None
    head: Part

    def parts(self) -> list[Part]:
        """Every part in build order, repeats included: stem, each stage's parts, the fusion, the head."""
        return [self.stem, *(p for stage in self.stages for p in stage), *([self.fusion] if self.fusion else []),
                self.head]


def _inputs(*shapes: tuple[int, ...]) -> Callable[[], tuple]:
    return lambda: tuple(torch.randn(1, *s) for s in shapes)


def layout(spec: ArchSpec, input_shape: Sequence[int], num_classes: int) -> Layout:
    """The parts of the network for ``spec`` at ``input_shape`` (without the batch) and ``num_classes``: the one
    place that turns a spec into channels, resolutions and blocks. Raises :class:`BuildError` as the build would."""
    dims, in_channels, model_size = _geometry(spec, input_shape, num_classes)
    stem, channels, size = _stem_part(spec, dims, in_channels, model_size)
    inner = 1 if spec.stem.class_token else dims  # a class token makes the patches one sequence of tokens
    stages, stage_widths, stage_sizes = _stage_parts(spec, inner, channels, size)
    fusion, head = _head_parts(spec, inner, stage_widths, stage_sizes, int(num_classes))
    return Layout(dims, model_size, stem, stages, stage_widths, stage_sizes, fusion, head)


def _geometry(spec: ArchSpec, input_shape: Sequence[int], num_classes: int) -> tuple[int, int, tuple[int, ...]]:
    """(spatial dims, input channels, the spatial size the model runs at: the input's times the resolution
    multiplier), with the input shape checked against the spec's kind."""
    input_shape = tuple(int(s) for s in input_shape)
    if spec.input == "image":
        if len(input_shape) != 3:
            raise BuildError(f"an image spec needs input shape (C, H, W), got {input_shape}")
        in_channels, *spatial = input_shape
        dims = 2
    else:
        if len(input_shape) != 2:
            raise BuildError(f"a sequence spec needs input shape (L, C), got {input_shape}")
        length, in_channels = input_shape
        spatial = [length]
        dims = 1
    if num_classes < 1:
        raise BuildError(f"num_classes must be >= 1, got {num_classes}")
    return dims, in_channels, tuple(scaled_size(s, spec.resolution_multiplier) for s in spatial)


def _stem_part(spec: ArchSpec, dims: int, in_channels: int, model_size: tuple[int, ...]
               ) -> tuple[Part, int, list[int]]:
    """The stem (a conv or a patchify layer), the channels it gives and the spatial size after it."""
    first = spec.stages[0]
    act = spec.stem.act or first.act  # a conv stem's own activation ("none": conv + norm, as NAS-Bench-201's)
    stem_norm = spec.stem.norm or first.norm  # its own norm, else the first stage's
    groups = first.norm_groups if stem_norm == "group" else None
    stem_ctx = BlockContext(dims, math.prod(model_size), _norm_at(stem_norm, math.prod(model_size)), act, groups)
    stem_width = scaled_width(spec.stem.width, spec.width_multiplier)
    stem_in = (in_channels, *model_size)
    if spec.stem.type == "conv":
        kernel, stride, pool = spec.stem.kernel_size, spec.stem.stride, spec.stem.pool
        size = [conv_output(s, kernel, stride) for s in model_size]
        if pool == "max":
            size = [conv_output(s, 3, 2) for s in size]
        if min(size) < 1:
            raise BuildError(f"the stem's stride leaves no positions of the input {model_size}", key="stem")

        def conv_stem() -> nn.Module:
            conv = ConvNormAct(in_channels, stem_width, kernel, stem_ctx, stride=stride, act=act != "none",
                               bias=spec.stem.bias or None)
            if pool == "max":  # ResNet: 3x3 max pooling, stride 2, padding 1
                conv.append({1: nn.MaxPool1d, 2: nn.MaxPool2d}[dims](3, stride=2, padding=1))
            return conv

        key = ("stem", "conv", in_channels, stem_width, kernel, stem_ctx, model_size)
        if stride != 1 or pool != "none" or spec.stem.bias:
            key += (stride, pool, spec.stem.bias)
        return Part(key, conv_stem, _inputs(stem_in)), stem_width, size
    patch = spec.stem.patch_size
    if min(model_size) < patch:
        raise BuildError(f"patch size {patch} is larger than the input {model_size}", key="stem")
    grid = [s // patch for s in model_size]
    patches = math.prod(grid)
    norm = _norm_at(stem_norm, patches)
    bias, cls, position = spec.stem.bias, spec.stem.class_token, spec.stem.position
    if not (bias or cls or position != "none"):
        def patchify() -> nn.Module:
            return nn.Sequential(conv_nd(dims, in_channels, stem_width, patch, stride=patch, padding=0),
                                 make_norm(norm, stem_width, dims, groups))

        stem = Part(("stem", "patch", in_channels, stem_width, patch, dims, norm, groups, model_size),
                    patchify, _inputs(stem_in))
        return stem, stem_width, grid
    embed = partial(PatchEmbed, dims, in_channels, stem_width, patch, grid, norm=norm, norm_groups=groups, bias=bias,
                    class_token=cls, position=position)
    stem = Part(("stem", "patch-embed", in_channels, stem_width, patch, dims, norm, groups, model_size, bias, cls,
                 position), embed, _inputs(stem_in))
    return stem, stem_width, [1 + patches] if cls else grid


def _stage_parts(spec: ArchSpec, dims: int, channels: int, size: list[int]
                 ) -> tuple[list[list[Part]], list[int], list[tuple[int, ...]]]:
    """Each stage's parts (its downsampler, then its cells or one dense stage), with the width and spatial size
    each stage gives."""
    total_blocks = sum(scaled_depth(s.depth, spec.depth_multiplier) for s in spec.stages)
    block_index = 0
    stages: list[list[Part]] = []
    stage_widths: list[int] = []
    stage_sizes: list[tuple[int, ...]] = []
    for stage in spec.stages:
        ctx_width = scaled_width(stage.width, spec.width_multiplier)
        depth = scaled_depth(stage.depth, spec.depth_multiplier)
        parts: list[Part] = []
        kind = stage.downsample
        if kind not in ("none", "stride") and min(Downsample.output_size(kind, s) for s in size) < 1:
            kind = "none"  # the map is already a single position: nothing left to halve
        pooled = stage is spec.stages[-1] and spec.head.type == "pool"
        stride = 1
        if kind == "stride":  # the first cell strides
            stride = 2
            in_size, size = size, [conv_output(s, 3, 2) for s in size]
        elif kind != "none":
            out_size = [Downsample.output_size(kind, s) for s in size]
            ctx = BlockContext(dims, math.prod(out_size), _norm_at(stage.norm, math.prod(out_size), pooled),
                               stage.act, stage.norm_groups)
            parts.append(Part(("downsample", kind, channels, ctx_width, ctx, tuple(size)),
                              partial(Downsample, kind, channels, ctx_width, ctx), _inputs((channels, *size))))
            channels = Downsample.output_channels(kind, channels, ctx_width)
            size = out_size
        width = _fit_heads(ctx_width, stage)
        positions = math.prod(size)
        ctx = BlockContext(dims, positions, _norm_at(stage.norm, positions, pooled), stage.act, stage.norm_groups)
        # what a cell reads of its stage: not its depth, width (the channels are given) or downsampling
        cell = stage.model_dump_json(exclude={"depth", "width", "downsample", "per_block"})
        if stage.skip == "dense":
            parts.append(Part(("dense", channels, width, ctx, cell, depth, tuple(size)),
                              partial(DenseStage, channels, width, ctx, stage, depth), _inputs((channels, *size))))
            block_index += depth
        else:
            strided = dataclasses.replace(ctx, stride=stride)
            for i in range(depth):
                rate = spec.drop_path * block_index / max(1, total_blocks - 1)  # no parameter, no FLOP
                c_in = channels if i == 0 else width
                # the first cell of a strided stage reads the larger map with a strided context
                at, at_size = (strided, in_size) if i == 0 and stride != 1 else (ctx, size)
                this = stage.cell(i)  # per-cell values (an expansion list) in the mixer's options
                key = cell if this is stage else this.model_dump_json(exclude={"depth", "width", "downsample"})
                parts.append(Part(("cell", c_in, width, at, key, tuple(at_size)),
                                  partial(Cell, c_in, width, at, this, drop_path=rate), _inputs((c_in, *at_size))))
                block_index += 1
        channels = width
        stages.append(parts)
        stage_widths.append(width)
        stage_sizes.append(tuple(size))
    return stages, stage_widths, stage_sizes


def _head_parts(spec: ArchSpec, dims: int, stage_widths: list[int], stage_sizes: list[tuple[int, ...]],
                num_classes: int) -> tuple[Part | None, Part]:
    """The multi-scale fusion (an FPN head; None for a pooled head) and the classifier head."""
    fusion = None
    channels = stage_widths[-1]
    head_size = stage_sizes[-1]
    if spec.head.type == "fpn":
        k = spec.head.fpn_stages
        last = spec.stages[-1]
        coarsest = min(math.prod(s) for s in stage_sizes[-k:])
        # the fused laterals are pooled directly (13.5% of vision samples had constant logits before this)
        head_ctx = BlockContext(dims, coarsest, _norm_at(last.norm, coarsest, pooled=True), last.act,
                                last.norm_groups)
        widths, sizes, fuse = stage_widths[-k:], stage_sizes[-k:], spec.head.fuse
        fusion = Part(("fpn", tuple(widths), head_ctx, fuse, tuple(sizes)),
                      partial(FPNFusion, widths, head_ctx, fuse),
                      lambda: ([torch.randn(1, w, *s) for w, s in zip(widths, sizes)],))
        channels = FPNFusion.output_channels(widths, fuse)
        head_size = sizes[0]
    dropout = spec.head.dropout
    last = spec.stages[-1]
    positions = math.prod(head_size)
    # the head's own layers take the last stage's norm and activation
    head_ctx = BlockContext(dims, positions, _norm_at(last.norm, positions, pooled=True), last.act, last.norm_groups)
    norm_act = head_ctx if spec.head.norm_act else None  # norm + act before the pool (NAS-Bench-201's lastact)
    key = ("head", channels, num_classes, head_size) + ((norm_act,) if norm_act else ())
    conv_width = scaled_width(spec.head.conv_width, max(1.0, spec.width_multiplier))  # MobileNet: never narrower
    extra = {}
    if conv_width or spec.head.hidden or spec.head.pool != "mean" or spec.head.final_norm:
        extra = dict(conv_width=conv_width, hidden=spec.head.hidden, pool=spec.head.pool,
                     final_norm=spec.head.final_norm, ctx=head_ctx)
        key += (tuple(sorted(extra.items())),)
    head = Part(key, partial(ClassifierHead, channels, num_classes, dropout, norm_act, **extra),
                _inputs((channels, *head_size)))
    return fusion, head


class Network(nn.Module):
    """A network built from an :class:`ArchSpec` for a given input shape and number of classes."""

    def __init__(self, spec: ArchSpec, input_shape: Sequence[int], num_classes: int):
        super().__init__()
        self.spec = spec
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(s) for s in input_shape)  # as the caller feeds it (before resizing)
        plan = layout(spec, self.input_shape, self.num_classes)
        self.dims = plan.dims
        self.model_size = plan.model_size
        self.stem = plan.stem.make()
        self.stages = nn.ModuleList(nn.Sequential(*(part.make() for part in parts)) for parts in plan.stages)
        self.stage_widths = plan.stage_widths
        self.stage_sizes = plan.stage_sizes
        self.fusion: FPNFusion | None = plan.fusion.make() if plan.fusion is not None else None
        self.head = plan.head.make()

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output, channels-first: [(N, C_i, *S_i)] (for fusion heads and dense tasks)."""
        if self.dims == 1:
            x = x.transpose(1, 2)  # (N, L, C) -> (N, C, L)
        if tuple(x.shape[2:]) != self.model_size:
            mode = "bilinear" if self.dims == 2 else "linear"
            x = F.interpolate(x, size=self.model_size, mode=mode, align_corners=False)
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) or (N, L, C) -> logits (N, num_classes)."""
        features = self.forward_features(x)
        if self.fusion is not None:
            fused = self.fusion(features[-self.spec.head.fpn_stages:])
        else:
            fused = features[-1]
        return self.head(fused)


def _norm_at(norm: str, positions: int, pooled: bool = False) -> str:
    """The norm a map of ``positions`` positions gets: LayerNorm over channels in place of instance norm where
    instance statistics fail.

    * a single position: the statistics are undefined (the normalised map is identically zero, and ``F.group_norm``
      refuses batch 1);
    * ``pooled``, a map that feeds the global average pool directly (the last stage and its downsampler under a
      pool head, the FPN laterals): a map ending in an instance norm (post-norm residual, plain cell, or a cell that
      starts near identity, e.g. ConvNeXt's layer scale) has a per-channel mean equal to the norm's bias, so the
      logits would not depend on the input (5% of vision.yaml samples)."""
    return "layer" if norm == "instance" and (positions <= 1 or pooled) else norm


def _fit_heads(width: int, stage: StageSpec) -> int:
    """Attention needs channels divisible by its heads: round the width up to the next multiple."""
    heads = stage.mixer.options.get("heads")
    if heads and width % heads:
        width = (width // heads + 1) * heads
    return width


def build(spec: ArchSpec | str | Path | dict, input_shape: Sequence[int] | None = None,
          num_classes: int | None = None) -> Network:
    """Build a network from a spec (object, path to arch.json / spec YAML, or plain data).

    ``input_shape`` is (C, H, W) for images or (L, C) for sequences, without the batch. For an exported
    ``arch.json`` that records them, both may be left out.
    """
    recorded = None
    if isinstance(spec, (str, Path)):
        spec, recorded = read_spec(spec)
    elif isinstance(spec, dict):
        spec = ArchSpec.from_data(spec)
    if recorded is not None:
        input_shape = input_shape or recorded[0]
        num_classes = num_classes or recorded[1]
    if input_shape is None or num_classes is None:
        raise BuildError("input_shape and num_classes are needed to build this spec")
    return Network(spec, input_shape, num_classes)


def lazy_model(spec: ArchSpec, input_shape: Sequence[int], num_classes: int, *,
               seed: int | None = None) -> Callable[[], Network]:
    """A function that builds the model on its first call (after ``torch.manual_seed(seed)`` when a seed is given)
    and returns that same model on every later call: a check that may not need the model (a cached cost) and the
    evaluation after it share one build."""
    built: list[Network] = []

    def get_model() -> Network:
        if not built:
            if seed is not None:
                torch.manual_seed(seed)
            built.append(build(spec, input_shape, num_classes))
        return built[0]

    return get_model


def example_input(model: Network, batch_size: int = 2) -> torch.Tensor:
    """A random input of the shape the model was built for: (B, *input_shape)."""
    return torch.randn(batch_size, *model.input_shape)
