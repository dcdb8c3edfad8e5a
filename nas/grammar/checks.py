"""Checks across a space's keys that no single key's values can make: choices that would sample invalid specs.

Each takes the parsed parameters (:class:`nas.grammar.domains.Param`) and returns the problem as a message (and
where it is), or None; the parser turns a problem into a one-line SpaceError naming the file, line and key.
"""
from __future__ import annotations

from typing import Sequence

from nas.catalog import MIXERS, capable
from nas.grammar.domains import Param


def stride_problem(params: Sequence[Param], prefix: str, mixer_scope: str) -> str | None:
    """A stage that may downsample by its first cell's stride may only have mixers that can stride."""
    by_name = {p.name: p for p in params}
    if "stride" not in by_name[f"{prefix}.downsample"].domain.values():
        return None
    unable = [m for m in by_name[f"{mixer_scope}.mixer"].domain.values() if not MIXERS[m].strides]
    if not unable:
        return None
    return (f"downsample stride needs mixers that can stride ({capable('strides')}); this stage may also have "
            f"{', '.join(unable)}")


def class_token_problem(params: Sequence[Param], num_stages: int, p: str = "") -> tuple[str, tuple] | None:
    """A class token keeps the tokens (no downsampling, a pool head); a class-token pool needs one in every net.
    ``p``: the prefix of a family's parameters (``"vit."``), or ``""``."""
    by_name = {q.name: q for q in params}
    token = by_name.get(f"{p}stem.class_token")
    pool = by_name.get(f"{p}head.pool")
    always = token is not None and token.domain.values() == [True]
    if pool is not None and "token" in pool.domain.values() and not always:
        return "pool token needs a class token in every network (stem class_token: true)", ("head", "pool")
    if token is None or True not in token.domain.values():
        return None
    if by_name[f"{p}head.type"].domain.values() != ["pool"]:
        return "a class token needs a pool head", ("stem", "class_token")
    for i in range(num_stages):
        if by_name[f"{p}s{i + 1}.downsample"].domain.values() != ["none"]:
            return f"a class token keeps the tokens: stage {i + 1} may not downsample", ("stem", "class_token")
    return None


def se_inner_problem(params: Sequence[Param], prefix: str, mixer_scope: str, cell_scope: str = "cell") -> str | None:
    """Squeeze-excitation inside the block (se_place: inner) only where every mixer it may meet has expanded
    features (mbconv): the choice is unconditional, or its ``when`` on the mixer leaves only such mixers."""
    by_name = {p.name: p for p in params}
    place = by_name.get(f"{prefix}.se_place") or by_name.get(f"{cell_scope}.se_place")
    reduction = by_name.get(f"{prefix}.se_reduction") or by_name.get(f"{cell_scope}.se_reduction")
    if place is None or "inner" not in place.domain.values() or reduction.domain.values() == [0]:
        return None
    mixer = by_name[f"{mixer_scope}.mixer"]
    mixers = mixer.domain.values()
    for name, allowed in place.when:
        if name == mixer.name:
            mixers = [m for m in mixers if m in allowed]
    unable = [m for m in mixers if not MIXERS[m].inner_se]
    if not unable:
        return None
    return (f"se_place inner needs mixers with expanded features ({capable('inner_se')}); this stage may also have "
            f"{', '.join(unable)} (limit it with when: {{mixer: [...]}})")
