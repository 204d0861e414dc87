"""vicourse.objectives.weights: log importance weights and their stable log-mean-exp."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from vicourse.objectives.weights import log_mean_exp, log_weights


def test_log_weights_are_log_p_minus_log_q():
    log_p, log_q = torch.tensor([-1.0, -2.0]), torch.tensor([-0.5, -4.0])
    assert torch.equal(log_weights(log_p, log_q), torch.tensor([-0.5, 2.0]))


def test_log_weights_reject_a_log_joint_that_does_not_sum_over_the_event():
    with pytest.raises(ValueError, match=r"shape \(5, 3\) but log q\(z\) has shape \(5,\)"):
        log_weights(torch.zeros(5, 3), torch.zeros(5))


@given(st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=50), st.floats(-1e4, 1e4))
def test_log_mean_exp_is_the_log_of_the_mean_and_shifts_with_its_input(values, shift):
    a = torch.tensor(values, dtype=torch.float64)
    result = log_mean_exp(a)
    assert math.isfinite(result.item())
    # oracle in exact-enough arithmetic: the largest term factored out by hand
    top = max(values)
    expected = top + math.log(sum(math.exp(v - top) for v in values) / len(values))
    assert result.item() == pytest.approx(expected, abs=1e-9)
    assert log_mean_exp(a + shift).item() == pytest.approx(expected + shift, abs=1e-8)


def test_log_mean_exp_needs_a_term():
    with pytest.raises(ValueError, match="at least one term along dim=0"):
        log_mean_exp(torch.zeros(0, 3))
