"""`nas search` / `nas resume` as subprocesses: one-line errors, kill -9 then resume, Optuna's own CLI."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from control_helpers import (
    ENV,
    counted,
    journal_study,
    kill_9_when,
    nas,
    running_after_done,
    signal_when,
    start,
    write_config,
)

# ~0.7 s per trained trial: long enough to catch one RUNNING
SLOW = {"train_subset": 1000, "budget": {"epochs": 3, "batch_size": 16}}


def _one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """``nas ARGS`` through :func:`nas.cli.main` in this process, as a finished process would tell it."""
    from nas.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["nas", *args], code, out, err)


def _line_of(path: Path, key: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(f"{key}:"))


def test_bad_configs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    runs = str(tmp_path / "runs")
    key = write_config(tmp_path, "bad_key", bogus=1)
    sampler = write_config(tmp_path, "bad_sampler", sampler="annealing")
    objective = write_config(tmp_path, "bad_objective", objectives=["accuracy", "speed"])
    ok = write_config(tmp_path, "ok")
    no_space = write_config(tmp_path, "no_space", space="nope")
    cases = [
        (("search", str(key), "--runs-dir", runs),
         [f"bad_key.yaml:{_line_of(key, 'bogus')}: bogus: unknown key 'bogus'"]),
        (("search", str(sampler), "--runs-dir", runs),
         [f"bad_sampler.yaml:{_line_of(sampler, 'sampler')}: sampler: unknown sampler 'annealing'"]),
        (("search", str(objective), "--runs-dir", runs),
         [f"bad_objective.yaml:{_line_of(objective, 'objectives')}: objectives: unknown objective 'speed'"]),
        (("search", str(ok), "--runs-dir", runs, "--sampler", "bogo"),
         ["sampler: unknown sampler 'bogo'", "from an override"]),
        (("search", str(ok), "--runs-dir", runs, "--set", "budget.epochz=2"),
         ["budget.epochz: unknown key 'epochz'", "from an override"]),
        (("search", str(ok), "--runs-dir", runs, "--dataset", "nope"), ["dataset: unknown dataset 'nope'"]),
        (("search", str(ok), "--runs-dir", runs, "--set", "device=tpu"),
         ["device: unknown training device 'tpu'", "from an override"]),
        (("search", str(ok), "--runs-dir", runs, "--set", "latency_device=gpu0"),
         ["latency_device: unknown latency device 'gpu0'", "from an override"]),
        (("search", str(ok), "--runs-dir", runs, "--storage", "sqlite://"), ["in-memory database"]),
        (("search", str(ok), "--runs-dir", runs, "--storage", "sqlite:///:memory:"), ["in-memory database"]),
        (("search", str(ok), "--runs-dir", runs, "--set", "budget.data_fraction=0.0001"),
         ["budget.data_fraction: leaves 1 training example(s)", "from an override"]),
        (("search", str(ok), "--runs-dir", runs, "--name", ""), ["--name: run name ''"]),
        (("search", str(ok), "--runs-dir", runs, "--set", "space=nope"),
         ["space: space 'nope' is neither a shipped space", "from an override"]),
        (("search", str(no_space), "--runs-dir", runs),
         [f"no_space.yaml:{_line_of(no_space, 'space')}: space: space 'nope' is neither"]),
        (("search", str(ok), "--runs-dir", runs, "--backend", "ray", "--workers", "2"),
         ["--workers: --workers / --trials-per-gpu are for the optuna backend"]),
        (("search", str(ok), "--runs-dir", str(ok)), ["--runs-dir: cannot make the folder: a file is in the way"]),
        (("search", str(ok), "--runs-dir", runs, "--dataset", "mnist", "--data-dir", str(tmp_path / "nodata")),
         [f"dataset 'mnist' not found: looked for {tmp_path / 'nodata' / 'mnist.npz'}"]),
    ]
    import torch

    if not torch.cuda.is_available():  # a search whose every latency would fail: refused before the run exists
        cases.append((("search", str(ok), "--runs-dir", runs, "--set", "latency_device=cuda"),
                      ["latency_device: latency device 'cuda' requested but no CUDA GPU is available"]))
    # the first case as a real process (the exit status the shell sees), the others through the same entry point
    # in this process (a process each spent a second or more importing torch)
    args, words = cases[0]
    _one_line_error(_finish(start(*args)), *words)
    for args, words in cases[1:]:
        _one_line_error(_in_process(capsys, *args), *words)
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    before = sorted(p.name for p in tmp_path.iterdir())
    _one_line_error(nas("resume", str(tmp_path)), "not a run directory")
    _one_line_error(nas("resume", str(tmp_path / "missing")), "no such run directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_an_interrupted_search_says_how_to_continue_and_resume_is_exact(tmp_path, sig, code, word):
    """Ctrl-C (SIGINT) or SIGTERM in the middle of a trial: the stop line names the command that continues the run,
    the trial cut short is FAIL + stale and not counted, and `nas resume` reaches the target exactly."""
    config = write_config(tmp_path, "k", trials=4, **SLOW)
    run = tmp_path / "runs" / "k"
    proc = start("search", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert signal_when(proc, run, running_after_done(1), sig) is not None, _finish(proc).stderr
    done = _finish(proc)
    assert done.returncode == code and done.stderr.strip().splitlines()[-1] == word, done.stderr
    stop = [line for line in done.stdout.splitlines() if " stop (interrupted): " in line]
    assert len(stop) == 1 and stop[0].endswith(f"; continue with: nas resume {run}"), done.stdout
    trials = journal_study(run).trials
    cut = [t for t in trials if t.state.name == "FAIL"]
    assert len(cut) == 1, [(t.number, t.state.name, t.user_attrs.get("status")) for t in trials]
    assert cut[0].user_attrs["stale"] and counted(trials) == int(stop[0].split(": ")[1].split()[0])
    resumed = nas("resume", str(run), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert counted(journal_study(run).trials) == 4


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """`nas search` killed with SIGKILL in the middle of a trial, then `nas resume`."""
    tmp = tmp_path_factory.mktemp("kill")
    config = write_config(tmp, "k", trials=6, **SLOW)
    run = tmp / "runs" / "k"
    proc = start("search", str(config), "--runs-dir", str(tmp / "runs"), "--quiet")
    at_kill = kill_9_when(proc, run, running_after_done(2))
    assert at_kill is not None, "never saw a RUNNING trial"
    victim = next(t.number for t in at_kill if t.state.name == "RUNNING" and t.params)
    killed = {t.number: t for t in journal_study(run).get_trials()}
    resumed = nas("resume", str(run), "--quiet")
    return run, victim, killed, resumed


def test_kill_9_then_resume_gives_the_exact_count(killed_and_resumed):
    run, victim, killed, resumed = killed_and_resumed
    assert resumed.returncode == 0, resumed.stderr
    assert killed[victim].state.name == "RUNNING"
    trials = journal_study(run).get_trials()
    numbers = [t.number for t in trials]
    assert numbers == sorted(set(numbers)) == list(range(len(trials)))  # no duplicate numbers
    assert counted(trials) == 6  # the target, exactly
    stale = [t for t in trials if t.user_attrs.get("stale")]
    assert [t.number for t in stale] == [victim]
    assert stale[0].state.name == "FAIL" and stale[0].user_attrs["status"] == "stale"
    retry = [t for t in trials if t.user_attrs.get("retry_of") == victim]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
    # the killed trial's parameters (it may have died while sampling: then only some) are replayed
    assert killed[victim].params.items() <= retry[0].params.items()
    for number, before in killed.items():  # finished trials are untouched
        if before.state.is_finished():
            after = trials[number]
            assert (after.state, after.values, after.params) == (before.state, before.values, before.params)
            assert after.user_attrs == before.user_attrs
    assert "1 stale trial(s) re-enqueued" in resumed.stdout
    assert "Pareto front" in resumed.stdout


def test_optuna_cli_lists_our_trials(killed_and_resumed):
    run, _, _, _ = killed_and_resumed
    optuna_cli = Path(sys.executable).with_name("optuna")
    result = subprocess.run([str(optuna_cli), "trials", "--storage", str(run / "journal.log"), "--study-name", "k",
                             "-f", "json"], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == len(journal_study(run).get_trials())
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert complete and all(set(r["values"]) == {"accuracy", "latency_ms"} for r in complete)
    assert all("spec_hash" in r["user_attrs"] for r in complete)


def test_existing_run_needs_resume_and_the_same_settings(killed_and_resumed):
    run, _, _, _ = killed_and_resumed
    config = run.parent.parent / "k.yaml"
    runs = str(run.parent)
    procs = {
        "exists": start("search", str(config), "--runs-dir", runs),
        "changed": start("search", str(config), "--runs-dir", runs, "--resume", "--epochs", "5",
                         "--dataset", "digits:rows"),
    }
    results = {k: _finish(p) for k, p in procs.items()}
    _one_line_error(results["exists"], "already exists", "--resume")
    _one_line_error(results["changed"], "would invalidate", "budget.epochs (3.0 -> 5.0)", "dataset (digits -> ")
    assert counted(journal_study(run).get_trials()) == 6


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished one-trial run, made in process."""
    import nas

    tmp = tmp_path_factory.mktemp("finished")
    nas.search(write_config(tmp, "f", trials=1), runs_dir=tmp / "runs", name="f", quiet=True)
    return tmp / "runs" / "f"


@pytest.mark.parametrize("kind", ["not utf-8", "folder"])
@pytest.mark.parametrize("damaged", ["config.yaml", "space.yaml"])
@pytest.mark.parametrize("command", [["report", "RUN", "--no-baselines"], ["resume", "RUN", "-q"],
                                     ["measure", "RUN", "--rounds", "1", "--no-baselines"],
                                     ["export", "RUN", "--trial", "0"]], ids=lambda c: c[0])
def test_a_run_whose_own_files_cannot_be_read(finished_run, command, damaged, kind, tmp_path, capsys):
    """One line naming the damaged file, exit 2, nothing in the run changed (in process: cli.main)."""
    import shutil

    from nas import cli

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    target = run / damaged
    target.unlink()
    if kind == "folder":
        target.mkdir()
    else:
        target.write_bytes(b"space: x\n\xff\xfe\n")
    before = sorted((p.relative_to(run), p.read_bytes() if p.is_file() else None) for p in run.rglob("*"))
    status = cli.main([str(run) if a == "RUN" else a for a in command])
    out, err = capsys.readouterr()
    if command[0] == "export" and damaged == "space.yaml" and kind == "not utf-8":
        assert status == 0, err  # an export does not read the run's space
        return
    assert status == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ")
    if kind == "not utf-8":
        assert f"{target}:2: " in lines[0] and "not UTF-8 text" in lines[0], lines[0]
    else:
        assert str(target) in lines[0] or f"missing {damaged}" in lines[0], lines[0]
    assert sorted((p.relative_to(run), p.read_bytes() if p.is_file() else None) for p in run.rglob("*")) == before


def test_a_stop_during_a_journal_write_waits_for_the_write():
    """A stop signal whose handler defers inside a shielded journal write acts when the write is done (Optuna's file
    lock, interrupted inside its release, would unlink the lock twice and end in a FileNotFoundError)."""
    from nas.control.rundir import defer, shielded

    happened = []

    def stop():
        happened.append("stopped")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with shielded():
            assert defer(stop)  # the signal arrives mid-write
            happened.append("written")
    assert happened == ["written", "stopped"]
    assert not defer(stop)  # outside a write the handler acts at once


@pytest.mark.parametrize("sig, stop", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, KeyboardInterrupt)])
def test_the_cli_handlers_of_ctrl_c_and_sigterm_wait_for_a_journal_write(sig, stop):
    """Both stop signals of a `nas` command defer inside a journal write (Ctrl-C with Python's own handler would
    raise inside Optuna's lock and end in a FileNotFoundError traceback, exit 1)."""
    import os

    from nas.cli import install_stop_handlers
    from nas.control.rundir import shielded

    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (nohup ignores SIGINT)
    previous = install_stop_handlers()
    try:
        assert sig in previous
        happened = []
        with pytest.raises(stop):
            with shielded():
                os.kill(os.getpid(), sig)
                happened.append("written")  # the handler ran, and deferred
        assert happened == ["written"]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, outer)
    # where SIGINT is ignored (a background job), the command leaves it so
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        previous = install_stop_handlers()
        assert signal.SIGINT not in previous and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.signal(signal.SIGTERM, previous[signal.SIGTERM])
    finally:
        signal.signal(signal.SIGINT, outer)
