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

from vicourse._checks import (
    as_tensor,
    check_all_finite,
    check_float,
    check_same_dtype_and_device,
    is_finite_real,
    positive_count,
)


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ELU) -> nn.Sequential:
    """Linear layers of the given sizes with activation between them (none after the last)."""
    sizes = _check_mlp_args(sizes, activation)
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
    mu, logvar, num_samples = _check_sample_args(mu, logvar, num_samples)
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
        self.data_dim, self.latent_dim, self.hidden = _check_vae_args(
            data_dim, latent_dim, hidden, activation)
        self.encoder = mlp([self.data_dim, *self.hidden, 2 * self.latent_dim], activation)
        self.decoder = mlp([self.latent_dim, *reversed(self.hidden), self.data_dim], activation)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x): x (B, D) -> mu, logvar (B, K)."""
        x = _check_input(self, x, self.data_dim, "x", "images",
                         "flatten them: x.reshape(len(x), -1)")
        mu, logvar = self.encoder(x).chunk(2, dim=-1)  # (B, K) each
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits f(z): z (..., K) -> (..., D)."""
        z = _check_input(self, z, self.latent_dim, "z", "latent codes",
                         f"this decoder was built with latent_dim={self.latent_dim}")
        return self.decoder(z)

    @torch.no_grad()
    def init_output_bias(self, pixel_means: Tensor, eps: float = 1e-3) -> None:
        """Start the decoder at logit(pixel mean), the best model with independent pixels.

        pixel_means: (D,), the training images' mean, clamped to [eps, 1 - eps]
        """
        pixel_means = _check_pixel_means(pixel_means, self.data_dim, eps)
        self.decoder[-1].bias.copy_(torch.logit(pixel_means.clamp(eps, 1 - eps)))

    @torch.no_grad()
    def sample(self, num_images: int, generator: torch.Generator | None = None) -> Tensor:
        """Bernoulli means sigmoid(f(z)) for z from the prior: -> (num_images, D)."""
        num_images = positive_count(num_images, "num_images")
        parameter = next(self.parameters())
        z = torch.randn(num_images, self.latent_dim, generator=generator,
                        device=parameter.device, dtype=parameter.dtype)
        return torch.sigmoid(self.decode(z))


@torch.no_grad()
def active_units(model: VAE, x: Tensor, threshold: float = 0.01) -> int:
    """The number of latent dimensions the encoder uses (Burda et al., 2016):

        A = #{k : Var_x[mu_k(x)] > threshold},

    the variance of the posterior mean taken over the images x (shape (N, D), N >= 2).
    A dimension whose mean does not move with x carries no information about the image.
    """
    x = _check_active_units_args(model, x, threshold)
    mu = torch.cat([model.encode(batch)[0] for batch in x.split(2000)])
    return int((mu.var(dim=0) > threshold).sum())


def _check_mlp_args(sizes: Sequence[int], activation: object) -> list[int]:
    """The layer sizes as ints, after checking there are at least two, all positive, and that
    activation is a module class (not an instance)."""
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a sequence of layer widths, e.g. [784, 200, 40], got "
                        f"{sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes must hold at least two widths (input and output), got {sizes}")
    sizes = [positive_count(n, "every width in sizes") for n in sizes]
    if isinstance(activation, nn.Module) or not callable(activation):
        raise TypeError(f"activation must be a module class such as nn.ELU (called once per "
                        f"layer), got {activation!r}; pass nn.ELU, not nn.ELU()")
    return sizes


def _check_sample_args(
    mu: Tensor, logvar: Tensor, num_samples: int | None
) -> tuple[Tensor, Tensor, int | None]:
    """mu, logvar as tensors and num_samples as an int (or None), after checking that mu and
    logvar have one shape, one floating dtype and one device."""
    mu = as_tensor(mu, "mu")
    logvar = as_tensor(logvar, "logvar", dtype=mu.dtype if mu.is_floating_point() else None)
    check_float(mu, "mu")
    check_float(logvar, "logvar")
    check_same_dtype_and_device(mu=mu, logvar=logvar)
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )
    return mu, logvar, None if num_samples is None else positive_count(num_samples, "num_samples")


def _check_vae_args(
    data_dim: int, latent_dim: int, hidden: Sequence[int], activation: object
) -> tuple[int, int, tuple[int, ...]]:
    """data_dim, latent_dim and the hidden widths as ints, after checking they are positive."""
    data_dim = positive_count(data_dim, "data_dim")
    latent_dim = positive_count(latent_dim, "latent_dim")
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise TypeError(f"hidden must be a sequence of hidden widths, e.g. (200, 200) or () for "
                        f"none, got {hidden!r}")
    hidden = tuple(positive_count(h, "hidden width") for h in hidden)
    _check_mlp_args([data_dim, *hidden, latent_dim], activation)
    return data_dim, latent_dim, hidden


def _check_pixel_means(pixel_means: Tensor, data_dim: int, eps: float) -> Tensor:
    """pixel_means as a tensor, after checking it is (data_dim,) of finite values in [0, 1] and
    that eps is in (0, 0.5) (eps = 0 would write an infinite bias)."""
    if not (is_finite_real(eps) and 0 < eps < 0.5):
        raise ValueError(f"eps must be a number in (0, 0.5), e.g. 1e-3: the means are clamped "
                         f"to [eps, 1 - eps] so that the logits stay finite; got {eps!r}")
    pixel_means = as_tensor(pixel_means, "pixel_means")
    if not pixel_means.is_floating_point():
        raise TypeError(f"pixel_means must be a floating-point tensor of grey-level means, got "
                        f"dtype {pixel_means.dtype}; pass images.float().mean(0)")
    if pixel_means.shape != (data_dim,):
        raise ValueError(
            f"pixel_means must have shape ({data_dim},), got "
            f"{tuple(pixel_means.shape)}; pass images.mean(0)"
        )
    check_all_finite(pixel_means, "pixel_means")
    low, high = pixel_means.min().item(), pixel_means.max().item()
    if low < 0 or high > 1:
        raise ValueError(f"pixel_means must lie in [0, 1] (means of grey levels), got range "
                         f"[{low:.3g}, {high:.3g}]; divide uint8 pixels by 255 first")
    return pixel_means


def _check_active_units_args(model: VAE, x: Tensor, threshold: float) -> Tensor:
    """x as a tensor in the model's dtype, after checking it is (N, D) with N >= 2 finite
    images and that threshold is a finite number >= 0."""
    if not (isinstance(model, nn.Module) and hasattr(model, "encode")):
        raise TypeError(f"model must be a VAE (a module with encode), got {type(model).__name__}")
    if not (is_finite_real(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite number >= 0 (a variance), got "
                         f"{threshold!r}")
    x = _check_input(model, x, getattr(model, "data_dim", None), "x", "images",
                     "flatten them: x.reshape(len(x), -1)")
    if len(x) < 2:
        raise ValueError(
            f"x must hold at least 2 images: active_units needs a batch of at least 2 images "
            f"of shape (N, D), got {tuple(x.shape)}; the variance is taken across images"
        )
    check_all_finite(x, "x")
    return x


def _check_input(model: nn.Module, t: Tensor, size: int | None, name: str, what: str,
                 hint: str) -> Tensor:
    """t as a tensor of the model's dtype (array-likes and booleans converted), after checking
    its dtype, its device and its shape (batch, size); metadata only, nothing is synchronized."""
    parameter = next(model.parameters())
    t = as_tensor(t, name, dtype=parameter.dtype if not isinstance(t, Tensor) else None)
    if t.dtype == torch.bool:  # binary: converted exactly
        t = t.to(parameter.dtype)
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor ({what}), got dtype {t.dtype}; "
                        f"convert it with {name}.to({parameter.dtype})")
    if t.dtype != parameter.dtype:
        raise TypeError(
            f"{name} has dtype {t.dtype} but the model's parameters are {parameter.dtype}; "
            f"convert it with {name}.to({parameter.dtype}) (or the model with "
            f"model.to({t.dtype}))"
        )
    if t.device != parameter.device:
        raise TypeError(f"{name} is on {t.device} but the model is on {parameter.device}; move "
                        f"it with {name}.to({str(parameter.device)!r})")
    size = t.shape[-1] if size is None and t.ndim else size
    _check_last_dim(t, size, name, what, hint)
    return t


def _check_last_dim(t: Tensor, size: int, name: str, what: str, hint: str) -> None:
    if t.ndim < 2 or t.shape[-1] != size:
        raise ValueError(
            f"{name} must have shape (batch, {size}) ({what}), got {tuple(t.shape)}; {hint}"
        )
