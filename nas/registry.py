"""Named registries: the extension points of the engine (datasets, samplers, objectives, evaluators, export formats,
zero-cost proxies; blocks keep their own registry, which also checks constructor signatures).

timm-style: a decorator registers an entry under a name; an unknown name is one line listing the known ones::

    DATASETS = Registry("dataset", error=DataError, key="dataset")

    @DATASETS.register("digits")
    def load_digits(...): ...

    DATASETS.get("digts")   # DataError: dataset: unknown dataset 'digts' (known: digits, mnist, ...)

A user adds entries from their own module, named in a run config's ``plugins:`` list (see :mod:`nas.plugins`).
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from nas.errors import ConfigError, NasError

T = TypeVar("T")
_REQUIRED = object()  # no default given to Registry.get


class Registry(Generic[T]):
    """Name -> entry. Entries are registered once; a second registration under the same name is an error unless
    ``replace=True`` is asked for (a plugin overriding a built-in on purpose)."""

    def __init__(self, kind: str, *, error: type[NasError] = ConfigError, key: str | None = None):
        self.kind = kind
        self.error = error
        self.key = key if key is not None else kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None, *, replace: bool = False) -> Callable[[T], T] | T:
        """``@registry.register("name")`` as a decorator, or ``registry.register("name", entry)`` directly."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.kind} names are non-empty strings, got {name!r}")

        def add(value: T) -> T:
            if name in self._entries and not replace and self._entries[name] is not value:
                raise TypeError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = value
            return value

        return add if entry is None else add(entry)

    def get(self, name: str, default: T | object = _REQUIRED) -> T:
        """The entry of ``name``; an unknown name is the one-line error, unless a ``default`` is given (as dict.get)."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            if default is not _REQUIRED:
                return default
            raise self.error(self.unknown(name), key=self.key) from None

    def unknown(self, name: object) -> str:
        """The one-line message for a name that is not registered, with a close match when there is one."""
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r} (known: {', '.join(self.names())}){hint}"

    def unregister(self, name: str) -> T:
        """Remove and return an entry (a test that registered one undoes it; entries otherwise last the process)."""
        try:
            return self._entries.pop(name)
        except KeyError:
            raise self.error(self.unknown(name), key=self.key) from None

    def snapshot(self) -> dict[str, T]:
        """A copy of the entries, for :meth:`restore` (a test registering several entries puts the table back)."""
        return dict(self._entries)

    def restore(self, entries: dict[str, T]) -> None:
        self._entries = dict(entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __getitem__(self, name: str) -> T:  # mapping access (KeyError), for code that reads a registry as a dict
        return self._entries[name]

    def __setitem__(self, name: str, entry: T) -> None:  # replaces on purpose (a test's stand-in)
        self.register(name, entry, replace=True)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
