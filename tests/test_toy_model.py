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
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from vicourse.models.toy_model import AffineGaussianEncoder, ConjugateGaussian, LinearGaussian
from vicourse.objectives.gaussian_kl import kl_diag_gaussians

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


# ----------------------------------------------------------------------------- integer checks


@pytest.mark.parametrize("n", [np.int64(5), np.int32(5), 5])
def test_sample_accepts_numpy_integers(n):
    z, x = ConjugateGaussian().sample(n, generator=torch.Generator().manual_seed(0))
    assert z.shape == x.shape == (5,)


@pytest.mark.parametrize("bad", [True, False, np.float64(3.0), None])
def test_sample_rejects_bools_and_non_integers(bad):
    with pytest.raises(ValueError, match=r"n must be a positive integer"):
        ConjugateGaussian().sample(bad)


@pytest.mark.parametrize("model_class", [ConjugateGaussian, LinearGaussian])
def test_noise_std_rejects_bools_and_accepts_numpy_numbers(model_class):
    for bad in (True, False):
        with pytest.raises(ValueError, match=r"noise_std must be a positive finite number"):
            model_class(noise_std=bad)
    for good in (np.float32(0.5), np.int64(2), 2):
        assert model_class(noise_std=good).noise_std == good


@pytest.mark.parametrize("method", ["log_prior", "log_evidence"])
def test_conjugate_model_rejects_integer_tensors(method):
    """An integer x or z would make torch.full_like truncate s and silently give wrong numbers."""
    with pytest.raises(TypeError, match=r"must be a floating-point tensor, got dtype torch.int64"):
        getattr(ConjugateGaussian(noise_std=1.0), method)(torch.tensor([1, 2]))


# ----------------------------------------------------------------------------- LinearGaussian
#
# Oracles: Bayes' rule p(z | x) = p(x, z) / p(x), the scalar ConjugateGaussian for K = 1,
# scipy.stats.norm and a 2-D grid quadrature of p(x, z) for the evidence, and the Gaussian
# conditioning formula applied to the joint covariance of (z, x) with torch.linalg.

LINEAR_MODELS = [
    LinearGaussian(weights=(1.0, 1.0), noise_std=1.0),
    LinearGaussian(weights=(0.5, -2.0), noise_std=0.3),
    LinearGaussian(weights=(1.5, 0.0, -0.7), noise_std=2.0),
    LinearGaussian(weights=(0.8,), noise_std=0.6),
]


def conditioning_oracle(weights: torch.Tensor, s: float, x: torch.Tensor):
    """Mean and covariance of z | x from the joint covariance of (z, x) (Schur complement).

    (z, x) ~ N(0, [[I, w], [w^T, |w|^2 + s^2]]) so E[z | x] = S_zx S_xx^{-1} x and
    Cov[z | x] = S_zz - S_zx S_xx^{-1} S_xz, with the inverse done by torch.linalg.solve.
    """
    k = len(weights)
    latent = torch.cat([torch.eye(k, dtype=F64), torch.zeros(k, 1, dtype=F64)], dim=1)
    loading = torch.cat([weights, t([s])]).unsqueeze(0)  # x = w^T z + s * eps
    joint_map = torch.cat([latent, loading], dim=0)  # (z, x) = A (z, eps), (z, eps) ~ N(0, I)
    joint_cov = joint_map @ joint_map.T
    s_zz, s_zx, s_xx = joint_cov[:k, :k], joint_cov[:k, k:], joint_cov[k:, k:]
    gain = torch.linalg.solve(s_xx, s_zx.T).T  # S_zx S_xx^{-1}, shape (k, 1)
    mean = (gain @ x.reshape(1, -1)).T  # (n, k)
    cov = s_zz - gain @ s_zx.T
    return mean, cov


@pytest.mark.parametrize("model", LINEAR_MODELS, ids=lambda m: str(m.weights))
def test_linear_posterior_density_is_joint_over_evidence(model):
    """Bayes' rule: log p(x, z) - log p(z | x) = log p(x) for every z, batched over x."""
    gen = torch.Generator().manual_seed(3)
    x = t(X_VALUES)
    z = torch.randn(50, len(X_VALUES), model.dim, generator=gen, dtype=F64) * 2.0
    posterior = model.posterior(x)
    assert isinstance(posterior, MultivariateNormal)
    assert posterior.batch_shape == x.shape and posterior.event_shape == (model.dim,)
    difference = model.log_joint(x, z) - posterior.log_prob(z)
    assert difference.shape == (50, len(X_VALUES))
    torch.testing.assert_close(
        difference, model.log_evidence(x).expand_as(difference), rtol=1e-11, atol=1e-11
    )


@pytest.mark.parametrize("s", NOISE_STDS)
def test_linear_model_with_one_unit_weight_is_the_conjugate_model(s):
    linear, scalar = LinearGaussian(weights=(1.0,), noise_std=s), ConjugateGaussian(noise_std=s)
    x = t(X_VALUES)
    z = t(np.linspace(-3, 3, 7)).reshape(7, 1, 1)  # (7, 1, K=1) against x of shape (4,)
    torch.testing.assert_close(linear.log_evidence(x), scalar.log_evidence(x), rtol=1e-12, atol=0)
    torch.testing.assert_close(linear.log_prior(z), scalar.log_prior(z[..., 0]))
    torch.testing.assert_close(linear.log_joint(x, z), scalar.log_joint(x, z[..., 0]))
    posterior, exact = linear.posterior(x), scalar.posterior(x)
    torch.testing.assert_close(posterior.mean[..., 0], exact.mean)
    torch.testing.assert_close(posterior.covariance_matrix[..., 0, 0], exact.variance)


@pytest.mark.parametrize("model", LINEAR_MODELS, ids=lambda m: str(m.weights))
def test_linear_densities_match_scipy(model):
    w = np.array(model.weights)
    z = np.random.default_rng(5).normal(size=(9, model.dim))
    x = np.linspace(-3, 3, 9)
    np.testing.assert_allclose(
        model.log_prior(t(z)).numpy(), stats.norm.logpdf(z).sum(-1), rtol=1e-12
    )
    np.testing.assert_allclose(
        model.log_likelihood(t(x), t(z)).numpy(),
        stats.norm.logpdf(x, loc=z @ w, scale=model.noise_std),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        model.log_evidence(t(x)).numpy(),
        stats.norm.logpdf(x, scale=math.sqrt(w @ w + model.noise_std**2)),
        rtol=1e-12,
    )


@pytest.mark.parametrize("model", LINEAR_MODELS[:2], ids=lambda m: str(m.weights))
@pytest.mark.parametrize("x", [-1.5, 0.0, 2.0])
def test_linear_log_evidence_is_the_grid_integral_of_the_joint(model, x):
    """p(x) = double integral of p(x, z) dz, by the trapezoid rule on a fine 2-D grid."""
    axis = np.linspace(-9, 9, 1201)
    z1, z2 = np.meshgrid(axis, axis, indexing="ij")
    grid = t(np.stack([z1, z2], axis=-1))
    density = model.log_joint(t(x), grid).exp().numpy()
    evidence = integrate.trapezoid(integrate.trapezoid(density, axis, axis=1), axis)
    assert model.log_evidence(t(x)).item() == pytest.approx(math.log(evidence), abs=1e-7)


@pytest.mark.parametrize("model", LINEAR_MODELS, ids=lambda m: str(m.weights))
def test_linear_posterior_matches_gaussian_conditioning(model):
    x = t(X_VALUES)
    mean, cov = conditioning_oracle(t(model.weights), model.noise_std, x)
    posterior = model.posterior(x)
    torch.testing.assert_close(posterior.mean, mean, rtol=1e-12, atol=1e-12)
    for i in range(len(X_VALUES)):
        torch.testing.assert_close(posterior.covariance_matrix[i], cov, rtol=1e-12, atol=1e-12)
    # The precision is I + w w^T / s^2 (the docstring's claim).
    w = t(model.weights)
    precision = torch.eye(model.dim, dtype=F64) + torch.outer(w, w) / model.noise_std**2
    torch.testing.assert_close(torch.linalg.inv(cov), precision, rtol=1e-10, atol=1e-10)


def test_linear_posterior_is_correlated_when_causes_explain_each_other_away():
    posterior = LinearGaussian(weights=(1.0, 1.0), noise_std=0.5).posterior(t(1.0))
    assert posterior.covariance_matrix[0, 1].item() < -0.3


def test_linear_model_stores_weights_as_floats_and_reports_dim():
    model = LinearGaussian(weights=[1, np.float32(0.5), np.int64(-2)], noise_std=1)
    assert model.weights == (1.0, 0.5, -2.0) and model.dim == 3
    assert all(type(v) is float for v in model.weights)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_linear_model_keeps_the_dtype_of_its_inputs(dtype):
    model = LinearGaussian()
    x = torch.tensor([0.5, -1.0], dtype=dtype)
    z = torch.zeros(2, 2, dtype=dtype)
    assert model.log_joint(x, z).dtype == dtype
    assert model.log_evidence(x).dtype == dtype
    assert model.posterior(x).mean.dtype == dtype


# ------------------------------------------------------------------------ LinearGaussian errors


@pytest.mark.parametrize("bad", [5.0, None])
def test_linear_model_rejects_weights_that_are_not_a_sequence(bad):
    with pytest.raises(ValueError, match=r"weights must be a sequence of K numbers"):
        LinearGaussian(weights=bad)


@pytest.mark.parametrize("bad", [(), (1.0, float("nan")), (float("inf"),), ("1.0",), (True, 1.0)])
def test_linear_model_rejects_empty_or_non_finite_weights(bad):
    with pytest.raises(ValueError, match=r"weights must be a non-empty sequence of finite numbers"):
        LinearGaussian(weights=bad)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "1.0", None])
def test_linear_model_rejects_a_bad_noise_std(bad):
    with pytest.raises(ValueError, match=r"noise_std must be a positive finite number"):
        LinearGaussian(noise_std=bad)


@pytest.mark.parametrize("shape", [(), (4,), (4, 3), (2, 1)])
def test_linear_model_rejects_z_with_the_wrong_last_dimension(shape):
    model, z = LinearGaussian(weights=(1.0, 2.0)), torch.zeros(shape, dtype=F64)
    expected = r"z must have shape \(\.\.\., 2\) \(last dimension = number of latents\)"
    for method in (model.log_prior, lambda z: model.log_likelihood(t(0.0), z),
                   lambda z: model.log_joint(t(0.0), z)):
        with pytest.raises(ValueError, match=expected):
            method(z)


def test_linear_model_rejects_integer_tensors():
    """Integer inputs would make the weights integer (0.5 -> 0): a silent wrong answer."""
    model = LinearGaussian(weights=(0.5, 0.5))
    integer = r"must be a floating-point tensor, got dtype torch.int64"
    with pytest.raises(TypeError, match=rf"x {integer}"):
        model.posterior(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match=rf"x {integer}"):
        model.log_evidence(torch.tensor(1))
    with pytest.raises(TypeError, match=rf"z {integer}"):
        model.log_prior(torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match=rf"z {integer}"):
        model.log_likelihood(t(0.0), torch.zeros(3, 2, dtype=torch.int64))


# ------------------------------------------------------------------------ AffineGaussianEncoder


@pytest.mark.parametrize("s", NOISE_STDS)
def test_encoder_at_the_exact_parameters_is_the_posterior(s):
    model = ConjugateGaussian(noise_std=s)
    encoder = AffineGaussianEncoder(
        slope=1 / (1 + s**2), intercept=0.0, std=math.sqrt(s**2 / (1 + s**2))
    ).double()
    x = t(X_VALUES)
    q = encoder(x)
    assert isinstance(q, Normal) and q.batch_shape == x.shape
    kl = kl_divergence(q, model.posterior(x))
    assert kl.abs().max().item() < 1e-12
    torch.testing.assert_close(q.mean, model.posterior(x).mean)
    torch.testing.assert_close(q.stddev, model.posterior(x).stddev)


def test_encoder_stores_its_parameters_and_computes_a_x_plus_b():
    encoder = AffineGaussianEncoder(slope=2.0, intercept=-1.0, std=0.5)
    names = {name for name, _ in encoder.named_parameters()}
    assert names == {"slope", "intercept", "log_std"}
    assert encoder.log_std.item() == pytest.approx(math.log(0.5))
    q = encoder(torch.tensor([0.0, 1.0, 3.0]))
    torch.testing.assert_close(q.mean, torch.tensor([-1.0, 1.0, 5.0]))
    torch.testing.assert_close(q.stddev, torch.full((3,), 0.5))


def test_gradients_reach_all_three_encoder_parameters():
    model = ConjugateGaussian(noise_std=0.7)
    encoder = AffineGaussianEncoder(slope=0.3, intercept=0.2, std=1.3).double()
    x = t(X_VALUES)
    q = encoder(x)
    loss = -model.elbo(x, q.mean, q.stddev).mean()
    loss.backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().item() > 1e-6, name
    # Against central differences in each parameter, shifted in float64 (the constructor
    # builds float32 parameters, which would swamp a step of 1e-6 in rounding error).
    h = 1e-6
    for parameter in encoder.parameters():

        def loss_at(shift: float, parameter=parameter) -> float:
            with torch.no_grad():
                parameter += shift
                q_shifted = encoder(x)
                value = -model.elbo(x, q_shifted.mean, q_shifted.stddev).mean().item()
                parameter -= shift
            return value

        numeric = (loss_at(h) - loss_at(-h)) / (2 * h)
        assert parameter.grad.item() == pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), True, "1.0", None])
def test_encoder_rejects_a_std_that_is_not_positive_and_finite(bad):
    with pytest.raises(ValueError, match=r"std must be a positive finite number"):
        AffineGaussianEncoder(std=bad)
