"""Worker processes sharing one run's storage (``nas search --workers N`` / ``--trials-per-gpu K``).

The parent process holds the run's lock (so no second ``nas search`` / ``nas resume`` drives the run), creates or
repairs the study, and starts ``N`` worker processes (``multiprocessing`` *spawn* context: a fresh interpreter, no
CUDA state inherited). Each worker attaches its own :class:`~nas.control.engine.Engine` to the same storage and runs
trials until the **shared** target is reached. Trials run in processes that are **recycled**: a worker exits after
``max_trials_per_worker`` trials and the parent starts a fresh one, so memory a trial leaks (GPU memory, allocator
caches) cannot accumulate over a long search.

**Exact count.** The target is counted in the storage, never locally. Before it asks for a trial, a worker takes the
run's claim lock (:func:`nas.control.shared.claim_lock`: ``flock`` on ``<run>/claim``, or the database server's own
lock), counts ``COMPLETE + PRUNED + FAIL (not stale) + RUNNING`` and asks only when that is below the target; the
ask, the owner record and the sampling of the spec happen inside the lock, so two workers never both take the last
slot, and a worker that samples a spec another one is training waits for that result instead of training it again
(:meth:`nas.control.engine.Engine.wait_for_peer`). The storage must be shared by all workers: the journal (Optuna's
``JournalFileBackend`` locks the file), SQLite, PostgreSQL / MySQL.

**Owner of a trial.** Every trial records ``worker = {pid, host, started}`` (``started``: the process start time
from ``/proc``, so a recycled pid is not mistaken for the owner). A RUNNING trial counts as stale (FAIL + ``stale``,
parameters enqueued again) only when its owner is not alive on this host: ``nas resume`` after a crash, or the parent
after a worker died (killed, out of memory) while the others go on. A RUNNING trial owned by another host is taken as
stale too (the run lock says no other process drives this run), except on a database server, where workers of other
hosts may join the run (``nas worker``) and a trial's heartbeat decides (:mod:`nas.control.shared`).

**Dying together.** Workers ask the kernel (``PR_SET_PDEATHSIG``) for SIGKILL when the parent dies, so ``kill -9``
of the parent leaves no orphan writing to the storage; ``nas resume`` then re-enqueues every trial left RUNNING.

**Seeds.** Each worker's sampler is seeded from the config's seed, the number of trials already in the study and the
worker's slot and generation, so workers never replay one random stream.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.control.engine import WAIT, Engine, prepare
from nas.control.progress import front_report
from nas.control.states import counted, in_use
from nas.control.progress import Progress, resume_hint
from nas.control.rundir import CONFIG_FILE, SPACE_FILE, RunDir
from nas.errors import ConfigError, NasError, RunError
from nas.io import now

DEFAULT_MAX_TRIALS_PER_WORKER = 8
MAX_FAILED_STARTS = 3  # workers in a row that exit with an error before finishing a trial: give up


# -- settings --------------------------------------------------------------------------------------------------------
@dataclass
class Parallel:
    """How many worker processes, and how often they are recycled."""

    workers: int = 1
    max_trials_per_worker: int = DEFAULT_MAX_TRIALS_PER_WORKER
    gpus: list[int] | None = None  # --trials-per-gpu: the GPU of each slot (slot i -> gpus[i])

    def __post_init__(self):
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}", key="--workers")
        if self.max_trials_per_worker < 1:
            raise ConfigError(f"--max-trials-per-worker must be at least 1, got {self.max_trials_per_worker}",
                              key="--max-trials-per-worker")


def resolve(workers: int | None = None, trials_per_gpu: int | None = None,
            max_trials_per_worker: int | None = None) -> Parallel | None:
    """The :class:`Parallel` of the CLI options, or None for the single-process loop (no option given)."""
    if workers is None and trials_per_gpu is None and max_trials_per_worker is None:
        return None
    recycle = DEFAULT_MAX_TRIALS_PER_WORKER if max_trials_per_worker is None else max_trials_per_worker
    if trials_per_gpu is not None:
        if workers is not None:
            raise ConfigError("give --workers or --trials-per-gpu, not both", key="--trials-per-gpu")
        if trials_per_gpu < 1:
            raise ConfigError(f"--trials-per-gpu must be at least 1, got {trials_per_gpu}", key="--trials-per-gpu")
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--trials-per-gpu needs CUDA GPUs and this machine has none (use --workers N on CPU)",
                              key="--trials-per-gpu")
        count = torch.cuda.device_count()
        gpus = [g for g in range(count) for _ in range(trials_per_gpu)]
        return Parallel(len(gpus), recycle, gpus)
    return Parallel(1 if workers is None else workers, recycle)


# -- the parent ------------------------------------------------------------------------------------------------------
def run_parallel(engine, run, *, parallel: Parallel, header: str) -> None:
    """Drive the run with worker processes until the target (or the time budget) is reached. The caller holds the
    run lock and has attached ``engine`` (create or resume + recover_stale)."""
    import multiprocessing
    from multiprocessing.connection import wait

    config = engine.config
    target, budget = config.trials, config.time_budget_s
    session_start = time.time()  # the workers' progress lines count from here, not from their own start
    deadline = session_start + budget if budget is not None else None
    ctx = multiprocessing.get_context("spawn")
    say = _say(run)
    say(f"{header} [{parallel.workers} worker processes, recycled every {parallel.max_trials_per_worker} trials]")
    alive: dict[int, Any] = {}
    generation = 0
    failed_starts = 0
    started = time.perf_counter()

    def remaining() -> bool:
        if deadline is not None and time.time() >= deadline:
            return False
        if target is None:
            return True
        return in_use(engine.study.get_trials(deepcopy=False)) < target

    try:
        while True:
            for slot, proc in list(alive.items()):
                if proc.is_alive():
                    continue
                proc.join()
                del alive[slot]
                if proc.exitcode != 0:
                    stale = engine.recover_stale()  # only trials whose owner is dead
                    note = f"; trial(s) {', '.join(f'#{n}' for n in stale)} re-enqueued" if stale else ""
                    say(f"{now()} worker {slot} (pid {proc.pid}) exited with code {proc.exitcode}{note}")
                    failed_starts += 1
                    if failed_starts >= MAX_FAILED_STARTS:
                        raise RunError(f"{failed_starts} worker processes in a row exited with code "
                                       f"{proc.exitcode} (see the messages above and {run.path / 'search.log'})",
                                       file=str(run.path))
                else:
                    failed_starts = 0
            more = remaining()
            if not more and not alive:
                break
            if more:
                for slot in range(parallel.workers):
                    if slot not in alive:
                        generation += 1
                        gpu = parallel.gpus[slot] if parallel.gpus else None
                        job = WorkerJob(run_path=str(run.path), slot=slot, generation=generation,
                                        max_trials=parallel.max_trials_per_worker, deadline=deadline, gpu=gpu,
                                        parent=os.getpid(), session_start=session_start,
                                        workers=parallel.workers)
                        proc = ctx.Process(target=worker_main, name=f"nas-worker-{slot}", args=(job,), daemon=False)
                        proc.start()
                        alive[slot] = proc
            wait([p.sentinel for p in alive.values()], timeout=2.0)
    except BaseException as e:
        _stop(alive)
        if isinstance(e, KeyboardInterrupt):
            stale = engine.recover_stale()  # the workers' trials, cut short: FAIL + stale, enqueued again
            counted_now = sum(1 for t in engine.study.get_trials(deepcopy=False) if counted(t))
            note = f", trial(s) {', '.join(f'#{n}' for n in stale)} re-enqueued" if stale else ""
            say(f"{now()} stop (interrupted): {counted_now} trials counted{note}{resume_hint(run.path)}")
        raise
    trials = engine.study.get_trials(deepcopy=False)
    complete = sum(1 for t in trials if t.state.name == "COMPLETE")
    reason = "done" if deadline is None or time.time() < deadline else "time budget reached"
    say(f"{now()} stop ({reason}): {sum(1 for t in trials if counted(t))} trials counted, {complete} complete, "
        f"{time.perf_counter() - started:.0f} s with {parallel.workers} workers")
    print(front_report(engine.study, config.objectives, config.directions, config.rank_with), flush=True)


def _stop(alive: dict[int, Any], grace_s: float = 20.0) -> None:
    """After Ctrl-C (the workers got SIGINT too: each abandons its trial) or an error: wait, then terminate."""
    end = time.time() + grace_s
    for proc in alive.values():
        proc.join(max(0.0, end - time.time()))
    for proc in alive.values():
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


def _say(run):
    """Log a line to the run's search.log and print it (the workers' own lines go to the log only)."""
    def say(line: str) -> None:
        run.log(line)
        print(line, flush=True)

    return say


# -- a worker ----------------------------------------------------------------------------------------------------------
def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the parent dies (Linux); exit now if it is already gone."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: the parent's death is noticed between trials
        pass
    if os.getppid() != parent:
        os._exit(0)


@dataclass(frozen=True)
class WorkerJob:
    """What a worker process is started with (pickled to the spawned process). ``generation`` counts the starts of
    all slots, so a recycled worker's sampler gets a new seed; ``parent`` is the driving process's pid (a worker
    exits when it is gone); ``session_start`` (``time.time()``) and ``workers`` are the parent's: the worker's
    progress lines show the session's elapsed time and ETA."""
    run_path: str
    slot: int
    generation: int
    max_trials: int
    deadline: float | None
    gpu: int | None
    parent: int
    session_start: float | None = None
    workers: int = 1


def worker_main(job: WorkerJob) -> None:
    """Entry point of one worker process (spawned)."""
    _die_with_parent(job.parent)
    if job.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(job.gpu)
    try:
        code = _work(job)
    except KeyboardInterrupt:
        code = 130
    except NasError as e:
        print(f"error: worker {job.slot}: {e.one_line()}", file=sys.stderr, flush=True)
        code = 2
    sys.stdout.flush()
    os._exit(code)  # no atexit / multiprocessing finalizers: nothing else to tidy


def _work(job: WorkerJob) -> int:
    run = RunDir.open(Path(job.run_path))
    prepared = prepare(run.path / CONFIG_FILE, space_file=run.path / SPACE_FILE)
    engine = Engine(prepared, quiet=True)
    engine.attach(run, create=False)
    engine.recount = True  # the other workers take trials too: count in the storage, under the claim lock
    config = engine.config
    n = len(engine.study.get_trials(deepcopy=False))
    seed = (config.seed * 1_000_003 + n * 7919 + job.slot * 104_729 + job.generation * 15_485_863) % (2**31 - 1)
    engine.study.sampler = engine.new_sampler(seed)
    engine.tally = engine.load_tally()
    deadline, session_start = job.deadline, job.session_start
    engine.progress = Progress(objectives=config.objectives, directions=config.directions, target=config.trials,
                               time_budget_s=deadline - session_start if deadline and session_start else None,
                               quiet=True, log=run.log, tally=engine.tally, started_at=session_start,
                               workers=job.workers)
    import torch

    if config.train_threads:
        torch.set_num_threads(config.train_threads)
    done = 0
    while done < job.max_trials:
        if os.getppid() != job.parent or (deadline is not None and time.time() >= deadline):
            return 0
        claimed = engine.claim_next(config.trials)
        if claimed is None:
            return 0
        if claimed is WAIT:
            time.sleep(engine.poll_s)
            continue
        engine.one_trial(claimed)
        done += 1
    return 0


__all__ = ["Parallel", "WorkerJob", "resolve", "run_parallel", "worker_main"]
