"""Errors a user can act on.

Every error the engine raises on bad input is a :class:`NasError`. It carries where the problem is (file, line,
key) and renders as one line, which the CLI prints before exiting with status 2.
"""
from __future__ import annotations


class NasError(Exception):
    """Base class of all user-facing errors: one line, naming file, line and key where known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, key: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        key = f"{self.key}: " if self.key else ""
        return (where + key + self.message).replace("\n", " ")


class SpaceError(NasError):
    """A search-space file is malformed or unsatisfiable."""


class SpecError(NasError):
    """An architecture spec (JSON) fails validation."""


class BuildError(NasError):
    """A valid spec cannot be built for the given input (e.g. a shape that does not fit)."""


class DataError(NasError):
    """A dataset is unknown, missing or malformed."""


class BudgetError(NasError):
    """A training / evaluation budget is invalid."""


class ConfigError(NasError):
    """A run configuration is invalid."""


class RunError(NasError):
    """A run directory is missing, foreign, or would be corrupted by the requested action."""


class ExportError(NasError):
    """An export or load request cannot be satisfied."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """Any exception as one line of at most ``limit`` characters: a :class:`NasError` as it renders itself, any
    other as ``Type: message`` with whitespace collapsed (for errors recorded in a result or a card)."""
    if isinstance(error, NasError):
        return error.one_line()
    text = " ".join(str(error).split())
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def unknown_key(key: object, allowed) -> str:
    """``unknown key 'num_clases' (did you mean 'num_classes'? expected one of: ...)``: the message for a key that a
    file or a mapping does not take, with the closest allowed key when one is close."""
    import difflib

    allowed = [str(a) for a in allowed]
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r} ({hint}expected one of: {', '.join(allowed)})"


def plain_message(error: dict) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) in this project's words: ``must be >= 1`` rather
    than ``Input should be greater than or equal to 1``; a message the table below does not know is kept."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    bounds = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"), "less_than": ("<", "lt"),
              "less_than_equal": ("<=", "le")}
    if kind in bounds and bounds[kind][1] in ctx:
        op, name = bounds[kind]
        return f"must be {op} {ctx[name]}"
    words = {"int_parsing": "must be an integer", "int_type": "must be an integer",
             "int_from_float": "must be a whole number", "float_parsing": "must be a number",
             "float_type": "must be a number", "bool_parsing": "must be true or false",
             "bool_type": "must be true or false", "string_type": "must be a string", "list_type": "must be a list",
             "dict_type": "must be a mapping", "model_type": "must be a mapping",
             "finite_number": "must be a finite number"}
    if kind in words:
        return words[kind]
    if kind == "literal_error" and "expected" in ctx:
        return f"must be one of {ctx['expected']}"
    message = str(error.get("msg", "invalid value"))
    return message[len("Value error, "):] if message.startswith("Value error, ") else message
