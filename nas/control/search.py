"""The front door of a search: ``search`` starts or continues a run, ``resume`` continues one. Both go through one
path for every backend (:mod:`nas.control.backends`: this process, worker processes sharing the storage, or a Ray
Tune experiment), which drives the engine (:mod:`nas.control.engine`) to the run's target."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from nas.control.backends import Backend, choose
from nas.control.engine import Engine, Prepared, add_warm_starts, prepare
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
from nas.control.workers import Parallel
from nas.io import now


def search(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *,
           name: str | None = None, runs_dir: str | Path = "runs", resume: bool = False,
           storage: str | None = None, quiet: bool = False, parallel: Parallel | None = None, backend: str = "optuna",
           ray_address: str | None = None):
    """Start a run (or continue it with ``resume=True``); return the ``optuna.Study``. ``parallel``: a
    :class:`nas.control.workers.Parallel` (worker processes sharing the storage) instead of this process.
    ``backend="ray"``: a Ray Tune experiment (:mod:`nas.control.ray_run`; ``ray_address`` joins a cluster)."""
    if name is not None:
        check_name(name)  # an empty --name is a mistake, not "use the config's name"
    chosen = choose(backend, ray_address=ray_address, parallel=parallel,
                    ray_run_found=is_ray_run(Path(runs_dir), name, resume))
    prepared = prepare(source, chosen.take_overrides(overrides), warm=False)
    name, path, fingerprint, existing = locate_run(prepared, name=name, runs_dir=runs_dir, resume=resume,
                                                   storage=storage)
    if existing is not None:
        return continue_run(existing, prepared, chosen, quiet=quiet, snapshot=True)
    add_warm_starts(prepared)
    storage_url = normalize_storage(storage) if storage else None
    chosen.check()
    engine = Engine(prepared, quiet=quiet)  # data, device, proxies: all checked before anything is written
    if storage_url is not None:
        check_study_name_free(storage_url, name)
    with chosen.session():  # a Ray cluster that cannot be joined fails here, before the run folder exists
        run = new_run(prepared, name, path, fingerprint, storage_url, **chosen.run_meta())
        run.lock()
        try:
            engine.attach(run, create=True)
            header = search_header(prepared, name, path, chosen.where()) + engine.data_text()
            chosen.drive(engine, run, prepared, header, quiet)
        finally:
            run.unlock()
    return engine.study


def resume(run_dir: str | Path, *, trials: int | None = None, time_budget_s: float | None = None,
           quiet: bool = False, parallel: Parallel | None = None, ray_address: str | None = None):
    """Continue a run to its target (``trials`` raises or lowers the target and is saved in its config;
    ``time_budget_s`` limits this call only and is not saved). A run made on Ray (``run.json`` backend ``ray``) goes
    back through Ray."""
    run = RunDir.open(run_dir)
    chosen = choose("optuna", ray_address=ray_address, parallel=parallel,
                    ray_run_found=run.meta.get("backend") == "ray")
    overrides: dict[str, Any] = {}
    if trials is not None:
        overrides["trials"] = trials
    if time_budget_s is not None:
        overrides["time_budget_s"] = time_budget_s
    prepared = prepare(run.path / CONFIG_FILE, overrides, space_file=run.path / SPACE_FILE)
    return continue_run(run, prepared, chosen, quiet=quiet, snapshot=trials is not None,
                        call_time_budget_s=time_budget_s)


def continue_run(run: RunDir, prepared: Prepared, backend: Backend, *, quiet: bool, snapshot: bool,
                 call_time_budget_s: float | None = None):
    """Continue ``run`` on ``backend`` (every backend, ``search --resume`` and ``resume`` alike): its journal
    repaired if its last line is torn, its config snapshot rewritten when the target changed, then driven on."""
    backend.check_run(run)
    backend.check()
    keep_sampler(run, prepared)
    engine = Engine(prepared, quiet=quiet)
    run.lock()
    try:
        with backend.session():
            for repair in run.repair_journal():  # a damaged last line is refused here, one inside by the load below
                run.log(f"{now()} {repair}")
            engine.attach(run, create=False)
            if snapshot:  # after the load: a run whose storage cannot be read is left as it was
                save_config(run, prepared.config, call_time_budget_s)
            note = backend.on_continue(run, engine)
            backend.drive(engine, run, prepared, resume_header(prepared, run, backend.where()) + note, quiet)
    finally:
        run.unlock()
    return engine.study
