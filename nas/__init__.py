"""patternnas: neural architecture search over a declarative grammar of architecture design patterns.

Importing ``nas`` is cheap: torch, Optuna and Ray are imported only by the functions that need them.
"""
from __future__ import annotations

__version__ = "0.1.0"

from nas.errors import NasError  # noqa: E402

__all__ = ["NasError", "__version__"]
