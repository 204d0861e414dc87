"""Exercise checks: a pass prints a check mark; a failure says what, expected, got, and a hint."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vicourse.course.checks import (
    CheckFailed,
    call_answer,
    check_close,
    check_finite,
    check_shape,
    check_tensor,
    check_that,
    describe,
)


def failure(check, *args, **kwargs) -> CheckFailed:
    with pytest.raises(CheckFailed) as raised:
        check(*args, **kwargs)
    return raised.value


def test_a_failure_is_an_assertion_error_whose_report_has_every_part():
    error = failure(check_that, False, what="the thing", expected="3", got="4", hint="add one")
    assert isinstance(error, AssertionError)
    assert str(error).splitlines() == [
        "✗ the thing", "  expected: 3", "  got:      4", "  hint:     add one"
    ]
    assert error._render_traceback_() == str(error).splitlines()  # what IPython shows


def test_a_pass_prints_one_line(capsys):
    check_shape(torch.zeros(2, 3), (2, 3), what="zeros")
    check_close(torch.ones(3), torch.ones(3), what="ones")
    assert capsys.readouterr().out.splitlines() == [
        "✓ zeros: shape (2, 3)", "✓ ones: values match (to within 1e-08 + 1e-06 x |expected|)"
    ]


def test_shape_and_type_reports():
    error = failure(check_shape, torch.zeros(32, 10), (32,), what="kl", hint="sum over K")
    assert (error.expected, error.got) == ("shape (32,)", "shape (32, 10)")
    assert error.hint == "sum over K"
    error = failure(check_tensor, [1.0, 2.0], what="result")
    assert error.expected == "a torch.Tensor" and error.got.startswith("a list of 2: float 1.0")
    assert "torch operations" in error.hint  # a default hint


def test_close_reports_the_worst_entry_and_how_many_differ():
    expected = torch.arange(1.0, 6.0)
    got = expected.clone()
    got[1] += 0.5
    got[3] += 2.0
    error = failure(check_close, got, expected, what="v")
    assert error.expected.startswith("4 at index (3,)")
    assert error.got.startswith("6 at index (3,)") and "2 of 5 entries differ" in error.got


@given(st.floats(0.1, 10.0).filter(lambda f: abs(f - 1) > 1e-3), st.integers(2, 20))
def test_close_diagnoses_a_constant_factor(factor: float, n: int):
    expected = torch.linspace(1.0, 3.0, n, dtype=torch.float64)
    error = failure(check_close, factor * expected, expected, what="v", hint="see the formula")
    found = re.search(r"every entry is (\S+) times the expected value", error.hint)
    assert found and float(found[1]) == pytest.approx(factor, rel=1e-5)
    assert error.hint.endswith("see the formula")


@given(st.floats(-100.0, 100.0).filter(lambda d: abs(d) > 1e-3), st.integers(2, 20))
def test_close_diagnoses_a_constant_offset(offset: float, n: int):
    expected = torch.linspace(-2.0, 3.0, n, dtype=torch.float64)
    error = failure(check_close, expected + offset, expected, what="v")
    found = re.search(r"every entry is off by the same (\S+):", error.hint)
    assert found and float(found[1]) == pytest.approx(offset, rel=1e-5)


def test_close_without_a_pattern_gives_only_the_authors_hint():
    error = failure(check_close, torch.tensor([1.0, 5.0, 2.0]), torch.tensor([1.0, 2.0, 3.0]),
                    what="v", hint="h")
    assert error.hint == "h"


def test_close_reports_nan_and_wrong_shapes():
    error = failure(check_close, torch.tensor([1.0, float("nan")]), torch.ones(2), what="v")
    assert error.got.startswith("nan at index (1,)")
    error = failure(check_close, torch.ones(3), torch.ones(2), what="v")
    assert (error.expected, error.got) == ("shape (2,)", "shape (3,)")


def test_finite_reports_the_first_bad_entry():
    error = failure(check_finite, torch.tensor([1.0, float("-inf"), float("nan")]), what="v")
    assert error.got == "-inf at index (1,) (2 of 3 entries are not finite)"
    assert failure(check_finite, torch.tensor(float("inf")), what="v").got == "inf"


def test_an_unwritten_answer_is_reported_as_such():
    def answer(x):
        # YOUR CODE HERE
        raise NotImplementedError()

    error = failure(call_answer, answer, torch.zeros(3))
    assert error.what == "answer(tensor of shape (3,) (torch.float32))"
    assert "not written yet" in error.got and "raise NotImplementedError()" in error.hint


def test_a_crash_in_the_answer_is_reported_with_the_students_traceback():
    def answer(x):
        return x @ torch.ones(5)

    error = failure(call_answer, answer, torch.zeros(4, 3), what="answer on a 4 x 3 matrix")
    assert error.got.startswith("RuntimeError: ")
    assert "in answer" in error.details and "return x @ torch.ones(5)" in error.details
    assert "call_answer" not in error.details  # the checker's own frame is left out
    assert str(error).endswith(error.details.rstrip())


def test_call_answer_returns_what_the_answer_returns():
    assert call_answer(lambda a, b=1: a + b, 2, b=3) == 5


def test_describe_names_shapes_not_contents():
    assert describe(torch.zeros(2, 3)) == "tensor of shape (2, 3) (torch.float32)"
    assert describe(torch.tensor(1.5)) == "tensor 1.5 (shape (), torch.float32)"
    assert describe((torch.zeros(2), 3)).startswith("a tuple of 2: tensor of shape (2,)")
    assert describe("x" * 100).endswith("...")
