"""Plugins: the user's own modules, named in a run config (``plugins: [my_package.my_blocks]``) and imported before
the config is validated and its space parsed, so that what they register (blocks, datasets, objectives, evaluators,
samplers, export formats) is known to the whole run, in every process that works on it (docs/extending.md)."""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from nas.errors import ConfigError, one_line


def load_plugins(modules: Sequence[str], *, file: str | None = None, lines: dict | None = None) -> list[str]:
    """Import each named module (once per process); a module that cannot be imported is a one-line ConfigError
    naming the config line of its entry (``plugins.N``). Returns the names imported by this call."""
    if isinstance(modules, str) or not isinstance(modules, Sequence):
        raise ConfigError(f"must be a list of module names, got {modules!r}", file=file,
                          line=(lines or {}).get(("plugins",)), key="plugins")
    loaded = []
    for i, name in enumerate(modules):
        where = dict(file=file, line=(lines or {}).get(("plugins", i)), key=f"plugins.{i}")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a plugin is a module name such as my_package.my_blocks, got {name!r}", **where)
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - any failure inside the user's module: one line, named
            raise ConfigError(f"cannot import plugin {name!r}: {one_line(e, 200)}", **where) from None
        loaded.append(name)
    return loaded
