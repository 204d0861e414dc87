"""The API contract on bad input, as a table of calls: each either gives a correct, finite
result or raises ValueError/TypeError with a message that names the argument.

``tests/test_contract_*.py`` hold the tables (``CASES``) and test every case;
``python bench/api_sweep.py`` runs all of them and prints the sweep's table (calls tried,
clear errors, correct results, unclear, silently wrong).
"""

from __future__ import annotations

import math
import signal
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

OUTCOMES = ("clear error", "correct result", "unclear", "silently wrong")


@dataclass
class Case:
    """One call. ``raises``: the expected error type, whose message must contain ``names``;
    or ``check``: a predicate that the result must satisfy (a correct, finite result);
    ``warns``: a warning category the call must also emit (a legitimate but unreliable
    result)."""

    name: str
    call: Callable[[], object]
    raises: type[Exception] | None = None
    names: str = ""
    check: Callable[[object], bool] | None = None
    warns: type[Warning] | None = None
    seconds: int = 20  # a call running longer is a hang: silently wrong


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def outcome(case: Case) -> tuple[str, str]:
    """(one of OUTCOMES, what happened)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(case.seconds)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = case.call()
    except _Hang:
        return "silently wrong", f"no answer after {case.seconds} s"
    except (ValueError, TypeError) as error:
        text = f"{type(error).__name__}: {error}"
        if case.raises is not None and isinstance(error, case.raises) and case.names in str(error):
            return "clear error", text
        return "unclear", text
    except Exception as error:  # a raw error from deep inside torch or Python
        return "unclear", f"{type(error).__name__}: {error}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if case.raises is not None:
        return "silently wrong", f"returned {result!r:.200} instead of raising"
    if case.warns is not None and not any(issubclass(w.category, case.warns) for w in caught):
        return "silently wrong", f"returned {result!r:.200} without a {case.warns.__name__}"
    if case.check is not None and not case.check(result):
        return "silently wrong", f"returned {result!r:.200}, which fails the check"
    return "correct result", f"returned {result!r:.120}"


def finite(value: object) -> bool:
    """True when every number in a tensor, a float or a tuple/list of them is finite."""
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all()) if value.is_floating_point() else True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (tuple, list)):
        return all(finite(v) for v in value)
    return True


def assert_holds(case: Case) -> None:
    kind, detail = outcome(case)
    assert kind in ("clear error", "correct result"), f"{case.name}: {kind}: {detail}"
