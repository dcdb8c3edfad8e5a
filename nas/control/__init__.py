"""The search controller on one machine (Optuna ask/tell).

``config``    run configs (experiments/*.yaml): pydantic, one-line errors with file/line/key, overrides
``search``    the trial loop, no-repeat reuse, constraints, rungs, resume of killed runs; ``search()`` / ``resume()``
``samplers``  tpe, nsga2, random, gp and aging ``evolution`` (an Optuna BaseSampler over Space.mutate)
``rundir``    the run folder (config snapshot, space copy, journal storage, log, lock)
``progress``  the per-trial line (rich live display or --quiet plain lines)
``suggest``   the Optuna adapter of the grammar's Suggest interface (define-by-run)
"""
