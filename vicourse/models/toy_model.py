r"""The conjugate Gaussian toy model, where everything is known exactly.

.. math::

    z \sim \mathcal N(0, 1), \qquad x \mid z \sim \mathcal N(z, s^2).

Each observation :math:`x` has its own latent :math:`z`. The evidence and the posterior are
Gaussian:

.. math::

    p(x) = \mathcal N(x; 0, 1 + s^2), \qquad
    p(z \mid x) = \mathcal N\Big(z;\ \frac{x}{1 + s^2},\ \frac{s^2}{1 + s^2}\Big).

For a Gaussian :math:`q(z) = \mathcal N(m, v)` the ELBO has a closed form too
(:meth:`ConjugateGaussian.elbo`), so the chapters can check that
:math:`\log p(x) - \mathrm{ELBO}(q) = \mathrm{KL}(q \,\|\, p(z \mid x))` to rounding error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal, Normal

from vicourse._checks import (
    as_tensor,
    check_all_finite,
    check_positive_finite,
    is_finite_real,
    positive_count,
)


def _floating(value: Tensor, name: str, like: Tensor | None = None) -> Tensor:
    """value as a finite floating-point tensor (integers would truncate s); a number, list or
    array becomes a tensor of like's dtype and device (else torch.as_tensor's dtype)."""
    if not isinstance(value, Tensor):
        options = {} if like is None else {"dtype": like.dtype, "device": like.device}
        try:
            value = torch.as_tensor(value, **options)
        except (TypeError, ValueError, RuntimeError):
            value = as_tensor(value, name)  # raises a TypeError that names the argument
    if not value.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor, got dtype {value.dtype}; "
            f"convert it with {name}.double() or {name}.float()"
        )
    check_all_finite(value, name)
    return value


def _check_broadcast(x: Tensor, z_shape: torch.Size, z: Tensor, what: str) -> None:
    """ValueError unless x broadcasts with z_shape; TypeError if x and z are on two devices."""
    if x.device != z.device:
        raise TypeError(f"x is on {x.device} but z is on {z.device}; move one, e.g. "
                        "x.to(z.device)")
    try:
        torch.broadcast_shapes(x.shape, z_shape)
    except RuntimeError:
        raise ValueError(
            f"x and z must broadcast ({what}), got x of shape {tuple(x.shape)} and z of shape "
            f"{tuple(z.shape)}"
        ) from None


def _finite_number(value: object, name: str) -> float:
    """value as a float, after checking it is a finite number (not a bool or a string)."""
    try:
        number = None if isinstance(value, (bool, str, bytes)) else float(value)
    except (TypeError, ValueError, RuntimeError):
        number = None
    if number is None or not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


@dataclass(frozen=True)
class ConjugateGaussian:
    """The model z ~ N(0, 1), x | z ~ N(z, noise_std**2).

    Args:
        noise_std: the observation noise s > 0.
    """

    noise_std: float = 1.0

    def __post_init__(self) -> None:
        check_positive_finite(self.noise_std, "noise_std")

    def log_prior(self, z: Tensor) -> Tensor:
        """log N(z; 0, 1), elementwise."""
        z = _floating(z, "z")
        return Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log N(x; z, s^2), elementwise (x and z broadcast)."""
        z = _floating(z, "z")
        x = _floating(x, "x", like=z)
        _check_broadcast(x, z.shape, z, "elementwise")
        return Normal(z, torch.full_like(z, self.noise_std)).log_prob(x)

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x, z) = log p(z) + log p(x | z), elementwise."""
        return self.log_prior(z) + self.log_likelihood(x, z)

    def log_evidence(self, x: Tensor) -> Tensor:
        """log p(x) = log N(x; 0, 1 + s^2), elementwise."""
        x = _floating(x, "x")
        scale = torch.full_like(x, math.sqrt(1.0 + self.noise_std**2))
        return Normal(torch.zeros_like(x), scale).log_prob(x)

    def posterior(self, x: Tensor) -> Normal:
        """The exact posterior p(z | x) = N(x / (1 + s^2), s^2 / (1 + s^2)), batched like x."""
        x = _floating(x, "x")
        s2 = self.noise_std**2
        mean = x / (1.0 + s2)
        std = torch.full_like(mean, math.sqrt(s2 / (1.0 + s2)))
        return Normal(mean, std)

    def elbo(self, x: Tensor, q_mean: Tensor, q_std: Tensor) -> Tensor:
        """The exact ELBO of q(z) = N(q_mean, q_std^2) at x: E_q log p(x | z) + E_q log p(z) + H(q).

        x, q_mean, q_std: broadcasting tensors -> their broadcast shape
        """
        x, q_mean, q_std = _check_elbo_args(x, q_mean, q_std)
        s2 = self.noise_std**2
        v = torch.as_tensor(q_std) ** 2  # the variance of q
        expected_loglik = -0.5 * math.log(2 * math.pi * s2) - ((x - q_mean) ** 2 + v) / (2 * s2)
        expected_logprior = -0.5 * math.log(2 * math.pi) - (q_mean**2 + v) / 2
        entropy = 0.5 * torch.log(2 * math.pi * math.e * v)
        return expected_loglik + expected_logprior + entropy

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw n pairs (z, x) from the model; returns two tensors of shape (n,)."""
        n = positive_count(n, "n")
        z = torch.randn(n, generator=generator)
        x = z + self.noise_std * torch.randn(n, generator=generator)
        return z, x


@dataclass(frozen=True)
class LinearGaussian:
    """K latent causes of one scalar observation: z ~ N(0, I_K), x | z ~ N(w^T z, s^2).

    The evidence and the posterior are Gaussian, and the posterior is *correlated* (the causes
    explain each other away), which makes this the smallest model where a mean-field
    approximation is not exact:

        p(x) = N(x; 0, |w|^2 + s^2),
        p(z | x) = N(z; w x / (|w|^2 + s^2), I_K - w w^T / (|w|^2 + s^2)),

    and the posterior precision is I_K + w w^T / s^2.

    Args:
        weights: the K loadings w (a sequence of finite numbers, K >= 1).
        noise_std: the observation noise s > 0.
    """

    weights: tuple[float, ...] = (1.0, 1.0)
    noise_std: float = 1.0

    def __post_init__(self) -> None:
        try:
            w = tuple(self.weights)
        except TypeError:
            raise ValueError(
                f"weights must be a sequence of K numbers, e.g. (1.0, 1.0), got {self.weights!r}"
            ) from None
        if len(w) < 1 or not all(is_finite_real(v) for v in w):
            raise ValueError(f"weights must be a non-empty sequence of finite numbers, got {w!r}")
        object.__setattr__(self, "weights", tuple(float(v) for v in w))
        check_positive_finite(self.noise_std, "noise_std")

    @property
    def dim(self) -> int:
        """K, the number of latent variables."""
        return len(self.weights)

    def _w(self, like: Tensor) -> Tensor:
        return torch.tensor(self.weights, dtype=like.dtype, device=like.device)

    def _check_z(self, z: Tensor) -> Tensor:
        z = _floating(z, "z")
        if z.ndim < 1 or z.shape[-1] != self.dim:
            raise ValueError(
                f"z must have shape (..., {self.dim}) (last dimension = number of latents), "
                f"got {tuple(z.shape)}"
            )
        return z

    def _check_x(self, x: Tensor, z: Tensor) -> Tensor:
        x = _floating(x, "x", like=z)
        _check_broadcast(x, z.shape[:-1], z, "x with the batch shape (...) of z (..., K)")
        return x

    def log_prior(self, z: Tensor) -> Tensor:
        """log N(z; 0, I_K) for z of shape (..., K); returns shape (...)."""
        z = self._check_z(z)
        return Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log N(x; w^T z, s^2) for z of shape (..., K) and x broadcasting with (...)."""
        z = self._check_z(z)
        x = self._check_x(x, z)
        loc = z @ self._w(z)
        return Normal(loc, torch.full_like(loc, self.noise_std)).log_prob(x)

    def log_joint(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x, z) = log p(z) + log p(x | z); z of shape (..., K), returns shape (...)."""
        return self.log_prior(z) + self.log_likelihood(x, z)

    def log_evidence(self, x: Tensor) -> Tensor:
        """log p(x) = log N(x; 0, ||w||^2 + s^2), elementwise."""
        x = _floating(x, "x")
        w = self._w(x)
        scale = torch.sqrt(w.pow(2).sum() + self.noise_std**2).expand_as(x)
        return Normal(torch.zeros_like(x), scale).log_prob(x)

    def posterior(self, x: Tensor) -> MultivariateNormal:
        """The exact posterior p(z | x), a MultivariateNormal with batch shape x.shape."""
        x = _floating(x, "x")
        w = self._w(x)
        total = w.pow(2).sum() + self.noise_std**2
        mean = x.unsqueeze(-1) * w / total
        cov = torch.eye(self.dim, dtype=x.dtype, device=x.device) - torch.outer(w, w) / total
        return MultivariateNormal(mean, covariance_matrix=cov.expand(*x.shape, -1, -1))


class AffineGaussianEncoder(torch.nn.Module):
    """An amortized q(z | x) = N(slope x + intercept, std^2), std stored as log std.

    slope, intercept, std: initial values (std > 0)
    """

    def __init__(self, slope: float = 0.0, intercept: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        check_positive_finite(std, "std")
        slope, intercept = _finite_number(slope, "slope"), _finite_number(intercept, "intercept")
        self.slope = torch.nn.Parameter(torch.tensor(float(slope)))
        self.intercept = torch.nn.Parameter(torch.tensor(float(intercept)))
        self.log_std = torch.nn.Parameter(torch.tensor(math.log(std)))

    def forward(self, x: Tensor) -> Normal:
        """q(z | x) as a Normal; x: (n,) -> batch shape (n,)."""
        x = _check_encoder_input(x, self.slope)
        mean = self.slope * x + self.intercept
        return Normal(mean, self.log_std.exp().expand_as(mean))


def _check_elbo_args(x: object, q_mean: object, q_std: object) -> tuple[object, object, object]:
    """x, q_mean, q_std with lists and arrays made tensors (numbers and tensors are left as they
    are), after checking they are finite, broadcast together, and q_std > 0."""
    like = next((v for v in (x, q_mean, q_std) if isinstance(v, Tensor)), None)
    given = {"x": x, "q_mean": q_mean, "q_std": q_std}
    kept = {name: value if isinstance(value, Tensor) or is_finite_real(value)
            else _floating(value, name, like=like) for name, value in given.items()}
    tensors = {name: _floating(value, name, like=like) for name, value in kept.items()}
    if bool((tensors["q_std"] <= 0).any()):
        raise ValueError("q_std must be positive everywhere (it is a standard deviation)")
    devices = {str(t.device) for t in tensors.values()}
    if len(devices) > 1:
        raise TypeError(f"x, q_mean and q_std are on several devices ({sorted(devices)}); move "
                        "them to one")
    try:
        torch.broadcast_shapes(*(t.shape for t in tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{n} of shape {tuple(t.shape)}" for n, t in tensors.items())
        raise ValueError(f"x, q_mean and q_std must broadcast together, got {shapes}") from None
    return kept["x"], kept["q_mean"], kept["q_std"]


def _check_encoder_input(x: Tensor, slope: Tensor) -> Tensor:
    """x as a finite floating-point tensor (lists in the encoder's dtype) on slope's device."""
    x = _floating(x, "x", like=slope)
    if x.device != slope.device:
        raise TypeError(f"x is on {x.device} but the encoder is on {slope.device}; move it "
                        f"with x.to({str(slope.device)!r})")
    return x
