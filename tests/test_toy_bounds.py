"""Tests of vicourse.objectives.toy_bounds: L_K on the conjugate Gaussian model.

Oracles: the exact log p(x) and ELBO of the toy model, scipy quadrature for the chi-square
divergence, and the delta-method asymptotics checked with fixed seeds.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.stats import norm
from torch.distributions import Normal

from vicourse.models.toy_model import ConjugateGaussian
from vicourse.objectives.toy_bounds import chi_square_to_posterior, toy_bound_draws, toy_log_weights

MODEL = ConjugateGaussian(noise_std=0.5)
X, Q_MEAN, Q_STD = 2.0, 1.0, 0.8


def test_log_weights_are_log_joint_minus_log_q():
    torch.manual_seed(3)
    log_w = toy_log_weights(MODEL, X, Q_MEAN, Q_STD, 7, repetitions=3)
    torch.manual_seed(3)
    z = Q_MEAN + Q_STD * torch.randn(3, 7, dtype=torch.float64)
    expected = MODEL.log_joint(torch.tensor(X), z) - Normal(Q_MEAN, Q_STD).log_prob(z)
    assert torch.allclose(log_w, expected, atol=1e-12)


def test_log_weights_average_to_the_evidence_and_the_elbo():
    """E_q[w] = p(x) and E_q[log w] = ELBO, both exact for this model."""
    gen = torch.Generator().manual_seed(0)
    log_w = toy_log_weights(MODEL, X, Q_MEAN, Q_STD, 200_000, generator=gen)
    assert log_w.shape == (1, 200_000) and log_w.dtype == torch.float64
    log_px = float(MODEL.log_evidence(torch.tensor(X)))
    elbo = float(MODEL.elbo(torch.tensor(X), torch.tensor(Q_MEAN), torch.tensor(Q_STD)))
    se_log = float(log_w.std()) / math.sqrt(log_w.numel())
    assert abs(float(log_w.mean()) - elbo) < 4 * se_log
    ratio = torch.exp(log_w - log_px)
    se_ratio = float(ratio.std()) / math.sqrt(ratio.numel())
    assert abs(float(ratio.mean()) - 1) < 4 * se_ratio


def test_log_weights_are_constant_at_the_exact_posterior():
    post = MODEL.posterior(torch.tensor(X))
    m, s = float(post.mean), float(post.stddev)
    log_w = toy_log_weights(MODEL, X, m, s, 50, repetitions=3)
    exact = MODEL.log_evidence(torch.tensor(X, dtype=torch.float64))
    assert torch.allclose(log_w, exact, atol=1e-12)
    assert chi_square_to_posterior(MODEL, X, m, s) == pytest.approx(0, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.floats(-3, 3), st.floats(-2, 2), st.floats(0.4, 3.0), st.floats(0.3, 2.0))
def test_chi_square_matches_quadrature(x, q_mean, q_std, noise):
    model = ConjugateGaussian(noise_std=noise)
    post = model.posterior(torch.tensor(x, dtype=torch.float64))
    m1, s1 = float(post.mean), float(post.stddev)
    if q_std**2 < 0.55 * s1**2:  # near the threshold the integral is too heavy-tailed for quad
        return
    a = 2 / s1**2 - 1 / q_std**2  # the integrand is a Gaussian bump of variance 1 / a
    centre, width = (2 * m1 / s1**2 - q_mean / q_std**2) / a, 1 / math.sqrt(a)
    value, _ = quad(
        lambda z: math.exp(2 * norm.logpdf(z, m1, s1) - norm.logpdf(z, q_mean, q_std)),
        centre - 40 * width, centre + 40 * width, points=[centre], limit=200, epsrel=1e-11)
    expected = pytest.approx(value - 1, rel=1e-6, abs=1e-9)
    assert chi_square_to_posterior(model, x, q_mean, q_std) == expected


def test_chi_square_is_infinite_for_a_proposal_narrower_than_half_the_posterior_variance():
    s1 = float(MODEL.posterior(torch.tensor(X)).stddev)
    assert chi_square_to_posterior(MODEL, X, 1.0, 0.7 * s1) == math.inf
    assert math.isfinite(chi_square_to_posterior(MODEL, X, 1.0, 0.72 * s1))


def test_bound_draws_rise_with_k_towards_log_evidence_at_the_delta_method_rate():
    log_px = float(MODEL.log_evidence(torch.tensor(X)))
    chi2 = chi_square_to_posterior(MODEL, X, Q_MEAN, Q_STD)
    gen = torch.Generator().manual_seed(1)
    means = []
    for k in (1, 10, 400):
        draws = toy_bound_draws(MODEL, X, Q_MEAN, Q_STD, k, 4000, generator=gen)
        assert draws.shape == (4000,)
        means.append(float(draws.mean()))
        se = float(draws.std()) / math.sqrt(len(draws))
        assert means[-1] < log_px + 4 * se
    assert means[0] < means[1] < means[2]
    # At K = 400 the bias is close to chi^2 / (2K) and the variance close to chi^2 / K.
    assert 400 * float(draws.var()) == pytest.approx(chi2, rel=0.15)
    assert log_px - means[2] == pytest.approx(chi2 / 800, abs=4 * se + 0.2 * chi2 / 800)


def test_bound_draws_are_finite_far_in_the_tails():
    """An observation 40 standard deviations out: weights ~ e^-800, still finite via log-sum-exp."""
    draws = toy_bound_draws(MODEL, 45.0, 0.0, 1.0, 100, 10)
    assert torch.isfinite(draws).all() and float(draws.max()) < -700


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"q_std": 0.0}, "q_std"), ({"num_samples": 0}, "num_samples"),
     ({"repetitions": 1.5}, "repetitions"), ({"x": float("nan")}, "finite"),
     ({"q_mean": math.inf}, "finite")],
)
def test_bad_arguments_are_rejected(kwargs, message):
    args = {"x": X, "q_mean": Q_MEAN, "q_std": Q_STD, "num_samples": 5, "repetitions": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        toy_log_weights(MODEL, **args)
