"""Loading an experiments/ script as a module, the way it runs: with experiments/ on the path for its sibling
_common."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def load_script(name: str):
    """experiments/<name>.py as a fresh module (its ``main`` is not run)."""
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(f"{name}_script", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def experiment_script():
    """:func:`load_script`, for module fixtures that load a script."""
    return load_script
