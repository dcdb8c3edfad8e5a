"""The training budget: how much training a candidate gets (plain data, no torch).

One type for every place a budget is read: a run config's ``budget:`` mapping, proxy training, ``nas train`` and the
trainer benchmark. Constructing an invalid budget raises :class:`~nas.errors.BudgetError` naming the field.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from nas.errors import BudgetError

__all__ = ["Budget"]


@dataclass(frozen=True)
class Budget:
    """How much training a candidate gets. Constructing an invalid budget raises :class:`BudgetError`.

    ``epochs`` may be fractional (0.5 = half an epoch of steps). ``data_fraction`` is the share of the training split
    used (a fixed class-balanced subset). ``resolution`` scales image height and width (batches are resized on the
    device; build the model for :meth:`input_shape`); sequence datasets ignore it. ``depth`` scales every stage's
    depth for the proxy training only (the network trained is the spec with its depth multiplier times this, at
    least one block per stage; its costs are the whole network's): a reduced-depth proxy, as DARTS searches with 8
    cells and trains the pick with 20. ``width`` does the same for the width multiplier (every stage's and the stem's
    channels times this, rounded to a multiple of 8): a reduced-channel proxy, as EcoNAS (Zhou et al. 2020) trains
    with a quarter of the channels.
    """

    epochs: float = 1.0
    data_fraction: float = 1.0
    resolution: float = 1.0
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.1
    depth: float = 1.0
    width: float = 1.0

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`BudgetError` naming the first field that is out of range."""

        def bad(name, why):
            raise BudgetError(f"{name}={getattr(self, name)!r} {why}", key=name)

        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                bad(f.name, "must be a number")
            if not math.isfinite(v):
                bad(f.name, "must be finite")
        if self.epochs <= 0:
            bad("epochs", "must be greater than 0")
        if not (0 < self.data_fraction <= 1):
            bad("data_fraction", "must be greater than 0 and less than or equal to 1")
        if not (0 < self.resolution <= 8):
            bad("resolution", "must be greater than 0 and less than or equal to 8")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            bad("batch_size", "must be an integer >= 1")
        if self.lr <= 0:
            bad("lr", "must be greater than 0")
        if self.weight_decay < 0:
            bad("weight_decay", "must be greater than or equal to 0")
        if not (0 <= self.label_smoothing < 1):
            bad("label_smoothing", "must be greater than or equal to 0 and less than 1")
        if not (0 <= self.warmup_fraction <= 1):
            bad("warmup_fraction", "must be greater than or equal to 0 and less than or equal to 1")
        if not (0 < self.depth <= 1):
            bad("depth", "must be greater than 0 and less than or equal to 1")
        if not (0 < self.width <= 1):
            bad("width", "must be greater than 0 and less than or equal to 1")

    def examples_per_epoch(self, train_size: int) -> int:
        """Training examples one epoch uses: the first ``ceil(data_fraction * train_size)`` (at least 1)."""
        return min(train_size, max(1, math.ceil(self.data_fraction * train_size)))

    def input_shape(self, base_shape) -> tuple:
        """The input shape the model must be built for: images ``(C, H, W)`` get ``round(H * resolution)`` and
        ``round(W * resolution)`` (at least 1); sequences ``(L, C)`` are unchanged."""
        base_shape = tuple(int(s) for s in base_shape)
        if len(base_shape) != 3 or self.resolution == 1.0:
            return base_shape
        c, h, w = base_shape
        return (c, scaled_size(h, self.resolution), scaled_size(w, self.resolution))

    def to_dict(self) -> dict:
        return asdict(self)


def scaled_size(n: int, r: float) -> int:
    """``n`` scaled by ``r``, rounded, at least 1 (an image side at a resolution multiplier)."""
    return max(1, int(round(n * r)))
