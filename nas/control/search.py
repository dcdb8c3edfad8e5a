"""The front door of a search: ``search`` starts or continues a run, ``resume`` continues one. Both go through one
path for every backend (:mod:`nas.control.backends`: this process, worker processes sharing the storage, or a Ray
Tune experiment), which drives the engine (:mod:`nas.control.engine`) to the run's target."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Mapping

from nas.control.backends import Backend, Joined, choose
from nas.control.engine import Engine, Prepared, add_warm_starts, prepare
from nas.control.rundir import CONFIG_FILE, SPACE_FILE, RunDir, check_name, normalize_storage
from nas.control.shared import DEFAULT_HEARTBEAT_S, check_heartbeat, is_server, published
from nas.control.runs import (
    check_study_name_free,
    is_ray_run,
    keep_pick,
    keep_sampler,
    locate_run,
    new_run,
    resume_header,
    save_config,
    search_header,
)
from nas.control.workers import Parallel
from nas.errors import RunError
from nas.io import now


def search(source: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *,
           name: str | None = None, runs_dir: str | Path = "runs", resume: bool = False,
           storage: str | None = None, quiet: bool = False, parallel: Parallel | None = None, backend: str = "optuna",
           ray_address: str | None = None, heartbeat_s: int | None = None):
    """Start a run (or continue it with ``resume=True``); return the ``optuna.Study``. ``parallel``: a
    :class:`nas.control.workers.Parallel` (worker processes sharing the storage) instead of this process.
    ``backend="ray"``: a Ray Tune experiment (:mod:`nas.control.ray_run`; ``ray_address`` joins a cluster).
    ``heartbeat_s``: on a database server (which ``nas worker`` on other hosts can join), the seconds between the
    heartbeats of a running trial (:mod:`nas.control.shared`)."""
    if name is not None:
        check_name(name)  # an empty --name is a mistake, not "use the config's name"
    if heartbeat_s is not None:
        heartbeat_s = check_heartbeat(heartbeat_s)
        if not is_server(storage):
            raise RunError("heartbeats are for a run on a database server (--storage postgresql://... or mysql://...), "
                           "which workers on other hosts can join", key="--heartbeat")
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
        meta = chosen.run_meta()
        if is_server(storage_url):
            meta["heartbeat_s"] = heartbeat_s or DEFAULT_HEARTBEAT_S
        run = new_run(prepared, name, path, fingerprint, storage_url, **meta)
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
    prepared = prepare(run.path / CONFIG_FILE, given(trials=trials, time_budget_s=time_budget_s),
                       space_file=run.path / SPACE_FILE)
    return continue_run(run, prepared, chosen, quiet=quiet, snapshot=trials is not None,
                        call_time_budget_s=time_budget_s)


def continue_run(run: RunDir, prepared: Prepared, backend: Backend, *, quiet: bool, snapshot: bool,
                 call_time_budget_s: float | None = None):
    """Continue ``run`` on ``backend`` (every backend, ``search --resume`` and ``resume`` alike): its journal
    repaired if its last line is torn, its config snapshot rewritten when the target changed, then driven on."""
    backend.check_run(run)
    backend.check()
    keep_sampler(run, prepared)
    keep_pick(run, prepared)
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


def join(source: str, *, study: str | None = None, name: str | None = None, runs_dir: str | Path = "runs",
         data_dir: str | None = None, time_budget_s: float | None = None, quiet: bool = False):
    """``nas worker``: take trials of a run kept on a database server, from any host, until its target is reached.

    ``source`` is the storage URL (the run's settings are read from the storage itself: ``study`` names the run
    when the storage holds several) or a worker's run folder made by an earlier call. The worker keeps a run folder
    of its own (``<runs_dir>/<name>``, default ``<study>-<host>``: config and space snapshots, search.log, run.json
    pointing at the shared storage), so ``nas report`` and ``nas export`` work from it too. ``data_dir``: where this
    host keeps the data (saved in the worker's config snapshot)."""
    if "://" not in source:
        run = RunDir.open(source)
        if not is_server(run.storage_url):
            raise RunError("is a run on a journal or SQLite file, which only this host reaches; continue it with "
                           "`nas resume` (or --workers N)", file=str(run.path))
    else:
        if not is_server(source):
            raise RunError(f"storage {source!r} is a file; workers on several hosts need a database server "
                           "(postgresql://... or mysql://...); on one host use --workers N", key="storage")
        study_name, settings = published(source, study)
        if settings.get("backend", "optuna") != "optuna":
            raise RunError(f"run {study_name!r} is driven by Ray; add nodes to its Ray cluster instead", key="--study")
        name = check_name(name or f"{study_name}-{socket.gethostname()}")
        path = Path(runs_dir) / name
        if RunDir.is_run(path):
            run = RunDir.open(path)
            if run.storage_url != source or run.study_name != study_name:
                raise RunError(f"is the folder of run {run.study_name!r} in {run.storage_url}; choose another --name",
                               file=str(path))
        elif path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunError("exists and is not a run directory; choose another --name or --runs-dir", file=str(path))
        else:
            run = RunDir.create(path, study_name=study_name, storage=source, config_text=settings["config"],
                                space_text=settings["space"], space_source=settings.get("space_source", ""),
                                fingerprint=settings["fingerprint"])
            run.meta.update(role="worker", heartbeat_s=int(settings.get("heartbeat_s", DEFAULT_HEARTBEAT_S)))
            run.save_meta()
    prepared = prepare(run.path / CONFIG_FILE, given(data_dir=data_dir, time_budget_s=time_budget_s),
                       space_file=run.path / SPACE_FILE)
    if data_dir is not None:
        save_config(run, prepared.config, time_budget_s)
    return continue_run(run, prepared, Joined(), quiet=quiet, snapshot=False)


def given(**values: Any) -> dict[str, Any]:
    """The config overrides of a call: the values given (not None)."""
    return {key: value for key, value in values.items() if value is not None}
