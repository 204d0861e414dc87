r"""An amortized planar-flow posterior for a trained VAE: its encoder, plus a head for the flow.

The encoder is a copy of the VAE's Gaussian encoder. A linear head maps the encoder's last
hidden layer to each image's planar parameters :math:`(u_l, w_l, b_l)`, :math:`l = 1, \dots, L`
(:mod:`vicourse.families.planar_batch`). The head's weights start at zero and its bias at
an identity flow, so the untrained flow encoder is the Gaussian encoder. The decoder is a
frozen copy of the VAE's: training changes the posterior only, never the model.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from vicourse._checks import positive_count
from vicourse.families.planar_batch import (
    PlanarPosterior,
    identity_planar_posterior,
    planar_posterior_sample,
)
from vicourse.models.vae import VAE
from vicourse.objectives.bounds import _check_images, bernoulli_log_likelihood


class PlanarFlowVAE(nn.Module):
    """The VAE's encoder and an L-layer planar head, with the VAE's decoder frozen.

    vae: a trained VAE (copied, not changed); num_layers: L
    """

    def __init__(self, vae: VAE, num_layers: int = 4, seed: int = 0) -> None:
        super().__init__()
        self.num_layers = _check_flow_vae_args(vae, num_layers)
        self.data_dim, self.latent_dim = vae.data_dim, vae.latent_dim
        self.encoder = copy.deepcopy(vae.encoder)
        self.decoder = copy.deepcopy(vae.decoder).requires_grad_(False)
        k, parameter = self.latent_dim, vae.encoder[-1].weight
        self.head = nn.Linear(parameter.shape[1], num_layers * (2 * k + 1)).to(parameter)
        start = identity_planar_posterior(parameter.new_zeros(1, k), parameter.new_zeros(1, k),
                                          num_layers, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.copy_(torch.cat([start.u[0], start.w[0], start.b[0, :, None]], -1)
                                 .flatten())

    def posterior(self, x: Tensor) -> PlanarPosterior:
        """Each image's Gaussian and planar parameters: x (N, D) -> PlanarPosterior of N images."""
        x = _check_images(self, x)
        hidden = self.encoder[:-1](x)  # (N, H), the last hidden layer
        mu, logvar = self.encoder[-1](hidden).chunk(2, dim=-1)  # (N, K) each
        k = self.latent_dim
        flow = self.head(hidden).view(len(x), self.num_layers, 2 * k + 1)  # (N, L, 2K + 1)
        u, w, b = flow.split([k, k, 1], dim=-1)  # (N, L, K), (N, L, K), (N, L, 1)
        return PlanarPosterior(mu, logvar, u, w, b.squeeze(-1))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The Gaussian part's mean and log-variance: x (N, D) -> mu, logvar (N, K)."""
        posterior = self.posterior(x)
        return posterior.mu, posterior.logvar

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits of the frozen decoder: z (..., K) -> (..., D)."""
        return self.decoder(z)


def flow_elbo(model: PlanarFlowVAE, x: Tensor, num_samples: int = 1) -> Tensor:
    """ELBO per image with the flow posterior: mean over S draws of log p(x, z) - log q(z | x).

    x: (N, D) binary -> (N,) nats
    """
    num_samples = positive_count(num_samples, "num_samples")
    z, log_q = planar_posterior_sample(model.posterior(x), num_samples)  # (S, N, K), (S, N)
    log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)  # (S, N)
    return (log_prior + bernoulli_log_likelihood(model.decode(z), x) - log_q).mean(0)


def negative_flow_elbo_loss(model: PlanarFlowVAE, x: Tensor) -> Tensor:
    """The training loss: minus the flow ELBO averaged over the batch (for train_vae)."""
    return -flow_elbo(model, x).mean()


def _check_flow_vae_args(vae: VAE, num_layers: int) -> int:
    """num_layers as an int, after checking that vae is a VAE."""
    if not isinstance(vae, VAE):
        raise TypeError(f"vae must be a trained vicourse VAE, got {type(vae).__name__}")
    return positive_count(num_layers, "num_layers")
