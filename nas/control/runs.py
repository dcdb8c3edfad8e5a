"""A search run's folder through its life: where a new run goes (refusing to clobber or mix runs), its snapshots and
header lines, and what a continued run keeps (its sampler, its stored config). Both backends use these."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.control.config import RunConfig, describe_changes, dump_config
from nas.control.engine import Prepared
from nas.control.pick import NO_RANK
from nas.control.rundir import CONFIG_FILE, SPACE_FILE, RunDir, check_name, normalize_storage
from nas.errors import NasError, RunError
from nas.grammar import Space
from nas.io import now, read_text


def locate_run(prepared: Prepared, *, name: str | None, runs_dir: str | Path, resume: bool,
               storage: str | None) -> tuple[str, Path, dict[str, Any], RunDir | None]:
    """Where a new search goes, for both backends: (name, path, fingerprint, the existing run when resuming).

    Refuses an existing run without ``resume``, a config change that would invalidate its trials (saying what
    changed), another storage than the run's, and a non-empty folder that is not a run. Writes nothing."""
    config, file = prepared.config, prepared.config_file
    name = check_name(name or config.name or (file.stem if file is not None else "search"))
    path = Path(runs_dir) / name
    fingerprint = config.fingerprint(prepared.space.fingerprint())
    if RunDir.is_run(path):
        if not resume:
            raise RunError(f"run {name!r} already exists; add --resume to continue it (or `nas resume {path}`), "
                           "or choose another --name", file=str(path))
        run = RunDir.open(path)
        stored = dict(run.meta.get("fingerprint", {}))
        if "space" in stored and same_space(run, prepared.space):
            stored["space"] = fingerprint["space"]
        changes = describe_changes(stored, fingerprint)
        if changes:
            raise RunError("the config changes settings that would invalidate the run's trials: "
                           + "; ".join(changes) + " (start a new run with another --name)", file=str(path))
        if storage is not None and normalize_storage(storage) != run.meta.get("storage"):
            raise RunError(f"the run keeps its trials in {run.storage_url}, not {storage}", key="--storage")
        return name, path, fingerprint, run
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunError("exists and is not a run directory (no run.json); choose another --name or --runs-dir",
                       file=str(path))
    return name, path, fingerprint, None


def same_space(run: RunDir, space) -> bool:
    """Whether ``space`` is the run's space up to comments and layout: the run's fingerprint holds the hash of
    ``space``'s canonical form, or the run's own copy of its space (space.yaml, what `nas resume` searches) parses to
    the same canonical form. The second way covers runs made before spaces were fingerprinted by their canonical
    form (their run.json holds a hash of the file's text), and canonical forms that a later version words
    differently."""
    if run.meta.get("fingerprint", {}).get("space") == space.fingerprint():
        return True
    try:
        return Space.load(run.path / SPACE_FILE, with_baselines=False).canonical() == space.canonical()
    except NasError:  # an unreadable copy: the fingerprint alone decides
        return False


def new_run(prepared: Prepared, name: str, path: Path, fingerprint: dict[str, Any], storage_url: str | None,
            **meta: Any) -> RunDir:
    """The run folder of a new search (both backends): config and space snapshots, run.json (plus ``meta``).
    The sampler, the pick rule and the leader's evaluations are resolved into the config snapshot (a default becomes
    a value), so the run keeps them."""
    prepared.config.sampler = prepared.config.sampler_name
    prepared.config.rank_with = prepared.config.rank_with_name
    prepared.config.confirm_best = prepared.config.confirm_best_n
    prepared.config.warmup_proxy = prepared.config.warmup_proxy_name
    prepared.config.zero_cost_warmup = prepared.config.zero_cost_warmup_n
    run = RunDir.create(path, study_name=name, storage=storage_url, config_text=dump_config(prepared.config),
                        space_text=prepared.space_text, space_source=prepared.space_source, fingerprint=fingerprint)
    if meta:
        run.meta.update(meta)
        run.save_meta()
    return run


def search_header(prepared: Prepared, name: str, path: Path, where: str = "") -> str:
    """The first line of a new search (progress and search.log); ``where``: e.g. " on Ray (local)"."""
    config = prepared.config
    warm = (f"; warm start: {len(prepared.warm)} trial(s) first: {', '.join(w.label for w in prepared.warm)}"
            if prepared.warm else "")
    return (f"{now()} search {name}{where}: space {prepared.space.name}, dataset {config.dataset}, objectives "
            f"{', '.join(config.objectives)}, sampler {config.sampler_name}, {target_text(config)} -> {path}{warm}")


def resume_header(prepared: Prepared, run: RunDir, where: str = "") -> str:
    return f"{now()} resume {run.study_name}{where}: {target_text(prepared.config)}"


def keep_sampler(run: RunDir, prepared: Prepared) -> None:
    """A continued run keeps its sampler unless the config names one: the one in its config snapshot (a new run's
    default is resolved into it), or for a run made before that (``sampler: null``) the default of that time:
    NSGA-II with several objectives, TPE with one."""
    if prepared.config.sampler is not None:
        return
    stored = stored_config(run).get("sampler")
    prepared.config.sampler = stored or ("nsga2" if len(prepared.config.objectives) >= 2 else "tpe")


def keep_pick(run: RunDir, prepared: Prepared) -> None:
    """A continued run keeps the settings :func:`new_run` resolved (its pick rule ``rank_with``, ``zero_cost_warmup``,
    ``warmup_proxy``, ``confirm_best``) unless the config names them: the ones in its config snapshot, or for a run
    made before a key was stored, what it ran with: ``none`` (the best first objective), no warm-up, ``naswot``, 1
    (no repeats)."""
    config = prepared.config
    unset = None in (config.rank_with, config.zero_cost_warmup, config.warmup_proxy, config.confirm_best)
    stored = stored_config(run) if unset else {}  # the snapshot, read once
    if config.rank_with is None:
        config.rank_with = stored.get("rank_with") or NO_RANK
    if config.zero_cost_warmup is None:
        value = stored.get("zero_cost_warmup")
        config.zero_cost_warmup = value if isinstance(value, int) and value >= 0 else 0
    if config.warmup_proxy is None:
        config.warmup_proxy = stored.get("warmup_proxy") or "naswot"
    if config.confirm_best is None:
        value = stored.get("confirm_best")
        config.confirm_best = value if isinstance(value, int) and value >= 1 else 1


def stored_config(run: RunDir) -> dict[str, Any]:
    """The run's config snapshot as raw data, unvalidated ({} when it cannot be read: the caller's defaults hold)."""
    import yaml

    try:
        data = yaml.safe_load(read_text(run.path / CONFIG_FILE))
    except (NasError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def save_config(run: RunDir, config: RunConfig, call_time_budget_s: float | None = None) -> None:
    """Rewrite the run's config snapshot (a resume's new target). A time budget given for one call is not saved:
    the stored one stays (both backends)."""
    saved = config.model_copy()
    if call_time_budget_s is not None:
        saved.time_budget_s = stored_config(run).get("time_budget_s")
    (run.path / CONFIG_FILE).write_text(dump_config(saved))


def is_ray_run(runs_dir: Path, name: str | None, resume: bool) -> bool:
    """``search --resume`` of an existing run made on Ray (the name given explicitly) continues on Ray."""
    if not resume or not name:
        return False
    try:
        return RunDir.open(runs_dir / name).meta.get("backend") == "ray"
    except NasError:
        return False


def target_text(config: RunConfig) -> str:
    parts = []
    if config.trials is not None:
        parts.append(f"{config.trials} trials")
    if config.time_budget_s is not None:
        parts.append(f"time budget {config.time_budget_s:g} s")
    return " / ".join(parts)


def check_study_name_free(url: str, name: str) -> None:
    import optuna

    try:
        names = optuna.study.get_all_study_names(storage=url)
    except Exception as e:  # noqa: BLE001
        raise RunError(f"cannot open storage {url!r}: {type(e).__name__}: {e}", key="--storage") from None
    if name in names:
        raise RunError(f"storage {url} already holds a study named {name!r}; choose another --name",
                       key="--storage")
