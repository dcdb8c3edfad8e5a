"""experiments/gpu_run.sh, the GPU machine's stage runner: its plumbing, checked on the CPU (no wheels installed)."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "gpu_run.sh"


def run(tmp_path, *stages):
    # the script calls python3: this environment's (its folder holds python3 beside python)
    env = {**os.environ, "OUT": str(tmp_path / "out"), "GPU_RUN_NO_INSTALL": "1", "TMPDIR": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT), *stages], env=env, capture_output=True, text=True, timeout=120)


def test_an_unknown_stage_is_refused(tmp_path):
    proc = run(tmp_path, "nonsense")
    assert proc.returncode == 2 and "unknown stage nonsense" in proc.stderr


def test_a_stage_leaves_its_log_and_status_in_the_archive(tmp_path):
    proc = run(tmp_path, "tests")  # the GPU tests: skipped here, so pytest exits 0
    assert proc.returncode == 0, proc.stderr
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert summary.startswith("tests rc=0 ")
    with tarfile.open(tmp_path / "out" / "results.tgz") as archive:
        names = archive.getnames()
        log = archive.extractfile("gpu_logs/tests.log").read().decode()
    assert "gpu_logs/tests.log" in names and "skipped" in log
