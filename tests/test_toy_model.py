"""Tests of the conjugate Gaussian toy model z ~ N(0, 1), x | z ~ N(z, s^2).

Oracles: scipy.stats.norm for the densities, scipy.integrate.quad for the evidence
p(x) = int p(x, z) dz, the posterior moments and the ELBO as an integral over q, and
torch.distributions.kl_divergence for the gap identity log p(x) - ELBO(q) = KL(q || p(z|x)).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from torch.distributions import Normal, kl_divergence

from vicourse.gaussian_kl import kl_diag_gaussians
from vicourse.toy_model import ConjugateGaussian

F64 = torch.float64
PROPERTY = settings(max_examples=60, deadline=None)
X_VALUES = [-2.5, 0.0, 0.7, 3.0]
NOISE_STDS = [0.3, 1.0, 2.5]


def t(value) -> torch.Tensor:
    return torch.as_tensor(value, dtype=F64)


def joint_density(model: ConjugateGaussian, x: float):
    """z -> p(x, z) as a Python function for quad (cached: quad reuses its nodes)."""

    @functools.cache
    def density(z: float) -> float:
        return math.exp(model.log_joint(t(x), t(z)).item())

    return density


def integrate_over_z(func, x: float) -> float:
    """int func(z) dz over a range that holds all the mass, with breakpoints at 0 and x."""
    half_width = 15.0 + abs(x)
    value, _ = integrate.quad(
        func, -half_width, half_width, points=sorted({0.0, x}), epsabs=1e-13, epsrel=1e-11
    )
    return value


@pytest.mark.parametrize("s", NOISE_STDS)
def test_log_prior_and_log_likelihood_match_scipy(s):
    model = ConjugateGaussian(noise_std=s)
    z = np.linspace(-4, 4, 17)
    x = np.array([[-1.0], [0.3], [2.0]])  # broadcasts against z to shape (3, 17)
    np.testing.assert_allclose(model.log_prior(t(z)).numpy(), stats.norm.logpdf(z), rtol=1e-12)
    loglik = model.log_likelihood(t(x), t(z))
    assert loglik.shape == (3, 17)
    np.testing.assert_allclose(loglik.numpy(), stats.norm.logpdf(x, loc=z, scale=s), rtol=1e-12)
    np.testing.assert_allclose(
        model.log_joint(t(x), t(z)).numpy(),
        stats.norm.logpdf(z) + stats.norm.logpdf(x, loc=z, scale=s),
        rtol=1e-12,
    )


@pytest.mark.parametrize("s", NOISE_STDS)
@pytest.mark.parametrize("x", X_VALUES)
def test_log_evidence_is_the_integral_of_the_joint(x, s):
    model = ConjugateGaussian(noise_std=s)
    evidence = integrate_over_z(joint_density(model, x), x)
    assert model.log_evidence(t(x)).item() == pytest.approx(math.log(evidence), abs=1e-9)


def test_log_evidence_is_elementwise_and_matches_scipy():
    model = ConjugateGaussian(noise_std=0.5)
    x = np.linspace(-5, 5, 11).reshape(11, 1) * np.ones((1, 2))
    got = model.log_evidence(t(x))
    assert got.shape == (11, 2)
    np.testing.assert_allclose(got.numpy(), stats.norm.logpdf(x, scale=math.sqrt(1.25)), rtol=1e-12)


@pytest.mark.parametrize("s", NOISE_STDS)
@pytest.mark.parametrize("x", X_VALUES)
def test_posterior_moments_match_quadrature(x, s):
    model = ConjugateGaussian(noise_std=s)
    density = joint_density(model, x)
    evidence = integrate_over_z(density, x)
    mean = integrate_over_z(lambda z: z * density(z), x) / evidence
    var = integrate_over_z(lambda z: (z - mean) ** 2 * density(z), x) / evidence
    posterior = model.posterior(t(x))
    assert isinstance(posterior, Normal)
    assert posterior.mean.item() == pytest.approx(mean, abs=1e-9)
    assert posterior.variance.item() == pytest.approx(var, rel=1e-8)


@pytest.mark.parametrize("s", NOISE_STDS)
def test_posterior_density_is_joint_over_evidence(s):
    """Bayes' rule pointwise: log p(z | x) = log p(x, z) - log p(x), batched over x and z."""
    model = ConjugateGaussian(noise_std=s)
    x = t(X_VALUES)
    z = t(np.linspace(-3, 3, 13)).unsqueeze(-1)  # (13, 1) against x of shape (4,)
    posterior = model.posterior(x)
    assert posterior.batch_shape == x.shape
    torch.testing.assert_close(
        posterior.log_prob(z), model.log_joint(x, z) - model.log_evidence(x), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(("x", "s", "m", "q_std"), [
    (0.7, 1.0, 0.0, 1.0),
    (-2.5, 0.3, -2.0, 0.1),
    (3.0, 2.5, 1.0, 2.0),
    (0.0, 1.0, 0.5, 0.4),
])
def test_closed_form_elbo_matches_quadrature(x, s, m, q_std):
    """ELBO(q) = int q(z) [log p(x, z) - log q(z)] dz, computed with quad and scipy.stats."""
    model = ConjugateGaussian(noise_std=s)

    def integrand(z: float) -> float:
        log_q = stats.norm.logpdf(z, loc=m, scale=q_std)
        log_p = stats.norm.logpdf(z) + stats.norm.logpdf(x, loc=z, scale=s)
        return math.exp(log_q) * (log_p - log_q)

    expected, _ = integrate.quad(integrand, m - 12 * q_std, m + 12 * q_std, epsabs=1e-12)
    assert model.elbo(t(x), t(m), t(q_std)).item() == pytest.approx(expected, abs=1e-8)


def test_elbo_broadcasts_and_accepts_python_numbers():
    model = ConjugateGaussian(noise_std=0.8)
    x = t([[-1.0], [0.5], [2.0]])
    q_mean = t([0.0, 0.3])
    value = model.elbo(x, q_mean, 0.5)
    assert value.shape == (3, 2)
    torch.testing.assert_close(value[2, 1], model.elbo(t(2.0), t(0.3), t(0.5)))


# ----------------------------------------------------------------------------- properties

x_values = st.floats(-6.0, 6.0)
noise_stds = st.floats(0.05, 5.0)
q_means = st.floats(-6.0, 6.0)
q_stds = st.floats(0.02, 5.0)


@PROPERTY
@given(x_values, noise_stds, q_means, q_stds)
def test_gap_between_log_evidence_and_elbo_is_kl_to_the_posterior(x, s, m, q_std):
    model = ConjugateGaussian(noise_std=s)
    gap = model.log_evidence(t(x)) - model.elbo(t(x), t(m), t(q_std))
    posterior = model.posterior(t(x))
    kl = kl_divergence(Normal(t(m), t(q_std)), posterior)
    scale = 1.0 + abs(kl.item())
    assert abs(gap.item() - kl.item()) < 1e-9 * scale
    mu_p, logvar_p = posterior.mean.reshape(1), posterior.variance.log().reshape(1)
    kl_ours = kl_diag_gaussians(t([m]), t([2 * math.log(q_std)]), mu_p, logvar_p)
    assert abs(gap.item() - kl_ours.item()) < 1e-9 * scale


@PROPERTY
@given(x_values, noise_stds, q_means, q_stds)
def test_elbo_is_a_lower_bound_on_log_evidence(x, s, m, q_std):
    model = ConjugateGaussian(noise_std=s)
    assert model.elbo(t(x), t(m), t(q_std)).item() <= model.log_evidence(t(x)).item() + 1e-12


@PROPERTY
@given(x_values, noise_stds)
def test_elbo_equals_log_evidence_at_the_posterior(x, s):
    model = ConjugateGaussian(noise_std=s)
    posterior = model.posterior(t(x))
    at_posterior = model.elbo(t(x), posterior.mean, posterior.stddev)
    assert at_posterior.item() == pytest.approx(model.log_evidence(t(x)).item(), abs=1e-10)


@PROPERTY
@given(x_values, noise_stds, st.floats(0.02, 1.0))
def test_posterior_is_the_unique_maximizer_of_the_elbo(x, s, step):
    """Moving the mean or the std of q away from the posterior lowers the ELBO."""
    model = ConjugateGaussian(noise_std=s)
    posterior = model.posterior(t(x))
    best = model.elbo(t(x), posterior.mean, posterior.stddev).item()
    for m, sd in [
        (posterior.mean + step, posterior.stddev),
        (posterior.mean - step, posterior.stddev),
        (posterior.mean, posterior.stddev * (1 + step)),
        (posterior.mean, posterior.stddev / (1 + step)),
    ]:
        assert model.elbo(t(x), m, sd).item() < best


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("s", [0.5, 2.0])
def test_samples_follow_the_model(s):
    model = ConjugateGaussian(noise_std=s)
    z, x = model.sample(50_000, generator=torch.Generator().manual_seed(11))
    assert z.shape == x.shape == (50_000,)
    # z ~ N(0, 1), x ~ N(0, 1 + s^2) and x - z ~ N(0, s^2) independent of z.
    assert stats.kstest(z.numpy(), stats.norm.cdf).pvalue > 1e-3
    assert stats.kstest(x.numpy(), stats.norm(scale=math.sqrt(1 + s**2)).cdf).pvalue > 1e-3
    assert stats.kstest((x - z).numpy(), stats.norm(scale=s).cdf).pvalue > 1e-3
    correlation = np.corrcoef(z.numpy(), (x - z).numpy())[0, 1]
    assert abs(correlation) < 4 / math.sqrt(50_000)


def test_sampling_is_reproducible_with_a_seeded_generator():
    model = ConjugateGaussian(noise_std=1.0)
    first = model.sample(100, generator=torch.Generator().manual_seed(1))
    again = model.sample(100, generator=torch.Generator().manual_seed(1))
    other = model.sample(100, generator=torch.Generator().manual_seed(2))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "1.0", None])
def test_model_rejects_a_noise_std_that_is_not_positive_and_finite(bad):
    with pytest.raises(ValueError, match=r"noise_std must be a positive finite number"):
        ConjugateGaussian(noise_std=bad)


@pytest.mark.parametrize("bad", [0.0, -0.5])
def test_elbo_rejects_a_q_std_that_is_not_positive(bad):
    model = ConjugateGaussian()
    with pytest.raises(ValueError, match=r"q_std must be positive"):
        model.elbo(t(0.0), t(0.0), t(bad))
    with pytest.raises(ValueError, match=r"q_std must be positive"):
        model.elbo(t([0.0, 1.0]), t(0.0), t([1.0, bad]))


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10"])
def test_sample_rejects_a_count_that_is_not_a_positive_integer(bad):
    with pytest.raises(ValueError, match=r"n must be a positive integer"):
        ConjugateGaussian().sample(bad)
