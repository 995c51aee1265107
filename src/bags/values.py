"""Values read from JSON, YAML and checkpoints, checked for what they claim to be."""

from __future__ import annotations

import math
from typing import Any

_NUMBER = (int, float)
MAX_SEED = 2**32 - 1  # the config schema's bound too: every generator here takes 32 bits


def is_int(value: Any) -> bool:
    """An integer, and not a ``true`` or ``false`` (Python's bool is an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float: not a bool, NaN, infinity or an int past a float's range."""
    return type(value) in _NUMBER and finite(value)


def finite(value: float) -> bool:
    """``math.isfinite``, false for an int that a float cannot hold (JSON integers have no
    bound) instead of raising."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def parse_beta(beta: object) -> float:
    """BAGS's beta as a number: > 0, or "all" (infinity: every "others" RoI; infinity itself,
    as this returns it, reads back the same). The one reader of beta, for the config, the
    command line, groups and model files."""
    if beta == "all" or (type(beta) is float and beta == math.inf):
        return math.inf
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 < beta < float("inf"):
        raise ValueError(f"'beta' must be a positive number or 'all', got {beta!r}")
    return float(beta)


def beta_value(beta: float) -> float | str:
    """Beta as files record it: "all" for infinity."""
    return "all" if math.isinf(beta) else beta
