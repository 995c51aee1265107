"""A method's options as the config gives them, checked: no unknown name, numbers in range."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bags.values import is_number


def check_options(options: dict, allowed: Sequence[str], what: str) -> dict:
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValueError(f"{what}: unknown option(s) {sorted(unknown)}; known: {sorted(allowed)}")
    return options


def number_option(
    options: dict,
    key: str,
    default: float,
    what: str,
    low: float = 0.0,
    high: float = math.inf,
    low_allowed: bool = False,
) -> float:
    """Option ``key`` (or ``default``): a finite number above ``low`` (or equal to it, with
    ``low_allowed``) and below ``high``."""
    value = options.get(key, default)
    fits = False
    if is_number(value):
        fits = (low <= value if low_allowed else low < value) and value < high
    if not fits:
        bounds = f"{'>=' if low_allowed else '>'} {low:g}"
        if high != math.inf:
            bounds += f" and < {high:g}"
        raise ValueError(f"{what}: option {key!r} must be a number {bounds}, got {value!r}")
    return value
