"""The diagonal Gaussian family q(z) = N(mean, diag exp(2 log_std)): the book's default q.

Its parameters are named ``mean`` and ``log_std`` everywhere; a VAE's encoder outputs the
log variance ``logvar`` = 2 log_std (Kingma and Welling's convention), converted where it
meets this family.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def gaussian_log_density(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log N(z; mean, diag exp(2 log_std)), summed over the last dimension.

    z: (..., D); mean, log_std: broadcasting against z -> (...)
    """
    standardized = (z - mean) * torch.exp(-log_std)
    return (-0.5 * standardized.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def sticking_the_landing_log_density(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log q(z) with q's parameters detached and z's path kept: the STL term (Roeder et al.).

    z: (..., D); mean, log_std: broadcasting against z -> (...)
    """
    return gaussian_log_density(z, mean.detach(), log_std.detach())
