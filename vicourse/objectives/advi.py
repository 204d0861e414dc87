r"""Automatic differentiation variational inference (ADVI) for a Gaussian q.

ADVI (Kucukelbir et al., 2017) maximizes the ELBO of :math:`q = \mathcal N(m, L L^\top)` with
the reparameterization :math:`z = m + L\varepsilon` and the entropy in closed form:

.. math::

    \mathcal L(m, L) = \mathbb E_{\varepsilon \sim \mathcal N(0, I)}
    \big[\log p(x, m + L\varepsilon)\big] + \mathbb H(q)
    \approx \frac1S \sum_{s=1}^S \log p(x, m + L\varepsilon_s)
    + \tfrac D2 (1 + \log 2\pi) + \sum_d \log L_{dd}.

Mean-field ADVI is the case :math:`L = \operatorname{diag} e^{\log\sigma}`; for a model on all
of :math:`\mathbb R^D` (such as logistic regression) no transformation of the support is
needed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vicourse.families.full_rank import full_rank_entropy, full_rank_sample
from vicourse.objectives.score_function import check_estimator_args
from vicourse.objectives.weights import LogDensity


def gaussian_elbo(log_joint: LogDensity, mean: Tensor, scale_tril: Tensor, eps: Tensor) -> Tensor:
    """(1/S) sum_s log p(x, mean + L eps_s) + H(N(mean, L L^T)): differentiable in mean, L.

    log_joint: (..., S, D) -> (..., S); mean: (..., D); scale_tril: (..., D, D);
    eps: (..., S, D) -> (...)
    """
    z = full_rank_sample(mean, scale_tril, eps)  # (..., S, D), checks the arguments
    log_p = log_joint(z)  # (..., S)
    if not isinstance(log_p, Tensor) or log_p.shape != z.shape[:-1]:
        got = tuple(log_p.shape) if isinstance(log_p, Tensor) else type(log_p).__name__
        raise ValueError(f"log_joint returned {got} for z of shape {tuple(z.shape)}; it must "
                         f"return one value per draw, shape {tuple(z.shape[:-1])}")
    return log_p.mean(-1) + full_rank_entropy(scale_tril)  # (...)


def reparameterization_gradient(
    log_joint: LogDensity, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    """Mean-field ADVI's gradient estimate with respect to (mean, log_std), by autograd.

    log_joint: (..., S, D) -> (..., S); mean, log_std: (D,); eps: (..., S, D) -> (..., 2, D)
    """
    mean, log_std, eps = check_estimator_args(log_joint, mean, log_std, eps, min_draws=1)
    batch = eps.shape[:-2]  # one copy of the parameters per estimate
    means = mean.detach().expand(*batch, -1).clone().requires_grad_(True)  # (..., D)
    log_stds = log_std.detach().expand(*batch, -1).clone().requires_grad_(True)  # (..., D)
    with torch.enable_grad():
        elbo = gaussian_elbo(log_joint, means, torch.diag_embed(log_stds.exp()), eps)  # (...)
        grads = torch.autograd.grad(elbo.sum(), (means, log_stds))
    return torch.stack(grads, dim=-2)  # (..., 2, D)
