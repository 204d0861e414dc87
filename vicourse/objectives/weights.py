"""Importance weights, the primitive under every bound: log w = log p(x, z) - log q(z).

The ELBO is their mean, the importance weighted bound the log of their mean; each estimator
of the book (the conjugate model, the VAE, the flows) computes its log weights here.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import torch
from torch import Tensor

from vicourse._checks import as_tensor

LogDensity = Callable[[Tensor], Tensor]
"""A log density (or unnormalized log joint) of points: (S, D) -> (S,), or the same with
extra batch dimensions."""


def log_weights(log_p: Tensor, log_q: Tensor) -> Tensor:
    """log p(x, z_s) - log q(z_s) per draw; log_p, log_q: (S, ...) of one shape -> (S, ...)."""
    log_p, log_q = as_tensor(log_p, "log_p"), as_tensor(log_q, "log_q")
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
    log_values, dim = _check_log_mean_exp_args(log_values, dim)
    # logsumexp subtracts max_k a_k before exponentiating, so the sum is at least 1
    return torch.logsumexp(log_values, dim=dim) - math.log(log_values.shape[dim])


def _check_log_mean_exp_args(log_values: Tensor, dim: int) -> tuple[Tensor, int]:
    """log_values as a tensor and dim as an int, after checking that dim is one of its
    dimensions with at least one term along it."""
    log_values = as_tensor(log_values, "log_values")
    try:
        dim = operator.index(dim)
    except TypeError:
        raise TypeError(f"dim must be an integer (the dimension of the K terms), got "
                        f"{dim!r}") from None
    if log_values.ndim and not -log_values.ndim <= dim < log_values.ndim:
        raise ValueError(
            f"dim={dim} is out of range for log_values of shape {tuple(log_values.shape)}; "
            f"pass a dim between {-log_values.ndim} and {log_values.ndim - 1}, the dimension "
            "that holds the K terms"
        )
    if log_values.ndim == 0 or log_values.shape[dim] == 0:
        raise ValueError(
            f"log_mean_exp needs at least one term along dim={dim}, got log_values of shape "
            f"{tuple(log_values.shape)}; pass the log weights with the K samples along dim"
        )
    return log_values, dim
