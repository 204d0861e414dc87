r"""Black-box (score-function) estimators of the ELBO's gradient for a diagonal Gaussian q.

With :math:`q_\lambda = \mathcal N(m, \operatorname{diag}\sigma^2)`,
:math:`\lambda = (m, \log\sigma)`, draws :math:`z_s = m + \sigma \odot \varepsilon_s` and the
weights :math:`f(z) = \log p(x, z) - \log q_\lambda(z)`, the score-function estimator is

.. math::

    \hat g = \frac1S \sum_{s=1}^S f(z_s)\, h(z_s), \qquad
    h(z) = \nabla_\lambda \log q_\lambda(z) = \big(\varepsilon / \sigma,\ \varepsilon^2 - 1\big).

It needs only values of the log joint, never its gradient (Ranganath et al., 2014). Two
ways to reduce its variance, both unbiased:

- a **control variate**: subtract from each weight a baseline :math:`a_k` per component
  :math:`k` of :math:`\lambda`; the variance-minimizing :math:`a_k^* = \mathbb E[f h_k^2] /
  \mathbb E[h_k^2]` is estimated for draw :math:`s` from the *other* draws
  (:func:`leave_one_out_baseline`), which keeps the estimator exactly unbiased;
- **Rao-Blackwellization** over the mean-field coordinates: the components of coordinate
  :math:`d` keep only the terms of :math:`\log p` and :math:`\log q` that contain
  :math:`z_d` (:func:`rao_blackwellized_gradient`).

Every function takes noise ``eps`` of shape ``(..., S, D)``: S draws for each of any number
of independent estimates, and returns one estimate per batch entry, ``(..., 2, D)``
(``[..., 0, :]`` for the mean, ``[..., 1, :]`` for ``log_std``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vicourse._checks import as_tensor, check_all_finite, check_float, check_same_dtype_and_device
from vicourse.families.gaussian import gaussian_log_density
from vicourse.objectives.weights import LogDensity


def gaussian_score(log_std: Tensor, eps: Tensor) -> Tensor:
    """grad_(mean, log_std) log q(z) at z = mean + exp(log_std) eps: (eps / sigma, eps^2 - 1).

    log_std: (D,); eps: (..., S, D) -> (..., S, 2, D)
    """
    return torch.stack([eps * torch.exp(-log_std), eps.square() - 1], dim=-2)


def score_function_gradient(
    log_joint: LogDensity, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    """(1/S) sum_s f(z_s) h(z_s), f = log p(x, z) - log q(z), h the score: plain black-box VI.

    log_joint: (..., S, D) -> (..., S); mean, log_std: (D,); eps: (..., S, D) -> (..., 2, D)
    """
    mean, log_std, eps = check_estimator_args(log_joint, mean, log_std, eps, min_draws=1)
    z = mean + torch.exp(log_std) * eps  # (..., S, D)
    weights = log_joint(z) - gaussian_log_density(z, mean, log_std)  # (..., S)
    scores = gaussian_score(log_std, eps)  # (..., S, 2, D)
    return (weights[..., None, None] * scores).mean(-3)  # (..., 2, D)


def leave_one_out_baseline(weights: Tensor, scores: Tensor) -> Tensor:
    """a_sk = sum_{j != s} w_jk h_jk^2 / sum_{j != s} h_jk^2: the optimal baseline of each
    component k, estimated for draw s from the other S - 1 draws.

    weights: broadcasting against scores; scores: (..., S, 2, D) -> (..., S, 2, D)
    """
    weighted = weights * scores.square()  # (..., S, 2, D)
    numerator = weighted.sum(-3, keepdim=True) - weighted  # all draws but s
    denominator = scores.square().sum(-3, keepdim=True) - scores.square()
    return numerator / denominator  # (..., S, 2, D)


def control_variate_gradient(
    log_joint: LogDensity, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    """(1/S) sum_s (f(z_s) - a_s) h(z_s) with the leave-one-out baseline a_s, S >= 2.

    log_joint: (..., S, D) -> (..., S); mean, log_std: (D,); eps: (..., S, D) -> (..., 2, D)
    """
    mean, log_std, eps = check_estimator_args(log_joint, mean, log_std, eps, min_draws=2)
    z = mean + torch.exp(log_std) * eps  # (..., S, D)
    weights = (log_joint(z) - gaussian_log_density(z, mean, log_std))[..., None, None]
    scores = gaussian_score(log_std, eps)  # (..., S, 2, D)
    baseline = leave_one_out_baseline(weights, scores)  # (..., S, 2, D)
    return ((weights - baseline) * scores).mean(-3)  # (..., 2, D)


def rao_blackwellized_gradient(
    blanket_log_joint: LogDensity,
    mean: Tensor,
    log_std: Tensor,
    eps: Tensor,
    baseline: bool = True,
) -> Tensor:
    """Coordinate d's components weighted by f_d = (terms of log p with z_d) - log q_d(z_d),
    with the leave-one-out baseline if baseline is true (then S >= 2).

    blanket_log_joint: (..., S, D) -> (..., S, D); mean, log_std: (D,); eps: (..., S, D)
    -> (..., 2, D)
    """
    mean, log_std, eps = check_estimator_args(blanket_log_joint, mean, log_std, eps,
                                     min_draws=2 if baseline else 1)
    z = mean + torch.exp(log_std) * eps  # (..., S, D)
    log_q = -0.5 * eps.square() - log_std - 0.5 * math.log(2 * math.pi)  # log q_d(z_d)
    weights = (_blanket_values(blanket_log_joint, z) - log_q).unsqueeze(-2)  # (..., S, 1, D)
    scores = gaussian_score(log_std, eps)  # (..., S, 2, D)
    if baseline:
        weights = weights - leave_one_out_baseline(weights, scores)  # (..., S, 2, D)
    return (weights * scores).mean(-3)  # (..., 2, D)


def _blanket_values(blanket_log_joint: LogDensity, z: Tensor) -> Tensor:
    values = blanket_log_joint(z)
    if not isinstance(values, Tensor) or values.shape != z.shape:
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"blanket_log_joint returned {got} for z of shape {tuple(z.shape)}; "
                         "it must return one value per coordinate, the same shape as z: for "
                         "each d, the terms of log p(x, z) that contain z_d")
    return values


def check_estimator_args(
    log_joint: LogDensity, mean: Tensor, log_std: Tensor, eps: Tensor, min_draws: int
) -> tuple[Tensor, Tensor, Tensor]:
    """mean, log_std (D,) and eps (..., S, D) with S >= min_draws as finite float tensors of
    one dtype and device (lists converted to eps's dtype), log_joint callable."""
    if not callable(log_joint):
        raise TypeError(f"the log joint must be a function of z, (..., S, D) -> (..., S), got "
                        f"{type(log_joint).__name__}")
    eps = as_tensor(eps, "eps")
    check_float(eps, "eps")
    mean = as_tensor(mean, "mean", dtype=eps.dtype)
    log_std = as_tensor(log_std, "log_std", dtype=eps.dtype)
    check_same_dtype_and_device(eps=eps, mean=mean, log_std=log_std)
    if mean.ndim != 1 or log_std.shape != mean.shape or len(mean) == 0:
        raise ValueError(f"mean and log_std must both have shape (D,) with D >= 1, got "
                         f"{tuple(mean.shape)} and {tuple(log_std.shape)}")
    dim = len(mean)
    if eps.ndim < 2 or eps.shape[-1] != dim:
        raise ValueError(f"eps must have shape (..., S, D) = (..., S, {dim}): S standard normal "
                         f"draws of the D coordinates, got {tuple(eps.shape)}")
    if eps.shape[-2] < min_draws:
        raise ValueError(f"this estimator needs at least {min_draws} draws per estimate (the "
                         f"baseline of each draw comes from the others), got S = "
                         f"{eps.shape[-2]} in eps of shape {tuple(eps.shape)}")
    for name, value in (("mean", mean), ("log_std", log_std), ("eps", eps)):
        check_all_finite(value, name)
    return mean, log_std, eps
