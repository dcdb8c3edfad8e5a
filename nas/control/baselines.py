"""The space's hand-designed baselines, evaluated under a run's proxy budget and cached in the run folder
(``baselines.json``, keyed by spec hash and budget), so that the report and ``nas measure`` compare the search's
finds with them, by the run's own evaluator. ``nas measure`` evaluates the ones missing; the report only reads the
cache."""
from __future__ import annotations

import json
import time
from collections.abc import Callable

from nas.control.rundir import BASELINES_FILE, read_baselines_cache
from nas.evaluate.evaluate import EvalConfig
from nas.evaluate.evaluators import EVALUATORS
from nas.grammar import shipped_spaces_dir
from nas.io import write_atomic


def evaluate_baselines(run, config, space, *, deadline: float | None = None,
                       progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Evaluate the space's baselines not yet in the run's cache and return the cache. Each result is written as
    soon as it exists (atomically), so an interrupted evaluation keeps what it finished; with ``deadline`` (a
    ``time.time()`` value) no new baseline starts after it. ``progress`` hears one line per baseline."""
    space.load_baselines(shipped_spaces_dir() / "baselines")
    cache_path = run.path / BASELINES_FILE
    cache = read_baselines_cache(run.path)
    key_of = config.budget_key()
    missing = [(name, spec) for name, spec in space.baselines.items() if f"{spec.hash()}:{key_of}" not in cache]
    for done, (name, spec) in enumerate(missing):
        if deadline is not None and time.time() >= deadline:
            break
        if progress:
            progress(f"baseline {done + 1}/{len(missing)}: {name} (training under the run's budget)")
        started = time.time()
        result = EVALUATORS.get(config.evaluator)(spec, EvalConfig.from_options(**config.eval_options()))
        cache[f"{spec.hash()}:{key_of}"] = {"status": result.status, "reason": result.reason,
                                            "objectives": result.objectives,
                                            "val_size": result.training.get("val_size"),
                                            "val_correct": result.val_correct}
        write_atomic(cache_path, json.dumps(cache, indent=1))
        if progress:
            progress(f"baseline {done + 1}/{len(missing)}: {name} {result.status} in {time.time() - started:.0f} s")
    return cache
