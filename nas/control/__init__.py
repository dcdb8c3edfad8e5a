"""The search controller: Optuna ask/tell around the run's evaluator, on one of several backends.

``config``     run configs (experiments/*.yaml): pydantic, one-line errors with file/line/key, overrides
``rundir``     the run folder (config snapshot, space copy, journal storage, log, lock) and the results stored in it
``runs``       a search run's life cycle: where a new run goes, its snapshots and headers, what a continued run keeps
``engine``     the trial loop: no-repeat reuse, constraints, rungs, outcome, tally, stale trials of killed processes
``search``     the front door, ``search()`` / ``resume()``, one path for every backend
``backends``   in-process, worker processes (``workers``), a Ray Tune experiment (``ray_run``), a joined worker
``owners``     the process that holds a running trial, and whether it still lives
``shared``     a run on a database server that workers of other hosts join: claim lock, heartbeats, settings
``samplers``   the samplers registry: tpe, nsga2, random, gp, ``evolution``, ``predictor`` (``replay`` is their base)
``baselines``  the space's baselines evaluated under the run's budget (``nas measure`` asks for them)
``warmstart``  the trials a new run enqueues first
``progress``   the per-trial line (rich live display or --quiet plain lines)
``suggest``    the Optuna adapter of the grammar's Suggest interface (define-by-run)
"""
