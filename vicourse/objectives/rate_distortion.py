r"""Rate and distortion, the two terms of the ELBO, and the objectives that weight them apart.

Minus the ELBO of an image is a distortion plus a rate,

.. math::

    -\mathrm{ELBO}(x) = \underbrace{-\mathbb E_{q(z\mid x)} \log p(x \mid z)}_{D}
        + \underbrace{\mathrm{KL}\big(q(z \mid x) \,\|\, p(z)\big)}_{R}
        = D + \sum_{k} R_k,

where :math:`R_k` is the KL of latent dimension :math:`k` (the encoder's Gaussian is
diagonal and the prior standard normal, so the KL splits over dimensions). The β-VAE
minimizes :math:`D + \beta R`; KL warm-up raises β from 0 to 1 during training; free bits
replace each :math:`R_k` by :math:`\max(\lambda, R_k)`, averaged over the batch.
"""

from __future__ import annotations

from torch import Tensor

from vicourse._checks import is_finite_real, positive_count
from vicourse.models.vae import VAE, reparameterized_sample
from vicourse.objectives.bounds import _check_images, bernoulli_log_likelihood
from vicourse.objectives.gaussian_kl import kl_diag_gaussian_std_normal


def rate_and_distortion(model: VAE, x: Tensor) -> tuple[Tensor, Tensor]:
    """The rate of each latent dimension (closed form) and the distortion at one sampled z.

    x: (B, D) binary -> rate (B, K) nats, distortion (B,) nats
    """
    x = _check_images(model, x)
    mu, logvar = model.encode(x)  # (B, K) each
    z = reparameterized_sample(mu, logvar)  # (B, K)
    rate = kl_diag_gaussian_std_normal(mu.unsqueeze(-1), logvar.unsqueeze(-1))  # (B, K)
    distortion = -bernoulli_log_likelihood(model.decode(z), x)  # (B,)
    return rate, distortion


def beta_vae_loss(model: VAE, x: Tensor, beta: float) -> Tensor:
    """D + beta R averaged over the batch; beta = 1 is minus the ELBO. x: (B, D) -> scalar"""
    _check_weight(beta, "beta")
    rate, distortion = rate_and_distortion(model, x)  # (B, K), (B,)
    return (distortion + beta * rate.sum(-1)).mean()


def free_bits_loss(model: VAE, x: Tensor, nats_per_dim: float) -> Tensor:
    """D + sum_k max(lambda, R_k), R_k averaged over the batch (Kingma et al., 2016).

    x: (B, D) -> scalar; below lambda nats a dimension's rate costs nothing more
    """
    _check_weight(nats_per_dim, "nats_per_dim")
    rate, distortion = rate_and_distortion(model, x)  # (B, K), (B,)
    return distortion.mean() + rate.mean(0).clamp(min=nats_per_dim).sum()


class KLWarmup:
    """The loss D + beta R with beta rising linearly from 0 to 1 over the first `steps` calls."""

    def __init__(self, steps: int) -> None:
        self.steps, self.calls = positive_count(steps, "steps"), 0

    def __call__(self, model: VAE, x: Tensor) -> Tensor:
        beta = min(1.0, self.calls / self.steps)
        self.calls += 1
        return beta_vae_loss(model, x, beta)


def _check_weight(value: float, name: str) -> None:
    if not (is_finite_real(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}"
                         + ("; beta = 1 is the ELBO" if name == "beta" else
                            "; e.g. 0.25 nats per latent dimension"))
