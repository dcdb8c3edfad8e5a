"""The architecture spec: plain, frozen, JSON-round-trippable data describing one network.

An :class:`ArchSpec` is what the grammar samples, what the controller stores, what export writes as ``arch.json`` and
what the builder turns into a torch module. It holds no torch object. Its canonical form fills every option with its
value (inactive conditional fields are ``None``) and rounds floats, so the same architecture always has the same
:meth:`ArchSpec.hash` in any process.

    stem -> stages (each: optional downsample, then ``depth`` cells) -> head

A cell is ``skip(mixer [+ squeeze-excitation] [+ spatial attention])``; widths and depths are the base values,
scaled by the global multipliers when the network is built.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nas.catalog import (
    ACTIVATIONS,
    DAG_EDGES,
    DOWNSAMPLES,
    FUSIONS,
    HEAD_POOLS,
    HEADS,
    INPUTS,
    MAX_VALUE,
    MIXERS,
    NORMS,
    SE_BASES,
    SE_GATES,
    SE_PLACES,
    SHORTCUTS,
    SKIP_ABBREVIATIONS,
    SKIPS,
    STEM_POOLS,
    STEM_POSITIONS,
    STEMS,
    bounded,
    capable,
    dag_edges,
    kernel_option,
)
from nas.errors import SpecError, plain_message
from nas.io import load_yaml, read_text

STEM_KERNEL = kernel_option(3)

SCHEMA_VERSION = 1
FLOAT_DIGITS = 6

Scalar = Union[bool, int, float, str]


def canonical_float(value: float) -> float:
    """Round floats so that values from YAML, Optuna and JSON hash identically."""
    return round(float(value), FLOAT_DIGITS)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


ACT = Literal[ACTIVATIONS]


class StemSpec(_Frozen):
    """conv: a k x k conv-norm-act with ``stride`` (1, or 2 as ResNet / MobileNet), then optionally ResNet's 3x3
    stride-2 max pooling (``pool: max``); patchify: non-overlapping patch_size x patch_size patches (ViT)."""

    type: Literal[STEMS]
    width: int = Field(ge=1, le=MAX_VALUE["width"])
    kernel_size: int | None = Field(default=None, le=MAX_VALUE["kernel_size"])
    patch_size: int | None = Field(default=None, le=MAX_VALUE["patch_size"])
    act: Literal[ACTIVATIONS + ("none",)] | None = None  # conv; None: the first stage's
    stride: int = Field(default=1, ge=1, le=4)  # conv stem
    pool: Literal[STEM_POOLS] = "none"  # conv stem
    norm: Literal[NORMS] | None = None  # None: the first stage's
    bias: bool = False  # the stem conv's bias (ViT's and ConvNeXt's patch embeddings have one)
    class_token: bool = False  # patchify: a learned class token before the patches (ViT); the stages then see a
    # sequence of 1 + patches tokens
    position: Literal[STEM_POSITIONS] = "none"  # patchify: one learned position table, added once (ViT)

    @model_validator(mode="after")
    def _conditional(self):
        if self.type == "conv":
            if self.kernel_size is None or not STEM_KERNEL.accepts(self.kernel_size):
                raise ValueError(f"@kernel_size: stem type conv needs kernel_size, {STEM_KERNEL.describe()}")
            if self.patch_size is not None:
                raise ValueError("@patch_size: patch_size is only for stem type patchify")
        else:
            if self.patch_size is None or self.patch_size < 1:
                raise ValueError("@patch_size: stem type patchify needs patch_size >= 1")
            if self.kernel_size is not None:
                raise ValueError("@kernel_size: kernel_size is only for stem type conv")
            if self.act is not None:
                raise ValueError("@act: act is only for stem type conv")
            if self.stride != 1 or self.pool != "none":
                raise ValueError("@stride: stride and pool are only for stem type conv")
        if self.type == "conv" and (self.class_token or self.position != "none"):
            raise ValueError("@class_token: class_token and position are only for stem type patchify")
        return self


def scaled_depth(depth: int, multiplier: float) -> int:
    """The blocks a stage of ``depth`` builds under a depth ``multiplier`` (at least one; rounded up)."""
    return max(1, math.ceil(depth * multiplier - 1e-9))


def option_value(mixer: str, key: str, value: Any, where: str) -> Scalar:
    """``value`` of option ``key`` of block ``mixer``, checked and canonical (ints of a float option as floats)."""
    option = bounded(MIXERS[mixer].options[key], key)
    if option.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not option.accepts(value):
        raise ValueError(f"@{where}: option {key!r} of block {mixer!r} is {value!r}, expected {option.describe()}")
    return canonical_float(value) if option.type is float else value


class MixerSpec(_Frozen):
    """The production chosen for a cell: a catalogue mixer and all of its options (defaults filled in)."""

    type: str
    options: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _fill_and_check(cls, data: Any):
        if not isinstance(data, dict):
            return data
        name = data.get("type")
        if not isinstance(name, str) or name not in MIXERS:
            raise ValueError(f"@type: unknown block {name!r} (known: {', '.join(sorted(MIXERS))})")
        info = MIXERS[name]
        given = dict(data.get("options") or {})
        unknown = sorted(set(given) - set(info.options))
        if unknown:
            raise ValueError(f"@options.{unknown[0]}: block {name!r} takes no option {unknown[0]!r} "
                             f"(accepted: {', '.join(sorted(info.options)) or 'none'})")
        options = info.defaults()
        for key, value in given.items():
            options[key] = option_value(name, key, value, f"options.{key}")
        if name == "dag":  # an edge beyond the cell's nodes does not exist: none, whatever was chosen for it
            used = set(dag_edges(options["nodes"]))
            options.update({e: "none" for e in DAG_EDGES if e not in used})
        return {**data, "options": dict(sorted(options.items()))}


class StageSpec(_Frozen):
    """One stage: downsample (none / strided conv / pooling / patch merging), then ``depth`` identical cells."""

    depth: int = Field(ge=1, le=MAX_VALUE["depth"])
    width: int = Field(ge=1, le=MAX_VALUE["width"])
    downsample: Literal[DOWNSAMPLES] = "none"
    mixer: MixerSpec
    skip: Literal[SKIPS] = "residual"
    growth_rate: int | None = Field(default=None, ge=1, le=MAX_VALUE["growth_rate"])
    norm: Literal[NORMS] = "batch"
    norm_groups: int | None = Field(default=None, ge=1, le=MAX_VALUE["norm_groups"])
    act: ACT = "relu"
    se_reduction: int = Field(default=0, ge=0, le=MAX_VALUE["se_reduction"])  # 0: no squeeze-excitation
    spatial_attention: bool = False
    se_place: Literal[SE_PLACES] = "output"  # SE on the cell's output, or on the block's expanded features
    se_base: Literal[SE_BASES] = "gated"  # SE hidden = base // se_reduction: the gated or the input channels
    se_divisor: int = Field(default=1, ge=1, le=64)  # > 1: the SE hidden width rounded as MobileNet's (8)
    se_gate: Literal[SE_GATES] = "sigmoid"
    se_act: ACT | None = None  # the SE's activation; None: the stage's
    shortcut: Literal[SHORTCUTS] = "projection"  # a residual cell whose shape changes
    post_act: bool = False  # the activation after the residual add (ResNet); the mixer then ends linear
    # mixer option -> one value per cell (MobileNetV3's expansions 6, 2.5, 2.3, 2.3 in one stage); the mixer's own
    # option holds the first cell's value. Cells added by a depth multiplier take the last value.
    per_block: dict[str, tuple[Scalar, ...]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _canonical_skip(cls, data: Any):
        # A block with its own residual adds (transformer) takes no outer residual: none / residual / preact all
        # mean "the block as defined", so they share one canonical value (and one hash).
        if isinstance(data, dict) and isinstance(data.get("mixer"), dict):
            info = MIXERS.get(data["mixer"].get("type"))
            if info is not None and info.own_residual and data.get("skip", "residual") in ("none", "preact"):
                data = {**data, "skip": "residual"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _per_block(cls, data: Any):
        # Per-cell values: checked as the mixer's options, a list as long as the stage; a list of one repeated value
        # is that option (one canonical form, one hash), and the mixer's option is always the first cell's value.
        if not (isinstance(data, dict) and data.get("per_block") and isinstance(data.get("mixer"), dict)):
            return data
        raw, mixer = data["per_block"], data["mixer"]
        name, depth = mixer.get("type"), data.get("depth")
        if not isinstance(raw, dict):
            raise ValueError("@per_block: per_block maps a mixer option to a list of values, one per cell")
        if name not in MIXERS or not isinstance(depth, int) or isinstance(depth, bool):
            return data  # the mixer's or the depth's own error comes first
        if data.get("skip") == "dense":
            raise ValueError("@per_block: a dense stage has no per-cell values")
        options = dict(mixer.get("options") or {})
        kept = {}
        for key, values in raw.items():
            if key not in MIXERS[name].options:
                raise ValueError(f"@per_block.{key}: block {name!r} takes no option {key!r} "
                                 f"(accepted: {', '.join(sorted(MIXERS[name].options)) or 'none'})")
            if not isinstance(values, (list, tuple)) or len(values) != depth:
                raise ValueError(f"@per_block.{key}: expected a list of {depth} values (one per cell of the stage), "
                                 f"found {values!r}")
            values = tuple(option_value(name, key, v, f"per_block.{key}.{i}") for i, v in enumerate(values))
            options[key] = values[0]
            if any(v != values[0] for v in values):
                kept[key] = values
        return {**data, "mixer": {**mixer, "options": options}, "per_block": dict(sorted(kept.items()))}

    def cell(self, i: int) -> "StageSpec":
        """The stage as cell ``i`` sees it: its per-cell values in the mixer's options (the last value repeats)."""
        if not self.per_block:
            return self
        options = {**self.mixer.options, **{k: v[min(i, len(v) - 1)] for k, v in self.per_block.items()}}
        return self.model_copy(update={"mixer": MixerSpec(type=self.mixer.type, options=options), "per_block": {}})

    @model_validator(mode="after")
    def _conditional(self):
        if (self.skip == "dense") != (self.growth_rate is not None):
            raise ValueError("@growth_rate: growth_rate is set exactly when skip is dense")
        if (self.norm == "group") != (self.norm_groups is not None):
            raise ValueError("@norm_groups: norm_groups is set exactly when norm is group")
        if self.downsample == "stride" and not MIXERS[self.mixer.type].strides:
            raise ValueError(f"@downsample: downsample stride needs a mixer that can stride ({capable('strides')}), "
                             f"not {self.mixer.type}")
        if self.downsample == "stride" and self.skip == "dense":
            raise ValueError("@downsample: downsample stride is not for a dense stage")
        if self.se_place == "inner" and self.se_reduction and not MIXERS[self.mixer.type].inner_se:
            raise ValueError("@se_place: se_place inner needs a block with expanded features "
                             f"({capable('inner_se')}), not {self.mixer.type}")
        if self.post_act and self.skip in ("preact", "dense"):
            raise ValueError(f"@post_act: post_act (the activation after the residual add) is not for skip {self.skip}")
        return self


class HeadSpec(_Frozen):
    """pool: global average pool of the last stage; fpn: FPN-style top-down fusion of the last ``fpn_stages``."""

    type: Literal[HEADS] = "pool"
    fuse: Literal[FUSIONS] | None = None
    fpn_stages: int | None = Field(default=None, ge=2)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    norm_act: bool = False  # norm + activation (the last stage's) before pooling, as NAS-Bench-201's "lastact"
    conv_width: int = Field(default=0, ge=0, le=MAX_VALUE["width"])  # 1x1 conv-norm-act before pooling; 0: none
    pool: Literal[HEAD_POOLS] = "mean"  # the global average, or the class token (ViT)
    final_norm: bool = False  # the last stage's norm on the pooled features, before the classifier (ConvNeXt, ViT)
    hidden: int = Field(default=0, ge=0, le=MAX_VALUE["width"])  # linear + act after pooling (MobileNetV3); 0: none

    @field_validator("dropout")
    @classmethod
    def _round(cls, v: float) -> float:
        return canonical_float(v)

    @model_validator(mode="after")
    def _conditional(self):
        if self.type == "fpn" and (self.fuse is None or self.fpn_stages is None):
            raise ValueError("@fuse: head type fpn needs fuse and fpn_stages")
        if self.type == "pool" and (self.fuse is not None or self.fpn_stages is not None):
            raise ValueError("@fuse: fuse and fpn_stages are only for head type fpn")
        return self


# fields added after specs were first stored: at their defaults they are left out of the canonical form, so every
# hash stays as it was; (part, key, default), part "stages" meaning every stage
LATER_FIELDS = (
    ("stem", "act", None), ("stem", "stride", 1), ("stem", "pool", "none"), ("stem", "norm", None),
    ("stem", "bias", False), ("stem", "class_token", False), ("stem", "position", "none"),
    ("head", "norm_act", False), ("head", "conv_width", 0), ("head", "hidden", 0), ("head", "pool", "mean"),
    ("head", "final_norm", False),
    ("stages", "shortcut", "projection"), ("stages", "post_act", False), ("stages", "se_place", "output"),
    ("stages", "se_base", "gated"), ("stages", "se_divisor", 1), ("stages", "se_gate", "sigmoid"),
    ("stages", "se_act", None), ("stages", "per_block", {}),
)


class ArchSpec(_Frozen):
    """A whole network. ``space`` names the space it came from and is not part of its identity (hash)."""

    schema_version: int = SCHEMA_VERSION
    input: Literal[INPUTS]
    stem: StemSpec
    stages: tuple[StageSpec, ...] = Field(min_length=1)
    head: HeadSpec = HeadSpec()
    drop_path: float = Field(default=0.0, ge=0.0, lt=1.0)
    width_multiplier: float = Field(default=1.0, gt=0.0, le=MAX_VALUE["width_multiplier"])
    depth_multiplier: float = Field(default=1.0, gt=0.0, le=MAX_VALUE["depth_multiplier"])
    resolution_multiplier: float = Field(default=1.0, gt=0.0, le=MAX_VALUE["resolution_multiplier"])
    space: str | None = None

    @field_validator("schema_version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema version {v} (this version of nas reads {SCHEMA_VERSION})")
        return v

    @field_validator("drop_path", "width_multiplier", "depth_multiplier", "resolution_multiplier")
    @classmethod
    def _round(cls, v: float) -> float:
        return canonical_float(v)

    @model_validator(mode="after")
    def _class_token(self):
        if self.head.pool == "token" and not self.stem.class_token:
            raise ValueError("@head.pool: pool token needs a class token (stem class_token: true)")
        if self.stem.class_token:
            for i, stage in enumerate(self.stages):
                if stage.downsample != "none":
                    raise ValueError(f"@stages.{i}.downsample: a network with a class token keeps its tokens (no "
                                     "downsampling)")
            if self.head.type != "pool":
                raise ValueError("@head.type: a network with a class token has a pool head")
        return self

    @model_validator(mode="after")
    def _head_fits(self):
        if self.head.fpn_stages is not None and self.head.fpn_stages > len(self.stages):
            raise ValueError(f"@head.fpn_stages: fpn_stages={self.head.fpn_stages} but the network has "
                             f"{len(self.stages)} stage(s)")
        return self

    # -- identity -------------------------------------------------------------------------------------------------
    def canonical(self) -> dict[str, Any]:
        """The canonical plain-data form (what the hash is taken of): every field, ``space`` left out."""
        data = self.model_dump(mode="json")
        data.pop("space", None)
        for part, key, default in LATER_FIELDS:  # at their defaults, fields added later leave the hash as it was
            for holder in (data[part] if part == "stages" else [data[part]]):
                if holder.get(key, default) == default:
                    holder.pop(key, None)
        return data

    def hash(self, length: int = 12) -> str:
        """Stable short hash of the canonical form: the same architecture gives the same hash in any process."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:length]

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, file: str | None = None) -> "ArchSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"not valid JSON: {e.msg}", file=file, line=e.lineno) from None
        return cls.from_data(data, file=file)

    @classmethod
    def from_data(cls, data: Any, *, file: str | None = None, lines: dict | None = None) -> "ArchSpec":
        """Validate plain data into a spec; errors become one-line :class:`SpecError` naming the key."""
        if not isinstance(data, dict):
            raise SpecError(f"an architecture spec is a mapping, found {type(data).__name__}", file=file)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise spec_error_from(e, file=file, lines=lines) from None

    @classmethod
    def load(cls, path: str | Path) -> "ArchSpec":
        """Read a spec from a .json or .yaml file."""
        path = Path(path)
        text = read_text(path, error=SpecError, what="spec")
        if path.suffix in (".yaml", ".yml"):
            data, lines = load_yaml(text, file=str(path), error=SpecError)
            return cls.from_data(data, file=str(path), lines=lines)
        return cls.from_json(text, file=str(path))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    # -- reading ----------------------------------------------------------------------------------------------------
    def summary(self) -> str:
        """One readable line, e.g. ``stem=conv3x16 | s1 2x mbconv(k5,e4) res se4 | head=pool | w1.25 d1.0 r1.0``."""
        if self.stem.type == "conv":
            stem = f"conv{self.stem.kernel_size}x{self.stem.width}"
        else:
            stem = f"patch{self.stem.patch_size}x{self.stem.width}"
        if self.stem.type == "conv" and self.stem.stride != 1:
            stem += f"/{self.stem.stride}"
        if self.stem.act is not None:
            stem += f" {self.stem.act}"
        if self.stem.norm is not None:
            stem += f" {self.stem.norm}norm" if self.stem.norm != "none" else " nonorm"
        if self.stem.bias:
            stem += " bias"
        if self.stem.class_token:
            stem += " cls"
        if self.stem.position != "none":
            stem += f" pos-{self.stem.position}"
        if self.stem.pool != "none":
            stem += f" {self.stem.pool}pool"
        parts = [f"stem={stem}"]
        for i, stage in enumerate(self.stages, 1):
            mixer = _mixer_summary(stage.mixer, stage.per_block)
            parts.append(f"s{i} {stage.depth}x{stage.width} {mixer} " + _cell_summary(stage))
        head = "pool" if self.head.type == "pool" else f"fpn({self.head.fuse},{self.head.fpn_stages})"
        if self.head.norm_act:
            head = "norm-act " + head
        if self.head.conv_width:
            head = f"conv1x{self.head.conv_width} " + head
        if self.head.pool == "token":
            head = head.replace("pool", "cls-token")
        if self.head.final_norm:
            head += " norm"
        if self.head.hidden:
            head += f" fc{self.head.hidden}"
        if self.head.dropout:
            head += f" do{self.head.dropout:g}"
        parts.append(f"head={head}")
        mult = f"w{self.width_multiplier:.3g} d{self.depth_multiplier:.3g} r{self.resolution_multiplier:.3g}"
        if self.drop_path:
            mult += f" dp{self.drop_path:g}"
        parts.append(mult)
        return " | ".join(parts)


_OPTION_ABBREVIATIONS = {
    "kernel_size": "k", "expansion_ratio": "e", "reduction_ratio": "r", "num_convs": "n", "heads": "h",
    "mlp_ratio": "mlp", "state_size": "n", "conv_kernel": "ck",
}
_VALUE_ABBREVIATIONS = {"sinusoidal": "sin", "learned": "pe", "none": "nope", "pre": "pre", "post": "post"}


DAG_OP_ABBREVIATIONS = {"none": "0", "skip": "s", "conv_1x1": "c1", "conv_3x3": "c3", "avg_pool_3x3": "ap",
                        "max_pool_3x3": "mp", "sep_conv_3x3": "sc3", "sep_conv_5x5": "sc5", "dil_conv_3x3": "dc3",
                        "dil_conv_5x5": "dc5"}


def _mixer_summary(mixer: MixerSpec, per_block: dict | None = None) -> str:
    if mixer.type == "dag":  # the incoming edges of each node, e.g. dag(c3|c3,s|c1,s,c3)
        nodes = mixer.options["nodes"]
        return "dag(" + "|".join(",".join(DAG_OP_ABBREVIATIONS[mixer.options[f"e{j}_{i}"]] for i in range(j))
                                 for j in range(1, nodes)) + ")"
    bits = []
    for key in MIXERS[mixer.type].options:  # catalogue order reads better than alphabetical
        value = mixer.options[key]
        if isinstance(value, bool):
            if value:
                bits.append("bi" if key == "bidirectional" else key)
        elif isinstance(value, str):
            bits.append(_VALUE_ABBREVIATIONS.get(value, value))
        else:  # one value per cell: e6/2.5/2.3/2.3
            values = (per_block or {}).get(key, (value,))
            bits.append(f"{_OPTION_ABBREVIATIONS.get(key, key)}" + "/".join(f"{v:g}" for v in values))
    name = MIXERS[mixer.type].abbreviation
    return f"{name}({','.join(bits)})" if bits else name


def _cell_summary(stage: StageSpec) -> str:
    bits = [SKIP_ABBREVIATIONS[stage.skip] + (f"{stage.growth_rate}" if stage.growth_rate else "")]
    groups = str(stage.norm_groups) if stage.norm_groups else ""
    bits.append(stage.norm + groups if stage.norm != "none" else "nonorm")
    bits.append(stage.act)
    if stage.se_reduction:
        se = f"se{stage.se_reduction}"
        if stage.se_place == "inner":
            se += "-in"
        if stage.se_base == "input":
            se += "-of-input"
        if stage.se_divisor > 1:
            se += f"/{stage.se_divisor}"
        if stage.se_gate != "sigmoid":
            se += "-hsig"
        if stage.se_act:
            se += f"-{stage.se_act}"
        bits.append(se)
    if stage.spatial_attention:
        bits.append("sa")
    if stage.post_act:
        bits.append("post-act")
    if stage.shortcut != "projection":
        bits.append(f"sc-{stage.shortcut}")
    if stage.downsample != "none":
        bits.insert(0, f"↓{stage.downsample}")
    return " ".join(bits)


def spec_error_from(error: ValidationError, *, file: str | None, lines: dict | None = None) -> SpecError:
    """Turn pydantic's first error into one line: the key path, what was wrong."""
    first = error.errors()[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = ".".join(str(p) for p in loc) or None
    message = plain_message(first)
    if message.startswith("@"):  # a model-level check naming the field it is about: "@sub.key: message"
        sub, message = message[1:].split(": ", 1)
        loc = loc + tuple(int(k) if k.isdigit() else k for k in sub.split("."))
        key = ".".join(str(p) for p in loc)
    if first["type"] == "extra_forbidden":
        message = "unknown field (not part of the spec schema)"
    elif first["type"] == "missing":
        message = "missing field"
    line = None
    if lines:
        for n in range(len(loc), 0, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
    return SpecError(message, file=file, line=line, key=key)
