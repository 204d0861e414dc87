"""Score-function estimators (plain, control variate, Rao-Blackwellized) and ADVI's
reparameterization gradient against the exact gradient of a Gaussian target."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vicourse.objectives.advi import reparameterization_gradient
from vicourse.objectives.score_function import (
    control_variate_gradient,
    leave_one_out_baseline,
    rao_blackwellized_gradient,
    score_function_gradient,
)

F64 = torch.float64


def _target(mu, tau):
    """log N(z; mu, diag tau^2) and its per-coordinate blanket (the coordinate's own term)."""
    def terms(z):
        return -0.5 * ((z - mu) / tau) ** 2 - tau.log() - 0.5 * math.log(2 * math.pi)
    return (lambda z: terms(z).sum(-1)), terms


def _exact_gradient(mean, log_std, mu, tau):
    mean, log_std = mean.clone().requires_grad_(True), log_std.clone().requires_grad_(True)
    sigma2 = (2 * log_std).exp()
    elbo = (-0.5 * ((mean - mu) ** 2 + sigma2) / tau**2 - tau.log() + log_std).sum()
    return torch.stack(torch.autograd.grad(elbo, (mean, log_std)))


ESTIMATORS = {
    "score function": lambda lj, bl, m, s, e: score_function_gradient(lj, m, s, e),
    "control variate": lambda lj, bl, m, s, e: control_variate_gradient(lj, m, s, e),
    "rao-blackwellized": lambda lj, bl, m, s, e: rao_blackwellized_gradient(bl, m, s, e, False),
    "rao-blackwellized + cv": lambda lj, bl, m, s, e: rao_blackwellized_gradient(bl, m, s, e),
    "reparameterization": lambda lj, bl, m, s, e: reparameterization_gradient(lj, m, s, e),
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), dim=st.integers(1, 3))
def test_unbiased_within_monte_carlo_error(name, seed, dim):
    g = torch.Generator().manual_seed(seed)
    mean, log_std = torch.randn(dim, generator=g, dtype=F64), 0.5 * torch.randn(dim, generator=g,
                                                                                 dtype=F64)
    mu, tau = torch.randn(dim, generator=g, dtype=F64), 0.5 + torch.rand(dim, generator=g,
                                                                          dtype=F64)
    log_joint, blanket = _target(mu, tau)
    eps = torch.randn(4000, 4, dim, generator=g, dtype=F64)
    estimates = ESTIMATORS[name](log_joint, blanket, mean, log_std, eps)  # (R, 2, D)
    error = (estimates.mean(0) - _exact_gradient(mean, log_std, mu, tau)).abs()
    assert bool((error <= 5 * estimates.std(0) / math.sqrt(len(eps)) + 1e-10).all())


def test_leave_one_out_baseline_against_a_loop():
    g = torch.Generator().manual_seed(0)
    weights, scores = torch.randn(5, 1, 1, generator=g, dtype=F64), torch.randn(5, 2, 3,
                                                                              generator=g,
                                                                              dtype=F64)
    expected = torch.stack([
        (weights[others] * scores[others] ** 2).sum(0) / (scores[others] ** 2).sum(0)
        for others in ([j for j in range(5) if j != s] for s in range(5))])
    torch.testing.assert_close(leave_one_out_baseline(weights, scores), expected)


@settings(max_examples=20, deadline=None)
@given(shift=st.floats(-1e3, 1e3), seed=st.integers(0, 1000))
def test_control_variate_ignores_a_constant_in_the_log_joint(shift, seed):
    log_joint, blanket = _target(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    eps = torch.randn(3, 8, 2, generator=torch.Generator().manual_seed(seed), dtype=F64)
    mean, log_std = torch.tensor([0.3, -1.0], dtype=F64), torch.tensor([0.1, -0.2], dtype=F64)
    torch.testing.assert_close(
        control_variate_gradient(lambda z: log_joint(z) + shift, mean, log_std, eps),
        control_variate_gradient(log_joint, mean, log_std, eps), atol=1e-8, rtol=1e-8)


def test_variance_reduction_on_a_fixed_case():
    mu, tau = torch.tensor([1.0, -2.0], dtype=F64), torch.tensor([0.5, 2.0], dtype=F64)
    log_joint, blanket = _target(mu, tau)
    mean, log_std = torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64)
    eps = torch.randn(20_000, 8, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    variance = {name: fn(lambda z: log_joint(z) - 20, blanket, mean, log_std, eps).var(0).sum()
                for name, fn in ESTIMATORS.items()}
    assert variance["control variate"] < variance["score function"]
    assert variance["rao-blackwellized"] < variance["score function"]


def test_bad_input():
    log_joint, _ = _target(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
    mean = torch.zeros(2, dtype=F64)
    with pytest.raises(ValueError, match="at least 2 draws"):
        control_variate_gradient(log_joint, mean, mean, torch.zeros(1, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"\(\.\.\., S, D\)"):
        score_function_gradient(log_joint, mean, mean, torch.zeros(4, 3, dtype=F64))
    with pytest.raises(TypeError, match="function of z"):
        score_function_gradient(None, mean, mean, torch.zeros(4, 2, dtype=F64))
    with pytest.raises(ValueError, match="one value per coordinate"):
        rao_blackwellized_gradient(log_joint, mean, mean, torch.zeros(4, 2, dtype=F64))
