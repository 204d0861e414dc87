r"""The CAVI updates of the Bayesian mixture of unit-variance Gaussians.

With :math:`q(\mu_k) = \mathcal N(m_k, s_k^2 I_D)` and :math:`q(c_i) = \mathrm{Cat}(\varphi_i)`,
each update sets one factor to the exponential of its expected log complete conditional:

.. math::

    \varphi_{ik} \propto \exp\Big(x_i^\top m_k - \tfrac12\big(\|m_k\|^2 + D s_k^2\big)\Big),
    \qquad
    s_k^2 = \Big(\frac1{\sigma^2} + \sum_i \varphi_{ik}\Big)^{-1}, \quad
    m_k = s_k^2 \sum_i \varphi_{ik}\, x_i .
"""

from __future__ import annotations

import torch
from torch import Tensor

from vicourse.conjugate._args import check_mixture_args


def update_assignments(x: Tensor, m: Tensor, s2: Tensor) -> Tensor:
    """The optimal q(c_i) = Cat(phi_i) given q(mu_k) = N(m_k, s2_k I).

    x: (N, D), m: (K, D), s2: (K,) -> phi: (N, K), rows summing to one
    """
    x, m, s2 = check_mixture_args("update_assignments", x=x, m=m, s2=s2)
    d = x.shape[1]
    second_moment = (m * m).sum(-1) + d * s2  # (K,): E_q ||mu_k||^2
    logits = x @ m.T - 0.5 * second_moment  # (N, K): E_q log p(x_i | c_i = k, mu) + const
    return torch.softmax(logits, dim=-1)  # (N, K): normalized over k, in log space


def update_means(x: Tensor, phi: Tensor, prior_std: float) -> tuple[Tensor, Tensor]:
    """The optimal q(mu_k) = N(m_k, s2_k I) given q(c_i) = Cat(phi_i).

    x: (N, D), phi: (N, K) -> m: (K, D), s2: (K,)
    """
    x, phi = check_mixture_args("update_means", prior_std=prior_std, x=x, phi=phi)
    precision = 1 / prior_std**2 + phi.sum(0)  # (K,): 1/sigma^2 + expected counts
    m = (phi.T @ x) / precision[:, None]  # (K, D): weighted sum of the points, shrunk to 0
    return m, 1 / precision
