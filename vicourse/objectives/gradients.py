r"""Monte Carlo estimators of the gradient of the ELBO with respect to a Gaussian's parameters.

The variational family is a diagonal Gaussian
:math:`q_\lambda(z) = \mathcal N(m, \operatorname{diag} \sigma^2)` with parameters
:math:`\lambda = (m, \log\sigma)`, and the objective is

.. math::

    \mathcal L(\lambda) = \mathbb E_{q_\lambda(z)}\big[\log p(x, z) - \log q_\lambda(z)\big].

Each estimator is written as a *surrogate*: a function of one standard normal draw
:math:`\varepsilon` whose gradient with respect to :math:`\lambda` is that draw's gradient
estimate. With :math:`z = m + \sigma \odot \varepsilon`:

- score function (REINFORCE): :math:`\big(\log p(x, z) - \log q_\lambda(z)\big)\,
  \nabla_\lambda \log q_\lambda(z)`, with :math:`z` held fixed;
- reparameterization (pathwise): :math:`\nabla_\lambda \big[\log p(x, z(\lambda))
  - \log q_\lambda(z(\lambda))\big]`, the total derivative;
- sticking the landing (Roeder et al., 2017): the same with the parameters of the
  :math:`\log q` term held fixed, :math:`\nabla_\lambda \big[\log p(x, z(\lambda))
  - \log q_{\bar\lambda}(z(\lambda))\big]_{\bar\lambda = \lambda}`, which drops the score
  term :math:`-\nabla_\lambda \log q_\lambda(z)` of the pathwise estimator.

All three are unbiased for :math:`\nabla_\lambda \mathcal L`. :func:`per_sample_gradients`
evaluates any of them for many draws at once, in one backward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

LogJoint = Callable[[Tensor], Tensor]
Surrogate = Callable[[LogJoint, Tensor, Tensor, Tensor], Tensor]


def gaussian_log_density(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    r""":math:`\log \mathcal N(z; m, \operatorname{diag} \sigma^2) = \sum_d \big[
    -\tfrac12 \big(\tfrac{z_d - m_d}{\sigma_d}\big)^2 - \log\sigma_d - \tfrac12\log 2\pi\big]`.

    Args:
        z: shape ``(..., D)``.
        mean, log_std: :math:`m` and :math:`\log\sigma`, broadcasting against ``z``.

    Returns:
        Shape ``(...)``: summed over the last dimension.
    """
    standardized = (z - mean) * torch.exp(-log_std)
    return (-0.5 * standardized.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def reparameterized_surrogate(
    log_joint: LogJoint, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    r"""The one-sample ELBO :math:`\log p(x, z) - \log q_\lambda(z)` at
    :math:`z = m + \sigma \odot \varepsilon`, differentiable through every :math:`\lambda`.

    Args:
        log_joint: maps z of shape ``(S, D)`` to :math:`\log p(x, z)` of shape ``(S,)``.
        mean, log_std: shape ``(D,)`` or ``(S, D)``.
        eps: standard normal draws, shape ``(S, D)``.

    Returns:
        Shape ``(S,)``; its gradient is the pathwise (reparameterization) estimate.
    """
    z = mean + torch.exp(log_std) * eps
    return log_joint(z) - gaussian_log_density(z, mean, log_std)


def sticking_the_landing_surrogate(
    log_joint: LogJoint, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    r"""The same value as :func:`reparameterized_surrogate`, with :math:`\lambda` detached
    inside :math:`\log q` while :math:`z = m + \sigma \odot \varepsilon` stays
    reparameterized:

    .. math::

        \log p(x, z(\lambda)) - \log q_{\operatorname{sg}(\lambda)}(z(\lambda)),

    where sg stops the gradient. Its gradient is the path term alone,
    :math:`\nabla_z[\log p(x, z) - \log q_\lambda(z)]\, \partial z / \partial\lambda`.
    Shapes as in :func:`reparameterized_surrogate`.
    """
    z = mean + torch.exp(log_std) * eps
    return log_joint(z) - gaussian_log_density(z, mean.detach(), log_std.detach())


def score_function_surrogate(
    log_joint: LogJoint, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    r"""A surrogate whose gradient is the score-function (REINFORCE) estimate

    .. math::

        \big(\log p(x, z) - \log q_\lambda(z)\big)\, \nabla_\lambda \log q_\lambda(z),

    with the sample :math:`z = m + \sigma \odot \varepsilon` and the weight both held fixed:
    the surrogate is :math:`\operatorname{sg}(w) \log q_\lambda(\operatorname{sg}(z))`. Only
    :math:`\log p(x, z)` is evaluated, never its gradient. Its *value* is not the ELBO.
    Shapes as in :func:`reparameterized_surrogate`.
    """
    z = (mean + torch.exp(log_std) * eps).detach()
    log_q = gaussian_log_density(z, mean, log_std)
    weight = (log_joint(z) - log_q).detach()
    return weight * log_q


def score_term_surrogate(
    log_joint: LogJoint, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    r""":math:`-\log q_\lambda(\operatorname{sg}(z))`: its gradient is the score term
    :math:`-\nabla_\lambda \log q_\lambda(z)` (z fixed), the part of the pathwise estimate
    that sticking the landing drops; its expectation is zero. ``log_joint`` is not used (the
    argument is there so that every surrogate has the same signature).
    """
    z = (mean + torch.exp(log_std) * eps).detach()
    return -gaussian_log_density(z, mean, log_std)


ESTIMATORS: dict[str, Surrogate] = {
    "score function": score_function_surrogate,
    "reparameterization": reparameterized_surrogate,
    "sticking the landing": sticking_the_landing_surrogate,
}


def per_sample_gradients(
    surrogate: Surrogate, log_joint: LogJoint, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    r"""The gradient estimate of every draw, :math:`\nabla_{(m, \log\sigma)}` of the
    surrogate, for all S draws in one backward pass.

    Each draw gets its own copy of the parameters (tensors of shape ``(S, D)``), so the
    gradient of the summed surrogate with respect to copy s is the gradient of draw s alone.

    Args:
        surrogate: one of the ``*_surrogate`` functions of this module (or any function
            with their signature).
        log_joint: maps z of shape ``(S, D)`` to :math:`\log p(x, z)`, shape ``(S,)``, one
            value per row.
        mean, log_std: the parameters of q, shape ``(D,)``.
        eps: standard normal draws, shape ``(S, D)``.

    Returns:
        Shape ``(S, 2, D)``: ``[:, 0]`` is the gradient with respect to the mean, ``[:, 1]``
        with respect to :math:`\log\sigma`.
    """
    _check_parameters(mean, log_std, eps)
    num_draws = eps.shape[0]
    mean_copies = mean.detach().expand(num_draws, -1).clone().requires_grad_(True)
    log_std_copies = log_std.detach().expand(num_draws, -1).clone().requires_grad_(True)
    with torch.enable_grad():
        values = surrogate(log_joint, mean_copies, log_std_copies, eps)
        if values.shape != (num_draws,):
            raise ValueError(
                f"the surrogate returned shape {tuple(values.shape)}, expected ({num_draws},): "
                "one value per draw; log_joint must map z of shape (S, D) to shape (S,) "
                "(sum over the last dimension)"
            )
        grads = torch.autograd.grad(values.sum(), (mean_copies, log_std_copies),
                                    allow_unused=True)
    grads = [torch.zeros_like(mean_copies) if g is None else g for g in grads]
    return torch.stack(grads, dim=1)


def _check_parameters(mean: Tensor, log_std: Tensor, eps: Tensor) -> None:
    for name, value in (("mean", mean), ("log_std", log_std), ("eps", eps)):
        if not (isinstance(value, Tensor) and value.is_floating_point()):
            raise TypeError(
                f"{name} must be a floating-point tensor, got "
                f"{value.dtype if isinstance(value, Tensor) else type(value).__name__}; "
                f"convert it with torch.as_tensor({name}, dtype=torch.float64)"
            )
    if mean.ndim != 1 or log_std.shape != mean.shape:
        raise ValueError(
            f"mean and log_std must both have shape (D,), got {tuple(mean.shape)} and "
            f"{tuple(log_std.shape)}; for a scalar latent use shape (1,)"
        )
    if eps.ndim != 2 or eps.shape[1] != mean.shape[0]:
        raise ValueError(
            f"eps must have shape (S, {mean.shape[0]}) (S draws of the {mean.shape[0]} latent "
            f"coordinates), got {tuple(eps.shape)}"
        )
