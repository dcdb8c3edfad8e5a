"""The values a choice ranges over (:class:`Domain`), a choice of a space (:class:`Param`), a space's size, and
the keys each level of a space file accepts."""
from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass
from typing import Any, Iterable

from nas.catalog import (
    ACTIVATIONS,
    DOWNSAMPLES,
    FUSIONS,
    HEAD_POOLS,
    HEADS,
    NORMS,
    SE_BASES,
    SE_GATES,
    SE_PLACES,
    SHORTCUTS,
    SKIPS,
    STEM_POOLS,
    STEM_POSITIONS,
    STEMS,
    Option,
    kernel_option,
)
from nas.errors import SpaceError
from nas.grammar.suggest import RandomSuggest, Suggest
from nas.spec import canonical_float


@dataclass(frozen=True)
class Domain:
    """The values one parameter can take: fixed, categorical, or an int / float range (optionally log or stepped)."""

    kind: str  # "fixed" | "categorical" | "int" | "float"
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False

    def size(self) -> int | None:
        """Number of distinct values; None for a continuous float range."""
        if self.kind in ("fixed", "categorical"):
            return len(self.choices)
        if self.kind == "int":
            return int((self.high - self.low) // (self.step or 1)) + 1
        if self.step:
            return int(round((self.high - self.low) / self.step)) + 1
        return None if self.high > self.low else 1

    def values(self) -> list:
        """All values of a discrete domain."""
        if self.kind in ("fixed", "categorical"):
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        n = self.size()
        if n is None:
            raise ValueError("a continuous range has no finite list of values")
        return [canonical_float(self.low + i * self.step) for i in range(n)] if self.step else [self.low]

    def contains(self, value: Any) -> bool:
        if self.kind in ("fixed", "categorical"):
            return any(same_value(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        eps = 1e-9 * max(1.0, abs(self.high))
        if not (self.low - eps <= value <= self.high + eps):
            return False
        if self.step:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-6
        return True

    def suggest(self, name: str, suggest: Suggest) -> Any:
        if self.kind == "fixed":
            return self.choices[0]
        if self.kind == "categorical":
            return suggest.categorical(name, list(self.choices))
        if self.kind == "int":
            return int(suggest.integer(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log))
        return canonical_float(suggest.real(name, float(self.low), float(self.high), step=self.step, log=self.log))

    def describe(self) -> str:
        if self.kind == "fixed":
            return repr(self.choices[0])
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        text = f"{self.kind} [{self.low:g}, {self.high:g}]"
        if self.step:
            text += f" step {self.step:g}"
        return text + (" log" if self.log else "")


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))
    return a == b


@dataclass(frozen=True)
class Param:
    """One named choice of the grammar, where its value goes in the spec, and when it is active."""

    name: str
    domain: Domain
    target: tuple  # path into the spec's plain data; "*" as a stage index means every stage
    when: tuple[tuple[str, tuple], ...] = ()  # (earlier parameter name, allowed values): all must hold
    line: int | None = None
    scope: str = ""  # "stem", "multipliers", "regularization", "cell" (shared), "s1", ... , "head"

    @property
    def is_choice(self) -> bool:
        return self.domain.kind != "fixed" and self.domain.size() != 1

    def active(self, values: dict[str, Any]) -> bool:
        for name, allowed, names in self._conditions:
            if name not in values:
                return False
            value = values[name]
            if names is not None and type(value) is str:  # strings only: set membership is same_value
                if value not in names:
                    return False
            elif not any(same_value(value, v) for v in allowed):
                return False
        return True

    @functools.cached_property
    def _conditions(self) -> tuple[tuple[str, tuple, frozenset | None], ...]:
        """``when`` with a set of the allowed values where they are all strings (the usual case: a mixer type, a
        family), for :meth:`active`, which the samplers call for every parameter of every candidate."""
        return tuple((name, allowed, frozenset(allowed) if all(type(v) is str for v in allowed) else None)
                     for name, allowed in self.when)


@dataclass(frozen=True)
class SpaceSize:
    """Distinct architectures: ``discrete`` counts every combination of discrete choices; ``continuous`` names the
    float ranges without a step (each adds infinitely many variants)."""

    discrete: int
    continuous: tuple[str, ...] = ()

    @property
    def log10(self) -> float:
        return math.log10(self.discrete) if self.discrete > 0 else float("-inf")

    def __str__(self) -> str:
        text = f"{self.discrete:,}" if self.discrete < 10**9 else f"~10^{self.log10:.1f}"
        if self.continuous:
            text += f" x {len(self.continuous)} continuous parameter(s)"
        return text


def enum_option(values: tuple) -> Option:
    return Option(str, values[0], allowed=values)


def int_option(minimum: int) -> Option:
    return Option(int, minimum, check=lambda v: v >= minimum, expected=f"an integer >= {minimum}")


ODD = kernel_option(3)
FRACTION = Option(float, 0.0, check=lambda v: 0.0 <= v < 1.0, expected="a number in [0, 1)")
POSITIVE = Option(float, 1.0, check=lambda v: v > 0, expected="a number > 0")
OPTIONAL = type("Optional", (), {"__repr__": lambda self: "OPTIONAL"})()  # a key that is no parameter unless given
# key -> (what its values must be, default when the file leaves it out (None: required; OPTIONAL: left out of the
# spec, which then takes its own default), inherent condition)
STEM_KEYS: dict[str, tuple[Option, Any, tuple | None]] = {
    "type": (enum_option(STEMS), None, None),
    "width": (int_option(1), None, None),
    "kernel_size": (ODD, 3, ("type", ("conv",))),
    "patch_size": (int_option(1), 2, ("type", ("patchify",))),
    "act": (enum_option(ACTIVATIONS + ("none",)), OPTIONAL, ("type", ("conv",))),  # default: the first stage's
    "stride": (Option(int, 1, allowed=(1, 2, 4)), OPTIONAL, ("type", ("conv",))),  # ResNet / MobileNet: 2
    "pool": (enum_option(STEM_POOLS), OPTIONAL, ("type", ("conv",))),  # ResNet: max (3x3, stride 2)
    "norm": (enum_option(NORMS), OPTIONAL, None),  # default: the first stage's
    "bias": (Option(bool, False), OPTIONAL, None),
    "class_token": (Option(bool, False), OPTIONAL, ("type", ("patchify",))),  # ViT
    "position": (enum_option(STEM_POSITIONS), OPTIONAL, ("type", ("patchify",))),  # ViT: learned
}


STAGE_KEYS = {
    "depth": (int_option(1), None, None),
    "width": (int_option(1), None, None),
    "downsample": (enum_option(DOWNSAMPLES), "none", None),
}
CELL_KEYS = {  # the mixer comes first so that the other cell keys may be conditional on it
    "skip": (enum_option(SKIPS), "residual", None),
    "growth_rate": (int_option(1), 16, ("skip", ("dense",))),
    "norm": (enum_option(NORMS), "batch", None),
    "norm_groups": (int_option(1), 8, ("norm", ("group",))),
    "act": (enum_option(ACTIVATIONS), "relu", None),
    "se_reduction": (int_option(0), 0, None),
    "spatial_attention": (Option(bool, False), False, None),
    "se_place": (enum_option(SE_PLACES), OPTIONAL, None),  # output (default) or inner (MobileNetV3)
    "se_base": (enum_option(SE_BASES), OPTIONAL, None),  # gated (default) or input (EfficientNet)
    "se_divisor": (Option(int, 1, check=lambda v: 1 <= v <= 64, expected="an integer in [1, 64]"), OPTIONAL, None),
    "se_gate": (enum_option(SE_GATES), OPTIONAL, None),  # sigmoid (default) or hardsigmoid (MobileNetV3)
    "se_act": (enum_option(ACTIVATIONS), OPTIONAL, None),  # default: the cell's act
    "shortcut": (enum_option(SHORTCUTS), OPTIONAL, None),  # when the shape changes; default projection
    "post_act": (Option(bool, False), OPTIONAL, None),  # the activation after the residual add (ResNet)
}
HEAD_KEYS = {
    "type": (enum_option(HEADS), "pool", None),
    "fuse": (enum_option(FUSIONS), "add", ("type", ("fpn",))),
    "fpn_stages": (int_option(2), 2, ("type", ("fpn",))),
    "dropout": (FRACTION, 0.0, None),
    "norm_act": (Option(bool, False), OPTIONAL, None),  # norm + act before the pool (NAS-Bench-201)
    "conv_width": (int_option(0), OPTIONAL, None),  # a 1x1 conv-norm-act before the pool (MobileNet, EfficientNet)
    "hidden": (int_option(0), OPTIONAL, None),  # a linear layer + act after the pool (MobileNetV3)
    "pool": (enum_option(HEAD_POOLS), OPTIONAL, None),  # mean (default) or token (ViT's class token)
    "final_norm": (Option(bool, False), OPTIONAL, None),  # a norm of the pooled features (ConvNeXt, ViT)
}
TOP_KEYS = ("name", "description", "input", "stem", "stages", "cell", "head", "regularization", "multipliers",
            "constraints", "families")
BODY_KEYS = ("stem", "cell", "stages", "head")  # what a family may write (the rest is the space's)
FAMILY = "family"  # the name of a space's first choice when it has families
CONSTRAINT_KEYS = {"max_params": int_option(1), "max_flops": int_option(1)}
COST_OF = {"max_params": "params", "max_flops": "flops"}  # constraint key -> the cost it limits
REFERENCE_INPUT_KEYS = ("shape", "num_classes")
DEFAULT_REFERENCE = {"image": ((3, 32, 32), 10), "sequence": ((64, 8), 10)}


def set_path(data: dict, target: tuple, value: Any, num_stages: int) -> None:
    if "*" in target:
        i = target.index("*")
        for k in range(num_stages):
            set_path(data, target[:i] + (k,) + target[i + 1:], value, num_stages)
        return
    node = data
    for key in target[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
    node[target[-1]] = value


def get_path(data: Any, target: tuple) -> Any:
    node = data
    for key in target:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, (list, tuple)) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return None
    return node


def key_text(target: tuple) -> str:
    return ".".join(str(t) for t in target)


def other_value(domain: Domain, current: Any, rng: random.Random) -> Any:
    if domain.size() is not None:
        options = [v for v in domain.values() if not same_value(v, current)]
        return rng.choice(options)
    for _ in range(100):
        value = RandomSuggest(rng).real("", domain.low, domain.high, log=domain.log)
        if not same_value(canonical_float(value), current):
            return canonical_float(value)
    raise SpaceError("could not draw a different value from a float range")


def active_only(params: list[Param], values: dict[str, Any]) -> dict[str, Any]:
    """Drop values whose parameter is no longer active after a change (walking in sampling order)."""
    kept: dict[str, Any] = {}
    for p in params:
        if p.active(kept) and p.name in values:
            kept[p.name] = values[p.name]
    return kept


def count_assignments(params: list[Param], context: dict[str, Any], referenced: set[str]) -> Iterable[tuple[dict, int]]:
    """Enumerate (values of referenced params, number of combinations of the others) for one scope."""

    def walk(i: int, values: dict[str, Any], weight: int):
        if i == len(params):
            yield values, weight
            return
        p = params[i]
        if not p.active(values):
            yield from walk(i + 1, values, weight)
        elif p.name in referenced:
            for v in p.domain.values():
                yield from walk(i + 1, {**values, p.name: v}, weight)
        else:
            yield from walk(i + 1, values, weight * (p.domain.size() or 1))

    for values, weight in walk(0, dict(context), 1):
        yield values, weight
