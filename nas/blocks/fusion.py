"""Heads: pool the last stage, or fuse several stages FPN-style (multi-scale feature fusion) before pooling.

The fusion module returns a feature map at the finest fused resolution, so a dense-prediction head (U-Net-style
decoder, segmentation) can later reuse it instead of pooling.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.layers import BlockContext, ConvNormAct, make_act, make_norm


class FPNFusion(nn.Module):
    """Top-down fusion of k stage outputs (coarsest last) into one map at the finest of them.

    Lateral 1x1 conv-norm to a common width (that of the finest fused stage), then
    ``add``: p_k = l_k, p_j = l_j + upsample(p_{j+1}) (FPN, Lin et al. 2017); ``concat``: every l_j resized to the
    finest resolution and concatenated (width k x common).
    inputs: list of (N, C_j, *S_j) -> (N, C_fused, *S_1)
    """

    def __init__(self, widths: list[int], ctx: BlockContext, fuse: str):
        super().__init__()
        self.fuse = fuse
        self.width = widths[0]
        self.laterals = nn.ModuleList(ConvNormAct(w, self.width, 1, ctx, act=False) for w in widths)
        self.out_channels = self.output_channels(widths, fuse)

    @staticmethod
    def output_channels(widths: list[int], fuse: str) -> int:
        """Channels of the fused map: the finest stage's width, times the number of stages for ``concat``."""
        return widths[0] * (len(widths) if fuse == "concat" else 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        laterals = [lateral(f) for lateral, f in zip(self.laterals, features)]
        finest = laterals[0].shape[2:]
        if self.fuse == "concat":
            return torch.cat([F.interpolate(l, size=finest, mode="nearest") if l.shape[2:] != finest else l
                              for l in laterals], dim=1)
        fused = laterals[-1]
        for lateral in reversed(laterals[:-1]):
            fused = lateral + F.interpolate(fused, size=lateral.shape[2:], mode="nearest")
        return fused


class ClassifierHead(nn.Module):
    """Global average pool -> dropout -> linear: (N, C, *S) -> (N, num_classes).

    Before the pool, in this order and each optional: ``norm_act`` (a context: its norm and activation, NAS-Bench-201's
    "lastact"); a 1x1 conv-norm-act to ``conv_width`` channels (MobileNetV2 / V3, EfficientNet) in the context
    ``ctx``. The pool: the mean over positions, or (``pool="token"``) the first position, a class token (ViT).
    After the pool: ``ctx``'s norm (``final_norm``: ConvNeXt's and ViT's last LayerNorm); a hidden linear layer of
    ``hidden`` units with ``ctx``'s activation and no norm (MobileNetV3's 1280), before the dropout."""

    def __init__(self, channels: int, num_classes: int, dropout: float, norm_act: BlockContext | None = None, *,
                 conv_width: int = 0, hidden: int = 0, pool: str = "mean", final_norm: bool = False,
                 ctx: BlockContext | None = None):
        super().__init__()
        self.pre = (nn.Sequential(make_norm(norm_act.norm, channels, norm_act.dims, norm_act.norm_groups),
                                  make_act(norm_act.act)) if norm_act is not None else nn.Identity())
        self.conv: nn.Module = nn.Identity()
        if conv_width:
            self.conv = ConvNormAct(channels, conv_width, 1, ctx)
            channels = conv_width
        self.pool = pool
        self.final_norm = make_norm(ctx.norm, channels, 1, ctx.norm_groups) if final_norm else nn.Identity()
        self.hidden: nn.Module = nn.Identity()
        if hidden:
            self.hidden = nn.Sequential(nn.Linear(channels, hidden), make_act(ctx.act))
            channels = hidden
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pre(x)).flatten(2)  # (N, C, T)
        pooled = x[:, :, :1] if self.pool == "token" else x.mean(-1, keepdim=True)  # (N, C, 1)
        pooled = self.final_norm(pooled).squeeze(-1)  # (N, C)
        return self.fc(self.dropout(self.hidden(pooled)))
