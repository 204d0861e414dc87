r"""The ELBO of the Bayesian mixture of Gaussians in closed form.

For :math:`q(\mu, c) = \prod_k \mathcal N(\mu_k; m_k, s_k^2 I_D)
\prod_i \mathrm{Cat}(c_i; \varphi_i)`,

.. math::

    \mathcal L = \sum_k \Big(\mathbb E_q[\log p(\mu_k)] + \mathrm H[q(\mu_k)]\Big)
    + \sum_i \Big(\sum_k \varphi_{ik} \big(\mathbb E_q[\log p(x_i \mid c_i = k, \mu)]
    - \log K\big) + \mathrm H[q(c_i)]\Big),

with :math:`\mathbb E_q\|\mu_k\|^2 = \|m_k\|^2 + D s_k^2`. Maximized over each
:math:`\varphi_i`, the inner sum over :math:`k` plus the entropy becomes a log-sum-exp
(:func:`mixture_elbo_best_assignments`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vicourse.conjugate._args import check_mixture_args


def expected_log_likelihood(x: Tensor, m: Tensor, s2: Tensor) -> Tensor:
    """E_q[log N(x_i; mu_k, I)] under q(mu_k) = N(m_k, s2_k I).

    x: (N, D), m: (K, D), s2: (K,) -> (N, K)
    """
    x, m, s2 = check_mixture_args("expected_log_likelihood", x=x, m=m, s2=s2)
    d = x.shape[1]
    second_moment = (m * m).sum(-1) + d * s2  # (K,): E_q ||mu_k||^2
    expected_sq_dist = (x * x).sum(-1, keepdim=True) - 2 * x @ m.T + second_moment  # (N, K)
    return -0.5 * d * math.log(2 * math.pi) - 0.5 * expected_sq_dist  # (N, K)


def global_terms(m: Tensor, s2: Tensor, prior_std: float) -> Tensor:
    """sum_k E_q[log p(mu_k)] + H[q(mu_k)], the terms of the ELBO that involve the means only.

    m: (K, D), s2: (K,) -> scalar
    """
    m, s2 = check_mixture_args("global_terms", prior_std=prior_std, m=m, s2=s2)
    d, var0 = m.shape[1], prior_std**2
    second_moment = (m * m).sum(-1) + d * s2  # (K,): E_q ||mu_k||^2
    log_prior = -0.5 * d * math.log(2 * math.pi * var0) - second_moment / (2 * var0)  # (K,)
    entropy = 0.5 * d * torch.log(2 * math.pi * math.e * s2)  # (K,)
    return (log_prior + entropy).sum()


def mixture_elbo(x: Tensor, phi: Tensor, m: Tensor, s2: Tensor, prior_std: float) -> Tensor:
    """The ELBO E_q[log p(x, c, mu) - log q(c, mu)] in closed form.

    x: (N, D), phi: (N, K), m: (K, D), s2: (K,) -> scalar
    """
    x, phi, m, s2 = check_mixture_args("mixture_elbo", prior_std, x=x, phi=phi, m=m, s2=s2)
    log_k = math.log(m.shape[0])  # -log p(c_i = k), a uniform prior
    local = phi * (expected_log_likelihood(x, m, s2) - log_k)  # (N, K)
    entropy_assignments = -torch.special.xlogy(phi, phi).sum()  # sum_i H[q(c_i)]; 0 log 0 = 0
    return global_terms(m, s2, prior_std) + local.sum() + entropy_assignments


def mixture_elbo_best_assignments(x: Tensor, m: Tensor, s2: Tensor, prior_std: float) -> Tensor:
    """max over phi of the ELBO, at phi = update_assignments(x, m, s2): a log-sum-exp over k.

    x: (N, D), m: (K, D), s2: (K,) -> scalar
    """
    x, m, s2 = check_mixture_args("mixture_elbo_best_assignments", prior_std, x=x, m=m, s2=s2)
    log_k = math.log(m.shape[0])
    local = torch.logsumexp(expected_log_likelihood(x, m, s2) - log_k, dim=-1)  # (N,)
    return global_terms(m, s2, prior_std) + local.sum()
