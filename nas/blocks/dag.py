"""DAG cells (NASNet / DARTS / NAS-Bench-201): a cell that is a small directed acyclic graph.

Node 0 is the cell's input and node ``nodes - 1`` its output. Node j is the sum, over the edges i -> j (i < j), of
the edge's operation applied to node i; every edge has an operation (option ``e{j}_{i}``):

    none          zero (the edge is absent; no parameters)
    skip          identity
    conv_1x1/3x3  act -> k x k conv (no bias) -> norm                       (NAS-Bench-201's ReLU-Conv-BN)
    avg_pool_3x3  3 x 3 average pooling, stride 1 (padding not counted), max_pool_3x3 likewise
    sep_conv_KxK  DARTS: twice (act -> K x K depthwise -> 1x1 pointwise -> norm)
    dil_conv_KxK  DARTS: act -> K x K depthwise, dilation 2 -> 1x1 pointwise -> norm

As in NAS-Bench-201's cell, every edge's operation is built, also on a path that leads nowhere (a node whose every
incoming edge is none is zero), so the parameter count is NB201's. When the cell changes the channel count, node 0
is the input after act -> 1x1 conv -> norm (DARTS's preprocessing). The norm and act are the stage's (``ctx``).
(N, C_in, *S) -> (N, C_out, *S).
"""
from __future__ import annotations

import inspect

import torch
from torch import nn

from nas.blocks.layers import BlockContext, conv_nd, make_act, make_norm
from nas.blocks.registry import register
from nas.catalog import DAG_EDGES, MIXERS, dag_edges


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _act(ctx: BlockContext) -> nn.Module:
    return make_act(ctx.act)


def _norm(ctx: BlockContext, channels: int) -> nn.Module:
    return make_norm(ctx.norm, channels, ctx.dims, ctx.norm_groups)


def _conv(ctx: BlockContext, channels: int, kernel: int, *, groups: int = 1, dilation: int = 1) -> nn.Module:
    if dilation == 1:
        return conv_nd(ctx.dims, channels, channels, kernel, groups=groups)
    conv = {1: nn.Conv1d, 2: nn.Conv2d}[ctx.dims]
    return conv(channels, channels, kernel, padding=dilation * (kernel // 2), dilation=dilation, groups=groups,
                bias=False)


def edge_op(name: str, channels: int, ctx: BlockContext) -> nn.Module:
    """The operation of one edge (see the module docstring): (N, C, *S) -> (N, C, *S)."""
    if name == "none":
        return Zero()
    if name == "skip":
        return nn.Identity()
    if name in ("conv_1x1", "conv_3x3"):
        kernel = 1 if name == "conv_1x1" else 3
        return nn.Sequential(_act(ctx), _conv(ctx, channels, kernel), _norm(ctx, channels))
    if name in ("avg_pool_3x3", "max_pool_3x3"):
        if name == "avg_pool_3x3":
            return {1: nn.AvgPool1d, 2: nn.AvgPool2d}[ctx.dims](3, stride=1, padding=1, count_include_pad=False)
        return {1: nn.MaxPool1d, 2: nn.MaxPool2d}[ctx.dims](3, stride=1, padding=1)
    if name.startswith("sep_conv_"):
        kernel = int(name[-1])
        return nn.Sequential(
            _act(ctx), _conv(ctx, channels, kernel, groups=channels), _conv(ctx, channels, 1), _norm(ctx, channels),
            _act(ctx), _conv(ctx, channels, kernel, groups=channels), _conv(ctx, channels, 1), _norm(ctx, channels))
    if name.startswith("dil_conv_"):
        kernel = int(name[-1])
        return nn.Sequential(_act(ctx), _conv(ctx, channels, kernel, groups=channels, dilation=2),
                             _conv(ctx, channels, 1), _norm(ctx, channels))
    raise ValueError(f"unknown DAG operation {name!r}")


def input_projection(in_channels: int, out_channels: int, ctx: BlockContext) -> nn.Module:
    """Node 0 when the cell changes the channel count: act -> 1x1 conv -> norm (DARTS's preprocessing)."""
    return nn.Sequential(_act(ctx), conv_nd(ctx.dims, in_channels, out_channels, 1), _norm(ctx, out_channels))


class DagCell(nn.Module):
    """A DAG cell of ``nodes`` nodes; the edge options beyond them are not read."""

    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext, *, nodes: int = 4, **edges: str):
        super().__init__()
        self.nodes = nodes
        self.pre: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.pre = input_projection(in_channels, out_channels, ctx)
        self.edges = nn.ModuleDict({e: edge_op(edges[e], out_channels, ctx) for e in dag_edges(nodes)})
        self.incoming = [[(f"e{j}_{i}", i) for i in range(j)] for j in range(1, nodes)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, C_out, *S)."""
        states = [self.pre(x)]
        for incoming in self.incoming:
            states.append(sum(self.edges[e](states[i]) for e, i in incoming))
        return states[-1]


def _signature() -> inspect.Signature:
    """The constructor's signature with every edge option spelled out (the registry checks the keyword-only options
    against the catalogue's)."""
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter(name, positional) for name in ("self", "in_channels", "out_channels", "ctx")]
    params.append(inspect.Parameter("nodes", keyword, default=4))
    params += [inspect.Parameter(edge, keyword, default=MIXERS["dag"].options[edge].default) for edge in DAG_EDGES]
    return inspect.Signature(params)


DagCell.__init__.__signature__ = _signature()
register("dag")(DagCell)
