"""Tests of the amortized planar-flow posterior (vicourse.models.flow_encoder).

Oracles: the VAE it copies (an untrained head is the identity, so the posterior is the VAE's
Gaussian and its ELBO draws are the Gaussian log weights), torch.distributions for the log
weights, and the VAE's parameters before and after training (the decoder never changes).
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Independent, Normal

from vicourse.families.planar_batch import constrained_u
from vicourse.models.flow_encoder import PlanarFlowVAE, flow_elbo, negative_flow_elbo_loss
from vicourse.models.vae import VAE
from vicourse.train import train_vae


def small_vae() -> VAE:
    torch.manual_seed(0)
    return VAE(16, (10, 8), 3)


def test_untrained_flow_encoder_is_the_gaussian_encoder() -> None:
    vae = small_vae()
    flow_vae = PlanarFlowVAE(vae, num_layers=3)
    x = (torch.rand(6, 16, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    posterior = flow_vae.posterior(x)
    mu, logvar = vae.encode(x)
    assert torch.allclose(posterior.mu, mu) and torch.allclose(posterior.logvar, logvar)
    assert posterior.u.shape == (6, 3, 3) and posterior.b.shape == (6, 3)
    assert torch.allclose(constrained_u(posterior.u, posterior.w), torch.zeros(6, 3, 3),
                          atol=1e-6)
    # the ELBO draws are the Gaussian's log weights for the same noise
    torch.manual_seed(2)
    values = flow_elbo(flow_vae, x)
    torch.manual_seed(2)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(1, *mu.shape)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    prior = Independent(Normal(torch.zeros(3), torch.ones(3)), 1)
    bernoulli = Independent(torch.distributions.Bernoulli(logits=vae.decode(z)), 1)
    expected = (prior.log_prob(z) + bernoulli.log_prob(x) - q.log_prob(z))[0]
    assert torch.allclose(values, expected, atol=1e-4)


def test_training_changes_the_posterior_and_never_the_decoder() -> None:
    vae = small_vae()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    flow_vae = PlanarFlowVAE(vae, num_layers=2)
    decoder_before = {k: v.clone() for k, v in flow_vae.decoder.state_dict().items()}
    head_before = flow_vae.head.weight.clone()
    images = torch.rand(64, 16, generator=torch.Generator().manual_seed(3))
    train_vae(flow_vae, images, epochs=2, batch_size=16, lr=1e-2,
              loss_fn=negative_flow_elbo_loss, progress=False)
    assert all(torch.equal(before[k], v) for k, v in vae.state_dict().items())
    assert all(torch.equal(decoder_before[k], v)
               for k, v in flow_vae.decoder.state_dict().items())
    assert not torch.equal(flow_vae.head.weight, head_before)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="trained vicourse VAE"):
        PlanarFlowVAE(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        PlanarFlowVAE(small_vae(), num_layers=0)
    flow_vae = PlanarFlowVAE(small_vae(), num_layers=1)
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        flow_elbo(flow_vae, torch.zeros(2, 16), num_samples=0)
    with pytest.raises((TypeError, ValueError)):
        flow_vae.posterior(torch.zeros(2, 15))
