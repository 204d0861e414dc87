r"""The variational autoencoder: a Gaussian encoder and a Bernoulli decoder.

Generative model (decoder, parameters :math:`\theta`), for an image :math:`x \in \{0,1\}^D`:

.. math::

    z \sim \mathcal N(0, I_K), \qquad
    x_d \mid z \sim \operatorname{Bernoulli}\big(\sigma(f_\theta(z)_d)\big),
    \quad d = 1, \dots, D,

where :math:`f_\theta` is a multilayer perceptron that outputs *logits*. Inference model
(encoder, parameters :math:`\phi`):

.. math::

    q_\phi(z \mid x) = \mathcal N\big(\mu_\phi(x), \operatorname{diag} e^{\ell_\phi(x)}\big),

with :math:`\ell = \log\sigma^2`, both heads of one multilayer perceptron. The hidden
layers use ELU activations, :math:`\operatorname{elu}(t) = t` for :math:`t > 0` and
:math:`e^t - 1` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from vicourse._checks import positive_count


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ELU) -> nn.Sequential:
    """Linear layers of the given sizes with activation between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(activation())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def reparameterized_sample(mu: Tensor, logvar: Tensor, num_samples: int | None = None) -> Tensor:
    """z = mu + exp(logvar / 2) * eps with eps ~ N(0, I), so gradients flow to mu and logvar.

    mu, logvar: (B, K) -> (B, K), or (num_samples, B, K) when num_samples is given
    """
    num_samples = _check_sample_args(mu, logvar, num_samples)
    shape = mu.shape if num_samples is None else (num_samples, *mu.shape)
    eps = torch.randn(shape, dtype=mu.dtype, device=mu.device)  # (B, K) or (num_samples, B, K)
    return mu + torch.exp(0.5 * logvar) * eps


class VAE(nn.Module):
    """Gaussian encoder q(z | x) and Bernoulli decoder p(x | z), MLPs that mirror each other.

    data_dim: D (784 for MNIST); hidden: the encoder's hidden widths; latent_dim: K
    """

    def __init__(
        self,
        data_dim: int = 784,
        hidden: Sequence[int] = (200, 200),
        latent_dim: int = 20,
        activation: type[nn.Module] = nn.ELU,
    ) -> None:
        super().__init__()
        self.data_dim, self.latent_dim, self.hidden = _check_vae_args(data_dim, latent_dim, hidden)
        self.encoder = mlp([self.data_dim, *self.hidden, 2 * self.latent_dim], activation)
        self.decoder = mlp([self.latent_dim, *reversed(self.hidden), self.data_dim], activation)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x): x (B, D) -> mu, logvar (B, K)."""
        _check_last_dim(x, self.data_dim, "x", "images", "flatten them: x.reshape(len(x), -1)")
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (B, K) each
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits f(z): z (..., K) -> (..., D)."""
        _check_last_dim(z, self.latent_dim, "z", "latent codes",
                        f"this decoder was built with latent_dim={self.latent_dim}")
        return self.decoder(z)

    @torch.no_grad()
    def init_output_bias(self, pixel_means: Tensor, eps: float = 1e-3) -> None:
        """Start the decoder at logit(pixel mean), the best model with independent pixels.

        pixel_means: (D,), the training images' mean, clamped to [eps, 1 - eps]
        """
        _check_pixel_means(pixel_means, self.data_dim)
        self.decoder[-1].bias.copy_(torch.logit(pixel_means.clamp(eps, 1 - eps)))

    @torch.no_grad()
    def sample(self, num_images: int, generator: torch.Generator | None = None) -> Tensor:
        """Bernoulli means sigmoid(f(z)) for z from the prior: -> (num_images, D)."""
        num_images = positive_count(num_images, "num_images")
        device = next(self.parameters()).device
        z = torch.randn(num_images, self.latent_dim, generator=generator, device=device)
        return torch.sigmoid(self.decode(z))


@torch.no_grad()
def active_units(model: VAE, x: Tensor, threshold: float = 0.01) -> int:
    """The number of latent dimensions the encoder uses (Burda et al., 2016):

        A = #{k : Var_x[mu_k(x)] > threshold},

    the variance of the posterior mean taken over the images x (shape (N, D), N >= 2).
    A dimension whose mean does not move with x carries no information about the image.
    """
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(
            f"active_units needs a batch of at least 2 images of shape (N, D), got "
            f"{tuple(x.shape)}; the variance is taken across images"
        )
    mu = torch.cat([model.encode(batch)[0] for batch in x.split(2000)])
    return int((mu.var(dim=0) > threshold).sum())


def _check_sample_args(mu: Tensor, logvar: Tensor, num_samples: int | None) -> int | None:
    """num_samples as an int (or None), after checking that mu and logvar have one shape."""
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )
    return None if num_samples is None else positive_count(num_samples, "num_samples")


def _check_vae_args(
    data_dim: int, latent_dim: int, hidden: Sequence[int]
) -> tuple[int, int, tuple[int, ...]]:
    """data_dim, latent_dim and the hidden widths as ints, after checking they are positive."""
    data_dim = positive_count(data_dim, "data_dim")
    latent_dim = positive_count(latent_dim, "latent_dim")
    return data_dim, latent_dim, tuple(positive_count(h, "hidden width") for h in hidden)


def _check_pixel_means(pixel_means: Tensor, data_dim: int) -> None:
    """Raise ValueError unless pixel_means has shape (data_dim,)."""
    if pixel_means.shape != (data_dim,):
        raise ValueError(
            f"pixel_means must have shape ({data_dim},), got "
            f"{tuple(pixel_means.shape)}; pass images.mean(0)"
        )


def _check_last_dim(t: Tensor, size: int, name: str, what: str, hint: str) -> None:
    if t.ndim < 2 or t.shape[-1] != size:
        raise ValueError(
            f"{name} must have shape (batch, {size}) ({what}), got {tuple(t.shape)}; {hint}"
        )
