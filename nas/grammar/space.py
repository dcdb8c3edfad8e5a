"""Search spaces: a declarative cell grammar (search_spaces/*.yaml) parsed into a :class:`Space`.

A space file describes ``stem -> stages -> head``. Each stage repeats a cell ``depth`` times; a cell is one of
several *productions* (the ``mixer``: conv, mbconv, attention, ssm, ...) with typed, possibly conditional
parameters, wrapped by a skip pattern, a norm, an activation and optional channel / spatial attention. A value in the
file is a *domain*:

    width: 32                                 # fixed
    norm: [batch, layer, group]               # categorical
    depth: {int: [1, 4]}                      # integer range (add step: 2, log: true as needed)
    dropout: {float: [0.0, 0.3]}              # float range (add step / log as needed)
    norm_groups: {values: [4, 8], when: {norm: group}}   # conditional on an earlier choice
    expansion_ratio: {values: [3, 6], per_block: true}   # a mixer option chosen for each cell of its stage

Cell keys listed under ``cell.shared`` are chosen once for all stages; the others per stage. A stage may narrow or
replace any per-stage cell key with its own ``cell:`` mapping. Structural values (depth, widths, kernel and patch
sizes, heads, ratios, multipliers) have upper bounds (:data:`nas.catalog.MAX_VALUE`). Multipliers are
independent (``width``, ``depth``, ``resolution``) or tied by an EfficientNet compound coefficient (``compound:
{phi, alpha, beta, gamma}``).

Sampling goes through a :class:`Suggest` (an Optuna trial, a seeded RNG, or a replay of stored values), in a fixed
order so that conditional parameters are visible to the sampler (define-by-run). Parameter names are flat and stable:
``stem.type``, ``s2.mixer``, ``s2.mbconv.expansion_ratio``, ``cell.skip`` (shared), ``head.dropout``.

This module does not import torch: constraints are checked on costs counted elsewhere (:func:`nas.evaluate.costs.
constraint_costs`).
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nas.errors import SpaceError, SpecError
from nas.grammar.domains import (
    FAMILY,
    Domain,
    Param,
    SpaceSize,
    active_only,
    count_assignments,
    get_path,
    key_text,
    other_value,
    same_value,
    set_path,
)
from nas.grammar.parser import Parser
from nas.grammar.suggest import RandomSuggest, ReplaySuggest, SmallestSuggest, Suggest
from nas.io import load_yaml, read_text
from nas.spec import ArchSpec, canonical_float

# ---------------------------------------------------------------------------------------------------------------
# Suggest: who picks the values
# ---------------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------------
# Domains and parameters
# ---------------------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------------------
# What each key of a space file may hold
# ---------------------------------------------------------------------------------------------------------------


# The structural keys' upper bounds are nas.catalog.MAX_VALUE (via catalog.bounded), shared with nas.spec.


ASSIGNMENT_CACHE_SIZE = 4096  # parents whose parameter values Space.mutate keeps


@dataclass
class Space:
    """A parsed, validated search space."""

    name: str
    input: str
    params: list[Param]
    num_stages: int
    file: str | None = None
    description: str = ""
    constraints: dict[str, int] = field(default_factory=dict)
    constraint_lines: dict[str, int] = field(default_factory=dict)
    reference_input: tuple[tuple[int, ...], int] = ((3, 32, 32), 10)
    compound: tuple[float, float, float] | None = None  # (alpha: depth, beta: width, gamma: resolution)
    baselines: dict[str, ArchSpec] = field(default_factory=dict)
    families: dict[str, int] = field(default_factory=dict)  # family -> its number of stages (a union of bodies)
    # spec hash -> its assignment (successes only), for mutate: a sampler mutates the same parents over and over
    _assignments: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_assignments": {}}  # a copy sent to another process starts without the cache

    # -- loading ------------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, with_baselines: bool = True) -> "Space":
        """Parse and validate a space file; baselines in ``<dir>/baselines/`` naming this space are checked too."""
        path = Path(path)
        space = cls.from_text(read_text(path, error=SpaceError, what="space file"), file=str(path))
        if with_baselines:
            space.load_baselines(path.parent / "baselines")
        return space

    @classmethod
    def from_text(cls, text: str, *, file: str | None = None) -> "Space":
        data, lines = load_yaml(text, file=file, error=SpaceError)
        return cls(**Parser(data, lines, file).parse())

    def load_baselines(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.y*ml")) + sorted(folder.glob("*.json")):
            spec = ArchSpec.load(path)
            if spec.space != self.name:
                continue
            try:
                self.check_contains(spec, file=str(path))
            except SpaceError as e:
                if e.line is None and e.key and path.suffix in (".yaml", ".yml"):
                    _, lines = load_yaml(read_text(path, error=SpaceError, what="baseline"), file=str(path),
                                         error=SpaceError)
                    key = tuple(int(k) if k.isdigit() else k for k in e.key.split("."))
                    e = SpaceError(e.message, file=e.file, key=e.key,
                                   line=next((lines[key[:n]] for n in range(len(key), 0, -1) if key[:n] in lines),
                                             None))
                raise e from None
            self.baselines[path.stem] = spec

    # -- sampling -----------------------------------------------------------------------------------------------
    def sample(self, suggest: Suggest | int | None = None) -> ArchSpec:
        """Sample one spec; ``suggest`` is a Suggest (e.g. an Optuna trial adapter), a seed, or None."""
        if not hasattr(suggest, "categorical"):
            suggest = RandomSuggest(suggest)
        values: dict[str, Any] = {}
        for param in self.params:
            if param.active(values):
                values[param.name] = param.domain.suggest(param.name, suggest)
        return self._spec_from(values)

    def replay(self, values: dict[str, Any]) -> ArchSpec:
        """Rebuild the spec from stored parameter values (e.g. an Optuna trial's params)."""
        try:
            return self.sample(ReplaySuggest(values))
        except KeyError as e:
            raise SpaceError(str(e.args[0]), file=self.file) from None

    def stages_of(self, values: dict[str, Any]) -> int:
        """The number of stages of the networks ``values`` describe (their family's, in a space with families)."""
        return self.families[values[FAMILY]] if self.families else self.num_stages

    def _spec_from(self, values: dict[str, Any]) -> ArchSpec:
        n = self.stages_of(values)
        data: dict[str, Any] = {
            "input": self.input, "space": self.name, "stem": {}, "head": {},
            "stages": [{"mixer": {"options": {}}} for _ in range(n)],
        }
        for param in self.params:
            if param.name in values and param.name != FAMILY:
                set_path(data, param.target, values[param.name], n)
        for stage in data["stages"]:  # per-cell values arrive keyed by cell index
            if "per_block" in stage:
                stage["per_block"] = {k: [v[i] for i in sorted(v)] for k, v in stage["per_block"].items()}
        if "phi" in data:
            phi = data.pop("phi")
            alpha, beta, gamma = self.compound
            data["depth_multiplier"] = canonical_float(alpha**phi)
            data["width_multiplier"] = canonical_float(beta**phi)
            data["resolution_multiplier"] = canonical_float(gamma**phi)
        try:
            return ArchSpec.from_data(data)
        except SpecError as e:  # a grammar that can produce an invalid spec is the space file's fault
            raise SpaceError(f"produces an invalid spec: {e.one_line()}", file=self.file) from None

    # -- inverse: which values give this spec ---------------------------------------------------------------------
    def assignment(self, spec: ArchSpec, *, file: str | None = None) -> dict[str, Any]:
        """The parameter values that produce ``spec``; raises SpaceError naming the key that does not fit. In a space
        with families, the first family that writes ``spec``; when none does, the error of the family that came
        closest (the most parameters matched)."""
        where = file or self.file
        if spec.input != self.input:
            raise SpaceError(f"spec is for {spec.input} input, space {self.name!r} for {self.input}", file=where,
                             key="input")
        if not self.families:
            values, error = self._assign(spec, where, {})
            if error is not None:
                raise error
            return values
        closest: tuple[int, SpaceError] | None = None
        for family in self.families:
            values, error = self._assign(spec, where, {FAMILY: family})
            if error is None:
                return values
            if closest is None or len(values) > closest[0]:
                closest = (len(values), SpaceError(f"{error.message} (closest family: {family})", file=error.file,
                                                   line=error.line, key=error.key))
        raise closest[1]

    def _assign(self, spec: ArchSpec, where: str | None, values: dict[str, Any]) -> tuple[dict, SpaceError | None]:
        """(the values read so far, the error that stopped the reading or None) for ``spec``, from ``values``."""
        n = self.stages_of(values)
        if len(spec.stages) != n:
            return values, SpaceError(f"spec has {len(spec.stages)} stages, space {self.name!r} has {n}",
                                      file=where, key="stages")
        data = spec.model_dump(mode="json")
        for param in self.params:
            if param.name in values or not param.active(values):
                continue
            try:
                value = self._read(data, param, spec, where, n)
            except SpaceError as e:
                return values, e
            if not param.domain.contains(value):
                return values, SpaceError(f"value {value!r} is not in the space's choices "
                                          f"{param.domain.describe()} (space {self.name!r}, parameter {param.name})",
                                          file=where, key=key_text(param.target))
            values[param.name] = value
        if self._spec_from(values).canonical() != spec.canonical():
            return values, SpaceError(f"spec does not fit space {self.name!r}: its fields disagree with the "
                                      "grammar's fixed values", file=where)
        return values, None

    def _read(self, data: dict, param: Param, spec: ArchSpec, where: str | None, num_stages: int) -> Any:
        if "per_block" in param.target:  # a repeated value is kept as the mixer's option alone
            j = param.target.index("per_block")
            stage, key, k = get_path(data, param.target[:j]), param.target[j + 1], param.target[j + 2]
            values = (stage.get("per_block") or {}).get(key)
            return values[k] if values and k < len(values) else stage["mixer"]["options"].get(key)
        if param.target == ("phi",):
            alpha, beta, gamma = self.compound
            phi = math.log(spec.width_multiplier) / math.log(beta) if beta != 1 else 0.0
            for candidate in (param.domain.values() if param.domain.size() is not None else [phi]):
                if all(abs(canonical_float(base**candidate) - m) < 1e-5 for base, m in
                       ((alpha, spec.depth_multiplier), (beta, spec.width_multiplier),
                        (gamma, spec.resolution_multiplier))):
                    return candidate
            return canonical_float(phi)
        if "*" in param.target:
            i = param.target.index("*")
            seen = [get_path(data, param.target[:i] + (k,) + param.target[i + 1:]) for k in range(num_stages)]
            if any(not same_value(v, seen[0]) for v in seen):
                raise SpaceError(f"the space shares {param.target[-1]!r} across stages, the spec varies it: {seen}",
                                 file=where, key=param.name)
            return seen[0]
        return get_path(data, param.target)

    def check_contains(self, spec: ArchSpec, *, file: str | None = None) -> None:
        self.assignment(spec, file=file)

    def contains(self, spec: ArchSpec) -> bool:
        try:
            self.assignment(spec)
            return True
        except SpaceError:
            return False

    # -- evolution --------------------------------------------------------------------------------------------
    def mutate(self, spec: ArchSpec, rng: random.Random | int | None = None) -> ArchSpec:
        """A child that changes exactly one choice of ``spec``; parameters that this change activates are sampled."""
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        key = spec.hash(16)
        known = self._assignments.get(key)
        if known is None:
            known = self.assignment(spec)
            if len(self._assignments) >= ASSIGNMENT_CACHE_SIZE:
                self._assignments.pop(next(iter(self._assignments)))  # oldest first
            self._assignments[key] = known
        values = dict(known)
        candidates = [p for p in self.params if p.name in values and p.is_choice]
        if not candidates:
            raise SpaceError("the space has a single architecture: nothing to mutate", file=self.file)
        param = rng.choice(candidates)
        values[param.name] = other_value(param.domain, values[param.name], rng)
        child = self.sample(ReplaySuggest(active_only(self.params, values), fallback=RandomSuggest(rng)))
        return child

    # -- size and choices --------------------------------------------------------------------------------------
    def choices(self) -> list[Param]:
        """Every real choice of the grammar (fixed values left out), in sampling order."""
        return [p for p in self.params if p.is_choice]

    def size(self) -> SpaceSize:
        """Number of distinct architectures (exact for the discrete part; in a space with families, the sum of the
        families' sizes: a network two families can write counts in each)."""
        continuous = tuple(p.name for p in self.params if p.domain.size() is None)
        referenced = {name for p in self.params for name, _ in p.when}
        scopes: dict[str, list[Param]] = {}
        for p in self.params:
            if p.name != FAMILY:
                scopes.setdefault(p.scope, []).append(p)
        total = 0
        for start in [{FAMILY: f} for f in self.families] or [{}]:
            cell = f"{start[FAMILY]}.cell" if start else "cell"
            others = [params for scope, params in scopes.items() if scope != cell]
            for context, weight in count_assignments(scopes.get(cell, []), start, referenced):
                product = weight
                for params in others:  # another family's scopes are inactive here: a factor of 1
                    product *= sum(w for _, w in count_assignments(params, context, referenced))
                total += product
        return SpaceSize(total, continuous)

    # -- constraints ------------------------------------------------------------------------------------------
    def violations(self, costs: dict[str, int]) -> list[str]:
        """The constraints ``costs`` break (``params`` / ``flops`` of one spec at the space's reference input, as
        :func:`nas.evaluate.costs.constraint_costs` counts them), as readable lines; ``[]`` when it meets them."""
        found = []
        if "max_params" in self.constraints:
            params = costs["params"]
            if params > self.constraints["max_params"]:
                found.append(f"params {params:,} > max_params {self.constraints['max_params']:,}")
        if "max_flops" in self.constraints:
            flops = costs["flops"]
            if flops > self.constraints["max_flops"]:
                found.append(f"FLOPs {flops:,} > max_flops {self.constraints['max_flops']:,}")
        return found

    def check_feasible(self, count: Callable[[ArchSpec], dict[str, int]], samples: int = 20, seed: int = 0) -> None:
        """Raise SpaceError when no spec tried (the cheapest end of the space, then random samples) meets the
        constraints: a constraint that nothing can satisfy is a mistake in the file. ``count(spec)`` gives the
        costs the constraints limit (:func:`nas.evaluate.costs.check_feasible` passes the count by parts)."""
        if not self.constraints:
            return
        tried = [self.sample(SmallestSuggest())] + [self.sample(seed + i) for i in range(samples)]
        reasons = []
        for spec in tried:
            problems = self.violations(count(spec))
            if not problems:
                return
            reasons.append(problems[0])
        key = next(iter(self.constraints))
        raise SpaceError(f"no architecture meets the constraints; the cheapest tried has {reasons[0]}",
                         file=self.file, line=self.constraint_lines.get(key), key=f"constraints.{key}")

    def describe(self) -> str:
        return f"{self.name} ({self.input}): {len(self.choices())} choices, {self.size()} architectures"

    # -- identity ---------------------------------------------------------------------------------------------
    def canonical(self) -> dict[str, Any]:
        """The space as plain data, independent of how its file is written: comments, blank lines, indentation,
        quoting, flow or block style, the order of keys that name no choice order, and the ``description`` leave
        it unchanged. Everything the search depends on is in it: the name, the input, the number of stages, every
        parameter (name, domain with its choices in order, where its value goes, when it is active), the
        constraints with their reference input, and the compound scaling."""

        def domain(d: Domain) -> dict[str, Any]:
            step = float(d.step) if d.kind == "float" and d.step is not None else d.step
            return {"kind": d.kind, "choices": list(d.choices), "low": d.low, "high": d.high, "step": step,
                    "log": d.log}

        return {
            "name": self.name, "input": self.input, "num_stages": self.num_stages,
            "params": [{"name": p.name, "domain": domain(p.domain), "target": list(p.target), "scope": p.scope,
                        "when": [[name, list(allowed)] for name, allowed in p.when]} for p in self.params],
            "constraints": dict(sorted(self.constraints.items())),
            "reference_input": [list(self.reference_input[0]), self.reference_input[1]],
            "compound": list(self.compound) if self.compound is not None else None,
            **({"families": dict(self.families)} if self.families else {}),
        }

    def fingerprint(self) -> str:
        """A hash of :meth:`canonical`: equal for two files that differ only in comments or layout."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------------


def load_space(path: str | Path) -> Space:
    """Load a space by path, or by the name of a shipped space (``vision``, ``mobile``, ``sequence``)."""
    candidate = Path(path)
    if not candidate.exists() and candidate.suffix == "" and "/" not in str(path):
        shipped = shipped_spaces_dir() / f"{path}.yaml"
        if shipped.exists():
            candidate = shipped
    return Space.load(candidate)


def shipped_spaces_dir() -> Path:
    """search_spaces/ of this checkout (the spaces ship next to the package)."""
    return Path(__file__).resolve().parents[2] / "search_spaces"
