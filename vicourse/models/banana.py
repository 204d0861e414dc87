r"""The banana posterior: two parameters, one observed sum, a curved posterior.

.. math::

    \theta \sim \mathcal N(0, \sigma_\theta^2 I_2), \qquad
    y_i \mid \theta \sim \mathcal N(\theta_1 + \theta_2^2, \sigma_y^2), \quad i = 1, \dots, n .

The data depend on :math:`\theta` only through :math:`\theta_1 + \theta_2^2`, so the posterior
concentrates near the parabola :math:`\theta_1 + \theta_2^2 = \bar y` and has the shape of a
banana. Everything below is computed in log space, from ``torch.distributions``:

* the likelihood uses the sufficient statistic :math:`\bar y` (:meth:`Banana.log_likelihood`),
  so evaluating it costs the same for any :math:`n`;
* the normalizer :math:`Z = p(y) = \int p(y, \theta)\, \mathrm d\theta` comes from the
  trapezoidal rule on a grid (:meth:`Banana.posterior_grid`), which converges quickly because
  the integrand is smooth and negligible at the edges of the grid;
* :math:`\theta_1` given :math:`\theta_2` is Gaussian, which gives exact posterior samples
  (:meth:`Banana.sample_posterior`).

:func:`banana_data` generates the book's data set, the same for every reader.
"""

from __future__ import annotations

import math
import operator
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Normal

from vicourse._checks import (
    as_tensor,
    check_all_finite,
    check_positive_finite,
    check_shape,
    positive_count,
)

TRUE_THETA = (0.5, math.sqrt(0.5))
"""The parameter that generates the book's data; theta_1 + theta_2^2 = 1."""
DATA_SEED = 20_09
"""The seed of the book's data set (banana_data)."""
MAX_GRID_SIZE = 5000
"""The largest grid_size of posterior_grid: N^2 float64 values, a few copies (about 1 GB)."""
EDGE_TOLERANCE = 1e-6
"""posterior_grid warns when the density on the grid's edge exceeds this fraction of its peak."""


def banana_data(
    n: int = 100,
    theta: tuple[float, float] = TRUE_THETA,
    sigma_y: float = 2.0,
    seed: int = DATA_SEED,
) -> Tensor:
    """Observations y_i = theta_1 + theta_2^2 + sigma_y eps_i, float64, shape (n,).

    With the defaults this is the book's data set: n = 100 draws with theta_1 + theta_2^2 = 1,
    from a fixed seed, identical for every reader.
    """
    n, theta, generator = _check_banana_data_args(n, theta, sigma_y, seed)
    noise = torch.randn(n, generator=generator, dtype=torch.float64)
    return theta[0] + theta[1] ** 2 + sigma_y * noise


@dataclass(frozen=True)
class PosteriorGrid:
    """The exact posterior density on a square grid (for contour plots, moments, KLs).

    Attributes:
        theta1, theta2: the grid coordinates, each of shape (N,).
        log_density: log p(theta | y) at (theta1[i], theta2[j]), shape (N, N)
            (indexing="ij": plot it with contour(theta1, theta2, d.T)).
        log_weights: log trapezoidal weights of the grid points, shape (N, N); the
            integral of f is approximated by sum(exp(log_weights) * f).
        log_normalizer: log Z = log p(y) from the same trapezoidal rule.
    """

    theta1: Tensor
    theta2: Tensor
    log_density: Tensor
    log_weights: Tensor
    log_normalizer: float

    @property
    def density(self) -> Tensor:
        """The posterior density on the grid, shape ``(N, N)``."""
        return self.log_density.exp()

    def _check_values(self, values: Tensor) -> Tensor:
        values = as_tensor(values, "values", dtype=None if isinstance(values, Tensor)
                           else self.log_density.dtype)
        n = len(self.theta1)
        check_shape(values, "values", f"({n}, {n}, ...) (f on the grid)",
                    values.shape[:2] == (n, n))
        if values.dtype != self.log_density.dtype or values.device != self.log_density.device:
            raise TypeError(
                f"values has dtype {values.dtype} on {values.device} but the grid is "
                f"{self.log_density.dtype} on {self.log_density.device}; convert it with "
                f"values.to({self.log_density.dtype})"
            )
        check_all_finite(values, "values")
        return values

    def expectation(self, values: Tensor) -> Tensor:
        """E_{p(theta | y)}[f(theta)] for values = f on the grid, of shape (N, N, ...);
        returns shape (...).
        """
        values = self._check_values(values)
        weights = (self.log_weights + self.log_density).exp()
        return torch.einsum("ij,ij...->...", weights, values)


class Banana:
    """The banana model of one data set y.

    Args:
        y: the observations, a 1-D float tensor of shape (n,); default: the book's
            data set banana_data().
        sigma_y: the observation noise sigma_y > 0 (default 2).
        sigma_theta: the prior scale sigma_theta > 0 (default 1).

    All log densities take theta of shape (..., 2) and return shape (...), in the
    dtype of theta; they are differentiable in theta.
    """

    def __init__(
        self, y: Tensor | None = None, sigma_y: float = 2.0, sigma_theta: float = 1.0
    ) -> None:
        check_positive_finite(sigma_y, "sigma_y")
        check_positive_finite(sigma_theta, "sigma_theta")
        y = banana_data() if y is None else _observations(y)
        if not y.is_floating_point() or y.ndim != 1 or len(y) == 0:
            raise ValueError(
                "y must be a non-empty 1-D floating-point tensor of observations, got "
                f"dtype {y.dtype} and shape {tuple(y.shape)}; pass torch.tensor([...], "
                "dtype=torch.float64)"
            )
        if not bool(torch.isfinite(y).all()):
            raise ValueError("y contains NaN or infinite values; pass finite observations")
        self.y = y.detach().to(torch.float64)
        self.sigma_y = float(sigma_y)
        self.sigma_theta = float(sigma_theta)
        self.n = len(self.y)
        self.y_mean = float(self.y.mean())
        self._mean_scale = self.sigma_y / math.sqrt(self.n)
        # Distributions with 0-dim float64 parameters: they give float64 log densities for
        # float64 theta and keep float32 theta in float32 (0-dim tensors do not promote).
        y_mean, scale, zero = (torch.tensor(v, dtype=torch.float64)
                               for v in (self.y_mean, self._mean_scale, 0.0))
        self._prior = Normal(zero, zero + self.sigma_theta, validate_args=False)
        # N(y_mean; m, s^2) = N(m; y_mean, s^2): one fixed distribution evaluated at m.
        self._mean_likelihood = Normal(y_mean, scale, validate_args=False)
        self.loglik_offset = float(
            Normal(y_mean, zero + self.sigma_y).log_prob(self.y).sum()
            - self._mean_likelihood.log_prob(y_mean)
        )

    def __repr__(self) -> str:
        return (f"Banana(n={self.n}, y_mean={self.y_mean:.4f}, sigma_y={self.sigma_y}, "
                f"sigma_theta={self.sigma_theta})")

    @staticmethod
    def _check_theta(theta: Tensor) -> Tensor:
        if not isinstance(theta, Tensor):  # lists: the default dtype; NumPy keeps its float64
            try:
                theta = torch.as_tensor(theta)
            except (TypeError, ValueError, RuntimeError):
                theta = as_tensor(theta, "theta")  # raises a TypeError that names theta
        if not theta.is_floating_point():
            raise TypeError(
                "theta must be a floating-point torch tensor of shape (..., 2), got "
                f"{type(theta).__name__}"
                + (f" of dtype {theta.dtype}" if isinstance(theta, Tensor) else "")
            )
        if theta.ndim == 0 or theta.shape[-1] != 2:
            raise ValueError(
                f"theta must have shape (..., 2) (the last dimension holds theta_1, theta_2), "
                f"got {tuple(theta.shape)}"
            )
        return theta

    def log_prior(self, theta: Tensor) -> Tensor:
        """log N(theta; 0, sigma_theta^2 I_2); shape (..., 2) -> (...)."""
        theta = self._check_theta(theta)
        return self._prior.log_prob(theta).sum(-1)

    def log_likelihood(self, theta: Tensor) -> Tensor:
        """sum_i log N(y_i; theta_1 + theta_2^2, sigma_y^2), from the sufficient statistic y_mean.

        theta: (..., 2) -> (...)
        """
        theta = self._check_theta(theta)
        m = theta[..., 0] + theta[..., 1].square()  # (...)
        # log N(y_mean; m, sigma_y^2 / n) + a constant c(y), computed once in __init__
        return self._mean_likelihood.log_prob(m) + self.loglik_offset

    def log_joint(self, theta: Tensor) -> Tensor:
        """log p(y, theta) = log p(theta) + log p(y | theta); shape (..., 2) -> (...)."""
        return self.log_prior(theta) + self.log_likelihood(theta)

    def posterior_grid(self, grid_size: int = 400, bound: float = 6.0) -> PosteriorGrid:
        """The posterior on the grid_size x grid_size grid over [-bound, bound]^2.

        The normalizer is the two-dimensional trapezoidal rule in log space,

            log Z ~ logsumexp_ij [log w_i + log w_j + log p(y, theta_ij)],

        with weights w_i = h inside and h/2 at the two ends, spacing
        h = 2 bound / (grid_size - 1), in float64.
        """
        grid_size = _check_grid_args(grid_size, bound)
        axis = torch.linspace(-bound, bound, grid_size, dtype=torch.float64)
        log_w = torch.full((grid_size,), math.log(axis[1].item() - axis[0].item()),
                           dtype=torch.float64)
        log_w[[0, -1]] -= math.log(2.0)
        log_weights = log_w[:, None] + log_w[None, :]
        theta = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), dim=-1)
        log_joint = self.log_joint(theta)
        log_normalizer = torch.logsumexp((log_weights + log_joint).flatten(), 0).item()
        _check_grid_mass(log_joint, log_normalizer, bound)
        return PosteriorGrid(axis, axis.clone(), log_joint - log_normalizer, log_weights,
                             log_normalizer)

    def log_normalizer(self, grid_size: int = 400, bound: float = 6.0) -> float:
        """log Z = log of the integral of p(y, theta) d theta, by the trapezoidal rule
        (see posterior_grid).
        """
        return self.posterior_grid(grid_size, bound).log_normalizer

    def posterior_moments(self, grid_size: int = 400, bound: float = 6.0) -> tuple[Tensor, Tensor]:
        """Posterior mean (shape ``(2,)``) and covariance (shape ``(2, 2)``) by quadrature."""
        grid = self.posterior_grid(grid_size, bound)
        theta = torch.stack(torch.meshgrid(grid.theta1, grid.theta2, indexing="ij"), dim=-1)
        mean = grid.expectation(theta)
        centred = theta - mean
        cov = grid.expectation(centred[..., :, None] * centred[..., None, :])
        return mean, cov

    def theta1_given_theta2(self, theta2: Tensor) -> Normal:
        """The exact conditional p(theta_1 | theta_2, y), a Gaussian.

        As a function of theta_1, the joint is N(theta_1; 0, sigma_theta^2)
        N(y_mean - theta_2^2; theta_1, s^2) with s^2 = sigma_y^2 / n, a product of two Gaussians
        in theta_1:

            theta_1 | theta_2, y ~ N(tau^2 (y_mean - theta_2^2) / s^2, tau^2),
            tau^2 = 1 / (1 / sigma_theta^2 + 1 / s^2).

        Batched like theta2.
        """
        theta2 = _check_theta2(theta2)
        s2 = self._mean_scale**2
        tau2 = 1.0 / (1.0 / self.sigma_theta**2 + 1.0 / s2)
        return Normal(tau2 * (self.y_mean - theta2.square()) / s2, math.sqrt(tau2))

    def log_joint_theta2(self, theta2: Tensor) -> Tensor:
        """log p(y, theta_2), with theta_1 integrated out in closed form:

            p(y, theta_2) = e^c N(theta_2; 0, sigma_theta^2) N(y_mean; theta_2^2, v),

        with v = sigma_theta^2 + s^2 and c = loglik_offset, the theta-free bracket of
        log_likelihood. Its integral over theta_2 is Z: a one-dimensional check of the
        two-dimensional quadrature. Elementwise in theta2.
        """
        theta2 = _check_theta2(theta2)
        v = self.sigma_theta**2 + self._mean_scale**2
        y_mean = torch.tensor(self.y_mean, dtype=theta2.dtype, device=theta2.device)
        return (self._prior.log_prob(theta2)
                + Normal(theta2.square(), math.sqrt(v)).log_prob(y_mean) + self.loglik_offset)

    def sample_posterior(
        self, num_samples: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Exact posterior draws: theta_2 by rejection from the prior, then theta_1 given theta_2.

        -> (num_samples, 2), float64
        """
        num_samples = _check_sample_posterior_args(num_samples, generator)
        v = self.sigma_theta**2 + self._mean_scale**2
        accepted: list[Tensor] = []
        total, proposed = 0, 0
        while total < num_samples:
            batch = max(2 * (num_samples - total), 10_000)
            theta2 = self.sigma_theta * torch.randn(batch, generator=generator,
                                                    dtype=torch.float64)
            u = torch.rand(batch, generator=generator, dtype=torch.float64)
            # accept theta_2 with probability exp(-(y_mean - theta_2^2)^2 / (2 v)) <= 1
            keep = theta2[u.log() < -(self.y_mean - theta2.square()).square() / (2 * v)]
            accepted.append(keep)
            total, proposed = total + len(keep), proposed + batch
            _check_rejection_progress(total, proposed, num_samples, self.y_mean)
        theta2 = torch.cat(accepted)[:num_samples]  # (num_samples,)
        conditional = self.theta1_given_theta2(theta2)
        noise = torch.randn(theta2.shape, generator=generator, dtype=theta2.dtype)
        theta1 = conditional.loc + conditional.scale * noise  # (num_samples,)
        return torch.stack([theta1, theta2], dim=-1)


def _check_banana_data_args(
    n: int, theta: tuple[float, float], sigma_y: float, seed: int
) -> tuple[int, tuple[float, float], torch.Generator]:
    """n as an int, theta as two floats and a generator seeded with seed, after checking them."""
    n = positive_count(n, "n")
    check_positive_finite(sigma_y, "sigma_y")
    try:
        pair = tuple(as_tensor(theta, "theta", dtype=torch.float64).tolist())
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
        raise ValueError(f"theta must be two finite numbers (theta_1, theta_2), got {theta!r}")
    if not isinstance(theta, (tuple, list)):  # NumPy, torch: as Python floats
        theta = pair
    if isinstance(seed, bool):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    try:
        seed = operator.index(seed)
    except TypeError:
        raise TypeError(f"seed must be an integer, e.g. {DATA_SEED} (the book's), got "
                        f"{seed!r}") from None
    try:
        generator = torch.Generator().manual_seed(seed)
    except (RuntimeError, ValueError, OverflowError):
        raise ValueError(f"seed must be an integer in [-2**63, 2**64), got {seed}") from None
    return n, theta, generator


def _observations(y: object) -> Tensor:
    """y as a tensor; lists and arrays become float64 (the dtype the model computes in)."""
    if isinstance(y, Tensor):
        return y
    y = as_tensor(y, "y")
    return y.to(torch.float64) if y.dtype != torch.bool else y


def _check_theta2(theta2: Tensor) -> Tensor:
    """theta2 as a finite floating-point tensor (numbers, lists and arrays become float64)."""
    theta2 = as_tensor(theta2, "theta2", dtype=None if isinstance(theta2, Tensor)
                       else torch.float64)
    if not theta2.is_floating_point():
        raise TypeError(f"theta2 must be a floating-point tensor, got dtype {theta2.dtype}; "
                        "convert it with theta2.double()")
    check_all_finite(theta2, "theta2")
    return theta2


def _check_grid_args(grid_size: int, bound: float) -> int:
    """grid_size as an int in [3, MAX_GRID_SIZE], after checking bound > 0 is finite."""
    grid_size = positive_count(grid_size, "grid_size")
    check_positive_finite(bound, "bound")
    if grid_size < 3:
        raise ValueError(f"grid_size must be at least 3, got {grid_size}")
    if grid_size > MAX_GRID_SIZE:
        raise ValueError(
            f"grid_size must be at most {MAX_GRID_SIZE}, got {grid_size}: the grid holds "
            f"grid_size^2 float64 values, several times; 400 already gives log Z to 1e-10"
        )
    return grid_size


def _check_grid_mass(log_joint: Tensor, log_normalizer: float, bound: float) -> None:
    """ValueError if the grid holds no posterior mass; UserWarning if the density on the grid's
    edge is not negligible next to its peak (then mass lies outside the grid)."""
    if not math.isfinite(log_normalizer):
        raise ValueError(
            f"the grid over [-{bound:g}, {bound:g}]^2 holds no posterior mass (log Z = "
            f"{log_normalizer}): bound is too large for the grid's points to land on the "
            "posterior, or the joint density underflows; use bound of a few posterior widths "
            "(the default 6.0)"
        )
    edge = torch.cat([log_joint[0], log_joint[-1], log_joint[:, 0], log_joint[:, -1]])
    ratio = math.exp(edge.max().item() - log_joint.max().item())
    if ratio > EDGE_TOLERANCE:
        warnings.warn(
            f"the posterior density on the edge of the grid over [-{bound:g}, {bound:g}]^2 is "
            f"{ratio:.2g} times its peak (more than {EDGE_TOLERANCE:g}): the posterior has mass "
            f"outside the grid, so log Z = {log_normalizer:.6g}, the density and the moments "
            "are off; pass a larger bound",
            UserWarning,
            stacklevel=3,
        )


def _check_sample_posterior_args(num_samples: int, generator: object) -> int:
    """num_samples as an int, after checking it and that generator is a torch.Generator."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}; e.g. torch.Generator().manual_seed(0)")
    return positive_count(num_samples, "num_samples")


def _check_rejection_progress(total: int, proposed: int, num_samples: int, y_mean: float) -> None:
    """Raise RuntimeError when rejection sampling has accepted too few of many proposals."""
    if proposed > 100 * num_samples + 10**6 and total < num_samples:
        raise RuntimeError(
            f"rejection sampling accepted only {total} of {proposed} proposals: the "
            f"data (mean {y_mean:.3g}) are far in the prior's tail; use MCMC "
            "instead, or a larger sigma_theta"
        )
