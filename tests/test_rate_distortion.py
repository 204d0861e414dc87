"""vicourse.objectives.rate_distortion against the ELBO and torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal, kl_divergence

from vicourse.models.vae import VAE
from vicourse.objectives.bounds import elbo, negative_elbo_loss
from vicourse.objectives.rate_distortion import (
    KLWarmup,
    beta_vae_loss,
    free_bits_loss,
    rate_and_distortion,
)

D, K = 10, 3


def _model_and_images(seed: int = 0) -> tuple[VAE, torch.Tensor]:
    torch.manual_seed(seed)
    model = VAE(data_dim=D, hidden=(6,), latent_dim=K).double()
    x = (torch.rand(7, D, dtype=torch.float64) < 0.5).double()
    return model, x


def _seeded(fn, *args, seed=1):
    torch.manual_seed(seed)
    return fn(*args)


def test_rate_is_the_kl_of_each_dimension():
    model, x = _model_and_images()
    rate, _ = rate_and_distortion(model, x)
    mu, logvar = model.encode(x)
    oracle = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0))  # (B, K)
    assert rate.shape == (len(x), K)
    torch.testing.assert_close(rate, oracle)


def test_rate_plus_distortion_is_minus_the_elbo():
    model, x = _model_and_images()
    rate, distortion = _seeded(rate_and_distortion, model, x)
    torch.testing.assert_close(distortion + rate.sum(-1), -_seeded(elbo, model, x))
    assert (distortion > 0).all() and (rate >= 0).all()


@settings(max_examples=25, deadline=None)
@given(beta=st.floats(0, 10), seed=st.integers(0, 2**16))
def test_beta_loss_is_linear_in_beta_and_the_elbo_at_one(beta, seed):
    model, x = _model_and_images(seed)
    rate, distortion = _seeded(rate_and_distortion, model, x)
    expected = distortion.mean() + beta * rate.sum(-1).mean()
    torch.testing.assert_close(_seeded(beta_vae_loss, model, x, beta), expected)
    torch.testing.assert_close(_seeded(beta_vae_loss, model, x, 1.0),
                               _seeded(negative_elbo_loss, model, x))


def _encoder_gradient(loss):
    model, x = _model_and_images()
    torch.manual_seed(1)
    grads = torch.autograd.grad(loss(model, x), list(model.encoder.parameters()))
    return torch.cat([g.flatten() for g in grads])


def test_free_bits_at_zero_is_the_elbo_and_above_every_rate_only_distortion_pulls():
    model, x = _model_and_images()
    torch.testing.assert_close(_seeded(free_bits_loss, model, x, 0.0),
                               _seeded(negative_elbo_loss, model, x))
    rate, distortion = _seeded(rate_and_distortion, model, x)
    high = float(rate.detach().mean(0).max()) + 1.0
    torch.testing.assert_close(_seeded(free_bits_loss, model, x, high),
                               distortion.mean() + K * high)
    torch.testing.assert_close(_encoder_gradient(lambda m, b: free_bits_loss(m, b, high)),
                               _encoder_gradient(lambda m, b: beta_vae_loss(m, b, 0.0)))
    assert not torch.allclose(_encoder_gradient(lambda m, b: free_bits_loss(m, b, 0.0)),
                              _encoder_gradient(lambda m, b: beta_vae_loss(m, b, 0.0)))


def test_free_bits_charges_only_dimensions_above_the_floor():
    model, x = _model_and_images()
    rate, distortion = _seeded(rate_and_distortion, model, x)
    per_dim = rate.mean(0)
    floor = float(per_dim.detach().median())
    expected = distortion.mean() + torch.where(per_dim > floor, per_dim, floor).sum()
    torch.testing.assert_close(_seeded(free_bits_loss, model, x, floor), expected)


def test_warmup_raises_beta_linearly_then_stays_at_one():
    model, x = _model_and_images()
    warmup = KLWarmup(steps=4)
    for call, beta in enumerate([0.0, 0.25, 0.5, 0.75, 1.0, 1.0]):
        torch.testing.assert_close(_seeded(warmup, model, x),
                                   _seeded(beta_vae_loss, model, x, beta), msg=f"call {call}")
    assert warmup.calls == 6


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, "1", None])
def test_bad_weights_are_refused(bad):
    model, x = _model_and_images()
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        beta_vae_loss(model, x, bad)
    with pytest.raises(ValueError, match="nats_per_dim must be a finite number >= 0"):
        free_bits_loss(model, x, bad)


def test_bad_warmup_length_and_images_are_refused():
    with pytest.raises((ValueError, TypeError), match="steps"):
        KLWarmup(0)
    model, x = _model_and_images()
    with pytest.raises(ValueError, match="shape"):
        rate_and_distortion(model, x[:, :4])
    with pytest.raises(ValueError, match="binary"):
        rate_and_distortion(model, x * 0.5)
