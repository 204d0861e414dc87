r"""The Laplace approximation: a Gaussian at the mode of the log joint.

.. math::

    p(z \mid x) \approx \mathcal N\big(\hat z, \Lambda^{-1}\big), \qquad
    \hat z = \arg\max_z \log p(x, z), \qquad
    \Lambda = -\nabla_z^2 \log p(x, z)\big|_{z = \hat z},

the Gaussian whose log density matches the second-order Taylor expansion of the log joint at
its mode. The mode comes from Newton's method, with the gradient and the Hessian of the log
joint by autograd (``torch.autograd.functional.hessian``: D backward passes, and none of the
start-up cost of ``torch.func``); it is exact when the posterior is Gaussian.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vicourse._checks import (
    NonFiniteResultError,
    as_tensor,
    check_all_finite,
    check_float,
    check_positive_finite,
    check_shape,
    positive_count,
)
from vicourse.objectives.weights import LogDensity


@dataclass
class LaplaceApproximation:
    """N(mode, precision^-1), with the Newton steps taken to find the mode."""

    mode: Tensor  # (D,)
    precision: Tensor  # (D, D), minus the Hessian of the log joint at the mode
    num_steps: int

    @property
    def covariance(self) -> Tensor:
        """precision^-1, (D, D)."""
        return torch.cholesky_inverse(torch.linalg.cholesky(self.precision))

    @property
    def scale_tril(self) -> Tensor:
        """The Cholesky factor L of the covariance, L L^T = precision^-1, (D, D)."""
        return torch.linalg.cholesky(self.covariance)


def laplace_approximation(
    log_joint: LogDensity, initial: Tensor, max_steps: int = 100, tolerance: float = 1e-8
) -> LaplaceApproximation:
    """Newton's method from initial to the mode of log_joint, then minus its Hessian there.

    log_joint: (D,) -> (); initial: (D,). Stops when |gradient| <= tolerance.
    """
    z, max_steps = _check_laplace_args(log_joint, initial, max_steps, tolerance)
    for step in range(max_steps + 1):
        grad = _gradient(log_joint, z)  # (D,)
        precision = -torch.autograd.functional.hessian(log_joint, z)  # (D, D)
        if float(grad.norm()) <= tolerance:
            return LaplaceApproximation(z, precision, step)
        z = _newton_step(log_joint, z, grad, precision)
    raise NonFiniteResultError(
        f"Newton's method did not reach |gradient| <= {tolerance} in {max_steps} steps (it is "
        f"{float(grad.norm()):.3g} at z = {z.tolist()}); raise max_steps or tolerance")


def _gradient(log_joint: LogDensity, z: Tensor) -> Tensor:
    """grad log_joint(z), (D,), by one backward pass."""
    with torch.enable_grad():
        point = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(log_joint(point), point)
    return grad


def _newton_step(log_joint: LogDensity, z: Tensor, grad: Tensor, precision: Tensor) -> Tensor:
    """z + precision^-1 grad, halved until the log joint does not decrease (a concave log
    joint near z: precision positive definite, else a ValueError)."""
    cholesky, info = torch.linalg.cholesky_ex(precision)
    if int(info) != 0 or not bool(torch.isfinite(precision).all()):
        raise ValueError(
            f"minus the Hessian of log_joint is not positive definite at z = {z.tolist()}: the "
            "log joint is not concave there, so it has no mode nearby for Newton's method; "
            "start nearer the mode, or use an approximation that does not need one")
    direction = torch.cholesky_solve(grad.unsqueeze(-1), cholesky).squeeze(-1)  # (D,)
    start = log_joint(z)
    for _ in range(60):  # backtracking: 2^-60 of a Newton step is below rounding
        candidate = z + direction
        if bool(log_joint(candidate) >= start):
            return candidate
        direction = direction / 2
    return z


def _check_laplace_args(
    log_joint: LogDensity, initial: Tensor, max_steps: int, tolerance: float
) -> tuple[Tensor, int]:
    if not callable(log_joint):
        raise TypeError(f"log_joint must be a function from z (D,) to a scalar log density, got "
                        f"{type(log_joint).__name__}")
    initial = as_tensor(initial, "initial")
    check_float(initial, "initial")
    check_shape(initial, "initial", "(D,) with D >= 1: one point",
                initial.ndim == 1 and initial.numel() > 0)
    check_all_finite(initial, "initial")
    max_steps = positive_count(max_steps, "max_steps")
    check_positive_finite(tolerance, "tolerance")
    value = log_joint(initial.detach())
    if not isinstance(value, Tensor) or value.shape != ():
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"log_joint returned {got} for z of shape {tuple(initial.shape)}; it "
                         "must return a scalar (sum over the D coordinates)")
    if not bool(torch.isfinite(value)):
        raise ValueError(f"log_joint is {value.item()} at initial = {initial.tolist()}; start "
                         "where the log joint is finite")
    return initial.detach(), max_steps
