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

from collections.abc import Callable

import torch
from torch import Tensor

from vicourse._checks import as_tensor, check_all_finite, check_float, check_same_dtype_and_device
from vicourse.families.gaussian import gaussian_log_density, sticking_the_landing_log_density
from vicourse.objectives.weights import LogDensity, log_weights

__all__ = ["gaussian_log_density"]  # the family's log density, re-exported for the chapter

Surrogate = Callable[[LogDensity, Tensor, Tensor, Tensor], Tensor]


def reparameterized_surrogate(
    log_joint: LogDensity, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    """log p(x, z) - log q(z) at z = mean + exp(log_std) * eps: gradient = pathwise estimate.

    log_joint: (S, D) -> (S,); mean, log_std: (D,) or (S, D); eps: (S, D) -> (S,)
    """
    mean, log_std, eps = _check_surrogate_args(mean, log_std, eps)
    z = mean + torch.exp(log_std) * eps  # (S, D)
    return log_weights(log_joint(z), gaussian_log_density(z, mean, log_std))  # (S,)


def sticking_the_landing_surrogate(
    log_joint: LogDensity, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    """The reparameterized surrogate with log q's parameters detached: gradient = path term.

    log_joint: (S, D) -> (S,); mean, log_std: (D,) or (S, D); eps: (S, D) -> (S,)
    """
    mean, log_std, eps = _check_surrogate_args(mean, log_std, eps)
    z = mean + torch.exp(log_std) * eps  # (S, D), still reparameterized
    return log_weights(log_joint(z), sticking_the_landing_log_density(z, mean, log_std))  # (S,)


def score_function_surrogate(
    log_joint: LogDensity, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    """w * log q(z) with z and w = log p(x, z) - log q(z) detached: gradient = score function.

    log_joint: (S, D) -> (S,); mean, log_std: (D,) or (S, D); eps: (S, D) -> (S,)
    """
    mean, log_std, eps = _check_surrogate_args(mean, log_std, eps)
    z = (mean + torch.exp(log_std) * eps).detach()  # (S, D)
    log_q = gaussian_log_density(z, mean, log_std)  # (S,)
    weight = log_weights(log_joint(z), log_q).detach()  # (S,)
    return weight * log_q  # (S,); its value is not the ELBO


def score_term_surrogate(
    log_joint: LogDensity, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    """-log q(z) with z detached: its gradient is the score term -grad log q(z) (z fixed), the
    part of the pathwise estimate that sticking the landing drops; its expectation is zero.
    log_joint is not used (the argument is there so that every surrogate has the same
    signature).
    """
    mean, log_std, eps = _check_surrogate_args(mean, log_std, eps)
    z = (mean + torch.exp(log_std) * eps).detach()
    return -gaussian_log_density(z, mean, log_std)


ESTIMATORS: dict[str, Surrogate] = {
    "score function": score_function_surrogate,
    "reparameterization": reparameterized_surrogate,
    "sticking the landing": sticking_the_landing_surrogate,
}


def per_sample_gradients(
    surrogate: Surrogate, log_joint: LogDensity, mean: Tensor, log_std: Tensor, eps: Tensor
) -> Tensor:
    """The gradient estimate of every draw with respect to (mean, log_std), in one backward pass.

    log_joint: (S, D) -> (S,); mean, log_std: (D,); eps: (S, D)
    -> (S, 2, D): [:, 0] with respect to mean, [:, 1] with respect to log_std
    """
    _check_parameters(surrogate, log_joint, mean, log_std, eps)
    num_draws = eps.shape[0]
    # One copy of the parameters per draw: d(sum of surrogates) / d(copy s) is draw s's gradient.
    mean_copies = mean.detach().expand(num_draws, -1).clone().requires_grad_(True)  # (S, D)
    log_std_copies = log_std.detach().expand(num_draws, -1).clone().requires_grad_(True)
    with torch.enable_grad():
        values = surrogate(log_joint, mean_copies, log_std_copies, eps)  # (S,)
        _check_surrogate_values(values, num_draws)
        grads = torch.autograd.grad(values.sum(), (mean_copies, log_std_copies),
                                    allow_unused=True)
    grads = [torch.zeros_like(mean_copies) if g is None else g for g in grads]
    return torch.stack(grads, dim=1)  # (S, 2, D)


def _check_surrogate_values(values: Tensor, num_draws: int) -> None:
    """Raise ValueError unless the surrogate returned one value per draw, shape (S,)."""
    if values.shape != (num_draws,):
        raise ValueError(
            f"the surrogate returned shape {tuple(values.shape)}, expected ({num_draws},): "
            "one value per draw; log_joint must map z of shape (S, D) to shape (S,) "
            "(sum over the last dimension)"
        )


def _check_surrogate_args(mean: Tensor, log_std: Tensor, eps: Tensor) -> tuple[Tensor, ...]:
    """mean, log_std and eps as floating-point tensors of one dtype and device (numbers and
    lists are converted to eps's dtype), after checking that eps is (S, D) and that mean and
    log_std broadcast against it without enlarging it."""
    eps = as_tensor(eps, "eps")
    check_float(eps, "eps")
    named = {"mean": as_tensor(mean, "mean", dtype=eps.dtype),
             "log_std": as_tensor(log_std, "log_std", dtype=eps.dtype), "eps": eps}
    for name, value in named.items():
        check_float(value, name)
    check_same_dtype_and_device(**named)
    if eps.ndim != 2:
        raise ValueError(f"eps must have shape (S, D) (S draws of the D latent coordinates), "
                         f"got {tuple(eps.shape)}; for a scalar latent use shape (S, 1)")
    for name in ("mean", "log_std"):
        try:
            fits = torch.broadcast_shapes(named[name].shape, eps.shape) == eps.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(f"{name} must have shape (D,) or (S, D) = {tuple(eps.shape)}, "
                             f"matching eps, got {tuple(named[name].shape)}")
    return named["mean"], named["log_std"], eps


def _check_parameters(
    surrogate: Surrogate, log_joint: LogDensity, mean: Tensor, log_std: Tensor, eps: Tensor
) -> None:
    if not callable(surrogate):
        raise TypeError(f"surrogate must be a function such as reparameterized_surrogate (see "
                        f"ESTIMATORS), got {type(surrogate).__name__}")
    if not callable(log_joint):
        raise TypeError(f"log_joint must be a function of z, (S, D) -> (S,), got "
                        f"{type(log_joint).__name__}")
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
    if len(eps) == 0:
        raise ValueError("eps is empty (shape (0, D)); pass at least one draw, shape (S, D)")
    check_same_dtype_and_device(mean=mean, log_std=log_std, eps=eps)
    for name, value in (("mean", mean), ("log_std", log_std), ("eps", eps)):
        check_all_finite(value, name)
