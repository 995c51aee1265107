"""Command-line values checked as they are parsed, and a parser whose errors are one line."""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from bags.values import MAX_SEED, parse_beta


class OneLineParser(argparse.ArgumentParser):
    """Reports a bad argument as ``<prog>: error: <message>``, one line (no usage text), exit 2.
    Subcommand parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _real(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def seed(text: str) -> int:
    """A random generator's seed, 0 to 2**32 - 1."""
    value = _int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to {MAX_SEED}, got {text!r}")
    return value


def whole(low: int, high: int):
    """An integer from ``low`` to ``high``: the config schema's bounds on a count that sizes
    memory or threads (a stranger's 10**20 fails here, not deep in an allocator)."""

    def parse(text: str) -> int:
        value = _int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"expected an integer from {low} to {high}, got {text!r}"
            )
        return value

    return parse


def probability(text: str) -> float:
    """A number in [0, 1] (a score threshold)."""
    value = _real(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def share(text: str) -> float:
    """A number in (0, 1) (a share of the images)."""
    value = _real(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def beta(text: str) -> float:
    """BAGS's beta: a number > 0, or "all" (infinity), as ``bags.values.parse_beta`` reads it."""
    try:
        value: float | str = float(text)
    except ValueError:
        value = text
    try:
        return parse_beta(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
