"""Backends: where a run's trials are evaluated. One small interface, so that starting and continuing a run exist
once (:mod:`nas.control.search`) for all of them:

    InProcess   the trials run in this process, one at a time (:meth:`nas.control.engine.Engine.run`)
    Workers     worker processes share the run's storage (:mod:`nas.control.workers`)
    Ray         a Ray Tune experiment over the run's own study, on a local runtime or a cluster
                (:mod:`nas.control.ray_run`)

A backend checks what it needs before anything is written (:meth:`Backend.check`), holds its runtime around the
drive (:meth:`Backend.session`), adds what it keeps in run.json (:meth:`Backend.run_meta`), refuses a run made by
another backend (:meth:`Backend.check_run`) and drives the engine to the run's target (:meth:`Backend.drive`).
"""
from __future__ import annotations

import contextlib
import math
import os
import socket
from typing import Any, Iterator, Mapping

from nas.control import ray_run
from nas.control.engine import Engine, Prepared
from nas.control.rundir import RunDir
from nas.control.workers import Parallel, run_parallel
from nas.errors import ConfigError, RunError

GPU_KEYS = ("gpus_per_trial", "ray.gpus_per_trial")  # Ray: a --set key, kept in run.json, not in the config


class Backend:
    """The in-process backend, and the defaults every backend shares."""

    name = "optuna"

    def take_overrides(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """The config overrides, less those the backend keeps for itself."""
        return dict(overrides or {})

    def check(self) -> None:
        """Checks that need no run (an address, a GPU): refused before anything is written."""

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        yield

    def run_meta(self) -> dict[str, Any]:
        return {}

    def where(self) -> str:
        """Added to the header line, e.g. ' on Ray (local)'."""
        return ""

    def check_run(self, run: RunDir) -> None:
        if run.meta.get("backend") == "ray":
            raise RunError("this run was made on Ray; continue it with --backend ray or nas resume",
                           file=str(run.path))

    def on_continue(self, run: RunDir, engine: Engine) -> str:
        """What a continued run does before driving (re-enqueue the trials a dead process left); a note for the
        header."""
        stale = engine.recover_stale()
        return f"; {len(stale)} stale trial(s) re-enqueued: {', '.join(f'#{n}' for n in stale)}" if stale else ""

    def drive(self, engine: Engine, run: RunDir, prepared: Prepared, header: str, quiet: bool) -> None:
        engine.run(trials=engine.config.trials, time_budget_s=engine.config.time_budget_s, header=header)


InProcess = Backend


class Workers(Backend):
    """Worker processes sharing the run's storage, under this process (which holds the run's lock)."""

    def __init__(self, parallel: Parallel):
        self.parallel = parallel

    def drive(self, engine: Engine, run: RunDir, prepared: Prepared, header: str, quiet: bool) -> None:
        run_parallel(engine, run, parallel=self.parallel, header=header)


class Joined(Backend):
    """This process as one of the workers of a run on a database server (``nas worker``), beside processes on other
    hosts: every ask is claimed and counted in the storage (:mod:`nas.control.shared`)."""

    def where(self) -> str:
        return f" as a worker on {socket.gethostname()} (pid {os.getpid()})"


class Ray(Backend):
    """A Ray Tune experiment; ``address`` joins a cluster (None: a local runtime for the call)."""

    name = "ray"

    def __init__(self, address: str | None = None):
        self.address = address
        self.gpus: float | None = None

    def take_overrides(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        overrides = dict(overrides or {})
        self.gpus = pop_gpus(overrides)
        return overrides

    def check(self) -> None:
        ray_run.check_address(self.address)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        started = ray_run.start_ray(self.address)  # an unreachable cluster fails here
        try:
            yield
        finally:
            ray_run.stop_ray(started)

    def run_meta(self) -> dict[str, Any]:
        return {"backend": "ray", "ray": {"gpus_per_trial": self.gpus or 0.0, "experiments": []}}

    def where(self) -> str:
        return f" on Ray ({self.address or 'local'})"

    def check_run(self, run: RunDir) -> None:
        if run.meta.get("backend") != "ray":
            raise RunError("this run was made by the optuna backend; continue it without --backend ray",
                           file=str(run.path))

    def on_continue(self, run: RunDir, engine: Engine) -> str:
        if self.gpus is not None:
            run.meta.setdefault("ray", {})["gpus_per_trial"] = self.gpus
            run.save_meta()
        return ""  # stale trials are re-enqueued by the driver before each new experiment

    def drive(self, engine: Engine, run: RunDir, prepared: Prepared, header: str, quiet: bool) -> None:
        ray_run.drive(run, engine, prepared, header=header, quiet=quiet)


def choose(backend: str = "optuna", *, ray_address: str | None = None, parallel: Parallel | None = None,
           ray_run_found: bool = False) -> Backend:
    """The backend a search asks for: Ray when named, when an address is given or when continuing a Ray run;
    worker processes with ``parallel``; this process otherwise."""
    if backend == "ray" or ray_address is not None or ray_run_found:
        if parallel is not None:
            raise ConfigError("--workers / --trials-per-gpu are for the optuna backend; on Ray, every trial is a "
                              "Ray task (set Ray's resources instead)", key="--workers")
        return Ray(ray_address)
    if backend != "optuna":
        raise ConfigError(f"unknown backend {backend!r} (known: optuna, ray)", key="--backend")
    return Workers(parallel) if parallel is not None else InProcess()


def pop_gpus(overrides: dict) -> float | None:
    """Take ``gpus_per_trial`` out of the overrides (GPUs per Ray trial, fractions allowed); None when not given."""
    gpus = None
    for key in GPU_KEYS:
        if key in overrides:
            value = overrides.pop(key)
            try:
                gpus = float(value)
            except (TypeError, ValueError):
                gpus = -1.0
            if not (gpus >= 0 and math.isfinite(gpus)):
                raise RunError(f"must be a number of GPUs >= 0 (fractions allowed), got {value!r}", key=key)
    return gpus


__all__ = ["Backend", "InProcess", "Workers", "Joined", "Ray", "choose", "pop_gpus"]
