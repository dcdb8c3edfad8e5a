"""The catalogue of building blocks, as plain data (no torch).

This is the one source of truth for which mixers, skips, norms, activations, stems, downsamplers and heads exist,
and which options each mixer takes. The grammar validates search spaces against it without importing torch; the
torch registry (``nas.blocks.registry``) checks at import time that every registered block class takes exactly the
options listed here, so the two cannot drift apart.

Every option has a type, a default and a predicate on its values, so a spec or a space naming a bad value gets a
message that says what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Option:
    """One keyword option of a mixer: its type, default and what values are allowed (as text for messages)."""

    type: type
    default: Any
    allowed: tuple | None = None  # a closed set of values, or None for "any value passing `check`"
    check: Callable[[Any], bool] | None = None
    expected: str = ""  # how to say what is allowed, for messages

    def accepts(self, value: Any) -> bool:
        if self.type is float:
            ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif self.type is int:
            ok_type = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok_type = isinstance(value, self.type)
        if not ok_type:
            return False
        if self.allowed is not None and value not in self.allowed:
            return False
        return self.check(value) if self.check is not None else True

    def describe(self) -> str:
        if self.expected:
            return self.expected
        if self.allowed is not None:
            return "one of " + ", ".join(map(str, self.allowed))
        return self.type.__name__


def _positive_int(what: str = "an integer >= 1") -> Option:
    return Option(int, 1, check=lambda v: v >= 1, expected=what)


def kernel_option(default: int) -> Option:
    """A convolution's kernel size: an odd integer >= 1 (so that 'same' padding is symmetric). The one definition that
    mixers' options, a space's stem and a spec's stem are checked against."""
    return Option(int, default, check=lambda v: v >= 1 and v % 2 == 1, expected="an odd integer >= 1")


def _ratio(default: float, what: str) -> Option:
    return Option(float, default, check=lambda v: v > 0, expected=what)


POS_ENCODINGS = ("learned", "sinusoidal", "none")


@dataclass(frozen=True)
class MixerInfo:
    """A mixer (the transformation F of a cell) and the options its constructor takes."""

    name: str
    summary: str
    abbreviation: str  # used in one-line spec summaries
    options: dict[str, Option] = field(default_factory=dict)
    token_mixer: bool = False  # mixes across positions with attention / scan / recurrence (not a convolution)
    own_residual: bool = False  # the block has its own residual adds (transformer): no outer residual around it
    strides: bool = False  # can take a stage's stride on its spatial conv (downsample: stride), as ResNet / MobileNet
    inner_se: bool = False  # can squeeze-excite its expanded features inside (se_place: inner), as MobileNetV3

    def defaults(self) -> dict[str, Any]:
        return {k: o.default for k, o in self.options.items()}


# The operations of a DAG cell's edges (NAS-Bench-201 / DARTS): none (zero), skip (identity), ReLU-conv-norm (1x1,
# 3x3), 3x3 average / max pooling (stride 1), DARTS's separable (two ReLU-depthwise-pointwise-norm) and dilated
# (ReLU-depthwise dilation 2-pointwise-norm) convolutions.
DAG_OPS = ("none", "skip", "conv_1x1", "conv_3x3", "avg_pool_3x3", "max_pool_3x3", "sep_conv_3x3", "sep_conv_5x5",
           "dil_conv_3x3", "dil_conv_5x5")
DAG_MAX_NODES = 5  # node 0 is the cell's input, node N-1 its output; an edge i -> j (i < j) is option e{j}_{i}; a
# spec sets the edges beyond its ``nodes`` to none (they do not exist), whatever a space sampled for them


def dag_edges(nodes: int) -> tuple[str, ...]:
    """The edge options a DAG cell of ``nodes`` nodes uses (a spec sets the others to ``none``)."""
    return tuple(f"e{j}_{i}" for j in range(1, nodes) for i in range(j))


DAG_EDGES = dag_edges(DAG_MAX_NODES)
DAG_WEIGHTED_OPS = tuple(op for op in DAG_OPS if "conv" in op)  # the operations with weights


def dag_live_paths(options: dict) -> list[tuple[str, ...]]:
    """Every path from a DAG cell's input (node 0) to its output (node ``nodes - 1``) along edges that are not
    ``none``, as its edges in order (``options``: the dag mixer's, ``nodes`` and ``e{j}_{i}``; an edge's operation is
    ``options[edge]``). An empty list: the output is cut off from the input (NAS-Bench-201's cells whose output is
    zero)."""
    nodes = int(options.get("nodes", 4))
    out: list[tuple[str, ...]] = []

    def walk(node: int, edges: tuple[str, ...]) -> None:
        if node == nodes - 1:
            out.append(edges)
            return
        for j in range(node + 1, nodes):
            edge = f"e{j}_{node}"
            if options.get(edge, "none") != "none":
                walk(j, edges + (edge,))

    walk(0, ())
    return out


MIXERS: dict[str, MixerInfo] = {
    m.name: m
    for m in [
        MixerInfo(
            "conv",
            "standard convolution: num_convs x (k x k conv, norm, act), ResNet basic block when num_convs=2",
            "conv",
            {"kernel_size": kernel_option(3), "num_convs": Option(int, 2, allowed=(1, 2, 3))},
            strides=True,
        ),
        MixerInfo(
            "dwsep",
            "depthwise separable convolution: k x k depthwise conv, norm, act, 1x1 pointwise conv, norm, act",
            "dwsep",
            {"kernel_size": kernel_option(3)},
            strides=True,
        ),
        MixerInfo(
            "bottleneck",
            "bottleneck: 1x1 reduce to out/reduction_ratio, k x k conv, 1x1 expand (large -> small -> large)",
            "bneck",
            {"kernel_size": kernel_option(3), "reduction_ratio": _ratio(4.0, "a number > 0")},
            strides=True,
        ),
        MixerInfo(
            "mbconv",
            "inverted bottleneck (MBConv): 1x1 expand by expansion_ratio, k x k depthwise, 1x1 linear projection",
            "mbconv",
            {"kernel_size": kernel_option(3), "expansion_ratio": _ratio(4.0, "a number > 0")},
            strides=True,
            inner_se=True,
        ),
        MixerInfo(
            "convnext",
            "ConvNeXt block: k x k depthwise (7 by default), LayerNorm, 1x1 expand x4, one activation, 1x1 project",
            "convnext",
            {"kernel_size": kernel_option(7), "expansion_ratio": _ratio(4.0, "a number > 0")},
        ),
        MixerInfo(
            "attention",
            "multi-head self-attention over spatial positions or sequence steps, with position encoding",
            "attn",
            {
                "heads": _positive_int(),
                "pos_encoding": Option(str, "sinusoidal", allowed=POS_ENCODINGS),
            },
            token_mixer=True,
        ),
        MixerInfo(
            "transformer",
            "transformer block: self-attention + feed-forward (mlp_ratio x), each with its own residual, "
            "pre-norm or post-norm",
            "tfm",
            {
                "heads": _positive_int(),
                "mlp_ratio": _ratio(4.0, "a number > 0"),
                "norm_position": Option(str, "pre", allowed=("pre", "post")),
                "pos_encoding": Option(str, "sinusoidal", allowed=POS_ENCODINGS),
            },
            token_mixer=True,
            own_residual=True,
        ),
        MixerInfo(
            "ssm",
            "selective state-space block in the style of Mamba: input-dependent delta, B, C; causal depthwise conv",
            "ssm",
            {
                "state_size": Option(int, 16, check=lambda v: v >= 1, expected="an integer >= 1"),
                "expansion_ratio": _ratio(2.0, "a number > 0"),
                "conv_kernel": Option(int, 4, check=lambda v: v >= 1, expected="an integer >= 1"),
            },
            token_mixer=True,
        ),
        MixerInfo("lstm", "LSTM over the steps (or the raster order of pixels)", "lstm",
                  {"bidirectional": Option(bool, False)}, token_mixer=True),
        MixerInfo("gru", "GRU over the steps (or the raster order of pixels)", "gru",
                  {"bidirectional": Option(bool, False)}, token_mixer=True),
        MixerInfo(
            "dag",
            "a cell that is a small DAG (NASNet / DARTS / NAS-Bench-201): node j sums op(node i) over the edges i -> j "
            "(i < j), each edge an operation (" + ", ".join(DAG_OPS) + "); the last node is the output",
            "dag",
            {"nodes": Option(int, 4, check=lambda v: 2 <= v <= DAG_MAX_NODES,
                             expected=f"an integer in [2, {DAG_MAX_NODES}]"),
             **{edge: Option(str, "conv_3x3" if edge in dag_edges(4) else "none", allowed=DAG_OPS)
                for edge in DAG_EDGES}},
        ),
        MixerInfo(
            "glu",
            "gated MLP / GLU over channels: project(sigmoid(gate(x)) * value(x)), hidden = expansion_ratio x",
            "glu",
            {"expansion_ratio": _ratio(2.0, "a number > 0")},
        ),
    ]
}

SKIPS = ("none", "residual", "preact", "dense")
NORMS = ("batch", "layer", "group", "instance", "none")
ACTIVATIONS = ("relu", "gelu", "silu", "hardswish", "relu6")
STEMS = ("conv", "patchify")
STEM_POOLS = ("none", "max")  # after a conv stem: nothing, or ResNet's 3x3 max pooling with stride 2
# between stages: nothing, a strided conv, max pooling, patch merging, NAS-Bench-201's residual block, or the stride
# of the stage's first cell (ResNet / MobileNet: its spatial conv and its shortcut are strided), or the stage's norm
# then a 2x2 stride-2 conv with bias (ConvNeXt)
DOWNSAMPLES = ("none", "conv", "pool", "patch_merge", "resblock", "stride", "norm_patch")
# what a cell adds when its input and output shapes differ (channels or stride): a 1x1 (strided) conv + norm
# (ResNet's option B), a subsampled identity zero-padded with channels (option A), or no add (MobileNetV2)
SHORTCUTS = ("projection", "zeropad", "none")
# squeeze-excitation: where it acts (on the cell's output, as SE-ResNet; or inside the block on its expanded
# features, as MobileNetV3 / EfficientNet), what its hidden width is a fraction of (the channels it gates, or the
# block's input: EfficientNet), and its gate
SE_PLACES = ("output", "inner")
STEM_POSITIONS = ("none", "learned")  # a patchify stem's position table, added once to every token (ViT)
HEAD_POOLS = ("mean", "token")  # the global average, or the class token (ViT; needs a stem class token)
SE_BASES = ("gated", "input")
SE_GATES = ("sigmoid", "hardsigmoid")
# What runs a network while its latency is timed: PyTorch eager, or its ONNX graph in onnxruntime (CPU)
LATENCY_RUNTIMES = ("torch", "onnxruntime")
RUNTIME_NAMES = {"torch": "PyTorch eager", "onnxruntime": "ONNX Runtime (CPU)"}
# The zero-cost proxies every trial records unless the run's config says otherwise (zero_cost: true)
ZERO_COST_DEFAULT = ("synflow", "naswot", "grad_norm", "snip")


def latency_where(record: dict) -> str:
    """Where a latency record (device, batch_size, threads, runtime) was timed: ``cpu, batch 1, 1 thread(s), PyTorch
    eager``."""
    runtime = record.get("runtime", "torch")
    return (f"{record.get('device')}, batch {record.get('batch_size')}, {record.get('threads')} thread(s), "
            f"{RUNTIME_NAMES.get(runtime, runtime)}")


HEADS = ("pool", "fpn")
FUSIONS = ("add", "concat")
INPUTS = ("image", "sequence")

SKIP_ABBREVIATIONS = {"none": "plain", "residual": "res", "preact": "preact", "dense": "dense"}


def capable(flag: str) -> str:
    """The mixers whose catalogue entry has ``flag`` set (``strides``, ``inner_se``), as a list for messages."""
    return ", ".join(name for name, info in MIXERS.items() if getattr(info, flag))


def mixer_info(name: str) -> MixerInfo:
    """The catalogue entry of a mixer; an unknown name is a KeyError whose message lists the known ones."""
    try:
        return MIXERS[name]
    except KeyError:
        raise KeyError(f"unknown block {name!r} (known: {', '.join(sorted(MIXERS))})") from None


# Upper bounds of the structural keys, by the spec field a value goes to (stem, stage, cell and mixer option alike):
# a value (or range bound) above its bound is an error naming file, line and key (a space: nas.grammar; a spec:
# nas.spec), instead of an architecture that exhausts memory when built. Each is far above the shipped spaces
# (depth <= 4, width <= 128, kernel 7, heads 4, ratios <= 6) and above published architectures: ResNet-1001 stages
# (111 blocks), WRN-50-2's 4096 channels, RepLKNet / SLaK kernels (31 / 51), ViT patches (32), GPT-3's 96 heads,
# Mamba / S4 state sizes (16 / 64).
MAX_VALUE: dict[str, int | float] = {
    "depth": 128, "width": 8192, "growth_rate": 1024, "norm_groups": 1024, "se_reduction": 1024,
    "kernel_size": 63, "patch_size": 64, "conv_kernel": 64, "heads": 128, "state_size": 1024,
    "expansion_ratio": 32.0, "mlp_ratio": 32.0, "reduction_ratio": 32.0,
    "width_multiplier": 8.0, "depth_multiplier": 8.0, "resolution_multiplier": 8.0,
}


def bounded(option: Option, field: Any) -> Option:
    """``option`` with the upper bound of ``field`` (see MAX_VALUE) added, if it has one and takes numbers: how a
    space (nas.grammar) and a spec (nas.spec) check the same key."""
    limit = MAX_VALUE.get(field) if isinstance(field, str) else None
    if limit is None or option.type not in (int, float) or option.allowed is not None:
        return option
    check = option.check
    return Option(option.type, option.default, check=lambda v: (check is None or check(v)) and v <= limit,
                  expected=f"{option.describe()}, at most {limit:g}")

# Reference inputs (a space's constraints.reference_input, an export's input_shape / num_classes): upper bounds.
MAX_REFERENCE_DIM = {"image": 4096, "sequence": 65536}  # each entry of the shape at most
MAX_CLASSES = 1_000_000
