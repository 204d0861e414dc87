"""Tests of vicourse.objectives.dreg: the doubly reparameterized gradient of the IWAE bound.

Oracles: negative_iwae_loss (the value and the decoder's gradient), an explicit autograd
surrogate sum_k stopgrad(w~_k^2) log w_k for the encoder (no hook), sticking the landing at
K = 1, the exact posterior of the conjugate model (zero variance), the closed-form ELBO and a
Gauss-Hermite quadrature of L_2 (the expected gradient).
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vicourse.families.gaussian import gaussian_log_density
from vicourse.models.toy_model import ConjugateGaussian
from vicourse.models.vae import VAE, reparameterized_sample
from vicourse.objectives.bounds import (
    _log_weight,
    negative_elbo_stl_loss,
    negative_iwae_loss,
)
from vicourse.objectives.dreg import negative_dreg_loss, toy_bound_gradients
from vicourse.objectives.snr import signal_to_noise
from vicourse.train import train_vae

TOY = ConjugateGaussian(noise_std=0.5)
X, Q_MEAN, Q_LOG_STD = 2.0, 0.5, math.log(0.8)


def _vae_and_images(seed: int = 0, batch: int = 6) -> tuple[VAE, torch.Tensor]:
    torch.manual_seed(seed)
    model = VAE(data_dim=12, hidden=(9,), latent_dim=3).double()
    x = (torch.rand(batch, 12, dtype=torch.float64) < 0.4).double()
    return model, x


def _grads(loss_fn, model: VAE, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, list]:
    torch.manual_seed(seed)
    loss = loss_fn(model, x)
    return loss, list(torch.autograd.grad(loss, list(model.parameters())))


def _split(model: VAE, grads: list) -> tuple[list, list]:
    n_encoder = len(list(model.encoder.parameters()))
    return grads[:n_encoder], grads[n_encoder:]


@pytest.mark.parametrize("k", [1, 2, 5])
def test_value_and_decoder_gradient_are_iwae(k):
    model, x = _vae_and_images()
    iwae_loss, iwae_grads = _grads(partial(negative_iwae_loss, num_samples=k), model, x, 7)
    dreg_loss, dreg_grads = _grads(partial(negative_dreg_loss, num_samples=k), model, x, 7)
    assert torch.allclose(dreg_loss, iwae_loss, atol=1e-12)
    for ours, theirs in zip(_split(model, dreg_grads)[1], _split(model, iwae_grads)[1],
                            strict=True):
        assert torch.allclose(ours, theirs, atol=1e-12)


@pytest.mark.parametrize("k", [2, 5])
def test_encoder_gradient_is_the_squared_weight_surrogate(k):
    """The oracle: autograd of mean_b sum_k stopgrad(w~^2) log w_k, log q at detached mu, logvar."""
    model, x = _vae_and_images(seed=1)
    _, dreg_grads = _grads(partial(negative_dreg_loss, num_samples=k), model, x, 3)
    torch.manual_seed(3)
    mu, logvar = model.encode(x)
    z = reparameterized_sample(mu, logvar, k)
    log_w = _log_weight(model, x, z,
                        gaussian_log_density(z, mu.detach(), 0.5 * logvar.detach()))
    surrogate = (torch.softmax(log_w.detach(), dim=0) ** 2 * log_w).sum(0).mean()
    expected = torch.autograd.grad(-surrogate, list(model.encoder.parameters()))
    encoder_grads = _split(model, dreg_grads)[0]
    assert max(float(g.abs().max()) for g in expected) > 1e-3  # not trivially zero
    for ours, theirs in zip(encoder_grads, expected, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-12)


def test_encoder_gradient_differs_from_iwae_for_k_above_one():
    model, x = _vae_and_images(seed=2)
    _, iwae_grads = _grads(partial(negative_iwae_loss, num_samples=4), model, x, 5)
    _, dreg_grads = _grads(partial(negative_dreg_loss, num_samples=4), model, x, 5)
    difference = max(float((a - b).abs().max()) for a, b in
                     zip(_split(model, iwae_grads)[0], _split(model, dreg_grads)[0],
                         strict=True))
    assert difference > 1e-4


def test_k_one_is_sticking_the_landing():
    model, x = _vae_and_images(seed=3)
    stl_loss, stl_grads = _grads(lambda m, v: negative_elbo_stl_loss(m, v), model, x, 11)
    dreg_loss, dreg_grads = _grads(partial(negative_dreg_loss, num_samples=1), model, x, 11)
    assert torch.allclose(dreg_loss, stl_loss, atol=1e-12)
    for ours, theirs in zip(dreg_grads, stl_grads, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-12)


def test_trains_with_train_vae():
    torch.manual_seed(0)
    model = VAE(data_dim=12, hidden=(8,), latent_dim=2)
    images = torch.rand(64, 12)
    history = train_vae(model, images, epochs=2, batch_size=16, progress=False,
                        loss_fn=partial(negative_dreg_loss, num_samples=3))
    assert all(math.isfinite(v) for v in history.train_loss)


def test_no_grad_evaluation_works():
    model, x = _vae_and_images()
    with torch.no_grad():
        torch.manual_seed(0)
        value = negative_dreg_loss(model, x, 3)
        torch.manual_seed(0)
        assert torch.allclose(value, negative_iwae_loss(model, x, 3))


# --- the conjugate toy model ------------------------------------------------------------


def test_toy_gradients_are_per_draw_gradients_of_the_bound_estimate():
    """iwae: draw r's gradient is the autograd gradient of its own log (1/K) sum_k w_k."""
    grads = toy_bound_gradients(TOY, X, Q_MEAN, Q_LOG_STD, 4, 3, "iwae",
                                torch.Generator().manual_seed(2))
    eps = torch.randn(3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for r in range(3):
        params = torch.tensor([Q_MEAN, Q_LOG_STD], dtype=torch.float64, requires_grad=True)
        q = torch.distributions.Normal(params[0], params[1].exp())
        z = q.loc + q.scale * eps[r]
        log_w = TOY.log_joint(torch.tensor(X, dtype=torch.float64), z) - q.log_prob(z)
        (expected,) = torch.autograd.grad(torch.logsumexp(log_w, 0) - math.log(4), params)
        assert torch.allclose(grads[r], expected, atol=1e-12)
    assert grads.shape == (3, 2) and grads.dtype == torch.float64


@settings(max_examples=20, deadline=None)
@given(st.floats(-3, 3), st.floats(0.3, 2.0), st.integers(1, 20))
def test_dreg_has_zero_variance_at_the_exact_posterior(x, noise, k):
    model = ConjugateGaussian(noise_std=noise)
    posterior = model.posterior(torch.tensor(x, dtype=torch.float64))
    mean, log_std = float(posterior.mean), math.log(float(posterior.stddev))
    dreg = toy_bound_gradients(model, x, mean, log_std, k, 50, "dreg",
                               torch.Generator().manual_seed(0))
    iwae = toy_bound_gradients(model, x, mean, log_std, k, 50, "iwae",
                               torch.Generator().manual_seed(0))
    assert float(dreg.abs().max()) < 1e-9
    assert float(iwae.std(0).max()) > 1e-3  # the score term's noise


def _l2_by_quadrature(mean: float, log_std: float, nodes: int = 80) -> float:
    """L_2 = E log((w_1 + w_2) / 2) by a two-dimensional Gauss-Hermite rule."""
    t, weights = np.polynomial.hermite.hermgauss(nodes)
    std = math.exp(log_std)
    z = mean + math.sqrt(2) * std * t
    log_q = -0.5 * ((z - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    log_joint = (-0.5 * z**2 - 0.5 * ((X - z) / TOY.noise_std) ** 2
                 - math.log(2 * math.pi * TOY.noise_std))
    log_w = log_joint - log_q
    pair = np.logaddexp(log_w[:, None], log_w[None, :]) - math.log(2)
    return float((weights[:, None] * weights[None, :] * pair).sum() / math.pi)


def _exact_gradient(k: int) -> np.ndarray:
    """The gradient of L_k w.r.t. (mean, log std): the closed-form ELBO for k = 1, central
    differences of the quadrature for k = 2."""
    if k == 1:
        params = torch.tensor([Q_MEAN, Q_LOG_STD], dtype=torch.float64, requires_grad=True)
        elbo = TOY.elbo(torch.tensor(X, dtype=torch.float64), params[0], params[1].exp())
        return torch.autograd.grad(elbo, params)[0].numpy()
    h = 1e-5
    return np.array([
        (_l2_by_quadrature(Q_MEAN + h, Q_LOG_STD) - _l2_by_quadrature(Q_MEAN - h, Q_LOG_STD))
        / (2 * h),
        (_l2_by_quadrature(Q_MEAN, Q_LOG_STD + h) - _l2_by_quadrature(Q_MEAN, Q_LOG_STD - h))
        / (2 * h),
    ])


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("estimator", ["iwae", "dreg"])
def test_toy_gradients_are_unbiased_for_the_gradient_of_the_bound(k, estimator):
    draws = 40_000
    grads = toy_bound_gradients(TOY, X, Q_MEAN, Q_LOG_STD, k, draws, estimator,
                                torch.Generator().manual_seed(10 + k)).numpy()
    se = grads.std(0) / math.sqrt(draws)
    assert np.all(np.abs(grads.mean(0) - _exact_gradient(k)) < 4 * se)


@pytest.mark.parametrize("k", [5, 50])
def test_dreg_and_iwae_toy_gradients_have_the_same_mean(k):
    draws = 20_000
    iwae = toy_bound_gradients(TOY, X, Q_MEAN, Q_LOG_STD, k, draws, "iwae",
                               torch.Generator().manual_seed(1)).numpy()
    dreg = toy_bound_gradients(TOY, X, Q_MEAN, Q_LOG_STD, k, draws, "dreg",
                               torch.Generator().manual_seed(2)).numpy()
    se = np.sqrt(iwae.var(0) / draws + dreg.var(0) / draws)
    assert np.all(np.abs(iwae.mean(0) - dreg.mean(0)) < 4 * se)


@pytest.mark.parametrize("x", [-1.5, 0.5, 2.0, 3.0])
def test_snr_falls_with_k_for_iwae_and_rises_for_dreg(x):
    """Rainforth et al.: IWAE's encoder SNR is O(1/sqrt K); Tucker et al.: DReG's grows."""
    q_mean, q_log_std = x / (1 + TOY.noise_std**2) / 2 - 0.3, math.log(0.8)
    snr = {}
    for estimator in ("iwae", "dreg"):
        for k in (1, 1000):
            grads = toy_bound_gradients(TOY, x, q_mean, q_log_std, k, 1000, estimator,
                                        torch.Generator().manual_seed(k))
            snr[estimator, k] = signal_to_noise(grads)
    assert torch.all(snr["iwae", 1000] < 0.5 * snr["iwae", 1])
    assert torch.all(snr["dreg", 1000] > 1.5 * snr["dreg", 1])


# --- bad input ---------------------------------------------------------------------------


def test_bad_vae_input_says_how_to_fix_it():
    model, x = _vae_and_images()
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        negative_dreg_loss(model, x, 0)
    with pytest.raises(ValueError, match="flatten images"):
        negative_dreg_loss(model, x.reshape(6, 3, 4), 2)
    with pytest.raises(TypeError, match="model must be a VAE"):
        negative_dreg_loss(torch.nn.Linear(2, 2), x, 2)
    with pytest.raises(TypeError, match="dtype"):
        negative_dreg_loss(model, x.float(), 2)


def test_bad_toy_input_says_how_to_fix_it():
    call = partial(toy_bound_gradients, TOY, X, Q_MEAN, Q_LOG_STD)
    with pytest.raises(ValueError, match="estimator must be one of"):
        call(3, 10, "stl")
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        call(0, 10)
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        call(3, 0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        call(3, 10, "iwae", 0)
    with pytest.raises(ValueError, match="q_log_std must be a finite number"):
        toy_bound_gradients(TOY, X, Q_MEAN, math.nan, 3, 10)
    with pytest.raises(ValueError, match="x and q_mean must be finite numbers"):
        toy_bound_gradients(TOY, math.inf, Q_MEAN, Q_LOG_STD, 3, 10)
    with pytest.raises(TypeError, match="model must be a ConjugateGaussian"):
        toy_bound_gradients(object(), X, Q_MEAN, Q_LOG_STD, 3, 10)
