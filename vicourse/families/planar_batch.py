r"""A diagonal Gaussian followed by planar layers, with separate parameters for every image.

For image :math:`n` the posterior draws :math:`z_0 = \mu_n + e^{\ell_n/2} \odot \varepsilon`,
:math:`\varepsilon \sim \mathcal N(0, I_K)`, and pushes it through :math:`L` planar layers
(Rezende and Mohamed, 2015)

.. math::

    z_l = z_{l-1} + \hat u_{nl} \tanh(w_{nl}^\top z_{l-1} + b_{nl}), \qquad
    \log\lvert\det J_l\rvert = \log\lvert 1 + (1 - \tanh^2(\cdot))\, w_{nl}^\top \hat u_{nl}\rvert,

with :math:`\hat u = u + (m(w^\top u) - w^\top u)\, w / \lVert w\rVert^2` and
:math:`m(a) = -1 + \operatorname{softplus}(a)`, so that :math:`w^\top \hat u > -1` and every
layer is invertible. :class:`~vicourse.families.flows.PlanarLayer` is the same layer with one
set of parameters; here the parameters have a leading image axis, ``(N, L, K)``, so that all
images are transformed at once. With ``L = 0`` the posterior is the diagonal Gaussian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vicourse._checks import (
    as_tensor,
    check_float,
    check_generator,
    check_same_dtype_and_device,
    check_shape,
    positive_count,
)
from vicourse.families.gaussian import gaussian_log_density

IDENTITY_WU = math.log(math.e - 1)
"""The value a = w @ u for which u_hat = 0 when u is parallel to w: m(a) = 0."""


@dataclass
class PlanarPosterior:
    """Per-image parameters: mu, logvar (N, K); u, w (N, L, K); b (N, L). L = 0: a Gaussian."""

    mu: Tensor
    logvar: Tensor
    u: Tensor
    w: Tensor
    b: Tensor

    def __post_init__(self) -> None:
        _check_posterior(self)

    @property
    def num_layers(self) -> int:
        """L, the number of planar layers."""
        return self.u.shape[1]

    def tensors(self) -> list[Tensor]:
        """The five parameter tensors, in the order mu, logvar, u, w, b."""
        return [self.mu, self.logvar, self.u, self.w, self.b]

    def detach(self) -> PlanarPosterior:
        """A copy that shares the values but not the autograd history."""
        return PlanarPosterior(*(t.detach().clone() for t in self.tensors()))


def constrained_u(u: Tensor, w: Tensor) -> Tensor:
    """u_hat = u + (softplus(w @ u) - 1 - w @ u) w / |w|^2, so that w @ u_hat > -1.

    u, w: (..., K) -> (..., K)
    """
    wu = (w * u).sum(-1, keepdim=True)  # (..., 1)
    return u + (F.softplus(wu) - 1 - wu) * w / w.square().sum(-1, keepdim=True)


def planar_layers(z: Tensor, u: Tensor, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Each image's L planar layers applied to its draws, and the summed log|det J|.

    z: (S, N, K); u, w: (N, L, K); b: (N, L) -> z_L: (S, N, K), log_det: (S, N)
    """
    _check_layer_args(z, u, w, b)
    log_det = z.new_zeros(z.shape[:-1])  # (S, N)
    for layer in range(u.shape[1]):
        w_l, b_l = w[:, layer], b[:, layer]  # (N, K), (N,)
        u_hat = constrained_u(u[:, layer], w_l)  # (N, K)
        h = torch.tanh((z * w_l).sum(-1) + b_l)  # (S, N)
        z = z + h.unsqueeze(-1) * u_hat  # (S, N, K)
        softplus = F.softplus((w_l * u[:, layer]).sum(-1))  # (N,) = 1 + w @ u_hat
        # det J = 1 + (1 - h^2) w @ u_hat = h^2 + (1 - h^2) softplus > 0, without cancellation
        log_det = log_det + torch.log(h.square() + (1 - h.square()) * softplus)
    return z, log_det


def planar_posterior_sample(
    posterior: PlanarPosterior, num_samples: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Reparameterized draws z from every image's posterior and their log q(z).

    num_samples: S -> z: (S, N, K), log_q: (S, N)
    """
    num_samples = _check_sample_args(posterior, num_samples, generator)
    mu, logvar = posterior.mu, posterior.logvar  # (N, K) each
    eps = torch.randn((num_samples, *mu.shape), generator=generator, dtype=mu.dtype,
                      device=mu.device)  # (S, N, K)
    z0 = mu + torch.exp(0.5 * logvar) * eps  # (S, N, K)
    z, log_det = planar_layers(z0, posterior.u, posterior.w, posterior.b)  # (S, N, K), (S, N)
    return z, gaussian_log_density(z0, mu, 0.5 * logvar) - log_det


def identity_planar_posterior(
    mu: Tensor, logvar: Tensor, num_layers: int, generator: torch.Generator | None = None
) -> PlanarPosterior:
    """The Gaussian N(mu, exp(logvar)) followed by L planar layers that are the identity.

    mu, logvar: (N, K) -> PlanarPosterior with random directions w and u = a* w / |w|^2, u_hat = 0
    """
    mu, logvar, num_layers = _check_identity_args(mu, logvar, num_layers, generator)
    (n, k), like = mu.shape, dict(dtype=mu.dtype, device=mu.device)
    w = torch.randn(n, num_layers, k, generator=generator, **like) / math.sqrt(k)  # (N, L, K)
    u = IDENTITY_WU * w / w.square().sum(-1, keepdim=True)  # (N, L, K), w @ u = a*
    return PlanarPosterior(mu.detach().clone(), logvar.detach().clone(), u, w,
                           torch.zeros(n, num_layers, **like))


def _check_posterior(posterior: PlanarPosterior) -> None:
    """Convert nothing; raise if the five tensors are not float, of one dtype and device, and of
    shapes (N, K), (N, K), (N, L, K), (N, L, K), (N, L)."""
    names = ("mu", "logvar", "u", "w", "b")
    for name, value in zip(names, posterior.tensors(), strict=True):
        if not isinstance(value, Tensor):
            raise TypeError(f"PlanarPosterior.{name} must be a tensor, got {type(value).__name__}")
        check_float(value, name)
    check_same_dtype_and_device(**dict(zip(names, posterior.tensors(), strict=True)))
    mu = posterior.mu
    check_shape(mu, "mu", "(N, K): one mean per image and latent", mu.ndim == 2)
    n, k = mu.shape
    check_shape(posterior.logvar, "logvar", f"({n}, {k}), the shape of mu",
                posterior.logvar.shape == mu.shape)
    u = posterior.u
    check_shape(u, "u", f"({n}, L, {k}): L planar layers per image (L = 0 for a Gaussian)",
                u.ndim == 3 and u.shape[0] == n and u.shape[2] == k)
    check_shape(posterior.w, "w", f"{tuple(u.shape)}, the shape of u", posterior.w.shape == u.shape)
    check_shape(posterior.b, "b", f"{tuple(u.shape[:2])}: one bias per image and layer",
                posterior.b.shape == u.shape[:2])


def _check_layer_args(z: Tensor, u: Tensor, w: Tensor, b: Tensor) -> None:
    """Raise unless z (S, N, K), u, w (N, L, K) and b (N, L) are float tensors of one dtype and
    device with matching N, K and L."""
    for name, value in (("z", z), ("u", u), ("w", w), ("b", b)):
        check_float(as_tensor(value, name), name)
    check_same_dtype_and_device(z=z, u=u, w=w, b=b)
    check_shape(u, "u", "(N, L, K)", u.ndim == 3)
    n, num_layers, k = u.shape
    check_shape(w, "w", f"{tuple(u.shape)}, the shape of u", w.shape == u.shape)
    check_shape(b, "b", f"({n}, {num_layers}): one bias per image and layer",
                b.shape == (n, num_layers))
    check_shape(z, "z", f"(S, {n}, {k}): S draws for each of the N images of u",
                z.ndim == 3 and z.shape[1:] == (n, k))


def _check_sample_args(
    posterior: PlanarPosterior, num_samples: int, generator: torch.Generator | None
) -> int:
    """num_samples as an int, after checking the posterior's type and the generator."""
    if not isinstance(posterior, PlanarPosterior):
        raise TypeError(f"posterior must be a PlanarPosterior (e.g. from identity_planar_"
                        f"posterior(mu, logvar, L)), got {type(posterior).__name__}")
    check_generator(generator)
    return positive_count(num_samples, "num_samples")


def _check_identity_args(
    mu: Tensor, logvar: Tensor, num_layers: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, int]:
    """mu, logvar as tensors and num_layers as an int >= 0, after checking them."""
    mu, logvar = as_tensor(mu, "mu"), as_tensor(logvar, "logvar")
    check_generator(generator)
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
        raise ValueError(f"num_layers must be an integer >= 0 (0 for the Gaussian alone), got "
                         f"{num_layers!r}")
    for name, value in (("mu", mu), ("logvar", logvar)):
        check_float(value, name)
    check_same_dtype_and_device(mu=mu, logvar=logvar)
    check_shape(mu, "mu", "(N, K)", mu.ndim == 2)
    check_shape(logvar, "logvar", f"{tuple(mu.shape)}, the shape of mu", logvar.shape == mu.shape)
    return mu, logvar, num_layers
