"""Static checks over the package, the tests and the experiment scripts, with the rules set in pyproject.toml
([tool.ruff]): undefined names and unused imports (pyflakes), syntax errors, lines over 120 characters and
bugbear's likely bugs. Catches a broken name in a rarely run path (an experiment's GPU branch, an error handler)
before anyone runs it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    # ruff is a test dependency (pyproject [project.optional-dependencies] test): a missing one fails here, not skips
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_config_sees_every_python_file():
    """The rules apply to nas/, tests/ and experiments/: a file outside ``include`` would be silently skipped."""
    listed = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-files", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=300).stdout
    checked = {Path(line.strip()).resolve() for line in listed.splitlines() if line.strip().endswith(".py")}
    ours = {p.resolve() for d in ("nas", "tests", "experiments") for p in (ROOT / d).rglob("*.py")}
    assert ours <= checked, sorted(str(p.relative_to(ROOT)) for p in ours - checked)


def test_no_test_imports_a_conftest_by_name():
    """Several folders have a conftest.py, and pytest loads each as a module named ``conftest``: which one
    ``from conftest import x`` finds depends on the order test files load (under xdist, on the worker). Shared helpers
    live in modules with their own names (tests/control/control_helpers.py)."""
    import re

    pattern = re.compile(r"^\s*(from\s+conftest\s+import|import\s+conftest\b)", re.MULTILINE)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
