"""An example plugin, as a user would write it (docs/extending.md): a block, a dataset, an objective and an
evaluator of their own, registered when a run config names this module under ``plugins:``."""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from nas.blocks.layers import BlockContext, conv_nd, make_norm
from nas.blocks.registry import register
from nas.builder import build
from nas.catalog import MIXERS, MixerInfo
from nas.data.registry import DATASETS
from nas.data.splits import image_dataset
from nas.evaluate import zero_cost
from nas.evaluate.evaluate import TrialResult, proxy_batch
from nas.evaluate.evaluators import EVALUATORS
from nas.evaluate.measure import count_params
from nas.objectives import register_objective

# 1. A block: a 1x1 convolution and a norm (channel mixing only). Its catalogue entry first, then the class.
MIXERS["pointwise"] = MixerInfo("pointwise", "1x1 convolution and norm (channel mixing only)", "PW")


@register("pointwise")
class Pointwise(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, ctx: BlockContext):
        super().__init__()
        self.conv = conv_nd(ctx.dims, in_channels, out_channels, 1)
        self.norm = make_norm(ctx.norm, out_channels, ctx.dims, ctx.norm_groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, *S) -> (N, C_out, *S)."""
        return self.norm(self.conv(x))


# 2. A dataset: four classes of 8x8 grey images, each class a bright quadrant plus noise (seeded, in memory).
@DATASETS.register("quadrants")
def load_quadrants(name, arg, *, data_dir, val_fraction, seed, train_subset):
    rng = np.random.default_rng(7)

    def make(n):
        y = rng.integers(0, 4, n)
        x = rng.normal(60, 25, (n, 8, 8))
        for i, label in enumerate(y):
            r, c = divmod(int(label), 2)
            x[i, r * 4:(r + 1) * 4, c * 4:(c + 1) * 4] += 120
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    (x_train, y_train), (x_test, y_test) = make(400), make(100)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return image_dataset(name, arrays, source="my_nas_plugin", num_classes=4, file=None, val_fraction=val_fraction,
                         seed=seed, train_subset=train_subset)


# 3. An objective and 4. an evaluator that reports it: the naswot zero-cost score, without any training.
register_objective("naswot", "maximize", "NASWOT score", "", "log-determinant of the ReLU codes' kernel")


@EVALUATORS.register("zero_cost_only")
def zero_cost_only(spec, config, *, data, callback=None, precheck=None, **_) -> TrialResult:
    started = time.time()
    input_shape = config.budget.input_shape(data.input_shape)
    torch.manual_seed(config.seed)
    model = build(spec, input_shape, data.num_classes)
    score = zero_cost.score_all(model, proxy_batch(data, config, input_shape), seed=config.seed, names=["naswot"])
    objectives = {"naswot": score["naswot"], "params": count_params(model)}
    status = "ok" if all(math.isfinite(v) for v in objectives.values()) else "error"
    return TrialResult(spec.hash(), spec.summary(), status, objectives=objectives, zero_cost=score,
                       input_shape=tuple(input_shape), num_classes=data.num_classes, wall_s=time.time() - started)


zero_cost_only.reports = ("naswot", "params")  # a run asking it for another objective is refused before any trial
