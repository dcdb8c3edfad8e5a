"""Shared helpers for the search-controller tests: a tiny space, tiny run configs, the `nas` command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TINY_SPACE = HERE / "tiny_space.yaml"
SCRIPT = Path(sys.executable).with_name("nas")
NAS = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "nas.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMEOUT = 120

# Seconds, not minutes: 8x8 digits, a 200-example pool, half an epoch, two latency repeats, no zero-cost proxies.
TINY = {
    "space": str(TINY_SPACE),
    "dataset": "digits",
    "train_subset": 200,
    "objectives": ["accuracy", "latency_ms"],
    "budget": {"epochs": 0.5, "batch_size": 32},
    "sampler": "random",
    "trials": 4,
    "seed": 0,
    "device": "cpu",
    "latency_repeats": 2,
    "latency_warmup": 0,
    "train_threads": 1,
    "zero_cost": False,
}


def write_config(folder: Path, name: str = "tiny", **changes) -> Path:
    data = {**TINY, **changes}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def nas(*args: str, cwd: Path | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([*NAS, *args], cwd=cwd or REPO, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def start(*args: str, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([*NAS, *args], cwd=cwd or REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def journal_study(run_dir: Path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(run_dir / "journal.log")))
    return optuna.load_study(study_name=run_dir.name, storage=storage)


def counted(trials) -> int:
    return sum(1 for t in trials if t.state.name in ("COMPLETE", "PRUNED")
               or (t.state.name == "FAIL" and not t.user_attrs.get("stale")))


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
