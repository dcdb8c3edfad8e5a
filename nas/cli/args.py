"""The command line's argument types and its parser class: every usage error is one line and exit status 2."""
from __future__ import annotations

import argparse

EXIT_USAGE = 2
MAX_SEED = 2**31 - 2  # as a run config's seed: numpy / Optuna take seeds below 2**32, with room to derive others


class Parser(argparse.ArgumentParser):
    """A usage error (bad or missing argument) is one line, like every other bad input, and exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def int_in(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high] (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"expected an integer {f'in [{low}, {high}]' if high is not None else f'>= {low}'}, got {text!r}")
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


seed = int_in(0, MAX_SEED)


def shape(text: str) -> tuple[int, ...]:
    """An argparse type: an input shape without the batch, e.g. 3,32,32 or 784,1."""
    try:
        sizes = tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers such as 3,32,32 or 784,1, got {text!r}")
    return sizes
