"""The diagonal Gaussian family q(z) = N(mean, diag exp(2 log_std)): the book's default q.

Its parameters are named ``mean`` and ``log_std`` everywhere; a VAE's encoder outputs the
log variance ``logvar`` = 2 log_std (Kingma and Welling's convention), converted where it
meets this family.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vicourse._checks import as_tensor, check_float


def gaussian_log_density(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log N(z; mean, diag exp(2 log_std)), summed over the last dimension.

    z: (..., D); mean, log_std: broadcasting against z -> (...)
    """
    z, mean, log_std = _check_gaussian_args(z, mean, log_std)
    standardized = (z - mean) * torch.exp(-log_std)
    return (-0.5 * standardized.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def sticking_the_landing_log_density(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log q(z) with q's parameters detached and z's path kept: the STL term (Roeder et al.).

    z: (..., D); mean, log_std: broadcasting against z -> (...)
    """
    z, mean, log_std = _check_gaussian_args(z, mean, log_std)
    return gaussian_log_density(z, mean.detach(), log_std.detach())


def _check_gaussian_args(z: Tensor, mean: Tensor, log_std: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """z, mean and log_std as tensors of z's dtype (numbers and lists are converted), after
    checking that they share a dtype and device and that mean and log_std broadcast to z's
    shape (..., D) without enlarging it."""
    z = as_tensor(z, "z")
    check_float(z, "z")
    if z.ndim == 0:
        raise ValueError("z must have shape (..., D), with the D coordinates last, got a scalar; "
                         "for a one-dimensional latent use shape (S, 1)")
    params = {"mean": mean, "log_std": log_std}
    for name, value in params.items():
        value = params[name] = as_tensor(value, name, dtype=z.dtype)
        if value.dtype != z.dtype or value.device != z.device:
            raise TypeError(
                f"{name} is {value.dtype} on {value.device} but z is {z.dtype} on {z.device}; "
                f"convert one of them, e.g. {name}.to(z)"
            )
        try:
            fits = torch.broadcast_shapes(value.shape, z.shape) == z.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"{name} of shape {tuple(value.shape)} does not broadcast against z of shape "
                f"{tuple(z.shape)}; give it shape (D,) = ({z.shape[-1]},) or z's leading "
                "dimensions followed by D"
            )
    return z, params["mean"], params["log_std"]
