"""Block registry: mixer name -> nn.Module class, all with one constructor signature.

Every block is constructed as ``cls(in_channels, out_channels, ctx, **options)`` where ``ctx`` is a
:class:`~nas.blocks.layers.BlockContext` and ``options`` are exactly the options the catalogue
(:mod:`nas.catalog`) lists for that name; ``forward`` maps (N, C_in, *S) -> (N, C_out, *S) (channels-first,
spatial shape unchanged). Registering a class whose keyword-only options differ from the catalogue fails at import.
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from nas.blocks.layers import BlockContext
from nas.catalog import MIXERS, mixer_info
from nas.errors import BuildError

_REGISTRY: dict[str, type[nn.Module]] = {}


def register(name: str):
    """Class decorator: register a block under a catalogue name, checking its options against the catalogue."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        info = mixer_info(name)
        params = inspect.signature(cls.__init__).parameters
        options = {p.name for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        positional = [p.name for p in params.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        if positional != ["self", "in_channels", "out_channels", "ctx"]:
            raise TypeError(f"block {name}: constructor must be (self, in_channels, out_channels, ctx, *, options)")
        if options != set(info.options):
            raise TypeError(f"block {name}: options {sorted(options)} differ from the catalogue {sorted(info.options)}")
        if name in _REGISTRY:
            raise TypeError(f"block {name!r} registered twice")
        cls.block_name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def registered() -> dict[str, type[nn.Module]]:
    return dict(_REGISTRY)


def get(name: str) -> type[nn.Module]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BuildError(f"unknown block {name!r} (known: {', '.join(sorted(_REGISTRY))})", key="mixer") from None


def create(name: str, in_channels: int, out_channels: int, ctx: BlockContext, options: dict[str, Any] | None = None
           ) -> nn.Module:
    """Build a block; missing options take the catalogue defaults, unknown ones are an error."""
    cls = get(name)
    merged = MIXERS[name].defaults()
    unknown = set(options or {}) - set(merged)
    if unknown:
        raise BuildError(f"block {name!r} takes no option {sorted(unknown)[0]!r} "
                         f"(accepted: {', '.join(sorted(merged)) or 'none'})", key="mixer")
    merged.update(options or {})
    return cls(in_channels, out_channels, ctx, **merged)
