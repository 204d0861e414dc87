"""Argument checks shared by the vicourse modules, with messages that say what to pass."""

from __future__ import annotations

import math
import operator
from numbers import Real

from torch import Tensor


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


def check_log_density_shape(values: object, points: Tensor) -> None:
    """Raise ValueError unless a log density returned one value per point: ``values`` must be
    a tensor of shape ``(S,)`` for ``points`` of shape ``(S, D)`` (S chains or samples)."""
    if not isinstance(values, Tensor) or values.shape != points.shape[:-1]:
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(
            f"log_density returned {got} for points of shape (S, D) = {tuple(points.shape)}; "
            f"it must return values of shape (S,): one log density per chain, shape "
            f"{tuple(points.shape[:-1])} (sum over the last dimension)"
        )


def check_log_density_not_nan(values: Tensor, points: Tensor, what: str) -> None:
    """Raise ValueError if a log density returned NaN; ``values`` ``(S,)`` at ``points`` ``(S, D)``.

    ``what`` names the points in the message (for example "proposals"). Points where NaN is
    expected (a diverged trajectory) should be left out by the caller.
    """
    bad = values.isnan()
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise ValueError(
            f"log_density returned NaN at {int(bad.sum())} of {len(values)} {what} (the first "
            f"at {points[first].tolist()}): the model computes 0/0, inf - inf or the log of a "
            "negative number there; return -inf outside the support, and compute the log "
            "density in log space (log-sum-exp, no log of exp) so that it stays finite"
        )
