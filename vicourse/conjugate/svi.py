r"""Stochastic variational inference for the means of the Gaussian mixture.

The natural gradient of the ELBO with respect to the natural parameters :math:`\eta` of
:math:`q(\mu_k)` is :math:`\hat\eta - \eta`, where :math:`\hat\eta` is the CAVI target. A
minibatch :math:`B` of the :math:`N` points estimates the target without bias,

.. math::

    \hat\eta_{k,1} = \frac NB \sum_{i \in B} \varphi_{ik} x_i, \qquad
    \hat\eta_{k,2} = -\frac12 \Big(\frac1{\sigma^2} + \frac NB \sum_{i \in B} \varphi_{ik}\Big),

and SVI takes the step :math:`\eta \leftarrow (1 - \rho_t)\,\eta + \rho_t \hat\eta` with
Robbins-Monro step sizes :math:`\rho_t = (t + \tau)^{-\kappa}`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vicourse._checks import check_positive_finite, is_finite_real, positive_count
from vicourse.conjugate._args import check_mixture_args


def means_target(x_batch: Tensor, phi_batch: Tensor, num_data: int, prior_std: float
                 ) -> tuple[Tensor, Tensor]:
    """The CAVI target for q(mu_k) in natural parameters, estimated from a minibatch.

    x_batch: (B, D), phi_batch: (B, K), num_data: N -> eta1_hat: (K, D), eta2_hat: (K,)
    """
    x_batch, phi_batch = check_mixture_args("means_target", prior_std, x=x_batch, phi=phi_batch)
    scale = positive_count(num_data, "num_data") / x_batch.shape[0]  # N / B
    eta1_hat = scale * phi_batch.T @ x_batch  # (K, D): (N/B) sum_b phi_bk x_b
    eta2_hat = -0.5 * (1 / prior_std**2 + scale * phi_batch.sum(0))  # (K,)
    return eta1_hat, eta2_hat


def svi_step(eta1: Tensor, eta2: Tensor, eta1_hat: Tensor, eta2_hat: Tensor, rho: float
             ) -> tuple[Tensor, Tensor]:
    """One natural-gradient step eta + rho (eta_hat - eta), for 0 < rho <= 1.

    eta1, eta1_hat: (K, D), eta2, eta2_hat: (K,) -> (K, D), (K,)
    """
    rho = _check_rho(rho)
    eta1, eta2, eta1_hat, eta2_hat = check_mixture_args(
        "svi_step", eta1=eta1, eta2=eta2, eta1_hat=eta1_hat, eta2_hat=eta2_hat)
    return eta1 + rho * (eta1_hat - eta1), eta2 + rho * (eta2_hat - eta2)


def robbins_monro(num_steps: int, tau: float = 1.0, kappa: float = 0.7) -> Tensor:
    """The step sizes rho_t = (t + tau)^(-kappa) for t = 1, ..., num_steps.

    tau >= 0 (delay), 0.5 < kappa <= 1 (forgetting rate) -> (num_steps,), float64
    """
    num_steps = positive_count(num_steps, "num_steps")
    if not (is_finite_real(tau) and tau >= 0):
        raise ValueError(f"tau must be a finite number >= 0 (it delays the decay), got {tau!r}")
    if not (is_finite_real(kappa) and 0.5 < kappa <= 1):
        raise ValueError(f"kappa must lie in (0.5, 1] so that sum rho_t = inf and sum rho_t^2 "
                         f"< inf (the Robbins-Monro conditions), got {kappa!r}")
    t = torch.arange(1, num_steps + 1, dtype=torch.float64)  # (num_steps,)
    return (t + tau) ** -kappa


def _check_rho(rho: object) -> float:
    """rho as a float (a one-element tensor too), after checking 0 < rho <= 1: the step sizes
    that keep eta2 < 0."""
    if isinstance(rho, Tensor) and rho.numel() == 1 and rho.is_floating_point():
        rho = rho.item()
    check_positive_finite(rho, "rho")
    if not rho <= 1:
        raise ValueError(f"rho must lie in (0, 1] (a convex combination of eta and eta_hat "
                         f"keeps q(mu_k) a Gaussian), got {rho!r}")
    return float(rho)
