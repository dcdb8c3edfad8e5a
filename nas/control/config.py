"""Run configurations: the YAML file a search starts from (``experiments/*.yaml``), validated by pydantic.

A run config names everything a search needs::

    space: vision                    # a shipped space name, or a path (relative to this file, then the cwd)
    dataset: digits                  # any name nas.data knows (digits, mnist, fashion_mnist, cifar10, mnist:rows ...)
    data_dir: null                   # default $NAS_DATA_DIR or ~/.cache/nas/data
    train_subset: null               # cap on the training pool (class-balanced)
    objectives: [accuracy, latency_ms]  # accuracy maximised; val_loss and the costs minimised
    constraints: {max_latency_ms: 5, max_params: 200000, max_flops: 5000000}
    budget: {epochs: 2, batch_size: 32}  # the fields of nas.budget.Budget
    rungs: [0.5]                     # optional multi-fidelity checks, as fractions of budget.epochs
    sampler: predictor               # tpe | nsga2 | random | gp | evolution | predictor
                                     # (default: predictor with >= 2 objectives, tpe with 1; with
                                     # evaluator nb201 tpe also when every cost is params / flops)
    candidates: 16                   # predictor: candidates ranked per trial
    fresh_candidates: 16             # predictor: of which newly screened per trial (the others kept from earlier)
    mutate_share: 1.0                # predictor: share of new candidates that are one-choice mutations of a Pareto
                                     # front member (the rest are random samples of the grammar)
    end_share: 0.5                   # predictor: share of those mutations whose parent is an end of the front (the
                                     # best trial in one objective), not any front member
    zero_cost_warmup: 0              # the sampler's random startup trials become the top of this many random
                                     # candidates ranked by a zero-cost proxy (0: off; default: 64 with
                                     # evaluator nb201 and every cost counted (params / flops) or sampler
                                     # predictor, not for nsga2; 0 otherwise)
    warmup_proxy: naswot             # that proxy: naswot (on the training images) or synflow (needs no data;
                                     # the default of a tabular evaluator, which loads no images)
    rank_with: naswot                # the trial the run picks (nas export's default): the best mean rank under the
                                     # first objective and this zero-cost proxy; none: the best first objective
                                     # (default: naswot with one objective, proxy training and naswot recorded)
    confirm_best: 3                  # one objective: the leading architecture is evaluated again (independent
                                     # seeds) until it has this many evaluations, and the run picks by the mean
                                     # (1: off; default 3 with evaluator nb201, 1 otherwise)
    confirm_share: 0.2               # at most this share of the counted trials are such repeats
    confirm_after: 0.5               # and they begin once this share of `trials` is counted
    trials: 16                       # and/or time_budget_s
    seed: 0
    device: auto                     # training device
    latency_device: cpu
    train_threads: 1                 # torch CPU threads for the whole search (training, proxies); null: torch's
    warm_start: [baselines]          # trained first (a new run): the space's baselines, names, or spec / export files

A search on a shared CPU should set ``train_threads`` to at most the free cores: oversubscribed torch threads
spin and make e.g. the float64 synflow proxy ten times slower.

Every error is a one-line :class:`~nas.errors.ConfigError` naming the file, line and key. Overrides (``--set
key=value``, ``--trials`` ...) are applied to the raw data before validation, so they are checked the same way;
an error in an overridden key names the override instead of a line.

This module does not import torch or optuna.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, Literal, Mapping, get_type_hints

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from nas.budget import Budget
from nas.catalog import LATENCY_RUNTIMES, ZERO_COST_DEFAULT
from nas.control.pick import NO_RANK
from nas.control.samplers import SAMPLERS
from nas.errors import BudgetError, ConfigError, plain_message, unknown_key
from nas.grammar import shipped_spaces_dir
from nas.io import load_yaml, read_text
from nas.objectives import OBJECTIVES, direction
from nas.plugins import load_plugins

# Keys whose change would make the trials already in a run incomparable with new ones.
INVALIDATING = ("space", "dataset", "val_fraction", "train_subset", "objectives", "constraints", "budget", "rungs",
                "rung_keep")
LATENCY_KEYS = ("latency_device", "latency_batch_size", "latency_threads")
# latency settings added later: in a fingerprint only when not at their default, so runs made before keep theirs
LATENCY_LATER = {"latency_runtime": "torch", "latency_source": "measured"}
BUDGET_LATER = {"depth": 1.0, "width": 1.0}  # budget fields added later, and their defaults
DEVICE = re.compile(r"cpu|cuda(:\d+)?")  # the devices training and latency run on (torch.device strings)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _check_budget(self):
    try:
        Budget(**self.model_dump())
    except BudgetError as e:  # the ranges are Budget's own (one validation per fact); "@key:" names the field
        raise ValueError(f"@{e.key}: {e.message}") from None
    return self


# The run config's ``budget:`` mapping: Budget's fields and defaults, typed for pydantic (unknown keys and types),
# ranges checked by Budget itself.
BudgetConfig = create_model(
    "BudgetConfig", __config__=ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False),
    __validators__={"check_budget": model_validator(mode="after")(_check_budget)},
    **{f.name: (get_type_hints(Budget)[f.name], f.default) for f in dataclass_fields(Budget)})


class Constraints(_Strict):
    max_latency_ms: float | None = Field(default=None, gt=0)
    max_params: int | None = Field(default=None, ge=1)
    max_flops: int | None = Field(default=None, ge=1)

    def active(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class RunConfig(_Strict):
    """A validated run configuration (plain data; ``eval_options`` gives the evaluator's settings)."""

    name: str | None = None
    description: str = ""
    space: str
    dataset: str = "digits"
    data_dir: str | None = None
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    train_subset: int | None = Field(default=None, ge=2)
    objectives: list[str] = Field(default_factory=lambda: ["accuracy", "latency_ms"], min_length=1)
    constraints: Constraints = Field(default_factory=Constraints)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    rungs: list[float] | None = None
    rung_keep: float = Field(default=0.5, gt=0, le=1)
    rung_min_trials: int = Field(default=3, ge=1)
    sampler: str | None = None
    population_size: int | None = Field(default=None, ge=2)
    tournament_size: int | None = Field(default=None, ge=1)
    candidates: int = Field(default=16, ge=1)  # predictor: candidates ranked per trial
    fresh_candidates: int | None = Field(default=None, ge=1)  # predictor: new ones screened per trial (the rest kept)
    mutate_share: float = Field(default=1.0, ge=0, le=1)  # predictor: new candidates that mutate a front member
    end_share: float = Field(default=0.5, ge=0, le=1)  # predictor: of those, the ones mutating an end of the front
    zero_cost_warmup: int | None = Field(default=None, ge=0, le=100_000)  # see zero_cost_warmup_n
    warmup_proxy: Literal["naswot", "synflow"] | None = None  # the warm-up's proxy (see warmup_proxy_name)
    confirm_best: int | None = Field(default=None, ge=1, le=10)  # evaluations of the leader (see confirm_best_n)
    confirm_share: float = Field(default=0.2, gt=0, le=1)  # most of the counted trials that are repeats
    confirm_after: float = Field(default=0.5, ge=0, lt=1)  # repeats begin after this share of `trials`
    trials: int | None = Field(default=None, ge=1)
    time_budget_s: float | None = Field(default=None, gt=0)
    seed: int = Field(default=0, ge=0, le=2**31 - 2)  # numpy / Optuna samplers take seeds below 2**32; room to derive
    device: str = "auto"
    latency_device: str = "cpu"
    latency_batch_size: int = Field(default=1, ge=1)
    latency_repeats: int = Field(default=30, ge=1)
    latency_warmup: int = Field(default=5, ge=0)
    latency_threads: int = Field(default=1, ge=1)
    latency_min_time_s: float = Field(default=0.5, ge=0, le=60)
    latency_runtime: Literal[LATENCY_RUNTIMES] = "torch"  # what runs the network while it is timed
    latency_source: Literal["measured", "table"] = "measured"  # table: predicted from latency_table's parts
    latency_table: str | None = None  # a table of `nas latency-table` (a path; relative: to the working directory)
    train_threads: int | None = Field(default=None, ge=1)
    zero_cost: bool | list[str] = True
    rank_with: str | None = None  # the run's pick: a zero-cost proxy to rank with, or "none" (see rank_with_name)
    warm_start: list[str] = Field(default_factory=list)  # trained first: baselines by name, "baselines", spec files
    evaluator: str = "proxy"  # a name in nas.evaluate.evaluators.EVALUATORS (checked when the run is prepared)
    plugins: list[str] = Field(default_factory=list)  # user modules imported before validation (nas.plugins)

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in OBJECTIVES:
                raise ValueError(f"unknown objective {name!r} (known: {', '.join(OBJECTIVES)})")
        if len(set(value)) != len(value):
            raise ValueError("an objective is listed twice")
        return value

    @field_validator("warm_start", mode="before")
    @classmethod
    def _warm_start(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # `warm_start: resnet` is a list of one

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE.fullmatch(value) and value != "auto":
            raise ValueError(f"unknown training device {value!r} (auto, cpu, cuda or cuda:N)")
        return value

    @field_validator("latency_device")
    @classmethod
    def _latency_device(cls, value: str) -> str:
        if not DEVICE.fullmatch(value):
            raise ValueError(f"unknown latency device {value!r} (cpu, cuda or cuda:N)")
        return value

    @field_validator("sampler")
    @classmethod
    def _sampler(cls, value: str | None) -> str | None:
        if value is not None and value not in SAMPLERS:
            raise ValueError(SAMPLERS.unknown(value))
        return value

    @field_validator("rungs")
    @classmethod
    def _rungs(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return None
        for r in value:
            if not 0 < r < 1:
                raise ValueError(f"a rung is a fraction of budget.epochs in (0, 1), got {r}")
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError("rungs must be strictly increasing")
        return value or None

    @model_validator(mode="after")
    def _whole(self):
        if self.trials is None and self.time_budget_s is None:
            raise ValueError("@trials: give trials and/or time_budget_s (when to stop)")
        if self.rungs and "accuracy" not in self.objectives:
            raise ValueError("@rungs: rungs prune on validation accuracy, which is not among the objectives")
        if self.fresh_candidates is not None and self.fresh_candidates > self.candidates:
            raise ValueError(f"@fresh_candidates: {self.fresh_candidates} new candidates per trial is more than the "
                             f"{self.candidates} ranked per trial (candidates)")
        if (self.latency_source == "table") != (self.latency_table is not None):
            raise ValueError("@latency_table: latency_table (a file of `nas latency-table`) is given exactly when "
                             "latency_source is table")
        if self.rank_with not in (None, NO_RANK) and self.rank_with not in self.zero_cost_names:
            raise ValueError(f"@rank_with: {self.rank_with} is not among the zero-cost proxies the trials record "
                             f"({', '.join(self.zero_cost_names) or 'none: zero_cost is off'}); add it to zero_cost "
                             "or pick with rank_with: none")
        if (self.confirm_best or 1) > 1 and len(self.objectives) > 1:
            raise ValueError(f"@confirm_best: confirming the leader needs one objective (it ranks architectures by "
                             f"the first); this run has {len(self.objectives)}: {', '.join(self.objectives)}")
        return self

    # -- derived --------------------------------------------------------------------------------------------------
    @property
    def directions(self) -> list[str]:
        return [direction(o) for o in self.objectives]

    @property
    def sampler_name(self) -> str:
        """The sampler this config runs: its own, else the default, ``predictor`` with several objectives (measured:
        experiments/results/sample_efficiency.md) and ``tpe`` with one. On NAS-Bench-201's table (``evaluator:
        nb201``) several objectives whose costs are all counted exactly (``params``, ``flops``) get ``tpe``: with the
        table's warm-up it finds a larger front there than the predictor (docs/benchmarks.md). A new run stores the
        resolved name."""
        if self.sampler:
            return self.sampler
        if len(self.objectives) == 1 or (self.on_table and self.costs_counted):
            return "tpe"
        return "predictor"

    @property
    def costs_counted(self) -> bool:
        """Whether every objective after the first is counted exactly before any training (``params``, ``flops``;
        true for one objective): the table's warm-up and TPE defaults hold there."""
        return set(self.objectives[1:]) <= {"params", "flops"}

    @property
    def zero_cost_names(self) -> tuple[str, ...]:
        """The zero-cost proxies each trial records."""
        if self.zero_cost is True:
            return ZERO_COST_DEFAULT
        return tuple(self.zero_cost) if isinstance(self.zero_cost, list) else ()

    @property
    def rank_with_name(self) -> str:
        """How the run picks its trial (:mod:`nas.control.pick`): its own ``rank_with``, else the default: ``naswot``
        for accuracy (or the validation loss) alone with proxy training (the default evaluator) recording naswot,
        where the mean rank of the short training's score and NASWOT ranks architectures better than the score alone
        (measured: docs/benchmarks.md, "Which trial a run picks", and on NAS-Bench-201 0.689 / 0.714 against 0.593 /
        0.632 for accuracy / loss, experiments/results/nb201_fidelity_width.md), and ``none`` (the best first
        objective) otherwise. A new run stores the resolved value."""
        if self.rank_with is not None:
            return self.rank_with
        if (self.objectives in (["accuracy"], ["val_loss"]) and self.evaluator == "proxy"
                and "naswot" in self.zero_cost_names):
            return "naswot"
        return NO_RANK

    @property
    def on_table(self) -> bool:
        """Whether the run looks its trials up in NAS-Bench-201's table (``evaluator: nb201``) instead of training
        them: the defaults below differ there (the config does not import the evaluators, so the name is checked)."""
        return self.evaluator == "nb201"

    @property
    def zero_cost_warmup_n(self) -> int:
        """How many random candidates the zero-cost warm-up ranks (0: none): its own ``zero_cost_warmup``, else 64
        on NAS-Bench-201's table (``evaluator: nb201``, ranked by synflow, which needs no data) where every cost is
        counted (:attr:`costs_counted`: one objective, or params / FLOPs) or the sampler is ``predictor``, unless the
        sampler is ``nsga2``; 0 otherwise. Measured (docs/benchmarks.md): it puts the default sampler ahead of
        Optuna's TPE after 25 and 50 trials with one objective, lifts TPE's and the predictor's fronts of accuracy
        against params and the predictor's front against latency (its runs otherwise often never reach the accurate
        end); it did not help TPE's front against latency, and it fills NSGA-II's first generation with the
        best-scored cells alone (its front after 50 trials fell). A new run stores the resolved value."""
        if self.zero_cost_warmup is not None:
            return self.zero_cost_warmup
        wanted = self.costs_counted or self.sampler_name == "predictor"
        return 64 if self.on_table and wanted and self.sampler_name != "nsga2" else 0

    @property
    def warmup_proxy_name(self) -> str:
        """The zero-cost proxy ``zero_cost_warmup`` ranks candidates by: its own ``warmup_proxy``, else ``synflow``
        for a tabular evaluator (``nb201``: it loads no images, and synflow scores an all-ones input) and ``naswot``
        (on the run's proxy batch of training images) otherwise. A new run stores the resolved name."""
        return self.warmup_proxy or ("synflow" if self.on_table else "naswot")

    @property
    def confirm_best_n(self) -> int:
        """How many evaluations the leading architecture gets (:mod:`nas.control.confirm`): its own
        ``confirm_best``, else the default: 3 for one objective on NAS-Bench-201's table (``evaluator: nb201``, whose
        three training seeds disagree by up to a few tenths of a percent), where it doubles how often a run picks
        the best cell (docs/benchmarks.md), and 1 (off) otherwise. A new run stores the resolved value."""
        if self.confirm_best is not None:
            return self.confirm_best
        return 3 if self.on_table and len(self.objectives) == 1 else 1

    @property
    def confirm_start(self) -> int:
        """How many counted trials come before the first repeat: ``confirm_after`` of ``trials`` (0 without a trial
        target: a time-budgeted run confirms from the start)."""
        return int(self.confirm_after * self.trials) if self.trials else 0

    def budget_obj(self) -> Budget:
        return Budget(**self.budget.model_dump())

    def eval_options(self) -> dict[str, Any]:
        """The keyword arguments of :meth:`nas.evaluate.evaluate.EvalConfig.from_options` for this run."""
        return dict(
            dataset=self.dataset, data_dir=self.data_dir, val_fraction=self.val_fraction,
            train_subset=self.train_subset, budget=self.budget.model_dump(), seed=self.seed, device=self.device,
            latency_device=self.latency_device, latency_batch_size=self.latency_batch_size,
            latency_repeats=self.latency_repeats, latency_warmup=self.latency_warmup,
            latency_threads=self.latency_threads, latency_min_time_s=self.latency_min_time_s,
            latency_runtime=self.latency_runtime, latency_source=self.latency_source,
            latency_table=self.latency_table, train_threads=self.train_threads,
            zero_cost=self.zero_cost_names)

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def fingerprint(self, space_key: str) -> dict[str, Any]:
        """The values that, when changed, invalidate a run's trials; the space is ``space_key``, the hash of its
        canonical form (:meth:`nas.grammar.Space.fingerprint`: comments and layout do not count)."""
        data = self.to_data()
        found = {k: data[k] for k in INVALIDATING if k != "space"}
        found["budget"] = budget_data(found["budget"])
        found["space"] = space_key
        if self.evaluator != "proxy":  # runs of the default evaluator keep the fingerprint they always had
            found["evaluator"] = self.evaluator
        if "latency_ms" in self.objectives or self.constraints.max_latency_ms is not None:
            for key in LATENCY_KEYS:
                found[key] = data[key]
            found.update({k: data[k] for k, default in LATENCY_LATER.items() if data[k] != default})
        return found

    def budget_key(self) -> str:
        """Identifies the budget a result was obtained with (for reusing results of repeated specs)."""
        data = {"budget": budget_data(self.budget.model_dump()), "dataset": self.dataset,
                "train_subset": self.train_subset, "val_fraction": self.val_fraction, "rungs": self.rungs}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def budget_data(budget: dict[str, Any]) -> dict[str, Any]:
    """A budget as fingerprints and budget keys hold it: a field added later (``depth``, ``width``) only when not at its
    default, so the runs made before keep their fingerprints and reuse keys."""
    return {k: v for k, v in budget.items() if not (k in BUDGET_LATER and v == BUDGET_LATER[k])}


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Readable 'key: old -> new' items for every leaf that differs between two fingerprints."""
    changes: list[str] = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        elif a != b:
            if prefix == "space":
                changes.append("space (its content differs)")
            else:
                changes.append(f"{prefix} ({_short(a)} -> {_short(b)})")

    old, new = dict(old), dict(new)
    if "latency_device" in old and "latency_device" in new:  # a later setting at its default is left out
        for key, default in LATENCY_LATER.items():
            old.setdefault(key, default)
            new.setdefault(key, default)
    for key in LATENCY_KEYS:  # latency settings matter only while latency is measured for an objective/constraint
        if key not in old or key not in new:
            old.pop(key, None)
            new.pop(key, None)
    walk(old, new, "")
    return changes


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------------------------------
# Loading, with overrides
# ---------------------------------------------------------------------------------------------------------------


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``["budget.epochs=2", "sampler=tpe"]`` -> ``{"budget.epochs": 2, "sampler": "tpe"}`` (values are YAML)."""
    found: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set needs key=value, got {item!r}", key="--set")
        try:
            found[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            found[key] = raw
    return found


def apply_overrides(data: dict, overrides: Mapping[str, Any]) -> tuple[dict, set[tuple]]:
    """Apply dotted-key overrides (a mapping value merges into a mapping); return the data and overridden paths."""
    data = copy.deepcopy(data)
    touched: set[tuple] = set()
    for key, value in overrides.items():
        path = tuple(key.split("."))
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"cannot set {key!r}: {'.'.join(path[:i + 1])} is not a mapping", key=key)
            node = child
        last = path[-1]
        if isinstance(value, Mapping) and isinstance(node.get(last), dict):
            node[last] = {**node[last], **copy.deepcopy(dict(value))}
            touched.update(path + (k,) for k in value)
        else:
            node[last] = copy.deepcopy(value)
            if isinstance(value, Mapping):
                touched.update(path + (k,) for k in value)
        touched.add(path)
    return data, touched


def locate(error, file: Path | None, overrides: Mapping[str, Any] | None = None) -> ConfigError:
    """Turn an error about a config key found after loading (unknown dataset, proxy ...) into a ConfigError
    naming the file and line of that key (or the override that set it)."""
    key = getattr(error, "key", None)
    message = getattr(error, "message", str(error))
    if not key or getattr(error, "file", None):
        return error if isinstance(error, ConfigError) else ConfigError(error.one_line())
    path = tuple(int(p) if p.isdigit() else p for p in key.split("."))  # list items are keyed by index
    lines: dict = {}
    if file is not None:
        try:
            _, lines = load_yaml(read_text(file, error=ConfigError), file=str(file), error=ConfigError)
        except ConfigError:
            lines = {}
    touched = {tuple(k.split(".")) for k in (overrides or {})}
    return _located(message, path, file, lines, touched)


def load_config(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> \
        tuple[RunConfig, Path | None]:
    """Load and validate a run config from a YAML path or a mapping; return it and its file (None for a mapping)."""
    file: Path | None = None
    lines: dict = {}
    if isinstance(source, Mapping):
        data: Any = copy.deepcopy(dict(source))
    else:
        file = Path(source)
        data, lines = load_yaml(read_text(file, error=ConfigError, what="run config"), file=str(file),
                                error=ConfigError)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("a run config must be a mapping of keys (space, dataset, objectives, ...)",
                          file=str(file) if file else None, line=1 if file else None)
    what = None  # a space or a spec given as a run config: it was "missing key 'space'" or "unknown key 'input'"
    if "format" in data and "spec" in data:
        what = "an exported architecture"
    elif ("stages" in data or "families" in data) and not any(key in data for key in ("dataset", "objectives",
                                                                                      "budget", "trials")):
        stages = data.get("stages")
        spec = "cell" not in data and "families" not in data and isinstance(stages, list) and all(
            isinstance(st, dict) and "mixer" in st for st in stages)
        what = "an architecture spec" if spec else "a search space"
    if what:
        raise ConfigError(f"is {what}, not a run config (a run config names its space: space: vision or a file; see "
                          "experiments/*.yaml)", file=str(file) if file else None)
    data, lines = latency_block(data, lines, file)
    data, touched = apply_overrides(data, overrides or {})
    if data.get("plugins"):  # before validation: a plugin may add an objective, a dataset or a block
        if any(("plugins",) == path[:1] for path in touched):
            load_plugins(data["plugins"])
        else:
            load_plugins(data["plugins"], file=str(file) if file else None, lines=lines)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as e:
        raise _config_error(e, file, lines, touched) from None
    return config, file


LATENCY_BLOCK = ("source", "table", "runtime", "device", "threads", "batch_size", "repeats", "warmup", "min_time_s")


def latency_block(data: dict, lines: dict, file: Path | None) -> tuple[dict, dict]:
    """A run config's ``latency: {source, table, runtime, ...}`` block as the flat keys ``latency_source``, ... (the
    form a run stores); a line number of the block's key serves the flat key's errors."""
    if "latency" not in data:
        return data, lines
    where = str(file) if file else None
    block = data["latency"]
    if not isinstance(block, dict):
        raise ConfigError("latency must be a mapping (source, table, runtime, device, threads, ...)", file=where,
                          line=lines.get(("latency",)), key="latency")
    data, lines = {k: v for k, v in data.items() if k != "latency"}, dict(lines)
    for key, value in block.items():
        line = lines.get(("latency", key))
        if key not in LATENCY_BLOCK:
            raise ConfigError(unknown_key(key, LATENCY_BLOCK), file=where, line=line, key=f"latency.{key}")
        if f"latency_{key}" in data:
            raise ConfigError(f"given twice: as latency.{key} and as latency_{key}", file=where, line=line,
                              key=f"latency.{key}")
        data[f"latency_{key}"] = value
        if line is not None:
            lines[(f"latency_{key}",)] = line
    return data, lines


def _config_error(error: ValidationError, file: Path | None, lines: dict, touched: set[tuple]) -> ConfigError:
    first = error.errors()[0]
    loc = tuple(first.get("loc", ()))
    message = plain_message(first)
    kind = first.get("type", "")
    if message.startswith("@"):  # a whole-model check naming its key: "@key: message"
        key, _, message = message[1:].partition(": ")
        loc = loc + (key,)
    if kind == "extra_forbidden":
        parent = loc[:-1]
        model = RunConfig
        for part in parent:
            field = model.model_fields.get(part)
            annotation = getattr(field, "annotation", None)
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
            if model is None:
                break
        message = unknown_key(loc[-1], model.model_fields) if model is not None else f"unknown key {loc[-1]!r}"
    elif kind == "missing":
        message = f"missing key {loc[-1]!r}"
    elif "input" in first and kind not in ("value_error",):
        message = f"{message} (got {_short(first['input'])})"
    # list items: name the list key, point at the item's line
    return _located(message, loc, file, lines, touched)


def _located(message: str, loc: tuple, file: Path | None, lines: dict, touched: set[tuple]) -> ConfigError:
    key = ".".join(str(p) for p in loc) or None
    overridden = any(loc[:n] in touched for n in range(len(loc), 0, -1))
    if overridden:
        return ConfigError(f"{message} (from an override)", key=key)
    line = None
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            line = lines[loc[:n]]
            break
    return ConfigError(message, file=str(file) if file else None, line=line, key=key)


def resolve_space_path(space: str, config_file: Path | None) -> Path:
    """A shipped name (vision, mobile, sequence) or a path relative to the config file's folder, then the cwd."""
    candidates = []
    raw = Path(space).expanduser()
    if raw.is_absolute():
        candidates.append(raw)
    else:
        if config_file is not None:
            candidates.append(config_file.parent / raw)
        candidates.append(Path.cwd() / raw)
        if raw.suffix == "" and "/" not in space:
            candidates.append(shipped_spaces_dir() / f"{space}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(f"space {space!r} is neither a shipped space (vision, mobile, sequence) nor a file",
                      key="space")


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_data(), sort_keys=False, default_flow_style=None, width=120)


def budget_fields() -> list[str]:
    return list(BudgetConfig.model_fields)


__all__ = ["RunConfig", "load_config", "locate", "parse_set", "apply_overrides", "describe_changes",
           "resolve_space_path", "dump_config", "OBJECTIVES", "SAMPLERS", "budget_fields"]
