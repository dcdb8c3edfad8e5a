"""Shared fixtures: shipped spaces, data directory, small inputs."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPACES = sorted((REPO / "search_spaces").glob("*.yaml"))
EXPERIMENTS = REPO / "experiments"
SHARED_DATA = Path(os.environ.get("NAS_DATA_DIR", REPO.parent / "shared" / "data"))

# Reduced input sizes for building every sampled architecture quickly on 2 CPU cores.
SMALL_INPUT = {"image": (3, 16, 16), "sequence": (24, 4)}


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)  # tiny tensors: threading overhead dominates (and CI has 2 shared cores)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(params=SPACES, ids=[p.stem for p in SPACES])
def space_path(request) -> Path:
    return request.param


def gpu_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


requires_gpu = pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU")


def load_script(name: str):
    """experiments/<name>.py as a fresh module, loaded the way it runs (experiments/ on the path for its sibling
    _common); its ``main`` is not run."""
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(f"{name}_script", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def experiment_script():
    """:func:`load_script`, for module fixtures that load an experiments/ script."""
    return load_script
