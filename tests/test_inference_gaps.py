"""Tests of the gap decomposition (vicourse.objectives.inference_gaps).

Oracle: the linear-Gaussian model (vicourse.models.toy_model.LinearGaussian), whose evidence
and posterior are Gaussian in closed form. Its best diagonal Gaussian in KL(q || p(z | x)) has
the posterior's mean and variances 1 / Lambda_kk (Lambda the posterior precision), and its ELBO
is log p(x) - KL(q* || p(z | x)) (torch.distributions.kl_divergence). With one latent the
posterior is itself a diagonal Gaussian, so every importance weight equals p(x).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal, kl_divergence

from vicourse.families.planar_batch import PlanarPosterior, identity_planar_posterior
from vicourse.models.toy_model import LinearGaussian
from vicourse.models.vae import VAE
from vicourse.objectives.inference_gaps import (
    bernoulli_decoder_likelihood,
    gap_decomposition,
    optimize_posterior,
    posterior_elbo,
    posterior_log_likelihood,
    posterior_log_weights,
)

F64 = torch.float64
X = torch.tensor([-1.0, 0.5, 2.0], dtype=F64)


def best_diagonal_gaussian(toy: LinearGaussian, x: torch.Tensor):
    """The closed-form optimum: mean = posterior mean, variance = 1 / diag(precision)."""
    posterior = toy.posterior(x)
    precision = torch.linalg.inv(posterior.covariance_matrix)  # (N, K, K)
    variance = 1 / torch.diagonal(precision, dim1=-2, dim2=-1)  # (N, K)
    return posterior, posterior.mean, variance


def test_one_latent_posterior_makes_every_weight_the_evidence() -> None:
    toy = LinearGaussian(weights=(1.5,), noise_std=0.7)
    posterior = toy.posterior(X)
    q = identity_planar_posterior(posterior.mean, posterior.covariance_matrix[:, :, 0].log(), 0)
    torch.manual_seed(0)
    log_w = posterior_log_weights(lambda z: toy.log_likelihood(X, z), q, 50)  # (50, 3)
    assert torch.allclose(log_w, toy.log_evidence(X).expand(50, 3), atol=1e-10)
    assert torch.allclose(posterior_log_likelihood(lambda z: toy.log_likelihood(X, z), q, 30,
                                                   chunk_size=7), toy.log_evidence(X), atol=1e-10)


def test_elbo_of_a_gaussian_matches_the_closed_form() -> None:
    toy = LinearGaussian(weights=(1.0, -0.5), noise_std=0.5)
    posterior = toy.posterior(X)
    mu = torch.tensor([[0.3, -0.2], [0.0, 0.1], [1.0, -0.4]], dtype=F64)
    logvar = torch.tensor([[-1.0, -0.5], [-2.0, 0.0], [-0.7, -1.2]], dtype=F64)
    q = MultivariateNormal(mu, torch.diag_embed(logvar.exp()))
    exact = toy.log_evidence(X) - kl_divergence(q, posterior)  # (3,)
    torch.manual_seed(1)
    estimate = posterior_elbo(lambda z: toy.log_likelihood(X, z),
                              identity_planar_posterior(mu, logvar, 0), 40_000, chunk_size=10_000)
    assert torch.allclose(estimate, exact, atol=0.03)


def test_optimized_gaussian_is_the_closed_form_optimum() -> None:
    toy = LinearGaussian(weights=(1.0, 0.8), noise_std=0.6)
    posterior, mean, variance = best_diagonal_gaussian(toy, X)
    start = identity_planar_posterior(torch.zeros(3, 2, dtype=F64), torch.zeros(3, 2, dtype=F64), 0)
    torch.manual_seed(2)
    best = optimize_posterior(lambda z: toy.log_likelihood(X, z), start, steps=1500, lr=0.02,
                              num_samples=32, progress=False)
    assert torch.allclose(best.mu, mean, atol=0.03)
    assert torch.allclose(best.logvar.exp(), variance, rtol=0.1)
    # its ELBO is the closed-form best: log p(x) - KL(q* || p(z | x)), the approximation gap
    q_star = MultivariateNormal(mean, torch.diag_embed(variance))
    best_elbo = toy.log_evidence(X) - kl_divergence(q_star, posterior)
    torch.manual_seed(3)
    estimate = posterior_elbo(lambda z: toy.log_likelihood(X, z), best, 40_000, chunk_size=10_000)
    assert torch.allclose(estimate, best_elbo, atol=0.03)
    assert torch.all(kl_divergence(q_star, posterior) > 0.05)  # a real approximation gap


def test_a_planar_flow_started_at_the_best_gaussian_closes_part_of_the_gap() -> None:
    toy = LinearGaussian(weights=(2.0, 2.0), noise_std=0.5)  # a strongly correlated posterior
    log_likelihood = lambda z: toy.log_likelihood(X, z)  # noqa: E731
    posterior, mean, variance = best_diagonal_gaussian(toy, X)
    start = identity_planar_posterior(mean, variance.log(), 4,
                                      generator=torch.Generator().manual_seed(0))
    torch.manual_seed(4)
    flow = optimize_posterior(log_likelihood, start, steps=600, lr=0.02, num_samples=32,
                              progress=False)
    torch.manual_seed(5)
    gain = (posterior_elbo(log_likelihood, flow, 20_000, chunk_size=10_000)
            - posterior_elbo(log_likelihood, start, 20_000, chunk_size=10_000))
    gap = kl_divergence(MultivariateNormal(mean, torch.diag_embed(variance)), posterior)
    assert torch.all(gain > 0.2 * gap), (gain, gap)
    assert torch.all(gain < gap + 0.05)  # never above log p(x)


def test_optimization_freezes_the_decoder_and_restores_it() -> None:
    torch.manual_seed(6)
    model = VAE(12, (8,), 3)
    model.decoder[0].weight.requires_grad_(False)  # a flag the optimization must put back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    x = (torch.rand(5, 12) < 0.5).float()
    with torch.no_grad():
        mu, logvar = model.encode(x)
    start = identity_planar_posterior(mu, logvar, 2)
    best = optimize_posterior(bernoulli_decoder_likelihood(model, x), start, steps=5,
                              num_samples=2, modules=(model,), progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert not torch.equal(best.mu, mu)  # the posterior did move
    assert all(not t.requires_grad for t in best.tensors())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-200, 0), min_size=3, max_size=3),
       st.lists(st.floats(0, 20), min_size=2, max_size=2))
def test_the_gaps_add_up(log_px: list[float], drops: list[float]) -> None:
    log_px_t = torch.tensor(log_px, dtype=F64)
    best = log_px_t - drops[0]
    amortized = best - drops[1]
    gaps = gap_decomposition(log_px_t, best, amortized)
    assert torch.allclose(gaps["approximation"] + gaps["amortization"], gaps["total"])
    assert torch.allclose(gaps["amortization"], torch.full_like(best, drops[1]), atol=1e-9)


def test_bad_inputs_are_rejected() -> None:
    q = identity_planar_posterior(torch.zeros(3, 2), torch.zeros(3, 2), 1)
    with pytest.raises(ValueError, match=r"must return \(4, 3\)"):
        posterior_log_weights(lambda z: z.sum(), q, 4)
    with pytest.raises(TypeError, match="log_likelihood must be a function"):
        posterior_log_weights("decoder", q, 4)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        optimize_posterior(lambda z: z.sum(-1), q, lr=-1.0)
    with pytest.raises(TypeError, match="PlanarPosterior"):
        optimize_posterior(lambda z: z.sum(-1), (torch.zeros(3, 2),) * 2)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        posterior_elbo(lambda z: z.sum(-1), q, 10, chunk_size=0)
    with pytest.raises(ValueError, match="one shape"):
        gap_decomposition(torch.zeros(3), torch.zeros(3), torch.zeros(2))
    with pytest.raises(TypeError, match="module with decode"):
        bernoulli_decoder_likelihood(torch.nn.Linear(2, 2), torch.zeros(1, 2))
    assert isinstance(q, PlanarPosterior) and math.isfinite(float(q.mu.sum()))
