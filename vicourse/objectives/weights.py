"""Importance weights, the primitive under every bound: log w = log p(x, z) - log q(z).

The ELBO is their mean, the importance weighted bound the log of their mean; each estimator
of the book (the conjugate model, the VAE, the flows) computes its log weights here.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

LogDensity = Callable[[Tensor], Tensor]
"""A log density (or unnormalized log joint) of points: (S, D) -> (S,), or the same with
extra batch dimensions."""


def log_weights(log_p: Tensor, log_q: Tensor) -> Tensor:
    """log p(x, z_s) - log q(z_s) per draw; log_p, log_q: (S, ...) of one shape -> (S, ...)."""
    if log_p.shape != log_q.shape:
        raise ValueError(
            f"log_joint returned shape {tuple(log_p.shape)} but log q(z) has shape "
            f"{tuple(log_q.shape)}; log_joint must return one value per draw (sum over the "
            "event dimensions of z)"
        )
    return log_p - log_q


def log_mean_exp(log_values: Tensor, dim: int = 0) -> Tensor:
    """log (1/K) sum_k exp(a_k) over the K terms along dim, finite if any a_k is.

    log_values: any shape, with K >= 1 along dim -> that shape without dim
    """
    _check_log_mean_exp_args(log_values, dim)
    # logsumexp subtracts max_k a_k before exponentiating, so the sum is at least 1
    return torch.logsumexp(log_values, dim=dim) - math.log(log_values.shape[dim])


def _check_log_mean_exp_args(log_values: Tensor, dim: int) -> None:
    """Raise ValueError unless log_values has at least one term along dim."""
    if log_values.ndim == 0 or log_values.shape[dim] == 0:
        raise ValueError(
            f"log_mean_exp needs at least one term along dim={dim}, got a tensor of shape "
            f"{tuple(log_values.shape)}; pass the log weights with the K samples along dim"
        )
