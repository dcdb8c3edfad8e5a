"""The Ray backend: the same trials as :mod:`nas.control.search`, run as a Ray Tune experiment.

``nas search CONFIG --backend ray [--ray-address HOST:PORT]`` / ``nas resume RUN`` (on a Ray run).

* **Search**: a ``Tuner`` with ``OptunaSearch`` over the same define-by-run space
  (``space.sample(OptunaSuggest(trial))``, the captured parameters are the trial's config) and the run's own sampler
  (:func:`nas.control.samplers.make_sampler`). ``OptunaSearch`` is given the run's Optuna **storage and study name**,
  so every Ray trial *is* a trial of the run's study (no mirroring): the spec attrs (``spec``, ``spec_hash``,
  ``summary``, ``budget_key``) are set when the spec is sampled, and the result attrs (``status``, ``reason``,
  ``objectives``, ``cost``, ``curve``, ``zero_cost``, ``training``, ``wall_s``, ``input_shape``, ``precheck``,
  ``val_correct``) when the trial completes, with the same COMPLETE / PRUNED (infeasible, stopped by the scheduler) /
  FAIL states. So ``nas report`` and ``nas export`` read a Ray run as they read an Optuna run. Every trial that ran
  on Ray also carries ``ray_trial_id``, ``ray_node`` (the address and id of the node it ran on last) and
  ``ray_nodes`` (every node it ran on, in order: a trial retried after a node was lost names both).
* **Trainable**: runs on a Ray worker for every spec not evaluated before (see *No repeats*); it rebuilds the spec
  from the config (``Space.replay``), checks the constraints before training, and calls the same
  :func:`nas.evaluate.evaluate.evaluate`. Each validation is reported (``tune.report``: ``epoch``,
  ``rung_accuracy``, with every objective as NaN: :func:`tune_metrics`, as Tune's strict metric check wants); the
  final report carries the objectives, the state and the attrs (as JSON).
* **Multi-fidelity**: with ``rungs`` in the config, an ``ASHAScheduler`` on ``rung_accuracy`` (time attr
  ``epoch``, ``grace_period = rungs[0] * budget.epochs``, ``reduction_factor = 1 / rung_keep``, ``max_t =
  budget.epochs``): ASHA's rungs are geometric from the first configured rung. A trial it stops is told PRUNED
  (status ``pruned``, its curve so far). Without rungs: FIFO.
* **Actors**: ``TuneConfig(reuse_actors=True)``: a worker process that finished a trial runs the next one, so
  torch is imported and the data loaded once per worker (the Engine is cached per process and run config), not
  once per trial; every evaluation seeds itself, so a reused process gives the same result as a fresh one.
* **Resources**: ``{"cpu": 1, "gpu": gpus_per_trial}`` per trial (``tune.with_resources``); ``gpus_per_trial``
  (fractional allowed) comes from the override ``--set gpus_per_trial=0.25`` (also ``ray.gpus_per_trial``), which is
  taken out before the config is validated and kept in ``run.json`` (key ``ray``), so a resume uses it again.
* **Failures**: ``FailureConfig(max_failures=2)``: a trial whose worker dies (or raises) is retried; after that it
  is told FAIL (status ``error``).
* **Stopping**: the searcher returns ``Searcher.FINISHED`` once counted + running trials reach the target (read
  from ``ray/control.json`` in the run, rewritten by every call) or the time budget is spent (no new trial starts
  after it), so ``num_samples`` is unbounded and a resume can raise the target.
* **Resume**: the run's Ray experiments live under ``RUN/ray/tune-N`` (``RunConfig(storage_path=RUN/ray)``). If the
  last one was cut short, ``Tuner.restore(path, trainable, resume_errored=True)`` continues it; after it (or if it
  had finished) trials still RUNNING in the study are marked FAIL + stale and re-enqueued (as the Optuna backend
  does) and, while the target is not reached, a new experiment ``tune-N+1`` continues over the same study (the
  sampler sees all earlier trials).
* **Ray runtime**: without an address a local one (``num_cpus=2``, no dashboard) is started and shut down at the
  end; with one the driver joins that cluster (checked with a TCP connect first: an unreachable address is a
  one-line error and nothing is written). A process that already has Ray initialised uses that session.
* **No repeats**: when the searcher samples a spec that a COMPLETE trial of the study (not itself a reuse) already
  evaluated at the same budget (same ``spec_hash`` and ``budget_key``), it tells the new Optuna trial COMPLETE at
  once with that trial's values, its result attrs and ``reused_from`` (as :meth:`nas.control.engine.Engine._trial`
  does), logs a ``reused`` line, and samples again for the same Ray trial. The repeat never becomes a Ray trial (no
  worker slot, no process start), and the lookup runs on the driver, which holds the storage, so it also works when
  the workers cannot reach it (a journal file on a cluster). A reused trial counts toward the target and has no
  ``ray_trial_id``. As on the Optuna backend, a spec whose first evaluation is still running is trained again.

Not done on this backend: the ``rung_min_trials`` rule (ASHA's own rule applies instead), the live display (one
plain line per trial instead). Ray itself is imported only inside this module's functions.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from nas.control.config import load_config
from nas.control.engine import (
    Engine,
    Prepared,
    clean_attrs,
    copied_attrs,
    outcome,
)
from nas.control.progress import front_report, resume_hint
from nas.control.rundir import RunDir
from nas.control.states import counted, in_use
from nas.control.suggest import OptunaSuggest
from nas.errors import BuildError, NasError, RunError, SpecError
from nas.grammar import Space
from nas.io import now

RAY_DIR = "ray"
CONTROL_FILE = "control.json"
MAX_FAILURES = 2
LOCAL_CPUS = 2


# ---------------------------------------------------------------------------------------------------------------
# The Ray runtime
# ---------------------------------------------------------------------------------------------------------------


def check_address(address: str | None) -> None:
    """A quick TCP connect to HOST:PORT (``ray://HOST:PORT`` too), so a wrong address fails in seconds."""
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RunError(f"{address!r} is not HOST:PORT (e.g. 127.0.0.1:6379)", key="--ray-address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except OSError as e:
        raise RunError(f"cannot reach a Ray cluster at {address}: {e.strerror or e}", key="--ray-address") from None


AUTH_TOKEN_FILE = Path("~/.ray/auth_token")


def auth_hint(message: str, token_file: Path = AUTH_TOKEN_FILE) -> str:
    """What to say about Ray's token authentication when joining failed: a cluster started with token authentication
    refuses a client that does not send the token, and Ray's own error says only that it failed to connect."""
    mode = os.environ.get("RAY_AUTH_MODE", "")
    token = Path(token_file).expanduser().is_file() or bool(os.environ.get("RAY_AUTH_TOKEN"))
    if "auth" in message.lower() or (token and mode != "token"):
        found = f"; a token is in {token_file}" if Path(token_file).expanduser().is_file() else ""
        return (f" (if the cluster uses token authentication, set RAY_AUTH_MODE=token in this shell{found}; the "
                "token comes from ~/.ray/auth_token or RAY_AUTH_TOKEN)")
    return ""


def start_ray(address: str | None) -> bool:
    """Join ``address`` or start a local runtime; True when this call started (and must stop) the session."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING,
                              "configure_logging": True}
    if address and address != "local":
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = LOCAL_CPUS
    try:
        ray.init(**kwargs)
    except Exception as e:  # noqa: BLE001 - ConnectionError, RuntimeError, version mismatch ...
        try:
            ray.shutdown()
        except Exception:  # noqa: BLE001
            pass
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f"join the Ray cluster at {address}" if kwargs.get("address") else "start a local Ray runtime"
        raise RunError(f"cannot {where}: {first}{auth_hint(str(e))}",
                       key="--ray-address" if kwargs.get("address") else None) from None
    return True


def stop_ray(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()


# ---------------------------------------------------------------------------------------------------------------
# The driver: experiments until the target is reached
# ---------------------------------------------------------------------------------------------------------------


def drive(run: RunDir, engine, prepared, *, header: str, quiet: bool) -> None:
    """Ray Tune experiments over the run's study until its target is reached (a cut-short one is restored first)."""
    config = prepared.config
    ray_dir = (run.path / RAY_DIR).resolve()
    ray_dir.mkdir(exist_ok=True)
    meta = run.meta.setdefault("ray", {})
    meta.setdefault("experiments", [])
    deadline = time.time() + config.time_budget_s if config.time_budget_s is not None else None
    control = {"trials": config.trials, "deadline": deadline}
    (ray_dir / CONTROL_FILE).write_text(json.dumps(control))
    _say(run, header, quiet)
    if config.confirm_best > 1:  # the searcher asks Optuna for each trial itself; the engine's repeats are not there
        _say(run, f"{now()} note: confirm_best {config.confirm_best} is not applied on Ray: every architecture is "
                  "evaluated once, and the run picks by one evaluation each", quiet)
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C raises here; `nas resume` restores the experiment
    reason = "done"

    def count() -> int:
        return sum(1 for t in engine.study.get_trials(deepcopy=False) if counted(t))

    try:
        while True:
            experiments = meta["experiments"]
            last = experiments[-1] if experiments else None
            restore = last is not None and not last.get("done") and _can_restore(ray_dir / last["name"])
            if not restore:
                stale = engine.recover_stale()
                if stale:
                    _say(run, f"{now()} {len(stale)} stale trial(s) re-enqueued: "
                              + ", ".join(f"#{n}" for n in stale), quiet)
                if config.trials is not None and count() >= config.trials:
                    break
                if deadline is not None and time.time() >= deadline:
                    reason = "time budget reached"
                    break
                last = {"name": f"tune-{len(experiments) + 1}", "done": False}
                experiments.append(last)
                run.save_meta()
            before = count()
            _say(run, f"{now()} ray experiment {last['name']}" + (" (restored)" if restore else ""), quiet)
            _fit(run, engine, prepared, ray_dir, last["name"], restore=restore, quiet=quiet)
            last["done"] = True
            run.save_meta()
            if count() == before and not restore:
                reason = "no trial could be started"
                break
    except KeyboardInterrupt:
        reason = "interrupted"
        raise
    finally:
        tally = [t for t in engine.study.get_trials(deepcopy=False) if counted(t)]
        complete = sum(t.state.name == "COMPLETE" for t in tally)
        hint = resume_hint(run.path) if reason == "interrupted" else ""
        _say(run, f"{now()} stop ({reason}): {len(tally)} trials counted, {complete} complete{hint}", quiet)
    text = front_report(engine.study, config.objectives, config.directions, config.rank_with)
    run.log(text)
    if not quiet:
        print(text, flush=True)


def _can_restore(path: Path) -> bool:
    from ray import tune

    try:
        return path.is_dir() and tune.Tuner.can_restore(str(path))
    except Exception:  # noqa: BLE001
        return False


def _fit(run: RunDir, engine, prepared, ray_dir: Path, name: str, *, restore: bool, quiet: bool) -> None:
    from ray import tune

    config = prepared.config
    gpus = float(run.meta.get("ray", {}).get("gpus_per_trial") or 0.0)
    payload = {"config": config.to_data(), "space_text": prepared.space_text, "space_source": prepared.space_source}
    trainable = tune.with_resources(tune.with_parameters(_trainable, payload=payload),
                                    {"cpu": 1, "gpu": gpus})
    if restore:
        tuner = tune.Tuner.restore(str(ray_dir / name), trainable=trainable, resume_errored=True)
    else:
        searcher = make_searcher(engine, prepared, ray_dir, quiet=quiet)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=make_scheduler(config), num_samples=-1,
                                       reuse_actors=True),
            run_config=tune.RunConfig(name=name, storage_path=str(ray_dir), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    tuner.fit()


def make_scheduler(config):
    """ASHA on per-validation accuracy when the config has rungs; FIFO otherwise."""
    if not config.rungs:
        return None
    from ray.tune.schedulers import ASHAScheduler

    epochs = float(config.budget.epochs)
    return ASHAScheduler(time_attr="epoch", metric="rung_accuracy", mode="max", max_t=epochs,
                         grace_period=config.rungs[0] * epochs, reduction_factor=max(1.0 / config.rung_keep, 1.01))


def make_searcher(engine, prepared, ray_dir: Path, *, quiet: bool):
    config = prepared.config
    return _searcher_class()(
        control_file=str(ray_dir / CONTROL_FILE), log_file=str(engine.run_dir.path.resolve() / "search.log"),
        objectives=list(config.objectives),
        space=DefineByRun(prepared.space, config.budget_key()), metric=list(config.objectives),
        mode=["max" if d == "maximize" else "min" for d in config.directions],
        sampler=engine.new_sampler(),
        study_name=engine.run_dir.study_name, storage=engine.storage)


_SEARCHER = None


def __getattr__(name: str):  # NasOptunaSearch is made on first use (Ray is imported only then); pickle finds it here
    if name == "NasOptunaSearch":
        return _searcher_class()
    raise AttributeError(name)


def _searcher_class():
    global _SEARCHER
    if _SEARCHER is not None:
        return _SEARCHER
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    class NasOptunaSearch(OptunaSearch):
        """OptunaSearch on the run's study, with the run's target and the controller's trial states and attrs."""

        def __init__(self, *, control_file: str, log_file: str, objectives: list[str], **kwargs):
            self._control_file = control_file
            self._log_file = log_file
            self._objectives = objectives
            super().__init__(**kwargs)

        def suggest(self, trial_id: str):
            while True:
                if trial_id not in self._ot_trials and self._finished():
                    return Searcher.FINISHED
                params = super().suggest(trial_id)
                ot_trial = self._ot_trials[trial_id]
                previous = self._evaluated_before(ot_trial)
                if previous is None:
                    ot_trial.set_user_attr("ray_trial_id", trial_id)
                    return params
                # no repeats: told COMPLETE with the stored result here, never becomes a Ray trial; sample again
                self._reuse(ot_trial, previous)
                del self._ot_trials[trial_id]

        def _finished(self) -> bool:
            control = json.loads(Path(self._control_file).read_text())
            if control.get("deadline") is not None and time.time() >= control["deadline"]:
                return True
            if control.get("trials") is not None:
                return in_use(self._ot_study.get_trials(deepcopy=False)) >= control["trials"]
            return False

        def _evaluated_before(self, ot_trial):
            """A COMPLETE trial (not itself a reuse) with the same spec hash and budget key, or None."""
            from optuna.trial import TrialState

            attrs = ot_trial.user_attrs
            spec_hash = attrs.get("spec_hash")
            if spec_hash is None:  # the spec could not be sampled: the trainable reports the error
                return None
            key = attrs.get("budget_key", "")
            for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                other = t.user_attrs
                if (other.get("spec_hash") == spec_hash and other.get("budget_key", "") == key
                        and "reused_from" not in other):
                    return t
            return None

        def _reuse(self, ot_trial, previous) -> None:
            """As :meth:`nas.control.engine.Engine._trial` does: ``reused_from`` + the result attrs, same values."""
            from optuna.trial import TrialState

            copied = copied_attrs(previous.user_attrs)
            values = list(previous.values)
            for key, value in {"reused_from": previous.number, **copied}.items():
                ot_trial.set_user_attr(key, value)
            self._ot_study.tell(ot_trial, values, state=TrialState.COMPLETE)
            line = _trial_line(ot_trial.number, "reused", values, self._objectives, {},
                               ot_trial.user_attrs.get("summary", "")) + f"  (= #{previous.number})"
            with open(self._log_file, "a") as f:
                f.write(line + "\n")
            print(line, flush=True)

        def on_trial_result(self, trial_id: str, result: dict):
            """Per validation: record the node the trial runs on (``ray_nodes``: every node it ran on, in order,
            so a trial Ray ran again elsewhere after a node was lost shows both); pruning is the scheduler's."""
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is not None:
                self._add_node(ot_trial, result)

        def _add_node(self, ot_trial, result: dict | None) -> None:
            if not (result or {}).get("nas_node"):
                return
            node = json.loads(result["nas_node"])
            nodes = list(ot_trial.user_attrs.get("ray_nodes") or [])
            if not nodes or nodes[-1] != node:
                try:
                    ot_trial.set_user_attr("ray_nodes", nodes + [node])
                except Exception:  # noqa: BLE001 - told already (a restored experiment): nothing to add
                    pass

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
            from optuna.trial import TrialState

            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            ot_trial = self._ot_trials[trial_id]
            self._completed_trials.add(trial_id)
            if self._ot_study._storage.get_trial(ot_trial._trial_id).state.is_finished():
                return  # told before the experiment was cut short (Ray restored it from an older checkpoint)
            self._add_node(ot_trial, result)
            state, values, attrs, constraints = ray_outcome(result, error, self._objectives)
            try:
                for key, amount in constraints.items():
                    ot_trial.set_constraint(key, amount)
                for key, value in attrs.items():
                    ot_trial.set_user_attr(key, value)
                self._ot_study.tell(ot_trial, values, state=getattr(TrialState, state))
            except Exception as e:  # noqa: BLE001 - one bad result must not stop the experiment
                attrs = {"status": "error", "reason": f"{type(e).__name__}: {e}"}
                state, values = "FAIL", None
                try:
                    ot_trial.set_user_attr("status", "error")
                    ot_trial.set_user_attr("reason", attrs["reason"][:500])
                    self._ot_study.tell(ot_trial, None, state=TrialState.FAIL)
                except Exception:  # noqa: BLE001 - already told
                    pass
            line = _trial_line(ot_trial.number, state, values, self._objectives, attrs,
                               ot_trial.user_attrs.get("summary", ""))
            with open(self._log_file, "a") as f:
                f.write(line + "\n")
            print(line, flush=True)  # one plain line per trial (no live display on Ray)

    NasOptunaSearch.__module__ = __name__
    NasOptunaSearch.__qualname__ = "NasOptunaSearch"
    _SEARCHER = NasOptunaSearch
    return _SEARCHER


class DefineByRun:
    """The define-by-run space for OptunaSearch: samples the spec, records its attrs, returns no constants (so the
    trial's config is exactly the sampled parameters)."""

    def __init__(self, space, budget_key: str):
        self.space = space
        self.budget_key = budget_key

    def __call__(self, trial):
        try:
            spec = self.space.sample(OptunaSuggest(trial))
        except NasError as e:
            trial.set_user_attr("sample_error", e.one_line())
            return None
        for key, value in (("spec", spec.to_json(indent=None)), ("spec_hash", spec.hash()),
                           ("summary", spec.summary()), ("budget_key", self.budget_key)):
            trial.set_user_attr(key, value)
        return None


def ray_outcome(result: dict | None, error: bool, objectives: list[str]
                ) -> tuple[str, list[float] | None, dict, dict]:
    """(state, values, user attrs, constraint amounts) of a finished Ray trial, from its last result. The node the
    trial ran on (last) is the user attr ``ray_node`` ({ip, id}); ``ray_nodes`` lists every node it ran on."""
    result = result or {}
    node = {"ray_node": json.loads(result["nas_node"])} if result.get("nas_node") else {}
    if result.get("nas_final"):
        attrs = json.loads(result.get("nas_attrs") or "{}")
        constraints = json.loads(result.get("nas_constraints") or "{}")
        state = result.get("nas_state", "FAIL")
        values = [float(result[o]) for o in objectives] if state == "COMPLETE" else None
        return state, values, {**attrs, **node}, constraints
    if error:
        return "FAIL", None, {"status": "error", "reason": f"Ray trial errored (after {MAX_FAILURES} retries)",
                              **node}, {}
    if "epoch" in result:
        attrs = {"status": "pruned", "curve": json.loads(result.get("nas_curve") or "[]"),
                 "reason": f"stopped by the ASHA scheduler after epoch {result['epoch']:g} "
                           f"(val accuracy {result.get('rung_accuracy', float('nan')):.4f})", **node}
        return "PRUNED", None, attrs, {}
    return "FAIL", None, {"status": "error", "reason": "Ray trial ended without a result"}, {}


def _trial_line(number: int, state: str, values, objectives, attrs: dict, summary: str) -> str:
    if values:
        shown = "  ".join(f"{o}={v:.4g}" for o, v in zip(objectives, values))
    else:
        shown = f"{attrs.get('status', '')}: {attrs.get('reason') or ''}"
    return f"{now()} #{number:<4d} {state.lower():<8s} {shown}  {summary}"


def _say(run: RunDir, line: str, quiet: bool) -> None:
    run.log(line)
    print(line, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The trainable (runs on a Ray worker)
# ---------------------------------------------------------------------------------------------------------------

_ENGINES: dict[str, Any] = {}


def _worker_engine(payload: dict):
    """One Engine (data loaded once) per worker process and run config."""
    key = json.dumps(payload["config"], sort_keys=True) + payload["space_text"]
    engine = _ENGINES.get(key)
    if engine is None:
        config, _ = load_config(payload["config"])
        space = Space.from_text(payload["space_text"], file=payload["space_source"])
        engine = Engine(Prepared(config, None, space, payload["space_text"], payload["space_source"]), quiet=True)
        _ENGINES.clear()
        _ENGINES[key] = engine
    return engine


def _trainable(params: dict, payload: dict) -> None:
    import torch
    from ray import tune

    engine = _worker_engine(payload)
    if engine.config.train_threads:
        torch.set_num_threads(engine.config.train_threads)
    objectives = engine.config.objectives
    node = json.dumps(this_node())  # in every report: a trial the scheduler stops records its node too
    state, values, attrs, constraints = run_trial(
        engine, dict(params),
        report=lambda result: tune.report({**tune_metrics(objectives), **result, "nas_node": node}))
    final = {"nas_final": True, "nas_state": state, "nas_attrs": json.dumps(attrs), "nas_node": node,
             "nas_constraints": json.dumps(constraints), "epoch": float(engine.config.budget.epochs)}
    curve = attrs.get("curve") or []
    accuracy = curve[-1].get("val_accuracy") if curve else None
    tune.report({**tune_metrics(objectives, values, accuracy), **final})


def this_node() -> dict:
    """The Ray node this process runs on: its address and node id (a trial's ``ray_node``)."""
    import ray

    return {"ip": ray.util.get_node_ip_address(), "id": ray.get_runtime_context().get_node_id()}


def tune_metrics(objectives: list[str], values: list[float] | None = None, accuracy: float | None = None) -> dict:
    """The metrics Ray Tune checks on every report (strict metric checking): the searcher's objectives and the
    scheduler's ``rung_accuracy``, with the values known at that report and NaN for those not known yet (an
    objective is only known when the trial completes; the searcher reads the final report only)."""
    nan = float("nan")
    metrics = {o: nan for o in objectives}
    if values is not None:
        metrics.update(zip(objectives, (float(v) for v in values)))
    metrics["rung_accuracy"] = float(accuracy) if isinstance(accuracy, (int, float)) and accuracy is not None else nan
    return metrics


def run_trial(engine, params: dict, *, report=None) -> tuple[str, list[float] | None, dict, dict]:
    """One trial of the controller without the study (the Engine's steps 3-5): (state, values, attrs, constraints).
    ``report(dict)`` is called after each validation with ``epoch``, ``rung_accuracy`` (before the last epoch)
    and the curve so far."""
    try:
        spec = engine.space.replay(params)
    except NasError as e:
        return "FAIL", None, {"status": "error", "reason": e.one_line()}, {}
    epochs = float(engine.config.budget.epochs)
    curve: list[dict] = []

    def callback(stats) -> bool:
        point = {"epoch": stats.epoch, "train_loss": stats.train_loss, "val_loss": stats.val_loss,
                 "val_accuracy": stats.val_accuracy, "wall_s": stats.wall_s}
        curve.append(clean_attrs(point))
        if report is not None and stats.epoch < epochs - 1e-9:
            report({"epoch": float(stats.epoch), "rung_accuracy": float(stats.val_accuracy),
                    "nas_curve": json.dumps(curve)})
        return False

    try:
        result = engine.evaluator(spec, engine.eval_config, data=engine.data, callback=callback,
                                  precheck=engine.check_constraints)
    except (BuildError, SpecError) as e:
        return "FAIL", None, {"status": "error", "reason": e.one_line()}, {}
    state, values, attrs, excess = outcome(result, engine.config.objectives)
    return state, values, clean_attrs(attrs), excess
