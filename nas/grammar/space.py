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
from typing import Any, Callable, Iterable

from nas.catalog import (
    INPUTS,
    MAX_CLASSES,
    MAX_REFERENCE_DIM,
    MIXERS,
    Option,
    bounded,
)
from nas.errors import SpaceError, SpecError, unknown_key
from nas.grammar.checks import class_token_problem, se_inner_problem, stride_problem
from nas.grammar.domains import (
    CELL_KEYS,
    CONSTRAINT_KEYS,
    DEFAULT_REFERENCE,
    FRACTION,
    HEAD_KEYS,
    OPTIONAL,
    POSITIVE,
    REFERENCE_INPUT_KEYS,
    STAGE_KEYS,
    STEM_KEYS,
    TOP_KEYS,
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
        return _Parser(data, lines, file).parse()

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

    def _spec_from(self, values: dict[str, Any]) -> ArchSpec:
        data: dict[str, Any] = {
            "input": self.input, "space": self.name, "stem": {}, "head": {},
            "stages": [{"mixer": {"options": {}}} for _ in range(self.num_stages)],
        }
        for param in self.params:
            if param.name in values:
                set_path(data, param.target, values[param.name], self.num_stages)
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
        """The parameter values that produce ``spec``; raises SpaceError naming the key that does not fit."""
        where = file or self.file
        if spec.input != self.input:
            raise SpaceError(f"spec is for {spec.input} input, space {self.name!r} for {self.input}", file=where,
                             key="input")
        if len(spec.stages) != self.num_stages:
            raise SpaceError(f"spec has {len(spec.stages)} stages, space {self.name!r} has {self.num_stages}",
                             file=where, key="stages")
        data = spec.model_dump(mode="json")
        values: dict[str, Any] = {}
        for param in self.params:
            if not param.active(values):
                continue
            value = self._read(data, param, spec, where)
            if not param.domain.contains(value):
                raise SpaceError(f"value {value!r} is not in the space's choices {param.domain.describe()} "
                                 f"(space {self.name!r}, parameter {param.name})", file=where,
                                 key=key_text(param.target))
            values[param.name] = value
        if self._spec_from(values).canonical() != spec.canonical():
            raise SpaceError(f"spec does not fit space {self.name!r}: its fields disagree with the grammar's "
                             "fixed values", file=where)
        return values

    def _read(self, data: dict, param: Param, spec: ArchSpec, where: str | None) -> Any:
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
            seen = [get_path(data, param.target[:i] + (k,) + param.target[i + 1:]) for k in range(self.num_stages)]
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
        values = self.assignment(spec)
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
        """Number of distinct architectures (exact for the discrete part)."""
        continuous = tuple(p.name for p in self.params if p.domain.size() is None)
        referenced = {name for p in self.params for name, _ in p.when}
        scopes: dict[str, list[Param]] = {}
        for p in self.params:
            scopes.setdefault(p.scope, []).append(p)
        shared = scopes.pop("cell", [])
        total = 0
        for context, weight in count_assignments(shared, {}, referenced):
            product = weight
            for params in scopes.values():
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
        }

    def fingerprint(self) -> str:
        """A hash of :meth:`canonical`: equal for two files that differ only in comments or layout."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, data: Any, lines: dict, file: str | None):
        self.data = data
        self.lines = lines
        self.file = file
        self.params: list[Param] = []

    def error(self, message: str, path: tuple) -> SpaceError:
        line = None
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                line = self.lines[path[:n]]
                break
        return SpaceError(message, file=self.file, line=line, key=key_text(path) or None)

    def mapping(self, value: Any, path: tuple, allowed: Iterable[str] | None = None, *, required=True) -> dict:
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            raise self.error(f"expected a mapping, found {_type_name(value)}", path)
        if allowed is not None:
            allowed = list(allowed)
            for key in value:
                if key not in allowed:
                    raise self.error(unknown_key(key, allowed), path + (key,))
        return value

    # -- domains --------------------------------------------------------------------------------------------------
    def domain(self, raw: Any, path: tuple, option: Option) -> tuple[Domain, dict]:
        """Parse a domain and check every value against ``option``; returns (domain, raw when-mapping)."""
        when: dict = {}
        if isinstance(raw, dict):
            self.mapping(raw, path, ("values", "int", "float", "step", "log", "when"))
            kinds = [k for k in ("values", "int", "float") if k in raw]
            if len(kinds) != 1:
                raise self.error("a domain mapping needs exactly one of values / int / float", path)
            when = self.mapping(raw.get("when"), path + ("when",), required=False) if "when" in raw else {}
            kind = kinds[0]
            if kind == "values":
                domain = self.categorical(raw["values"], path + ("values",))
            else:
                domain = self.range(raw, kind, path)
        elif isinstance(raw, list):
            domain = self.categorical(raw, path)
        elif raw is None:
            raise self.error("empty value (expected a value, a list of choices or a range)", path)
        else:
            domain = Domain("fixed", (raw,))
        self.check_values(domain, path, option)
        return domain, when

    def categorical(self, raw: Any, path: tuple) -> Domain:
        if not isinstance(raw, list):
            raise self.error(f"expected a list of choices, found {_type_name(raw)}", path)
        if not raw:
            raise self.error("empty choice list", path)
        for i, v in enumerate(raw):
            if isinstance(v, (dict, list)) or v is None:
                raise self.error(f"a choice must be a plain value, found {_type_name(v)}", path + (i,))
        if len({repr(v) for v in raw}) != len(raw):
            raise self.error("duplicate choices", path)
        return Domain("categorical" if len(raw) > 1 else "fixed", tuple(raw))

    def range(self, raw: dict, kind: str, path: tuple) -> Domain:
        bounds = raw[kind]
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise self.error(f"{kind} range must be [min, max]", path + (kind,))
        low, high = bounds
        number = int if kind == "int" else (int, float)
        for b in bounds:
            if isinstance(b, bool) or not isinstance(b, number):
                raise self.error(f"{kind} range bound {b!r} is not {'an integer' if kind == 'int' else 'a number'}",
                                 path + (kind,))
        if low > high:
            raise self.error(f"min > max in range [{low}, {high}]", path + (kind,))
        step = raw.get("step")
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise self.error("log must be true or false", path + ("log",))
        if step is not None and (isinstance(step, bool) or not isinstance(step, number) or step <= 0):
            raise self.error(f"step must be a positive {'integer' if kind == 'int' else 'number'}", path + ("step",))
        if log and low <= 0:
            raise self.error("a log range needs min > 0", path + (kind,))
        if log and step is not None:
            raise self.error("a range cannot be both log and stepped", path)
        if kind == "float":
            low, high = float(low), float(high)
        return Domain(kind, (), low, high, step, log)

    def check_values(self, domain: Domain, path: tuple, option: Option) -> None:
        if domain.kind in ("fixed", "categorical"):
            for v in domain.choices:
                if option.type is float and isinstance(v, int) and not isinstance(v, bool):
                    v = float(v)
                if not option.accepts(v):
                    raise self.error(f"value {v!r} is not allowed here (expected {option.describe()})", path)
            if option.type is float:  # keep floats as floats so specs hash alike
                object.__setattr__(domain, "choices", tuple(float(v) if isinstance(v, int) and not
                                                            isinstance(v, bool) else v for v in domain.choices))
            return
        if option.type not in (int, float) or (option.type is int and domain.kind == "float"):
            raise self.error(f"a {domain.kind} range is not allowed here (expected {option.describe()})", path)
        for bound in (domain.low, domain.high):
            v = float(bound) if option.type is float else bound
            if not option.accepts(v):
                raise self.error(f"range bound {bound!r} is not allowed here (expected {option.describe()})", path)

    # -- parameters ---------------------------------------------------------------------------------------------
    def add(self, name: str, raw: Any, path: tuple, option: Option, target: tuple, scope: str,
            names_in_scope: dict[str, str], inherent: tuple | None) -> None:
        domain, when_raw = self.domain(raw, path, bounded(option, target[-1]))
        conditions = []
        if inherent is not None:
            key, allowed = inherent
            conditions.append((names_in_scope[key], allowed))
        for key, allowed in when_raw.items():
            cpath = path + ("when", key)
            if key not in names_in_scope:
                raise self.error(f"condition names unknown or later parameter {key!r} "
                                 f"(known here: {', '.join(names_in_scope) or 'none'})", cpath)
            allowed = tuple(allowed) if isinstance(allowed, list) else (allowed,)
            if not allowed:
                raise self.error("empty list of values in condition", cpath)
            named = next(p for p in reversed(self.params) if p.name == names_in_scope[key])
            if named.domain.size() is not None:
                for value in allowed:
                    if not named.domain.contains(value):
                        raise self.error(f"condition value {value!r} can never hold: {key} takes "
                                         f"{named.domain.describe()}", cpath)
            conditions.append((names_in_scope[key], allowed))
        self.params.append(Param(name, domain, target, tuple(conditions), self.lines.get(path), scope))

    def keys(self, raw: dict, path: tuple, table: dict, prefix: str, target: tuple, scope: str,
             names: dict[str, str], *, stage_index: Any = None) -> None:
        """Add the parameters of one scope (stem, head, or a stage's own keys) in the table's order."""
        for key, (option, default, inherent) in table.items():
            if key in raw:
                value = raw[key]
            elif default is None:
                raise self.error(f"missing key {key!r}", path)
            elif default is OPTIONAL:
                continue
            else:
                value = default
            self.add(f"{prefix}.{key}", value, path + (key,), option, target + (key,), scope, names, inherent)
            names[key] = f"{prefix}.{key}"

    def parse(self) -> Space:
        data = self.mapping(self.data, (), TOP_KEYS)
        for key in ("name", "input", "stem", "stages", "cell"):
            if key not in data:
                raise self.error(f"missing key {key!r}", ())
        name = data["name"]
        if not isinstance(name, str) or not name:
            raise self.error("name must be a non-empty string", ("name",))
        input_kind = data["input"]
        if input_kind not in INPUTS:
            raise self.error(f"input is {input_kind!r}, expected one of: {', '.join(INPUTS)}", ("input",))

        # stem
        stem = self.mapping(data["stem"], ("stem",), STEM_KEYS)
        self.keys(stem, ("stem",), STEM_KEYS, "stem", ("stem",), "stem", {})

        # multipliers and regularization
        compound = self.multipliers(data.get("multipliers"))
        reg = self.mapping(data.get("regularization"), ("regularization",), ("drop_path",), required=False)
        self.add("regularization.drop_path", reg.get("drop_path", 0.0), ("regularization", "drop_path"), FRACTION,
                 ("drop_path",), "regularization", {}, None)

        # cell: shared keys once, then per stage
        cell = self.mapping(data["cell"], ("cell",), ("shared", "mixer") + tuple(CELL_KEYS))
        shared = cell.get("shared", [])
        if not isinstance(shared, list):
            raise self.error("shared must be a list of cell keys", ("cell", "shared"))
        for i, key in enumerate(shared):
            if key != "mixer" and key not in CELL_KEYS:
                raise self.error(f"unknown cell key {key!r} (expected one of: mixer, {', '.join(CELL_KEYS)})",
                                 ("cell", "shared", i))
        if "mixer" not in cell:
            raise self.error("missing key 'mixer' (the productions a cell can be)", ("cell",))
        shared_names: dict[str, str] = {}
        self.cell_params(cell, ("cell",), "cell", ("stages", "*"), "cell", shared_names, only=set(shared))

        stages = data["stages"]
        if not isinstance(stages, list) or not stages:
            raise self.error("stages must be a non-empty list", ("stages",))
        for i, raw_stage in enumerate(stages):
            path = ("stages", i)
            stage = self.mapping(raw_stage, path, tuple(STAGE_KEYS) + ("cell",))
            prefix = f"s{i + 1}"
            names: dict[str, str] = {}
            self.keys(stage, path, STAGE_KEYS, prefix, ("stages", i), prefix, names)
            override = self.mapping(stage.get("cell"), path + ("cell",), ("mixer",) + tuple(CELL_KEYS),
                                    required=False)
            for key in override:
                if key in shared:
                    raise self.error(f"{key!r} is shared by all stages (cell.shared); a stage cannot override it",
                                     path + ("cell", key))
            merged = {**cell, **override}
            paths = {k: (path + ("cell", k) if k in override else ("cell", k)) for k in merged}
            self.cell_params(merged, None, prefix, ("stages", i), prefix, {**shared_names, **names}, skip=set(shared),
                             paths=paths)
            self.check_stage(prefix, path, "cell" if "mixer" in shared else prefix, paths)

        # head
        head = self.mapping(data.get("head"), ("head",), HEAD_KEYS, required=False)
        self.keys(head, ("head",), HEAD_KEYS, "head", ("head",), "head", {})
        fpn = next(p for p in self.params if p.name == "head.fpn_stages")
        head_types = next(p for p in self.params if p.name == "head.type").domain.values()
        for v in (fpn.domain.values() if "fpn" in head_types else []):
            if v > len(stages):
                raise self.error(f"fpn_stages {v} exceeds the number of stages ({len(stages)})",
                                 ("head", "fpn_stages"))

        self.check_class_token(len(stages))
        constraints, constraint_lines, reference = self.constraints(data.get("constraints"), input_kind)
        description = data.get("description", "")
        return Space(name=name, input=input_kind, params=self.params, num_stages=len(stages), file=self.file,
                     description=str(description or ""), constraints=constraints,
                     constraint_lines=constraint_lines, reference_input=reference, compound=compound)

    def check_class_token(self, num_stages: int) -> None:
        problem = class_token_problem(self.params, num_stages)
        if problem:
            raise self.error(*problem)

    def check_stage(self, prefix: str, path: tuple, mixer_scope: str, cell_paths: dict) -> None:
        """The stage's choices that depend on its mixers: a strided first cell, squeeze-excitation inside."""
        problem = stride_problem(self.params, prefix, mixer_scope)
        if problem:
            raise self.error(problem, path + ("downsample",))
        problem = se_inner_problem(self.params, prefix, mixer_scope)
        if problem:
            raise self.error(problem, cell_paths.get("se_place", ("cell", "se_place")))

    def cell_params(self, cell: dict, base: tuple | None, prefix: str, target: tuple, scope: str,
                    names: dict[str, str], *, only: set | None = None, skip: set = frozenset(),
                    paths: dict | None = None) -> None:
        """Add a cell's parameters: the mixer production (and its options) first, then the other cell keys."""

        def path_of(key):
            return paths.get(key, ("cell", key)) if paths is not None else base + (key,)

        def wanted(key):
            return (only is None or key in only) and key not in skip

        if wanted("mixer"):
            self.mixer(cell["mixer"], path_of("mixer"), prefix, target, scope, names)
        for key, (option, default, inherent) in CELL_KEYS.items():
            if not wanted(key) or (default is OPTIONAL and key not in cell):
                continue
            value = cell.get(key, default)
            if inherent is not None and inherent[0] not in names:
                raise self.error(f"{key!r} depends on {inherent[0]!r}, which must then be shared too", path_of(key))
            self.add(f"{prefix}.{key}", value, path_of(key), option, target + (key,), scope, names, inherent)
            names[key] = f"{prefix}.{key}"

    def mixer(self, raw: Any, path: tuple, prefix: str, target: tuple, scope: str, names: dict[str, str]) -> None:
        if isinstance(raw, list):  # a plain list of production names: every option at its default
            raw = {name: None for name in raw} if all(isinstance(n, str) for n in raw) else raw
        productions = self.mapping(raw, path)
        if not productions:
            raise self.error("empty choice list (no productions)", path)
        for name in productions:
            if name not in MIXERS:
                raise self.error(f"unknown production / block {name!r} (known: {', '.join(sorted(MIXERS))})",
                                 path + (name,))
        mixer_name = f"{prefix}.mixer"
        choices = list(productions)
        self.params.append(Param(mixer_name, Domain("categorical" if len(choices) > 1 else "fixed", tuple(choices)),
                                 target + ("mixer", "type"), (), self.lines.get(path), scope))
        names["mixer"] = mixer_name
        for name, options in productions.items():
            info = MIXERS[name]
            options = self.mapping(options, path + (name,), info.options, required=False)
            local = {**names}
            for key, option in info.options.items():
                self.add(f"{prefix}.{name}.{key}", options.get(key, option.default), path + (name, key), option,
                         target + ("mixer", "options", key), scope, local, ("mixer", (name,)))
                local[key] = f"{prefix}.{name}.{key}"

    def multipliers(self, raw: Any) -> tuple[float, float, float] | None:
        path = ("multipliers",)
        data = self.mapping(raw, path, ("width", "depth", "resolution", "compound"), required=False)
        if "compound" in data:
            if set(data) != {"compound"}:
                raise self.error("use either compound or width/depth/resolution, not both", path)
            cpath = path + ("compound",)
            compound = self.mapping(data["compound"], cpath, ("phi", "alpha", "beta", "gamma"))
            bases = []
            for key in ("alpha", "beta", "gamma"):
                v = compound.get(key)
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 1:
                    raise self.error(f"{key} must be a number >= 1 (EfficientNet: 1.2, 1.1, 1.15)", cpath + (key,))
                bases.append(float(v))
            if "phi" not in compound:
                raise self.error("missing key 'phi'", cpath)
            self.add("multipliers.phi", compound["phi"], cpath + ("phi",),
                     Option(float, 0.0, check=lambda v: -8 <= v <= 8, expected="a number in [-8, 8]"), ("phi",),
                     "multipliers", {}, None)
            return tuple(bases)
        for key in ("width", "depth", "resolution"):
            self.add(f"multipliers.{key}", data.get(key, 1.0), path + (key,), POSITIVE, (f"{key}_multiplier",),
                     "multipliers", {}, None)
        return None

    def constraints(self, raw: Any, input_kind: str):
        path = ("constraints",)
        data = self.mapping(raw, path, tuple(CONSTRAINT_KEYS) + ("reference_input",), required=False)
        found, lines = {}, {}
        for key, option in CONSTRAINT_KEYS.items():
            if key in data:
                value = data[key]
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if not option.accepts(value):
                    raise self.error(f"{key} is {value!r}, expected {option.describe()}", path + (key,))
                found[key] = value
                lines[key] = self.lines.get(path + (key,))
        shape, classes = DEFAULT_REFERENCE[input_kind]
        if "reference_input" in data:
            rpath = path + ("reference_input",)
            ref = self.mapping(data["reference_input"], rpath, REFERENCE_INPUT_KEYS)
            shape = ref.get("shape", shape)
            rank = 3 if input_kind == "image" else 2
            most = MAX_REFERENCE_DIM[input_kind]
            if (not isinstance(shape, list) or len(shape) != rank
                    or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= most for s in shape)):
                raise self.error(f"shape must be {rank} integers in [1, {most}] "
                                 f"({'C, H, W' if rank == 3 else 'L, C'})", rpath + ("shape",))
            classes = ref.get("num_classes", classes)
            if isinstance(classes, bool) or not isinstance(classes, int) or not 2 <= classes <= MAX_CLASSES:
                raise self.error(f"num_classes must be an integer in [2, {MAX_CLASSES:,}]", rpath + ("num_classes",))
        return found, lines, (tuple(shape), classes)


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(type(value),
                                                                                         type(value).__name__)


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
