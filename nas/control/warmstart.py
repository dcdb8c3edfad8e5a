"""Warm start: architectures a new run trains first, before its sampler proposes anything.

A practitioner rarely starts from nothing: there is a ResNet that works, or the winner of last month's search. The
run config's ``warm_start`` lists such architectures::

    warm_start: [baselines]                 # every hand-designed baseline of the space (search_spaces/baselines)
    warm_start: [mobilenetv2, efficientnet_b0]   # baselines by name
    warm_start: [exports/knee, arch.json]   # an export folder or arch.json (nas export), or a spec file (.json/.yaml)

Each entry becomes an enqueued trial (``optuna.Study.enqueue_trial`` with the grammar parameters that produce it and
user attr ``warm_start`` = its label) when the run is created, so it is trained and stored like any other trial,
on both backends and with any sampler. The samplers then learn from it: the predictor and evolution mutate it if
it is on the front, NSGA-II breeds from it, TPE models it. A resumed run does not enqueue them again.

Every entry is checked before anything is written: a name that is no baseline of the space, a file that is not a
spec, a spec that the grammar cannot produce (naming the key that does not fit) are one-line errors naming the
config line of ``warm_start``. Entries that are the same architecture are enqueued once.

Relative paths are read relative to the config file's folder, then the working directory.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.archjson import read_spec
from nas.errors import ConfigError, NasError
from nas.grammar import RandomSuggest

ALL_BASELINES = "baselines"
ATTR = "warm_start"


@dataclass(frozen=True)
class WarmStart:
    label: str
    params: dict[str, Any]  # the grammar's parameter values that produce the spec
    spec_hash: str


def resolve(entries: list[str], space: Any, space_path: Path | None, config_file: Path | None) -> list[WarmStart]:
    """The warm-start trials of ``entries`` (see the module docstring), each checked against ``space``."""
    if not entries:
        return []
    baselines = _baselines(space, space_path)
    found: list[WarmStart] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        key = f"warm_start.{i}"
        for label, spec, file in _specs(entry, baselines, space, config_file, key):
            try:
                params = space.assignment(spec, file=file)
                replayed = space.replay(params)
            except NasError as e:
                raise ConfigError(f"warm start {label!r} is not in space {space.name!r}: {e.one_line()}",
                                  key=key) from None
            if replayed.hash() != spec.hash():  # the grammar would train something else: refuse, do not guess
                raise ConfigError(f"warm start {label!r}: space {space.name!r} reproduces it as "
                                  f"{replayed.hash()} instead of {spec.hash()}", key=key)
            if spec.hash() in seen:
                continue
            seen.add(spec.hash())
            found.append(WarmStart(label, params, spec.hash()))
    return found


def zero_cost_warm_up(space: Any, scorer: Any, candidates: int, keep: int, *, seed: int) -> list[WarmStart]:
    """The zero-cost warm-up of a new run (config ``zero_cost_warmup``; Abdelfattah et al. 2021): ``candidates``
    distinct random specs of the space (drawn from ``seed``) scored by ``scorer`` (``warmup_proxy``: naswot or
    synflow, named by the scorer's ``__name__``), the best ``keep`` as the
    run's first trials, best first. A spec that does not build or scores no finite value is left out; one that
    breaks the run's constraints is found so by its trial, as any trial is (the predictor's own warm-up screens its
    candidates first)."""
    rng = random.Random(seed * 7_919 + 17)
    scored, seen = [], set()
    for _ in range(4 * candidates + 8):
        if len(seen) >= candidates:
            break
        spec = space.sample(RandomSuggest(rng))
        if spec.hash() in seen:
            continue
        seen.add(spec.hash())
        try:
            score = float(scorer(spec))
        except Exception:  # noqa: BLE001 - a candidate that does not build is no warm-up trial
            continue
        if math.isfinite(score):
            scored.append((score, len(scored), spec))
    scored.sort(key=lambda row: (-row[0], row[1]))
    name = getattr(scorer, "__name__", "score")
    return [WarmStart(f"zero-cost warm-up: {name} {rank} of {len(scored)}", space.assignment(spec), spec.hash())
            for rank, (_, _, spec) in enumerate(scored[:keep], 1)]


def enqueue(study, warm: list[WarmStart]) -> None:
    """Enqueue the warm-start trials of a new run, in order (they are the run's first trials)."""
    for w in warm:
        study.enqueue_trial(dict(w.params), user_attrs={ATTR: w.label}, skip_if_exists=False)


def _baselines(space: Any, space_path: Path | None) -> dict[str, Any]:
    """The space's baselines: those already loaded, else read (as :meth:`nas.grammar.Space.load` does) from the
    ``baselines/`` folder beside its file."""
    if not space.baselines and space_path is not None:
        try:
            space.load_baselines(space_path.parent / "baselines")
        except NasError as e:
            raise ConfigError(f"warm start: cannot read the space's baselines: {e.one_line()}",
                              key="warm_start") from None
    return dict(space.baselines)


def _specs(entry: Any, baselines: dict[str, Any], space: Any, config_file: Path | None, key: str):
    """(label, spec, file) for one entry."""
    if not isinstance(entry, str) or not entry.strip():
        raise ConfigError(f"a warm start is a baseline name or a spec file, got {entry!r}", key=key)
    entry = entry.strip()
    if entry == ALL_BASELINES:
        if not baselines:
            raise ConfigError(f"space {space.name!r} has no baselines to warm-start from", key=key)
        return [(name, spec, None) for name, spec in sorted(baselines.items())]
    looks_like_path = "/" in entry or Path(entry).suffix in (".json", ".yaml", ".yml")
    if not looks_like_path:
        if entry not in baselines:
            known = ", ".join(sorted(baselines)) or "none"
            raise ConfigError(f"unknown warm start {entry!r}: not a baseline of space {space.name!r} (its baselines: "
                              f"{known}; or give a spec file or export folder)", key=key)
        return [(entry, baselines[entry], None)]
    path = _find(entry, config_file)
    if path is None:
        raise ConfigError(f"warm start {entry!r}: no such file or folder", key=key)
    try:
        return [(entry, _read_spec(path), str(path))]
    except NasError as e:
        raise ConfigError(f"warm start {entry!r}: {e.one_line()}", key=key) from None


def _find(entry: str, config_file: Path | None) -> Path | None:
    raw = Path(entry).expanduser()
    candidates = [raw] if raw.is_absolute() else (
        ([config_file.parent / raw] if config_file is not None else []) + [Path.cwd() / raw])
    return next((c.resolve() for c in candidates if c.exists()), None)


def _read_spec(path: Path):
    """A spec from an export folder, an exported arch.json, or a bare spec file (.json / .yaml)."""
    return read_spec(path)[0]
