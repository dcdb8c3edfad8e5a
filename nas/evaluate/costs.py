"""Params and FLOPs counted by parts, without building the network, and the constraint checks that use them.

:func:`network_costs` sums the network's parts (:func:`nas.builder.layout`), each distinct part built and counted
once per process (:data:`part_cost_cache`); :func:`constraint_costs` caches whole networks per (spec, input), so a
spec sampled again (e.g. an infeasible one) costs a dictionary lookup. The grammar checks constraints on the numbers
these give (:meth:`nas.grammar.Space.violations`); it never counts.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from nas.builder import Part, layout
from nas.evaluate import measure
from nas.grammar import COST_OF, Space
from nas.spec import ArchSpec

# distinct parts whose params and FLOPs are kept: about 1 KB each, so at most about 64 MB. The vision space's
# samples bring about 5 new parts each, and the predictor screens 16 candidates per trial (half of them random): at
# 8,192 the cache evicted parts it needed again, and its cost per trial at trial 1,000 was 295 ms against 184 ms at
# 65,536 (experiments/bench_predictor_overhead.py, one run each)
PART_CACHE_SIZE = 65_536
part_cost_cache: dict[tuple, tuple[int, int]] = {}  # part key -> (params, FLOPs)


def part_costs(part: Part) -> tuple[int, int]:
    """(params, FLOPs at batch one) of ``part``, counted on the part alone and cached per key: a network sampled
    after many others mostly repeats parts already counted (a mutation changes one stage; cells of a stage past its
    first are alike)."""
    costs = part_cost_cache.get(part.key)
    if costs is None:
        module = part.make()
        costs = (measure.count_params(module), measure.count_flops(module, part.example()))
        if len(part_cost_cache) >= PART_CACHE_SIZE:
            part_cost_cache.pop(next(iter(part_cost_cache)))  # oldest first
        part_cost_cache[part.key] = costs
    return costs


def network_costs(spec: ArchSpec, input_shape: Sequence[int], num_classes: int) -> dict[str, int]:
    """``params`` and ``flops`` (batch of one) of the network for ``spec``, as :func:`nas.evaluate.measure.
    count_params` / :func:`~nas.evaluate.measure.count_flops` report them on the built network, without building
    it: the sum over its parts (:func:`layout`), each counted once per distinct part. Exact because every
    parameter and every counted op of a network lives in one of its parts (the resizing of the input and the
    residual adds are not counted FLOPs); ``tests/test_builder.py`` checks it against the built network over
    every shipped space and baseline."""
    params = flops = 0
    for part in layout(spec, input_shape, num_classes).parts():
        p, f = part_costs(part)
        params, flops = params + p, flops + f
    return {"params": params, "flops": flops}


COST_CACHE_SIZE = 4096  # (spec, input) entries of constraint_costs' cache
network_cost_cache: dict[tuple, dict[str, int]] = {}  # (spec hash, input shape, classes) -> params, flops


def constraint_costs(space: Space, spec: ArchSpec, input_shape: Sequence[int] | None = None,
                     num_classes: int | None = None, *, what: Iterable[str] | None = None) -> dict[str, int]:
    """``params`` and / or ``flops`` (``what``; default: those ``space`` constrains) of ``spec`` at ``input_shape`` /
    ``num_classes`` (default: the space's reference input), as :func:`nas.evaluate.measure.count_params` /
    :func:`~nas.evaluate.measure.count_flops` report them on the built network (batch of one); counted by parts
    and cached per (spec hash, input)."""
    wanted = tuple(what) if what is not None else tuple(COST_OF[k] for k in space.constraints)
    for name in wanted:
        if name not in COST_OF.values():
            raise ValueError(f"unknown constraint cost {name!r} (known: {', '.join(COST_OF.values())})")
    if not wanted:
        return {}
    shape = tuple(int(d) for d in (input_shape or space.reference_input[0]))
    classes = int(num_classes or space.reference_input[1])
    key = (spec.hash(64), shape, classes)
    costs = network_cost_cache.get(key)
    if costs is None:
        costs = network_costs(spec, shape, classes)
        if len(network_cost_cache) >= COST_CACHE_SIZE:
            network_cost_cache.pop(next(iter(network_cost_cache)))  # oldest first
        network_cost_cache[key] = costs
    return {name: costs[name] for name in wanted}


def violations(space: Space, spec: ArchSpec, input_shape: Sequence[int] | None = None,
               num_classes: int | None = None, *, costs: dict[str, int] | None = None) -> list[str]:
    """The constraint violations of ``spec`` (see :meth:`nas.grammar.Space.violations`), counted unless ``costs``
    (the numbers already measured at that input, a superset of what the constraints need) are given."""
    if not space.constraints:
        return []
    if costs is None or any(COST_OF[k] not in costs for k in space.constraints):
        costs = constraint_costs(space, spec, input_shape, num_classes)
    return space.violations(costs)


def check_feasible(space: Space, samples: int = 20, seed: int = 0) -> None:
    """:meth:`nas.grammar.Space.check_feasible` with the count by parts."""
    space.check_feasible(lambda spec: constraint_costs(space, spec), samples, seed)
