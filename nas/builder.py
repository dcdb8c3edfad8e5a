"""ArchSpec -> nn.Module: the only place that turns specs into torch.

The network tracks channels and resolution through the stages: it knows its input shape, resizes inputs by the
resolution multiplier, applies the width and depth multipliers, and skips a downsampling that would shrink a map
below one position.

Inputs: images (N, C, H, W); sequences (N, L, C) (transposed to channels-first (N, C, L) inside).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.cell import Cell, DenseStage
from nas.blocks.fusion import ClassifierHead, FPNFusion
from nas.blocks.layers import BlockContext, ConvNormAct, conv_nd, make_norm
from nas.errors import BuildError, NasError
from nas.spec import ArchSpec, StageSpec

CHANNEL_DIVISOR = 8


def make_divisible(value: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """Round a scaled width to a multiple of ``divisor``, never below it nor more than 10% down (as in MobileNet)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def scaled_width(width: int, multiplier: float) -> int:
    return width if multiplier == 1.0 else make_divisible(width * multiplier)


def scaled_depth(depth: int, multiplier: float) -> int:
    return max(1, math.ceil(depth * multiplier - 1e-9))


def scaled_size(size: int, multiplier: float) -> int:
    return max(1, int(round(size * multiplier)))


class Downsample(nn.Module):
    """Halve the resolution between stages: strided 3x3 conv + norm (``conv``), max pooling (``pool``, channels
    unchanged), or Swin-style patch merging (a 2x2 stride-2 conv, i.e. concat 2x2 neighbours + linear, then norm).

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
        else:
            raise ValueError(kind)
        self.out_channels = in_channels if kind == "pool" else out_channels

    @staticmethod
    def output_size(kind: str, size: int) -> int:
        return size // 2 if kind == "patch_merge" else (size + 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Network(nn.Module):
    """A network built from an :class:`ArchSpec` for a given input shape and number of classes."""

    def __init__(self, spec: ArchSpec, input_shape: Sequence[int], num_classes: int):
        super().__init__()
        self.spec = spec
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(s) for s in input_shape)  # as the caller feeds it (before resizing)
        if spec.input == "image":
            if len(self.input_shape) != 3:
                raise BuildError(f"an image spec needs input shape (C, H, W), got {self.input_shape}")
            in_channels, *spatial = self.input_shape
            dims = 2
        else:
            if len(self.input_shape) != 2:
                raise BuildError(f"a sequence spec needs input shape (L, C), got {self.input_shape}")
            length, in_channels = self.input_shape
            spatial = [length]
            dims = 1
        if num_classes < 1:
            raise BuildError(f"num_classes must be >= 1, got {num_classes}")
        self.dims = dims
        self.model_size = tuple(scaled_size(s, spec.resolution_multiplier) for s in spatial)

        first = spec.stages[0]
        stem_ctx = BlockContext(dims, math.prod(self.model_size), _norm_at(first.norm, math.prod(self.model_size)),
                                first.act, first.norm_groups)
        stem_width = scaled_width(spec.stem.width, spec.width_multiplier)
        if spec.stem.type == "conv":
            self.stem = ConvNormAct(in_channels, stem_width, spec.stem.kernel_size, stem_ctx)
            size = list(self.model_size)
        else:
            patch = spec.stem.patch_size
            if min(self.model_size) < patch:
                raise BuildError(f"patch size {patch} is larger than the input {self.model_size}", key="stem")
            patches = math.prod(s // patch for s in self.model_size)
            self.stem = nn.Sequential(conv_nd(dims, in_channels, stem_width, patch, stride=patch, padding=0),
                                      make_norm(_norm_at(first.norm, patches), stem_width, dims, first.norm_groups))
            size = [s // patch for s in self.model_size]

        channels = stem_width
        total_blocks = sum(scaled_depth(s.depth, spec.depth_multiplier) for s in spec.stages)
        block_index = 0
        self.stages = nn.ModuleList()
        self.stage_widths: list[int] = []
        self.stage_sizes: list[tuple[int, ...]] = []
        for stage in spec.stages:
            ctx_width = scaled_width(stage.width, spec.width_multiplier)
            depth = scaled_depth(stage.depth, spec.depth_multiplier)
            layers: list[nn.Module] = []
            kind = stage.downsample
            if kind != "none" and min(Downsample.output_size(kind, s) for s in size) < 1:
                kind = "none"  # the map is already a single position: nothing left to halve
            pooled = stage is spec.stages[-1] and spec.head.type == "pool"
            if kind != "none":
                out_size = [Downsample.output_size(kind, s) for s in size]
                ctx = BlockContext(dims, math.prod(out_size), _norm_at(stage.norm, math.prod(out_size), pooled),
                                   stage.act, stage.norm_groups)
                down = Downsample(kind, channels, ctx_width, ctx)
                layers.append(down)
                channels = down.out_channels
                size = out_size
            width = _fit_heads(ctx_width, stage)
            positions = math.prod(size)
            ctx = BlockContext(dims, positions, _norm_at(stage.norm, positions, pooled), stage.act, stage.norm_groups)
            if stage.skip == "dense":
                layers.append(DenseStage(channels, width, ctx, stage, depth))
                block_index += depth
            else:
                for i in range(depth):
                    rate = spec.drop_path * block_index / max(1, total_blocks - 1)
                    layers.append(Cell(channels if i == 0 else width, width, ctx, stage, drop_path=rate))
                    block_index += 1
            channels = width
            self.stages.append(nn.Sequential(*layers))
            self.stage_widths.append(width)
            self.stage_sizes.append(tuple(size))

        self.fusion: FPNFusion | None = None
        if spec.head.type == "fpn":
            k = spec.head.fpn_stages
            last = spec.stages[-1]
            coarsest = min(math.prod(s) for s in self.stage_sizes[-k:])
            # the fused laterals are pooled directly (13.5% of vision samples had constant logits before this)
            head_ctx = BlockContext(dims, coarsest, _norm_at(last.norm, coarsest, pooled=True), last.act,
                                    last.norm_groups)
            self.fusion = FPNFusion(self.stage_widths[-k:], head_ctx, spec.head.fuse)
            channels = self.fusion.out_channels
        self.head = ClassifierHead(channels, self.num_classes, spec.head.dropout)

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
    recorded: dict = {}
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if path.is_dir():
            path = path / "arch.json"
        recorded = _recorded_io(path)
        spec = ArchSpec.load(path) if not recorded else ArchSpec.from_data(recorded["spec"], file=str(path))
    elif isinstance(spec, dict):
        spec = ArchSpec.from_data(spec)
    input_shape = input_shape or recorded.get("input_shape")
    num_classes = num_classes or recorded.get("num_classes")
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


def _recorded_io(path: Path) -> dict:
    """An exported arch.json wraps the spec with the input shape and classes it was searched for."""
    import json

    if path.suffix != ".json" or not path.exists():
        return {}
    from nas.yamlio import read_text

    try:
        data = json.loads(read_text(path))
    except (NasError, json.JSONDecodeError):
        return {}  # not an export record: ArchSpec.load reads it (and says what is wrong with it)
    return data if isinstance(data, dict) and "spec" in data and "input_shape" in data else {}


def example_input(model: Network, batch_size: int = 2) -> torch.Tensor:
    """A random input of the shape the model was built for: (B, *input_shape)."""
    return torch.randn(batch_size, *model.input_shape)
