"""The front door of a search: ``search`` starts or continues a run, ``resume`` continues one, each driving the
engine (:mod:`nas.control.engine`) through a backend: this process, worker processes sharing the storage
(:mod:`nas.control.workers`) or a Ray Tune experiment (:mod:`nas.control.ray_run`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from nas.control.engine import Engine, Prepared, add_warm_starts, prepare
from nas.control.ray_run import ray_resume, ray_search
from nas.control.rundir import CONFIG_FILE, SPACE_FILE, RunDir, check_name, normalize_storage
from nas.control.runs import (
    check_study_name_free,
    is_ray_run,
    keep_sampler,
    locate_run,
    new_run,
    resume_header,
    save_config,
    search_header,
)
from nas.control.workers import run_parallel
from nas.errors import ConfigError
from nas.io import now

# ---------------------------------------------------------------------------------------------------------------
# Entry points (the CLI and nas.search / nas.resume call these)
# ---------------------------------------------------------------------------------------------------------------


def search(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *,
           name: str | None = None, runs_dir: str | Path = "runs", resume: bool = False,
           storage: str | None = None, quiet: bool = False, parallel=None, backend: str = "optuna",
           ray_address: str | None = None):
    """Start a run (or continue it with ``resume=True``); return the ``optuna.Study``. ``parallel``: a
    :class:`nas.control.workers.Parallel` (worker processes sharing the storage) instead of this process.
    ``backend="ray"``: a Ray Tune experiment (:mod:`nas.control.ray_run`; ``ray_address`` joins a cluster)."""
    if name is not None:
        check_name(name)  # an empty --name is a mistake, not "use the config's name"
    if backend == "ray" or ray_address is not None or is_ray_run(Path(runs_dir), name, resume):
        if parallel is not None:
            raise ConfigError("--workers / --trials-per-gpu are for the optuna backend; on Ray, every trial is a "
                              "Ray task (set Ray's resources instead)", key="--workers")

        return ray_search(source, overrides, name=name, runs_dir=runs_dir, resume=resume, storage=storage,
                          quiet=quiet, address=ray_address)
    if backend != "optuna":
        raise ConfigError(f"unknown backend {backend!r} (known: optuna, ray)", key="--backend")
    prepared = prepare(source, overrides, warm=False)
    name, path, fingerprint, existing = locate_run(prepared, name=name, runs_dir=runs_dir, resume=resume,
                                                   storage=storage)
    if existing is not None:
        return _continue(existing, prepared, quiet=quiet, snapshot=True, parallel=parallel)
    add_warm_starts(prepared)
    storage_url = normalize_storage(storage) if storage else None
    engine = Engine(prepared, quiet=quiet)  # data, device, proxies: all checked before anything is written
    if storage_url is not None:
        check_study_name_free(storage_url, name)
    run = new_run(prepared, name, path, fingerprint, storage_url)
    run.lock()
    try:
        engine.attach(run, create=True)
        _drive(engine, run, search_header(prepared, name, path) + engine.data_text(), parallel)
    finally:
        run.unlock()
    return engine.study


def resume(run_dir: str | Path, *, trials: int | None = None, time_budget_s: float | None = None,
           quiet: bool = False, parallel=None, ray_address: str | None = None):
    """Continue a run to its target (``trials`` raises or lowers the target and is saved in its config;
    ``time_budget_s`` limits this call only and is not saved). A run made on Ray (``run.json`` backend ``ray``) goes
    back through Ray."""
    run = RunDir.open(run_dir)
    if run.meta.get("backend") == "ray" or ray_address is not None:
        if parallel is not None:
            raise ConfigError("--workers / --trials-per-gpu are for the optuna backend; this run is a Ray run",
                              key="--workers")

        return ray_resume(run_dir, trials=trials, time_budget_s=time_budget_s, quiet=quiet, address=ray_address)
    overrides: dict[str, Any] = {}
    if trials is not None:
        overrides["trials"] = trials
    if time_budget_s is not None:
        overrides["time_budget_s"] = time_budget_s
    prepared = prepare(run.path / CONFIG_FILE, overrides, space_file=run.path / SPACE_FILE)
    return _continue(run, prepared, quiet=quiet, snapshot=trials is not None, parallel=parallel,
                     call_time_budget_s=time_budget_s)


def _continue(run: RunDir, prepared: Prepared, *, quiet: bool, snapshot: bool, parallel=None,
              call_time_budget_s: float | None = None):
    keep_sampler(run, prepared)
    engine = Engine(prepared, quiet=quiet)
    run.lock()
    try:
        for repair in run.repair_journal():  # a damaged last line is refused here, one inside by the load below
            run.log(f"{now()} {repair}")
        engine.attach(run, create=False)
        if snapshot:  # after the load: a run whose storage cannot be read is left as it was
            save_config(run, prepared.config, call_time_budget_s)
        stale = engine.recover_stale()
        note = f"; {len(stale)} stale trial(s) re-enqueued: {', '.join(f'#{n}' for n in stale)}" if stale else ""
        _drive(engine, run, resume_header(prepared, run) + note, parallel)
    finally:
        run.unlock()
    return engine.study


def _drive(engine: Engine, run: RunDir, header: str, parallel) -> None:
    """Run the trials in this process, or in worker processes (``parallel``, see :mod:`nas.control.workers`)."""
    if parallel is None:
        engine.run(trials=engine.config.trials, time_budget_s=engine.config.time_budget_s, header=header)
        return

    run_parallel(engine, run, parallel=parallel, header=header)


