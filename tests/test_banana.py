"""Tests of the banana model (vicourse.models.banana).

Oracles: ``torch.distributions.Normal`` summed over every observation (the likelihood without
the sufficient statistic), scipy.stats for the prior, ``scipy.integrate.dblquad`` of the joint
for the normalizer, ``scipy.integrate.quad`` of the closed-form theta_2 marginal, and
moments of exact posterior samples checked within a few standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from torch.distributions import Normal

from vicourse.models.banana import TRUE_THETA, Banana, banana_data

F64 = torch.float64
PROPERTY = settings(max_examples=40, deadline=None)


def small_data(seed: int, n: int = 7, shift: float = 1.0) -> torch.Tensor:
    return shift + 2.0 * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=F64)


def direct_log_likelihood(model: Banana, theta: torch.Tensor) -> torch.Tensor:
    """sum_i log N(y_i; theta_1 + theta_2^2, sigma_y^2), one term per observation."""
    m = theta[..., 0] + theta[..., 1] ** 2
    return Normal(m.unsqueeze(-1), model.sigma_y).log_prob(model.y).sum(-1)


def test_book_data_is_fixed_and_generated_from_the_true_parameter():
    y = banana_data()
    assert y.shape == (100,) and y.dtype == F64
    torch.testing.assert_close(y, banana_data(), rtol=0, atol=0)  # same for every reader
    assert TRUE_THETA[0] + TRUE_THETA[1] ** 2 == pytest.approx(1.0, abs=1e-15)
    assert abs(y.mean().item() - 1.0) < 4 * 2.0 / math.sqrt(100)  # centred on theta_1 + theta_2^2
    assert not torch.equal(banana_data(seed=1), y)


@pytest.mark.parametrize("sigma_y, sigma_theta", [(2.0, 1.0), (0.5, 1.5), (3.0, 0.7)])
def test_log_densities_match_the_definition(sigma_y, sigma_theta):
    model = Banana(small_data(0), sigma_y=sigma_y, sigma_theta=sigma_theta)
    theta = 2.5 * torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    prior = stats.norm.logpdf(theta.numpy(), scale=sigma_theta).sum(-1)
    np.testing.assert_allclose(model.log_prior(theta).numpy(), prior, rtol=1e-13)
    loglik = direct_log_likelihood(model, theta)
    assert model.log_likelihood(theta).shape == (4, 3)
    torch.testing.assert_close(model.log_likelihood(theta), loglik, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(model.log_joint(theta), torch.as_tensor(prior) + loglik,
                               rtol=1e-12, atol=1e-10)


def test_log_joint_stays_finite_far_in_the_tails():
    """Where log(exp(.)) underflows to -inf, the log-space likelihood is finite."""
    model = Banana()
    theta = torch.tensor([[0.0, 40.0], [-300.0, 0.0], [1e3, -1e3]], dtype=F64)
    log_joint = model.log_joint(theta)
    assert torch.isfinite(log_joint).all()
    torch.testing.assert_close(log_joint, model.log_prior(theta) + direct_log_likelihood(
        model, theta), rtol=1e-12, atol=0)


def test_float32_theta_gives_float32_and_gradients_flow():
    model = Banana()
    theta = torch.tensor([[0.3, -0.2]], requires_grad=True)
    value = model.log_joint(theta)
    assert value.dtype == torch.float32
    value.sum().backward()
    m = theta.detach()[0, 0] + theta.detach()[0, 1] ** 2
    dlik_dm = model.n * (model.y_mean - m) / model.sigma_y**2
    expected = torch.stack([-theta.detach()[0, 0] + dlik_dm,
                            -theta.detach()[0, 1] + 2 * theta.detach()[0, 1] * dlik_dm])
    torch.testing.assert_close(theta.grad[0], expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("seed, shift", [(0, 1.0), (1, -0.5), (2, 2.5)])
def test_log_normalizer_matches_scipy_dblquad(seed, shift):
    """The joint written out independently (every observation, plain math) and integrated by
    adaptive quadrature agrees with the trapezoidal rule."""
    model = Banana(small_data(seed, shift=shift))
    log_z_grid = model.log_normalizer(400, 6.0)
    y = model.y.numpy()
    constant = -0.5 * len(y) * math.log(2 * math.pi * 4.0) - math.log(2 * math.pi)

    def density(t2: float, t1: float) -> float:  # scaled by exp(-log_z_grid) to be O(1)
        residual = y - t1 - t2**2
        log_joint = constant - float(residual @ residual) / 8.0 - (t1**2 + t2**2) / 2
        return math.exp(log_joint - log_z_grid)

    value, error = integrate.dblquad(density, -8, 8, -8, 8, epsabs=1e-10, epsrel=1e-10)
    assert error < 1e-8
    assert log_z_grid == pytest.approx(log_z_grid + math.log(value), abs=1e-8)


def test_grid_converges_to_the_one_dimensional_integral():
    """log Z = log int p(y, theta_2) d theta_2 with theta_1 integrated out in closed form."""
    model = Banana()
    value, error = integrate.quad(
        lambda t2: math.exp(model.log_joint_theta2(torch.tensor(t2, dtype=F64)).item() + 200),
        -10, 10, epsabs=0, epsrel=1e-13, limit=200)
    log_z = math.log(value) - 200
    errors = [abs(model.log_normalizer(size, 8.0) - log_z) for size in (50, 100, 200, 400)]
    assert errors[-1] < 1e-11, errors
    assert errors[0] > errors[-1]
    assert abs(model.log_normalizer(400, 6.0) - log_z) < 1e-9  # [-6, 6]^2 holds all but 1e-10


def test_posterior_grid_is_normalized_and_oriented():
    model = Banana()
    grid = model.posterior_grid(200, 6.0)
    assert grid.log_density.shape == (200, 200) and grid.theta1.shape == (200,)
    total = torch.logsumexp((grid.log_weights + grid.log_density).flatten(), 0).exp()
    assert total.item() == pytest.approx(1.0, abs=1e-12)
    i, j = 50, 170  # log_density[i, j] is at (theta1[i], theta2[j])
    point = torch.tensor([grid.theta1[i], grid.theta2[j]], dtype=F64)
    expected = model.log_joint(point).item() - grid.log_normalizer
    assert grid.log_density[i, j].item() == pytest.approx(expected, abs=1e-10)


def test_exact_samples_match_the_quadrature_moments():
    model = Banana()
    mean, cov = model.posterior_moments()
    samples = model.sample_posterior(200_000, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (200_000, 2) and samples.dtype == F64
    standard_error = (cov.diagonal() / len(samples)).sqrt()
    assert ((samples.mean(0) - mean).abs() < 4 * standard_error).all(), (samples.mean(0), mean)
    torch.testing.assert_close(samples.T.cov(), cov, rtol=0.02, atol=0.01)
    assert abs(mean[1].item()) < 1e-12  # theta_2 -> -theta_2 symmetry


def test_exact_samples_follow_the_theta2_marginal():
    """Kolmogorov-Smirnov against the CDF of theta_2 computed by quadrature."""
    model = Banana(small_data(5, n=30, shift=2.0))
    samples = model.sample_posterior(20_000, generator=torch.Generator().manual_seed(3))
    grid = torch.linspace(-6, 6, 4001, dtype=F64)
    density = (model.log_joint_theta2(grid) - model.log_normalizer(400, 8.0)).exp()
    cdf = torch.cumulative_trapezoid(density, grid)
    cdf = torch.cat([cdf.new_zeros(1), cdf]).numpy()
    assert cdf[-1] == pytest.approx(1.0, abs=1e-9)
    result = stats.kstest(samples[:, 1].numpy(), lambda t: np.interp(t, grid.numpy(), cdf))
    assert result.pvalue > 1e-3, result


@PROPERTY
@given(t2=st.floats(-3, 3), shift=st.floats(-2, 4))
def test_theta1_conditional_is_the_normalized_joint_slice(t2, shift):
    """p(theta_1 | theta_2, y) = p(y, theta) / p(y, theta_2) for every theta_1."""
    model = Banana(small_data(7, shift=shift))
    theta1 = torch.linspace(-3, 3, 7, dtype=F64)
    theta = torch.stack([theta1, torch.full_like(theta1, t2)], dim=-1)
    theta2 = torch.tensor(t2, dtype=F64)
    expected = model.log_joint(theta) - model.log_joint_theta2(theta2)
    got = model.theta1_given_theta2(theta2).log_prob(theta1)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("shape", [(2,), (5, 2), (3, 4, 2)])
def test_log_joint_is_batched(shape):
    model = Banana()
    theta = torch.randn(*shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    out = model.log_joint(theta)
    assert out.shape == shape[:-1]
    flat = torch.stack([model.log_joint(row) for row in theta.reshape(-1, 2)])
    torch.testing.assert_close(out.reshape(-1), flat, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- bad input


def test_bad_observations_are_rejected():
    with pytest.raises(ValueError, match="1-D floating-point tensor"):
        Banana(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="1-D floating-point tensor"):
        Banana(torch.ones(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="NaN or infinite"):
        Banana(torch.tensor([1.0, float("nan")], dtype=F64))
    with pytest.raises(ValueError, match="sigma_y must be a positive finite number"):
        Banana(sigma_y=0.0)
    with pytest.raises(ValueError, match="sigma_theta must be a positive finite number"):
        Banana(sigma_theta=-1.0)


def test_bad_theta_is_rejected():
    model = Banana()
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        model.log_joint(torch.zeros(5, 3))
    with pytest.raises(TypeError, match="floating-point torch tensor"):
        model.log_joint(torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="floating-point torch tensor"):
        model.log_prior(np.zeros((5, 2), dtype=np.int64))
    # array-likes are accepted (issue 15); NumPy's float64 is kept
    torch.testing.assert_close(model.log_prior(np.zeros((5, 2))),
                               model.log_prior(torch.zeros(5, 2, dtype=F64)), rtol=0, atol=0)


def test_bad_data_arguments_and_grid_are_rejected():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        banana_data(n=0)
    with pytest.raises(ValueError, match="theta must be two finite numbers"):
        banana_data(theta=(1.0, float("inf")))
    with pytest.raises(ValueError, match="grid_size must be at least 3"):
        Banana().log_normalizer(grid_size=2)


def test_rejection_sampler_gives_up_with_a_clear_error():
    far = Banana(torch.full((50,), 60.0, dtype=F64), sigma_y=0.1)  # theta_2^2 ~ 60: 8 sigma out
    with pytest.raises(RuntimeError, match="far in the prior's tail"):
        far.sample_posterior(10)
