"""The parser of space files: plain YAML data with line numbers -> the parameters (choices) of a
:class:`nas.grammar.space.Space`, every value checked against the catalogue, every error naming file, line and key.

A mixer option may take one value per cell of its stage (``{values: [...], per_block: true}``): the first cell's
choice keeps the option's name (``s4.mbconv.expansion_ratio``), the others add ``.b2``, ``.b3``, ... and are
active while the stage's depth reaches them.

A space may be a union of *families* (``families: {resnet: {...}, vit: {...}}``): a first choice, ``family``, picks
one, and each family is a space body of its own (``stem``, ``cell``, ``stages``, ``head``; any it leaves out, and any
``stem`` / ``cell`` / ``head`` key it leaves out, comes from the file's top level). Its parameters are named after it
(``resnet.s2.downsample``) and are active only when it is picked; multipliers, regularization and constraints are
the space's. So a choice that only some networks can take (a strided first block, which attention cannot do; a class
token, which forbids downsampling) lives in the family that can take it.
"""
from __future__ import annotations

from typing import Any, Iterable

from nas.catalog import INPUTS, MAX_CLASSES, MAX_REFERENCE_DIM, MIXERS, Option, bounded
from nas.errors import SpaceError, unknown_key
from nas.grammar.checks import class_token_problem, se_inner_problem, stride_problem
from nas.grammar.domains import (
    BODY_KEYS,
    CELL_KEYS,
    CONSTRAINT_KEYS,
    DEFAULT_REFERENCE,
    FAMILY,
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
    key_text,
)


class Parser:
    """A space file's plain data (and its line numbers) -> the keyword arguments of :class:`nas.grammar.space.Space`."""

    def __init__(self, data: Any, lines: dict, file: str | None):
        self.data = data
        self.lines = lines
        self.file = file
        self.params: list[Param] = []
        self.family: tuple = ()  # while a family is parsed: its condition (("family", (name,)),)
        self.bodies: dict[str, dict] = {}  # family -> what it writes (stem, cell, stages, head)

    def param(self, name: str, domain: Domain, target: tuple, when: tuple, path: tuple, scope: str) -> None:
        """Append a parameter; inside a family it is active only when the family is picked."""
        self.params.append(Param(name, domain, target, self.family + tuple(when), self.lines.get(path), scope))

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
            raise self.error(f"expected a mapping, found {type_name(value)}", path)
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
            if "per_block" in raw:
                raise self.error("per_block is for the options of a mixer chosen per stage (one value per cell)",
                                 path + ("per_block",))
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
            raise self.error(f"expected a list of choices, found {type_name(raw)}", path)
        if not raw:
            raise self.error("empty choice list", path)
        for i, v in enumerate(raw):
            if isinstance(v, (dict, list)) or v is None:
                raise self.error(f"a choice must be a plain value, found {type_name(v)}", path + (i,))
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
            names_in_scope: dict[str, str], inherent: tuple | None, extra: tuple = ()) -> None:
        key_name = target[-3] if "per_block" in target else target[-1]
        domain, when_raw = self.domain(raw, path, bounded(option, key_name))
        conditions = list(extra)
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
        self.param(name, domain, target, tuple(conditions), path, scope)

    def keys(self, raw: dict, path: tuple, table: dict, prefix: str, target: tuple, scope: str,
             names: dict[str, str], paths: dict | None = None) -> None:
        """Add the parameters of one scope (stem, head, or a stage's own keys) in the table's order; ``paths``: where
        each key of ``raw`` was written, when not at ``path`` (a family's key or the top level's)."""
        for key, (option, default, inherent) in table.items():
            if key in raw:
                value = raw[key]
            elif default is None:
                raise self.error(f"missing key {key!r}", path)
            elif default is OPTIONAL:
                continue
            else:
                value = default
            where = (paths or {}).get(key, path + (key,))
            self.add(f"{prefix}.{key}", value, where, option, target + (key,), scope, names, inherent)
            names[key] = f"{prefix}.{key}"

    def parse(self) -> dict[str, Any]:
        data = self.mapping(self.data, (), TOP_KEYS)
        for key in ("name", "input"):
            if key not in data:
                raise self.error(f"missing key {key!r}", ())
        name = data["name"]
        if not isinstance(name, str) or not name:
            raise self.error("name must be a non-empty string", ("name",))
        input_kind = data["input"]
        if input_kind not in INPUTS:
            raise self.error(f"input is {input_kind!r}, expected one of: {', '.join(INPUTS)}", ("input",))

        families = None
        if "families" in data:
            families = self.mapping(data["families"], ("families",))
            if not families:
                raise self.error("families must name at least one family", ("families",))
            for family in families:
                if not isinstance(family, str) or not family.isidentifier():
                    raise self.error(f"a family's name must be a plain identifier, found {family!r}",
                                     ("families", family))
                self.bodies[family] = self.mapping(families[family], ("families", family), BODY_KEYS,
                                                   required=False)  # `name:` alone: the top level's body
            self.param(FAMILY, Domain("categorical" if len(families) > 1 else "fixed", tuple(families)), (FAMILY,),
                       (), ("families",), FAMILY)
        else:  # the stem's choices come first (sampling order), then the space's
            stem_paths = self.stem(data, None, "")
        compound = self.multipliers(data.get("multipliers"))
        reg = self.mapping(data.get("regularization"), ("regularization",), ("drop_path",), required=False)
        self.add("regularization.drop_path", reg.get("drop_path", 0.0), ("regularization", "drop_path"), FRACTION,
                 ("drop_path",), "regularization", {}, None)

        if families is None:
            stage_counts = {"": self.body(data, None, "", stem_paths)}
        else:
            stage_counts = {}
            for family in families:
                self.family = ((FAMILY, (family,)),)
                stage_counts[family] = self.body(data, family, f"{family}.", self.stem(data, family, f"{family}."))
            self.family = ()
        constraints, constraint_lines, reference = self.constraints(data.get("constraints"), input_kind)
        description = data.get("description", "")
        return dict(name=name, input=input_kind, params=self.params, num_stages=max(stage_counts.values()),
                    file=self.file, description=str(description or ""), constraints=constraints,
                    constraint_lines=constraint_lines, reference_input=reference, compound=compound,
                    families=stage_counts if families is not None else {})

    def part(self, data: dict, family: str | None, key: str, allowed: Iterable[str]) -> tuple[dict, dict, tuple]:
        """One mapping of a space body (stem, cell or head): the top level's keys, replaced key by key by the
        family's; returns (merged mapping, key -> the path it was written at, the path to name when one is missing)."""
        top = self.mapping(data.get(key), (key,), allowed, required=False)
        merged, paths = dict(top), {k: (key, k) for k in top}
        where = (key,)
        if family is not None:
            fpath = ("families", family, key)
            own = self.mapping(self.bodies[family].get(key), fpath, allowed, required=False)
            merged.update(own)
            paths.update({k: fpath + (k,) for k in own})
            if own or key not in data:
                where = fpath
        return merged, paths, where

    def stem(self, data: dict, family: str | None, p: str) -> dict:
        """The stem's parameters (the file's, or a family's over the file's), after checking that the body has its
        stem, stages and cell; returns where each stem key was written."""
        own = self.bodies[family] if family is not None else {}
        for key in ("stem", "stages", "cell"):
            if key not in own and key not in data:
                raise self.error(f"missing key {key!r}", ("families", family) if family is not None else ())
        stem, stem_paths, stem_path = self.part(data, family, "stem", STEM_KEYS)
        self.keys(stem, stem_path, STEM_KEYS, f"{p}stem", ("stem",), f"{p}stem", {}, stem_paths)
        return stem_paths

    def body(self, data: dict, family: str | None, p: str, stem_paths: dict) -> int:
        """The parameters of one space body after its stem (the file's, or a family's over the file's): cell,
        stages, head, named with the prefix ``p`` (``""`` or ``"<family>."``). Returns its number of stages."""
        own = self.bodies[family] if family is not None else {}

        # cell: shared keys once, then per stage
        cell, cell_paths, cell_path = self.part(data, family, "cell", ("shared", "mixer") + tuple(CELL_KEYS))
        shared = cell.get("shared", [])
        spath = cell_paths.get("shared", cell_path + ("shared",))
        if not isinstance(shared, list):
            raise self.error("shared must be a list of cell keys", spath)
        for i, key in enumerate(shared):
            if key != "mixer" and key not in CELL_KEYS:
                raise self.error(f"unknown cell key {key!r} (expected one of: mixer, {', '.join(CELL_KEYS)})",
                                 spath + (i,))
        if "mixer" not in cell:
            raise self.error("missing key 'mixer' (the productions a cell can be)", cell_path)
        shared_names: dict[str, str] = {}
        self.cell_params(cell, cell_paths, f"{p}cell", ("stages", "*"), f"{p}cell", shared_names, only=set(shared))

        spath = ("families", family, "stages") if "stages" in own else ("stages",)
        stages = own.get("stages", data.get("stages"))
        if not isinstance(stages, list) or not stages:
            raise self.error("stages must be a non-empty list", spath)
        for i, raw_stage in enumerate(stages):
            path = spath + (i,)
            stage = self.mapping(raw_stage, path, tuple(STAGE_KEYS) + ("cell",))
            prefix = f"{p}s{i + 1}"
            names: dict[str, str] = {}
            self.keys(stage, path, STAGE_KEYS, prefix, ("stages", i), prefix, names)
            override = self.mapping(stage.get("cell"), path + ("cell",), ("mixer",) + tuple(CELL_KEYS),
                                    required=False)
            for key in override:
                if key in shared:
                    raise self.error(f"{key!r} is shared by all stages (cell.shared); a stage cannot override it",
                                     path + ("cell", key))
            merged = {**cell, **override}
            paths = {k: (path + ("cell", k) if k in override else cell_paths[k]) for k in merged}
            self.cell_params(merged, paths, prefix, ("stages", i), prefix, {**shared_names, **names}, skip=set(shared))
            self.check_stage(prefix, path, f"{p}cell" if "mixer" in shared else prefix, paths, f"{p}cell")

        # head
        head, head_paths, head_path = self.part(data, family, "head", HEAD_KEYS)
        self.keys(head, head_path, HEAD_KEYS, f"{p}head", ("head",), f"{p}head", {}, head_paths)
        fpn = next(q for q in self.params if q.name == f"{p}head.fpn_stages")
        head_types = next(q for q in self.params if q.name == f"{p}head.type").domain.values()
        for v in (fpn.domain.values() if "fpn" in head_types else []):
            if v > len(stages):
                raise self.error(f"fpn_stages {v} exceeds the number of stages ({len(stages)})",
                                 head_paths.get("fpn_stages", head_path + ("fpn_stages",)))

        problem = class_token_problem(self.params, len(stages), p)
        if problem:
            message, where = problem
            raise self.error(message, (stem_paths if where[0] == "stem" else head_paths).get(where[1], where))
        return len(stages)

    def check_stage(self, prefix: str, path: tuple, mixer_scope: str, cell_paths: dict, cell_scope: str) -> None:
        """The stage's choices that depend on its mixers: a strided first cell, squeeze-excitation inside."""
        problem = stride_problem(self.params, prefix, mixer_scope)
        if problem:
            raise self.error(problem, path + ("downsample",))
        problem = se_inner_problem(self.params, prefix, mixer_scope, cell_scope)
        if problem:
            raise self.error(problem, cell_paths.get("se_place", ("cell", "se_place")))

    def cell_params(self, cell: dict, paths: dict, prefix: str, target: tuple, scope: str,
                    names: dict[str, str], *, only: set | None = None, skip: set = frozenset()) -> None:
        """Add a cell's parameters: the mixer production (and its options) first, then the other cell keys.
        ``paths``: where each key of ``cell`` was written (a key left out is named at ``cell``)."""

        def path_of(key):
            return paths.get(key, ("cell", key))

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
        self.param(mixer_name, Domain("categorical" if len(choices) > 1 else "fixed", tuple(choices)),
                   target + ("mixer", "type"), (), path, scope)
        names["mixer"] = mixer_name
        for name, options in productions.items():
            info = MIXERS[name]
            options = self.mapping(options, path + (name,), info.options, required=False)
            local = {**names}
            for key, option in info.options.items():
                raw_value = options.get(key, option.default)
                if isinstance(raw_value, dict) and "per_block" in raw_value:
                    self.per_block(raw_value, path + (name, key), f"{prefix}.{name}.{key}", option, target, scope,
                                   local, name, key)
                else:
                    self.add(f"{prefix}.{name}.{key}", raw_value, path + (name, key), option,
                             target + ("mixer", "options", key), scope, local, ("mixer", (name,)))
                local[key] = f"{prefix}.{name}.{key}"

    def per_block(self, raw: dict, path: tuple, base: str, option: Option, target: tuple, scope: str,
                  names: dict[str, str], production: str, key: str) -> None:
        """One choice per cell of the stage (``{values: [...], per_block: true}``): ``base`` for the first cell,
        ``base.b2`` ... for the others, each active while the stage's depth reaches it."""
        flag = raw["per_block"]
        if not isinstance(flag, bool):
            raise self.error("per_block must be true or false", path + ("per_block",))
        raw = {k: v for k, v in raw.items() if k != "per_block"}
        if not flag:
            self.add(base, raw, path, option, target + ("mixer", "options", key), scope, names,
                     ("mixer", (production,)))
            return
        if "depth" not in names or "*" in target:
            raise self.error("per_block needs the mixer and the depth chosen per stage (not in cell.shared)",
                             path + ("per_block",))
        depth = next(p for p in reversed(self.params) if p.name == names["depth"])
        depths = depth.domain.values()
        for k in range(max(depths)):
            extra = ((depth.name, tuple(d for d in depths if d > k)),) if k else ()
            self.add(base if k == 0 else f"{base}.b{k + 1}", raw, path, option,
                     target + ("per_block", key, k), scope, names, ("mixer", (production,)), extra)

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


def type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(type(value),
                                                                                         type(value).__name__)
