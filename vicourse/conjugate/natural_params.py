r"""The natural parameters of q(mu_k) = N(m_k, s_k^2 I_D), an exponential family.

With sufficient statistics :math:`t(\mu) = (\mu, \|\mu\|^2)` and base measure
:math:`(2\pi)^{-D/2}`,

.. math::

    q(\mu) = (2\pi)^{-D/2} \exp\big(\eta_1^\top \mu + \eta_2 \|\mu\|^2 - A(\eta)\big), \quad
    \eta_1 = \frac{m}{s^2}, \quad \eta_2 = -\frac1{2 s^2}, \quad
    A(\eta) = -\frac{\|\eta_1\|^2}{4\eta_2} - \frac D2 \log(-2\eta_2).

The gradient of :math:`A` is the mean of :math:`t`, :math:`(m, \|m\|^2 + D s^2)`, and its
Hessian is the covariance of :math:`t`: the Fisher information of :math:`\eta`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vicourse.conjugate._args import check_mixture_args


def natural_from_mean_var(m: Tensor, s2: Tensor) -> tuple[Tensor, Tensor]:
    """(eta1, eta2) = (m / s2, -1 / (2 s2)). m: (K, D), s2: (K,) -> (K, D), (K,)"""
    m, s2 = check_mixture_args("natural_from_mean_var", m=m, s2=s2)
    return m / s2[:, None], -0.5 / s2


def mean_var_from_natural(eta1: Tensor, eta2: Tensor) -> tuple[Tensor, Tensor]:
    """(m, s2) = (-eta1 / (2 eta2), -1 / (2 eta2)). eta1: (K, D), eta2: (K,) -> (K, D), (K,)"""
    eta1, eta2 = check_mixture_args("mean_var_from_natural", eta1=eta1, eta2=eta2)
    s2 = -0.5 / eta2  # (K,)
    return eta1 * s2[:, None], s2


def log_normalizer(eta1: Tensor, eta2: Tensor) -> Tensor:
    """A(eta) = -|eta1|^2 / (4 eta2) - (D/2) log(-2 eta2), per component.

    eta1: (K, D), eta2: (K,) -> (K,)
    """
    eta1, eta2 = check_mixture_args("log_normalizer", eta1=eta1, eta2=eta2)
    d = eta1.shape[1]
    return -(eta1 * eta1).sum(-1) / (4 * eta2) - 0.5 * d * torch.log(-2 * eta2)
