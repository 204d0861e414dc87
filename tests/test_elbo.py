"""Tests of the Monte Carlo ELBO (vicourse.objectives.elbo).

Oracles: the closed-form ELBO of the conjugate toy model, and, for a K-dimensional Gaussian
target known up to a constant c, ELBO(q) = c - KL(q || target) (torch.distributions). Monte
Carlo estimates are seeded and checked within a few standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Categorical, Independent, Normal, kl_divergence

from vicourse.models.toy_model import ConjugateGaussian
from vicourse.objectives.elbo import elbo_estimate, elbo_samples

F64 = torch.float64


TORCH_SEED = 1234  # used by the seeded_torch fixture of tests/conftest.py


def t(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=F64)


def toy_setup(s: float = 0.7):
    """A batch of 5 observations, the toy model, and a q per observation that is not exact."""
    model = ConjugateGaussian(noise_std=s)
    x = t([-2.0, -0.5, 0.0, 1.0, 2.5])
    q = Normal(t([-1.0, 0.2, 0.5, 0.3, 1.0]), t([0.3, 1.2, 0.5, 0.8, 0.6]))
    return model, x, q


def test_elbo_samples_have_shape_samples_by_batch():
    model, x, q = toy_setup()
    samples = elbo_samples(lambda z: model.log_joint(x, z), q, num_samples=7)
    assert samples.shape == (7, 5)
    assert elbo_estimate(lambda z: model.log_joint(x, z), q, num_samples=7).shape == (5,)


def test_elbo_samples_are_log_joint_minus_log_q_at_the_draws():
    """Record the z that log_joint sees and recompute each term from it."""
    model, x, q = toy_setup()
    seen = []

    def log_joint(z):
        seen.append(z)
        return model.log_joint(x, z)

    samples = elbo_samples(log_joint, q, num_samples=4)
    (z,) = seen
    assert z.shape == (4, 5)
    torch.testing.assert_close(samples, model.log_joint(x, z) - q.log_prob(z))


@pytest.mark.parametrize("s", [0.3, 1.0, 2.0])
def test_monte_carlo_elbo_matches_closed_form_within_standard_error(s):
    model, x, q = toy_setup(s)
    num_samples = 20_000
    samples = elbo_samples(lambda z: model.log_joint(x, z), q, num_samples)
    estimate = samples.mean(0)
    standard_error = samples.std(0) / math.sqrt(num_samples)
    exact = model.elbo(x, q.loc, q.scale)
    z_scores = (estimate - exact) / standard_error
    assert z_scores.abs().max() < 4.5, z_scores


def test_elbo_estimate_is_the_mean_of_elbo_samples():
    model, x, q = toy_setup()
    with torch.random.fork_rng():
        samples = elbo_samples(lambda z: model.log_joint(x, z), q, 50)
    estimate = elbo_estimate(lambda z: model.log_joint(x, z), q, 50)  # same seed, same draws
    torch.testing.assert_close(estimate, samples.mean(0))


def test_every_sample_equals_log_evidence_when_q_is_the_posterior():
    """log p(x, z) - log p(z | x) = log p(x) for every z: a zero-variance estimator."""
    model, x, _ = toy_setup()
    samples = elbo_samples(lambda z: model.log_joint(x, z), model.posterior(x), 100)
    torch.testing.assert_close(samples, model.log_evidence(x).expand(100, -1), rtol=0, atol=1e-12)


def test_monte_carlo_elbo_stays_below_log_evidence():
    model, x, q = toy_setup()
    num_samples = 20_000
    samples = elbo_samples(lambda z: model.log_joint(x, z), q, num_samples)
    upper = samples.mean(0) + 3 * samples.std(0) / math.sqrt(num_samples)
    assert (upper < model.log_evidence(x)).all()


def test_monte_carlo_elbo_is_minus_kl_to_a_gaussian_target_in_k_dimensions():
    """log_joint(z) = c + log N(z; mu, diag sigma^2) gives ELBO(q) = c - KL(q || N(mu, sigma^2))."""
    g = torch.Generator().manual_seed(0)
    k, c = 4, 3.25
    target = Independent(Normal(torch.randn(k, generator=g, dtype=F64), t([0.5, 1.0, 2.0, 1.5])), 1)
    q = Independent(Normal(torch.randn(2, k, generator=g, dtype=F64), t(0.8).expand(2, k)), 1)
    num_samples = 20_000
    samples = elbo_samples(lambda z: c + target.log_prob(z), q, num_samples)
    assert samples.shape == (num_samples, 2)
    z_scores = (samples.mean(0) - (c - kl_divergence(q, target))) / (
        samples.std(0) / math.sqrt(num_samples)
    )
    assert z_scores.abs().max() < 4.5, z_scores


def test_gradients_flow_to_q_parameters_and_are_unbiased():
    """The reparameterized gradient of the estimate averages to the gradient of the exact ELBO."""
    model = ConjugateGaussian(noise_std=0.7)
    x = t([1.5])

    def gradient(objective):
        mean = t([0.2]).requires_grad_()
        log_std = t([-0.5]).requires_grad_()
        objective(mean, log_std).sum().backward()
        return torch.cat([mean.grad, log_std.grad])

    def monte_carlo(mean, log_std):
        return elbo_estimate(lambda z: model.log_joint(x, z), Normal(mean, log_std.exp()), 200)

    exact = gradient(lambda mean, log_std: model.elbo(x, mean, log_std.exp()))
    estimates = torch.stack([gradient(monte_carlo) for _ in range(40)])
    assert torch.isfinite(estimates).all() and (estimates != 0).all()
    z_scores = (estimates.mean(0) - exact) / (estimates.std(0) / math.sqrt(len(estimates)))
    assert z_scores.abs().max() < 4.5, (estimates.mean(0), exact)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [0, -2, 2.5, "10", None])
@pytest.mark.parametrize("func", [elbo_samples, elbo_estimate])
def test_num_samples_must_be_a_positive_integer(func, bad):
    model, x, q = toy_setup()
    with pytest.raises(ValueError, match=r"num_samples must be a positive integer"):
        func(lambda z: model.log_joint(x, z), q, bad)


@pytest.mark.parametrize("q", [Bernoulli(probs=torch.tensor(0.3)),
                               Categorical(probs=torch.tensor([0.2, 0.8]))])
def test_q_without_reparameterized_sampler_is_rejected(q):
    with pytest.raises(TypeError, match=rf"{type(q).__name__} has no reparameterized sampler"):
        elbo_estimate(lambda z: torch.zeros(z.shape), q, 10)


def test_log_joint_that_does_not_sum_over_the_event_is_rejected():
    q = Independent(Normal(torch.zeros(3), torch.ones(3)), 1)
    elementwise = Normal(0.0, 1.0).log_prob  # returns (S, 3) instead of (S,)
    expected = r"log_joint returned shape \(5, 3\) but log q\(z\) has shape \(5,\)"
    with pytest.raises(ValueError, match=expected):
        elbo_samples(elementwise, q, 5)


@pytest.mark.parametrize("num_samples", [np.int64(6), np.int32(6), 6])
def test_num_samples_accepts_numpy_integers(num_samples):
    model, x, q = toy_setup()
    assert elbo_samples(lambda z: model.log_joint(x, z), q, num_samples).shape == (6, 5)


@pytest.mark.parametrize("bad", [True, False, np.float64(6.0)])
def test_num_samples_rejects_bools_and_numpy_floats(bad):
    model, x, q = toy_setup()
    with pytest.raises(ValueError, match=r"num_samples must be a positive integer"):
        elbo_samples(lambda z: model.log_joint(x, z), q, bad)
