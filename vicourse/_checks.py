"""Argument checks shared by the vicourse modules, with messages that say what to pass."""

from __future__ import annotations

import math
import operator
from numbers import Real

import torch
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


# --- the validation layer: tensors in, with messages that name the argument ---------------


def as_tensor(value: object, name: str, *, dtype: torch.dtype | None = None) -> Tensor:
    """``value`` as a tensor: tensors pass through, numbers, lists and NumPy arrays are
    converted once (to ``dtype``, or torch's default float type for floats); anything else is
    a TypeError that names the argument."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a tensor (or an array-like of numbers), got "
                        f"{type(value).__name__} {value!r:.60}")
    try:  # with dtype: converted directly (a list of floats never passes through float32)
        tensor = torch.as_tensor(value) if dtype is None else torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"{name} must be a tensor (or an array-like of numbers), got "
                        f"{type(value).__name__}: {error}") from None
    if dtype is not None:
        return tensor.to(dtype)
    return tensor.to(torch.get_default_dtype()) if tensor.is_floating_point() else tensor


def check_float(tensor: Tensor, name: str) -> None:
    """TypeError unless ``tensor`` is floating point (integers, booleans: convert first)."""
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}; "
                        f"convert it with {name}.float() (or .double())")


def check_same_dtype_and_device(**tensors: Tensor) -> None:
    """TypeError unless the named tensors share one dtype and one device, naming both."""
    items = list(tensors.items())
    (first, reference), *rest = items
    for name, tensor in rest:
        if tensor.dtype != reference.dtype:
            raise TypeError(
                f"{name} has dtype {tensor.dtype} but {first} has {reference.dtype}; convert "
                f"one of them, e.g. {name}.to({first}.dtype)"
            )
        if tensor.device != reference.device:
            raise TypeError(
                f"{name} is on {tensor.device} but {first} is on {reference.device}; move one, "
                f"e.g. {name}.to({first}.device)"
            )


def check_shape(tensor: Tensor, name: str, expected: str, ok: bool) -> None:
    """ValueError if not ``ok``: ``tensor`` should have the documented shape ``expected``."""
    if not ok:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(tensor.shape)}")


def check_nonempty(tensor: Tensor, name: str) -> None:
    """ValueError for a tensor with no elements."""
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)}); pass at least one value")


def check_all_finite(tensor: Tensor, name: str) -> None:
    """ValueError if ``tensor`` holds NaN or an infinity, with how many and where."""
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        first = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite values of {tensor.numel()} (the first, "
            f"{tensor[first].item()}, at index {first}); remove or replace them first"
        )


def probability_tolerance(dtype: torch.dtype, size: int) -> float:
    """How far from 1 a sum of ``size`` probabilities in ``dtype`` may be from rounding alone."""
    return max(size, 1) * torch.finfo(dtype).eps * 4


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an int: TypeError unless an integer (not a bool), ValueError unless torch
    accepts it (-2**63 <= seed < 2**64)."""
    if isinstance(seed, bool):
        raise TypeError(f"{name} must be an integer, e.g. 0, got {seed!r}")
    try:
        value = operator.index(seed)
    except TypeError:
        raise TypeError(f"{name} must be an integer, e.g. 0, got {type(seed).__name__} "
                        f"{seed!r:.40}") from None
    if not -(2**63) <= value < 2**64:
        raise ValueError(f"{name} must be an integer in [-2**63, 2**64), got {value}")
    return value


def check_generator(generator: object, name: str = "generator") -> None:
    """TypeError unless ``generator`` is None or a torch.Generator."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got "
                        f"{type(generator).__name__}; e.g. torch.Generator().manual_seed(0)")


class NonFiniteResultError(FloatingPointError, ValueError):
    """A computation (a training run, an estimate) became NaN or infinite. It is a
    FloatingPointError, as before, and a ValueError: the input (a learning rate, a model)
    made it so, and callers that catch bad input catch it."""
