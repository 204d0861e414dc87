r"""The full-rank Gaussian family :math:`q(z) = \mathcal N(m, L L^\top)`.

:math:`L` is lower triangular with a positive diagonal (the Cholesky factor of the
covariance), so that a draw is :math:`z = m + L \varepsilon` with
:math:`\varepsilon \sim \mathcal N(0, I_D)`, and

.. math::

    \log q(z) = -\tfrac12 \big\|L^{-1}(z - m)\big\|^2 - \sum_d \log L_{dd}
    - \tfrac D2 \log 2\pi, \qquad
    \mathbb H(q) = \tfrac D2 (1 + \log 2\pi) + \sum_d \log L_{dd}.

An optimizer works on an unconstrained square matrix and :func:`scale_tril` maps it to
:math:`L`. The diagonal Gaussian of :mod:`vicourse.families.gaussian` is the case
:math:`L = \operatorname{diag} e^{\log\sigma}`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from vicourse._checks import as_tensor, check_all_finite, check_float, check_same_dtype_and_device


def scale_tril(raw: Tensor) -> Tensor:
    """L from an unconstrained matrix: raw's strict lower triangle, exp of its diagonal.

    raw: (..., D, D) -> (..., D, D), lower triangular with a positive diagonal
    """
    raw = _check_square(raw, "raw")
    diagonal = torch.diagonal(raw, dim1=-2, dim2=-1)  # (..., D)
    return torch.tril(raw, diagonal=-1) + torch.diag_embed(diagonal.exp())


def full_rank_sample(mean: Tensor, scale_tril: Tensor, eps: Tensor) -> Tensor:
    """z = mean + L eps for standard normal eps.

    mean: (..., D); scale_tril: (..., D, D); eps: (..., S, D) -> (..., S, D)
    """
    mean, scale_tril, eps = _check_full_rank_args(mean, scale_tril, eps, "eps")
    return mean.unsqueeze(-2) + eps @ scale_tril.mT  # (..., S, D)


def full_rank_log_density(z: Tensor, mean: Tensor, scale_tril: Tensor) -> Tensor:
    """log N(z; mean, L L^T).

    z: (..., S, D); mean: (..., D); scale_tril: (..., D, D) -> (..., S)
    """
    mean, scale_tril, z = _check_full_rank_args(mean, scale_tril, z, "z")
    centered = z - mean.unsqueeze(-2)  # (..., S, D)
    standardized = torch.linalg.solve_triangular(
        scale_tril.unsqueeze(-3), centered.unsqueeze(-1), upper=False).squeeze(-1)  # L^-1 (z-m)
    log_det = torch.diagonal(scale_tril, dim1=-2, dim2=-1).log().sum(-1)  # (...)
    dim = z.shape[-1]
    return (-0.5 * standardized.square().sum(-1) - log_det.unsqueeze(-1)
            - 0.5 * dim * math.log(2 * math.pi))  # (..., S)


def full_rank_entropy(scale_tril: Tensor) -> Tensor:
    """H(N(m, L L^T)) = D/2 (1 + log 2 pi) + sum_d log L_dd; scale_tril: (..., D, D) -> (...)."""
    scale_tril = _check_scale_tril(scale_tril)
    dim = scale_tril.shape[-1]
    log_det = torch.diagonal(scale_tril, dim1=-2, dim2=-1).log().sum(-1)  # (...)
    return 0.5 * dim * (1 + math.log(2 * math.pi)) + log_det


def _check_square(matrix: Tensor, name: str) -> Tensor:
    matrix = as_tensor(matrix, name)
    check_float(matrix, name)
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2] or matrix.shape[-1] == 0:
        raise ValueError(f"{name} must be a square matrix of shape (..., D, D) with D >= 1, got "
                         f"{tuple(matrix.shape)}")
    check_all_finite(matrix, name)
    return matrix


def _check_scale_tril(scale_tril: Tensor) -> Tensor:
    """scale_tril as a finite float (..., D, D) tensor, lower triangular with a positive
    diagonal (the Cholesky factor of a covariance)."""
    scale_tril = _check_square(scale_tril, "scale_tril")
    if bool((torch.triu(scale_tril, diagonal=1) != 0).any()):
        raise ValueError("scale_tril must be lower triangular (zeros above the diagonal); make "
                         "it with scale_tril(raw) or torch.linalg.cholesky(covariance)")
    diagonal = torch.diagonal(scale_tril, dim1=-2, dim2=-1)
    if bool((diagonal <= 0).any()):
        raise ValueError(f"scale_tril must have a positive diagonal, got the smallest diagonal "
                         f"entry {diagonal.min().item()!r}; make it with scale_tril(raw) or "
                         "torch.linalg.cholesky(covariance)")
    return scale_tril


def _check_full_rank_args(
    mean: Tensor, scale_tril: Tensor, points: Tensor, name: str
) -> tuple[Tensor, Tensor, Tensor]:
    """mean (..., D), scale_tril (..., D, D) and points (..., S, D) as float tensors of one
    dtype and device (lists converted to scale_tril's dtype), with matching D and batch
    shapes that broadcast."""
    scale_tril = _check_scale_tril(scale_tril)
    mean = as_tensor(mean, "mean", dtype=scale_tril.dtype)
    points = as_tensor(points, name, dtype=scale_tril.dtype)
    check_same_dtype_and_device(scale_tril=scale_tril, mean=mean, **{name: points})
    dim = scale_tril.shape[-1]
    if mean.ndim < 1 or mean.shape[-1] != dim:
        raise ValueError(f"mean must have shape (..., D) = (..., {dim}), matching scale_tril of "
                         f"shape {tuple(scale_tril.shape)}, got {tuple(mean.shape)}")
    if points.ndim < 2 or points.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (..., S, D) = (..., S, {dim}): S points of D "
                         f"coordinates, got {tuple(points.shape)}; for one point use shape "
                         f"(1, {dim})")
    try:
        torch.broadcast_shapes(mean.shape[:-1], scale_tril.shape[:-2], points.shape[:-2])
    except RuntimeError:
        raise ValueError(f"the batch shapes of mean {tuple(mean.shape[:-1])}, scale_tril "
                         f"{tuple(scale_tril.shape[:-2])} and {name} {tuple(points.shape[:-2])} "
                         "(before the last one or two dimensions) do not broadcast") from None
    check_all_finite(mean, "mean")
    return mean, scale_tril, points
