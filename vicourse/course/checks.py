"""Checks for the coding exercises: a failure says what was expected, what came back, and hints.

The autograded check cells of the chapters call these functions on a student's answer; the
student notebooks import them (students install vicourse with the notebook's first cell). A
passed check prints one line starting with a check mark. A failed check raises
:class:`CheckFailed`, an ``AssertionError``, so nbgrader scores the cell 0; in a notebook it is
shown as a short report instead of a traceback::

    ✗ my_kl_diag(mu_q, logvar_q, mu_p, logvar_p) on a batch of 32 pairs of Gaussians
      expected: shape (32,)
      got:      shape (32, 10)
      hint:     sum over the last dimension (the K coordinates) only

The checks compare with values (from the package's reference or a closed form), never with
the reference code, so a report shows numbers and shapes but no solution.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "CheckFailed",
    "call_answer",
    "check_close",
    "check_finite",
    "check_shape",
    "check_tensor",
    "check_that",
    "describe",
]


class CheckFailed(AssertionError):
    """A check that did not pass: what was checked, what was expected, what came back, a hint."""

    def __init__(self, what: str, expected: str, got: str, hint: str = "", details: str = ""):
        self.what, self.expected, self.got, self.hint, self.details = (
            what, expected, got, hint, details
        )
        super().__init__(self.report())

    def report(self) -> str:
        """The message a student sees, one fact per line."""
        lines = [f"✗ {self.what}", f"  expected: {self.expected}", f"  got:      {self.got}"]
        if self.hint:
            lines.append(f"  hint:     {self.hint}")
        if self.details:
            lines += ["", self.details.rstrip()]
        return "\n".join(lines)

    def _render_traceback_(self) -> list[str]:
        """IPython shows these lines instead of a traceback through this module's frames."""
        return self.report().splitlines()


def _passed(what: str, detail: str) -> None:
    print(f"✓ {what}: {detail}")


def _shape(value: Tensor) -> str:
    return str(tuple(value.shape))


def describe(value: Any) -> str:
    """A short description of a value for a report: tensors by shape and dtype, not contents.

    For example ``tensor of shape (32, 10) (torch.float64)`` or ``a tuple of 2: ...``.
    """
    if hasattr(value, "description") and type(value).__name__ == "Unreadable":
        return value.description  # a value the grader did not rebuild (vicourse.verdict)
    if isinstance(value, Tensor):
        if value.numel() == 1:
            return f"tensor {value.item():.6g} (shape {_shape(value)}, {value.dtype})"
        return f"tensor of shape {_shape(value)} ({value.dtype})"
    if isinstance(value, tuple | list):
        kind = type(value).__name__
        return f"a {kind} of {len(value)}: " + ", ".join(describe(v) for v in value)
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 60 else text[:57] + '...'}"


def call_answer(fn: Callable[..., Any], *args: Any, what: str | None = None, **kwargs: Any) -> Any:
    """Call the student's function ``fn``; report "not written yet" and crashes as CheckFailed.

    ``what`` describes the call in the report (default: the function's name and argument
    shapes). Errors raised by the student's code are reported with their own traceback, so
    the student sees the line that failed.
    """
    name = getattr(fn, "__name__", repr(fn))
    if what is None:
        arguments = [describe(a) for a in args]
        arguments += [f"{key}={describe(v)}" for key, v in kwargs.items()]
        what = f"{name}({', '.join(arguments)})"
    if _answer_hook is not None:  # grading: record the answer, or replay the recorded one
        return _answer_hook(lambda: _call(fn, args, kwargs, what, name), what)
    return _call(fn, args, kwargs, what, name)


# Set by vicourse.course.verdict while the grader collects or replays the answers of a check.
_answer_hook: Callable[[Callable[[], Any], str], Any] | None = None


def _call(fn: Callable[..., Any], args: tuple, kwargs: dict, what: str, name: str) -> Any:
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(
            what,
            expected="a return value",
            got="NotImplementedError: the function is not written yet",
            hint=f"replace `raise NotImplementedError()` in the cell that defines {name} "
            "with your code, run that cell, then run this check again",
        ) from None
    except Exception as err:  # the student's code crashed: show where, in their code
        frames = traceback.format_exception(type(err), err, err.__traceback__.tb_next)
        raise CheckFailed(
            what,
            expected="a return value",
            got=f"{type(err).__name__}: {err}",
            hint="the traceback below ends at the line of your code that failed",
            details="".join(frames),
        ) from err


def _require(condition: bool, what: str, expected: str, got: str, hint: str) -> None:
    if not condition:
        raise CheckFailed(what, expected, got, hint)


def _require_tensor(value: Any, what: str, hint: str) -> None:
    _require(isinstance(value, Tensor), what, "a torch.Tensor", describe(value),
             hint or "build the result from torch operations and return the tensor")


def _require_shape(value: Any, shape: tuple[int, ...], what: str, hint: str) -> None:
    _require_tensor(value, what, hint)
    _require(tuple(value.shape) == shape, what, f"shape {shape}", f"shape {_shape(value)}", hint)


def check_that(condition: bool, *, what: str, expected: str, got: str, hint: str = "") -> None:
    """Pass if ``condition`` is true; otherwise report ``expected`` versus ``got``."""
    _require(condition, what, expected, got, hint)
    _passed(what, expected)


def check_tensor(value: Any, *, what: str, hint: str = "") -> None:
    """Pass if ``value`` is a ``torch.Tensor``."""
    _require_tensor(value, what, hint)
    _passed(what, "a tensor")


def check_shape(value: Any, shape: Sequence[int], *, what: str, hint: str = "") -> None:
    """Pass if ``value`` is a tensor of exactly this shape."""
    _require_shape(value, tuple(shape), what, hint)
    _passed(what, f"shape {tuple(shape)}")


def check_finite(value: Any, *, what: str, hint: str = "") -> None:
    """Pass if every entry of the tensor ``value`` is finite (no nan, no +-inf)."""
    _require_tensor(value, what, hint)
    bad = ~torch.isfinite(value.detach())
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0])
        entry = value.detach()[index].item()
        where = f" at index {index}" if value.dim() else ""
        got = f"{entry}{where}"
        if value.numel() > 1:
            got += f" ({int(bad.sum())} of {value.numel()} entries are not finite)"
        raise CheckFailed(what, "finite values", got, hint)
    _passed(what, "finite")


def _pattern(got: Tensor, expected: Tensor) -> str:
    """A diagnosis of a systematic error: a constant factor or a constant offset everywhere."""
    if got.numel() < 2 or not (torch.isfinite(got).all() and torch.isfinite(expected).all()):
        return ""
    difference = got - expected
    spread = (difference.max() - difference.min()).item()
    if spread <= 1e-6 * max(1.0, difference.abs().max().item()):
        return (f"every entry is off by the same {difference.mean().item():+.6g}: "
                "a constant term is missing or extra")
    if (expected != 0).all():
        ratio = got / expected
        if (ratio.max() - ratio.min()).item() <= 1e-6 * ratio.abs().max().item():
            return (f"every entry is {ratio.mean().item():.6g} times the expected value: "
                    "a constant factor is off")
    return ""


def check_close(
    value: Any, expected: Tensor | float, *, what: str, rtol: float = 1e-6, atol: float = 1e-8,
    hint: str = "",
) -> None:
    """Pass if ``value`` matches ``expected``: ``|value - expected| <= atol + rtol |expected|``.

    The report names the worst entry, how many entries differ, and a systematic pattern (a
    constant factor or offset) when there is one.
    """
    expected = torch.as_tensor(expected)
    _require_shape(value, tuple(expected.shape), what, hint)
    got = value.detach().to(torch.float64).cpu()
    want = expected.detach().to(torch.float64).cpu()
    close = torch.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    tolerance = f"to within {atol:.2g} + {rtol:.2g} x |expected|" if rtol else f"± {atol:.2g}"
    if close.all():
        _passed(what, f"values match ({tolerance})")
        return
    error = torch.where(close, torch.zeros_like(got), (got - want).abs().nan_to_num(math.inf))
    flat = int(error.flatten().argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), got.shape))
    where = f" at index {index}" if got.dim() else ""
    got_text = f"{got[index].item():.8g}{where}"
    if got.numel() > 1:
        got_text += f" (the largest error; {int((~close).sum())} of {got.numel()} entries differ)"
    diagnosis = _pattern(got, want)
    raise CheckFailed(
        what,
        expected=f"{want[index].item():.8g}{where} ({tolerance})",
        got=got_text,
        hint="; ".join(text for text in (diagnosis, hint) if text),
    )
