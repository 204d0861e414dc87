"""Argument checks shared by the vicourse modules, with messages that say what to pass."""

from __future__ import annotations

import math
import operator
from numbers import Real


def positive_count(n: object, name: str) -> int:
    """``n`` as a Python int if it is an integer >= 1 (numpy integers too, bools not)."""
    try:
        count = operator.index(n)
    except TypeError:
        count = 0
    if isinstance(n, bool) or count < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return count


def is_finite_real(value: object) -> bool:
    """True for a finite real number, Python or numpy, that is not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def check_positive_finite(value: object, name: str) -> None:
    """Raise ValueError unless ``value`` is a finite real number > 0 (not a bool)."""
    if not (is_finite_real(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
