"""nas.control.progress: the live status line's counts and ETA."""
from __future__ import annotations

from nas.control.progress import Progress, Tally, resume_hint


def progress(target=10, time_budget_s=None) -> Progress:
    return Progress(objectives=["accuracy"], directions=["maximize"], target=target, time_budget_s=time_budget_s,
                    quiet=True, log=lambda line: None, tally=Tally())


def test_the_eta_counts_trained_trials_only(capsys):
    """Three trials screened out in a second each and one reused do not make the rest look quick: 6 trials left at
    the 60 s the one trained trial took is 6 minutes."""
    p = progress()
    assert p.eta() is None  # nothing trained yet: unknown, not 0
    for n in range(3):
        p.tally.pruned += 1
        p.tally.infeasible += 1
        p.finished(n, "pruned", None, 1.0, "s", "infeasible: params 2e+06 > max_params 1e+06")
    p.tally.complete += 2
    p.tally.reused += 1
    p.finished(3, "complete", [0.9], 60.0, "s")
    p.finished(4, "reused", [0.9], 0.01, "s", "= #3")
    assert abs(p.eta() - 5 * 60.0) < 1e-6  # 10 - 5 counted, each as long as the trained one
    p.tally.pruned += 1
    p.finished(5, "pruned", None, 20.0, "s", "stopped at rung 1")  # a rung stop trained too
    assert abs(p.eta() - 4 * 40.0) < 1e-6
    assert "ETA 2:40" in p.status()
    capsys.readouterr()


def test_a_time_budget_caps_the_eta():
    p = progress(target=100, time_budget_s=30.0)
    p.tally.complete += 1
    p.finished(0, "complete", [0.5], 60.0, "s")
    assert p.eta() <= 30.0


def test_resume_hint_quotes_the_path():
    assert resume_hint("runs/my run") == "; continue with: nas resume 'runs/my run'"


def test_a_trial_shows_its_steps_and_loss_on_the_live_line():
    class Live:
        def update(self, text):
            self.text = str(text)

    p = progress()
    p.step(3, 40, 100, 1.25)  # quiet: nothing shown, nothing logged
    p._live = Live()
    p.step(3, 40, 100, 1.25)
    first, second = p._live.text.splitlines()
    assert first == "running #3: step 40/100 [########            ] loss 1.2500"
    assert second == p.status()


def test_a_worker_counts_the_sessions_time_not_its_own():
    """A worker process is started after the session and again at every recycle: its line shows the session's
    elapsed time and what is left of the session's time budget, and its ETA counts the trials left across all the
    workers side by side."""
    import time

    started = time.time() - 125.0
    p = Progress(objectives=["accuracy"], directions=["maximize"], target=None, time_budget_s=3600.0, quiet=True,
                 log=lambda line: None, tally=Tally(), started_at=started, workers=2)
    assert 125.0 <= p.elapsed() < 135.0
    assert "2:0" in p.status() and "elapsed" in p.status()  # 2:05 or so, not 0:00
    assert 3600.0 - 135.0 < p.eta() <= 3600.0 - 125.0
    q = Progress(objectives=["accuracy"], directions=["maximize"], target=10, time_budget_s=None, quiet=True,
                 log=lambda line: None, tally=Tally(), workers=2)
    q.tally.complete += 2
    q.finished(0, "complete", [0.5], 60.0, "s")
    assert abs(q.eta() - 8 * 60.0 / 2) < 1e-6  # 8 trials left, two at a time
