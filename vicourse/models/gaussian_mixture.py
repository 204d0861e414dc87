r"""The Bayesian mixture of unit-variance Gaussians (Blei, Kucukelbir & McAuliffe 2017, sec. 3).

.. math::

    \mu_k \sim \mathcal N(0, \sigma^2 I_D), \quad k = 1, \dots, K, \qquad
    c_i \sim \mathrm{Categorical}(1/K, \dots, 1/K), \qquad
    x_i \mid c_i, \mu \sim \mathcal N(\mu_{c_i}, I_D), \quad i = 1, \dots, N.

The means :math:`\mu_{1:K}` are *global* latent variables, shared by all data points; the
assignments :math:`c_i` are *local*, one per data point. The CAVI and SVI updates for this
model and its ELBO in closed form are in :mod:`vicourse.conjugate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Normal

from vicourse._checks import (
    as_tensor,
    check_all_finite,
    check_float,
    check_generator,
    check_positive_finite,
    check_same_dtype_and_device,
    check_shape,
    positive_count,
)


@dataclass(frozen=True)
class GaussianMixture:
    """K unit-variance Gaussian components in D dimensions, means drawn from N(0, prior_std^2 I).

    Args:
        num_components: K >= 1.
        dim: D >= 1, the dimension of each data point.
        prior_std: sigma > 0, the prior standard deviation of each coordinate of a mean.
    """

    num_components: int
    dim: int = 2
    prior_std: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_components", positive_count(self.num_components,
                                                                  "num_components"))
        object.__setattr__(self, "dim", positive_count(self.dim, "dim"))
        check_positive_finite(self.prior_std, "prior_std")

    def sample(self, n: int, generator: torch.Generator | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
        """Draw the means mu (K, D), then n assignments c (n,) and data points x (n, D).

        Returns (x, c, mu), in torch's default float type (c is int64).
        """
        n = positive_count(n, "n")
        check_generator(generator)
        mu = self.prior_std * torch.randn(self.num_components, self.dim, generator=generator)
        c = torch.randint(self.num_components, (n,), generator=generator)  # (n,)
        x = mu[c] + torch.randn(n, self.dim, generator=generator)  # (n, D)
        return x, c, mu

    def log_joint(self, x: Tensor, c: Tensor, mu: Tensor) -> Tensor:
        """log p(x, c, mu) = sum_k log p(mu_k) + sum_i [log p(c_i) + log p(x_i | c_i, mu)].

        x: (N, D); c: (..., N) integers in [0, K); mu: (..., K, D); batch shapes broadcast -> (...)
        """
        x, c, mu = self._check_log_joint_args(x, c, mu)
        batch = torch.broadcast_shapes(c.shape[:-1], mu.shape[:-2])
        mu = mu.expand(*batch, *mu.shape[-2:])  # (..., K, D)
        c = c.expand(*batch, c.shape[-1])  # (..., N)
        prior = Normal(torch.zeros_like(mu), torch.full_like(mu, self.prior_std))
        log_prior_means = prior.log_prob(mu).sum((-2, -1))  # (...)
        log_prior_assignments = -x.shape[0] * math.log(self.num_components)
        centers = torch.take_along_dim(mu, c.unsqueeze(-1), dim=-2)  # (..., N, D): mu_{c_i}
        likelihood = Normal(centers, torch.ones_like(centers))
        log_likelihood = likelihood.log_prob(x).sum((-2, -1))  # (...)
        return log_prior_means + log_prior_assignments + log_likelihood

    def _check_log_joint_args(self, x: object, c: object, mu: object
                              ) -> tuple[Tensor, Tensor, Tensor]:
        """x, c, mu as tensors, after checking dtypes, shapes, finiteness and the range of c."""
        x, mu = as_tensor(x, "x"), as_tensor(mu, "mu")
        c = as_tensor(c, "c")
        check_float(x, "x")
        check_float(mu, "mu")
        check_same_dtype_and_device(x=x, mu=mu)
        k, d = self.num_components, self.dim
        check_shape(x, "x", f"(N, D) with D = {d}", x.dim() == 2 and x.shape[1] == d)
        check_shape(mu, "mu", f"(..., K, D) = (..., {k}, {d})", mu.shape[-2:] == (k, d))
        check_shape(c, "c", f"(..., N) with N = {x.shape[0]} (one assignment per row of x)",
                    c.dim() >= 1 and c.shape[-1] == x.shape[0])
        if c.is_floating_point() or c.dtype == torch.bool:
            raise TypeError(f"c must hold integer component indices, got dtype {c.dtype}; "
                            "convert it with c.long()")
        if c.numel() and (int(c.min()) < 0 or int(c.max()) >= k):
            raise ValueError(f"c must hold component indices in [0, {k}), got values in "
                             f"[{int(c.min())}, {int(c.max())}]")
        check_all_finite(x, "x")
        check_all_finite(mu, "mu")
        return x, c.to(x.device), mu
