"""experiments/bench_eval_phases.py: every phase of one candidate's evaluation is timed (a small CPU run)."""
from __future__ import annotations

import sys


def test_a_small_cpu_run_times_every_phase(experiment_script, monkeypatch, capsys):
    phases = experiment_script("bench_eval_phases")
    monkeypatch.setattr(sys, "argv", ["bench_eval_phases.py", "--space", "vision", "--dataset", "digits", "--n", "1",
                                      "--epochs", "0.2", "--batch-size", "64", "--no-write"])
    phases.main()
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("  build "))
    timings = dict(part.rsplit(" ", 1) for part in line.strip().split(", "))
    assert set(timings) == {"build", "params+flops", "activation", "latency", "throughput", "zero-cost",
                            "train (default layout)", "train (channels-last)", "train (channels-last again)",
                            "evaluate"}
    assert all(float(v) >= 0 for v in timings.values())
    assert float(timings["latency"]) >= 0.5  # the latency meter keeps timing for EvalConfig's 0.5 s window
