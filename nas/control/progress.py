"""Search progress: one line per finished trial (plain with ``--quiet``, styled with a live status line otherwise).

Every line carries the counts (complete / pruned / failed), the best accuracy, the size of the Pareto front (via
:mod:`nas.pareto`), the elapsed time and an ETA. The same plain line goes to the run's ``search.log``.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from nas.control.pick import complete_trials, pool_text, run_pick
from nas.pareto import pareto_mask, to_minimization

SHORT = {"accuracy": "acc", "latency_ms": "lat_ms", "params": "params", "flops": "flops",
         "activation_mb": "act_mb"}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(0.0, seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_value(name: str, value: float) -> str:
    if name in ("params", "flops"):
        for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(value) >= scale:
                return f"{value / scale:.2f}{unit}"
        return f"{value:.0f}"
    return f"{value:.4f}" if name == "accuracy" else f"{value:.3g}"


def fmt_values(objectives: list[str], values: list[float] | None) -> str:
    if not values:
        return ""
    return " ".join(f"{SHORT.get(o, o)}={fmt_value(o, v)}" for o, v in zip(objectives, values))


@dataclass
class Tally:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    reused: int = 0
    infeasible: int = 0
    values: list[list[float]] = field(default_factory=list)  # objective values of the trained COMPLETE trials

    @property
    def counted(self) -> int:
        return self.complete + self.pruned + self.failed


class Progress:
    def __init__(self, *, objectives: list[str], directions: list[str], target: int | None,
                 time_budget_s: float | None, quiet: bool, log: Callable[[str], None], tally: Tally,
                 started_at: float | None = None, workers: int = 1):
        """``started_at`` (``time.time()``; default now) is when the session began: a worker process, started later
        and again at each recycle, shows the session's elapsed time and what is left of its time budget, not its own.
        ``workers`` trials run side by side, so the trials left take that much less wall time."""
        self.objectives = objectives
        self.directions = directions
        self.target = target
        self.time_budget_s = time_budget_s
        self.quiet = quiet
        self.log = log
        self.tally = tally
        self.started_at = time.time() if started_at is None else started_at
        self.workers = max(1, int(workers))
        self.session_trials = 0
        self.trained_s: list[float] = []  # wall seconds of this session's trained trials (the ETA's unit)
        self.session_counted_start = tally.counted
        self._live = None
        self._console = None
        if not quiet:
            from rich.console import Console

            self._console = Console(highlight=False, soft_wrap=True)

    # -- aggregates -------------------------------------------------------------------------------------------------
    def best_accuracy(self) -> float | None:
        if "accuracy" not in self.objectives or not self.tally.values:
            return None
        i = self.objectives.index("accuracy")
        return max(v[i] for v in self.tally.values)

    def front_size(self) -> int:
        """Size of the Pareto front of ``tally.values`` (as :func:`nas.pareto.pareto_mask` counts it), kept up to
        date incrementally: ``tally.values`` only grows, and a new point needs checking only against the current
        front (dominance is transitive), so a trial costs O(front) instead of a sort of every trial so far."""
        values = self.tally.values
        cache = getattr(self, "_front", None)
        if cache is None or cache[0] is not values or cache[1] > len(values):
            if not values:
                return 0
            v = to_minimization(np.array(values, dtype=float), self.directions)
            mask = pareto_mask(np.array(values, dtype=float), self.directions)
            cache = self._front = [values, len(values), [row for row, m in zip(v, mask) if m]]
            return len(cache[2])
        for row in to_minimization(np.array(values[cache[1]:], dtype=float).reshape(-1, len(self.directions)),
                                   self.directions):
            if np.isnan(row).any():
                continue
            front = cache[2]
            if any(np.all(q <= row) and np.any(q < row) for q in front):
                continue
            cache[2] = [q for q in front if not (np.all(row <= q) and np.any(row < q))] + [row]
        cache[1] = len(values)
        return len(cache[2])

    def elapsed(self) -> float:
        """Wall seconds since the session began."""
        return max(0.0, time.time() - self.started_at)

    def eta(self) -> float | None:
        """Seconds left: each trial still to count takes as long as this session's trained trials took on average
        (reused and screened-out trials, which take a second, do not shorten it), ``workers`` at a time; with a time
        budget, at most what is left of it. None before the first trained trial and without a time budget."""
        elapsed = self.elapsed()
        estimates = []
        if self.target is not None and self.trained_s:
            per_trial = sum(self.trained_s) / len(self.trained_s)
            estimates.append(per_trial * max(0, self.target - self.tally.counted) / self.workers)
        if self.time_budget_s is not None:
            estimates.append(max(0.0, self.time_budget_s - elapsed))
        return min(estimates) if estimates else None

    def status(self) -> str:
        t = self.tally
        total = f"{t.counted}/{self.target}" if self.target else f"{t.counted}"
        parts = [f"{total}: {t.complete} ok, {t.pruned} pruned, {t.failed} failed"]
        extra = []
        if t.reused:
            extra.append(f"{t.reused} reused")
        if t.infeasible:
            extra.append(f"{t.infeasible} infeasible")
        if extra:
            parts[0] += f" ({', '.join(extra)})"
        best = self.best_accuracy()
        if best is not None:
            parts.append(f"best acc {best:.4f}")
        parts.append(f"front {self.front_size()}")
        parts.append(f"{fmt_duration(self.elapsed())} elapsed, ETA {fmt_duration(self.eta())}")
        return " | ".join(parts)

    # -- events -------------------------------------------------------------------------------------------------------
    def begin(self, message: str) -> None:
        self.log(message)
        if self.quiet:
            print(message, flush=True)
            return
        from rich.live import Live
        from rich.text import Text

        self._console.print(message, markup=False)
        self._live = Live(Text(self.status()), console=self._console, transient=True,
                          refresh_per_second=2, redirect_stdout=False, redirect_stderr=False)
        self._live.start()

    def running(self, number: int, summary: str) -> None:
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(f"running #{number}: {_clip(summary, 70)}\n{self.status()}"))

    def step(self, number: int, step: int, total: int, loss: float) -> None:
        """Inside a trial: its training steps so far and the recent loss, on the live line (not in quiet mode or
        the log: one line per event there)."""
        if self._live is not None:
            from rich.text import Text

            bar = "#" * int(20 * step / max(total, 1))
            self._live.update(Text(f"running #{number}: step {step}/{total} [{bar:<20s}] loss {loss:.4f}\n"
                                   f"{self.status()}"))

    def finished(self, number: int, state: str, values: list[float] | None, wall_s: float, summary: str,
                 note: str = "") -> None:
        self.session_trials += 1
        if state == "complete" or (state == "pruned" and not note.startswith("infeasible")):
            self.trained_s.append(wall_s)
        what = fmt_values(self.objectives, values)
        note = f" [{note}]" if note else ""
        line = (f"#{number:<4d} {state:<9s} {what}{note} ({wall_s:.1f}s) | {self.status()} | "
                f"{_clip(summary, 100)}")
        self.log(line)
        if self.quiet:
            print(line, flush=True)
            return
        style = {"complete": "green", "pruned": "yellow", "failed": "red", "reused": "cyan"}.get(state, "")
        from rich.text import Text

        text = Text(f"#{number:<4d} ")
        text.append(f"{state:<9s}", style=style)
        text.append(f" {what}{note} ({wall_s:.1f}s) | {self.status()} | {_clip(summary, 100)}")
        self._console.print(text)
        if self._live is not None:
            self._live.update(Text(self.status()))

    def end(self, message: str) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self.log(message)
        if self.quiet:
            print(message, flush=True)
        else:
            self._console.print(message, markup=False)

    def print_block(self, text: str) -> None:
        """Print a multi-line block (e.g. the final Pareto front)."""
        if self.quiet or self._console is None:
            print(text, flush=True)
        else:
            self._console.print(text, markup=False)
        sys.stdout.flush()


def resume_hint(run_path) -> str:
    """What an interrupted run's stop line ends with: the command that continues it."""
    import shlex

    return f"; continue with: nas resume {shlex.quote(str(run_path))}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def front_report(study, objectives: list[str], directions: list[str], rank_with: str | None = None) -> str:
    """The Pareto front of the COMPLETE trials, one line per member (reused duplicates left out, ``confirm_best``
    repeats folded into their architecture's mean: :func:`nas.control.pick.complete_trials`), then the trial the run
    picks by its ``rank_with`` (:func:`nas.control.pick.run_pick`: what ``nas export RUN`` exports)."""
    trials = complete_trials(study)
    if not trials:
        return "Pareto front: no complete trials"
    mask = pareto_mask(np.array([t.values for t in trials], dtype=float), directions)
    front = sorted((t for t, m in zip(trials, mask) if m), key=lambda t: t.values[0],
                   reverse=directions[0] == "maximize")
    lines = [f"Pareto front ({len(front)} of {pool_text(trials)}; objectives: {', '.join(objectives)}):"]
    for t in front:
        lines.append(f"  #{t.number:<4d} {fmt_values(objectives, list(t.values))}  {t.user_attrs.get('spec_hash', '')}"
                     f"  {t.user_attrs.get('summary', '')}")
    picked = run_pick(trials, objectives, directions, rank_with)
    if picked is not None:
        lines.append(f"The run's pick (nas export's default): #{picked[0].number} "
                     f"{fmt_values(objectives, list(picked[0].values))}, {picked[1]}")
    return "\n".join(lines)
