r"""KL divergence between Gaussians in closed form.

For :math:`q = \mathcal N(\mu_q, \Sigma_q)` and :math:`p = \mathcal N(\mu_p, \Sigma_p)` in
:math:`K` dimensions,

.. math::

    \mathrm{KL}(q \,\|\, p) = \tfrac12 \Big[ \operatorname{tr}(\Sigma_p^{-1}\Sigma_q)
        + (\mu_p - \mu_q)^\top \Sigma_p^{-1} (\mu_p - \mu_q) - K
        + \log\det\Sigma_p - \log\det\Sigma_q \Big].

All functions are batched: leading dimensions broadcast, the last dimension (or the last
two, for covariance matrices) is the event.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vicourse._checks import as_tensor, check_all_finite, check_float, check_same_dtype_and_device


def kl_diag_gaussians(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(q || p) between diagonal Gaussians given by means and log-variances.

    mu_q, logvar_q, mu_p, logvar_p: (..., K), broadcasting -> (...)
    """
    mu_q, logvar_q, mu_p, logvar_p = _check_broadcast(
        "kl_diag_gaussians", finite=True, mu_q=mu_q, logvar_q=logvar_q, mu_p=mu_p, logvar_p=logvar_p
    )
    d = logvar_q - logvar_p  # (..., K)
    per_dim = torch.expm1(d) - d + (mu_q - mu_p).square() * torch.exp(-logvar_p)  # (..., K)
    return 0.5 * per_dim.sum(-1)  # (...)


def kl_diag_gaussian_std_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)), the KL term of the VAE's ELBO.

    mu, logvar: (..., K) -> (...)
    """
    mu, logvar = _check_broadcast("kl_diag_gaussian_std_normal", mu=mu, logvar=logvar)
    return 0.5 * (mu.square() + torch.expm1(logvar) - logvar).sum(-1)  # (...)


def kl_full_gaussians(mu_q: Tensor, cov_q: Tensor, mu_p: Tensor, cov_p: Tensor) -> Tensor:
    """KL(q || p) between Gaussians with full covariances, from their Cholesky factors.

    mu_q, mu_p: (..., K); cov_q, cov_p: (..., K, K), symmetric positive definite -> (...)
    """
    mu_q, cov_q, mu_p, cov_p = _check_full_gaussian_args(mu_q, cov_q, mu_p, cov_p)
    chol_q = _cholesky(cov_q, "cov_q")  # (..., K, K), lower triangular: cov_q = L_q L_q^T
    chol_p = _cholesky(cov_p, "cov_p")
    batch = _broadcast_batch(
        mu_q=mu_q.shape[:-1], cov_q=cov_q.shape[:-2], mu_p=mu_p.shape[:-1], cov_p=cov_p.shape[:-2]
    )
    k = mu_q.shape[-1]
    chol_q = chol_q.expand(*batch, k, k)  # (batch, K, K)
    chol_p = chol_p.expand(*batch, k, k)  # (batch, K, K)
    diff = (mu_p - mu_q).expand(*batch, k).unsqueeze(-1)  # (batch, K, 1)
    trace = torch.linalg.solve_triangular(chol_p, chol_q, upper=False).square().sum((-2, -1))
    mahalanobis = torch.linalg.solve_triangular(chol_p, diff, upper=False).square().sum((-2, -1))
    logdet_p = 2 * torch.log(torch.diagonal(chol_p, dim1=-2, dim2=-1)).sum(-1)
    logdet_q = 2 * torch.log(torch.diagonal(chol_q, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace + mahalanobis - k + logdet_p - logdet_q)


def _check_full_gaussian_args(
    mu_q: Tensor, cov_q: Tensor, mu_p: Tensor, cov_p: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The arguments as tensors, after checking that they are finite floating-point tensors of
    one dtype and device, the means (..., K) and the covariances (..., K, K), one K."""
    named = {"mu_q": mu_q, "cov_q": cov_q, "mu_p": mu_p, "cov_p": cov_p}
    named = {name: as_tensor(value, name) for name, value in named.items()}
    for name, value in named.items():
        check_float(value, name)
    check_same_dtype_and_device(**named)
    mu_q, cov_q, mu_p, cov_p = named.values()
    for name, mu, cov in (("q", mu_q, cov_q), ("p", mu_p, cov_p)):
        if cov.dim() < 2 or cov.shape[-1] != cov.shape[-2]:
            raise ValueError(
                f"cov_{name} must have shape (..., K, K), got {tuple(cov.shape)}; "
                "for a diagonal covariance use kl_diag_gaussians"
            )
        if mu.shape[-1:] != cov.shape[-1:]:
            raise ValueError(
                f"mu_{name} has K={mu.shape[-1] if mu.dim() else 'none'} but cov_{name} is "
                f"{cov.shape[-1]}x{cov.shape[-1]}; mu must have shape (..., K) matching (..., K, K)"
            )
    if mu_q.shape[-1] != mu_p.shape[-1]:
        raise ValueError(
            f"q and p must have the same dimension K, got {mu_q.shape[-1]} and {mu_p.shape[-1]}"
        )
    for name, value in named.items():
        try:
            check_all_finite(value, name)
        except ValueError as error:
            if name.startswith("cov"):  # the wording the Cholesky factorization's error uses
                raise ValueError(f"{name} is not symmetric positive definite: {error}") from None
            raise
    return mu_q, cov_q, mu_p, cov_p


def _cholesky(cov: Tensor, name: str) -> Tensor:
    """Lower Cholesky factor of a batch of covariances, after checking they are symmetric.

    ``cholesky_ex`` reads only the lower triangle, so an asymmetric matrix (a Cholesky factor
    or a general ``A`` passed by mistake) would otherwise give a silently wrong KL. Asymmetry
    at rounding level (``sqrt(eps)`` times the largest entry) is accepted.
    """
    scale = cov.abs().amax((-2, -1), keepdim=True)
    tol = torch.finfo(cov.dtype).eps ** 0.5 if cov.is_floating_point() else 0.0
    if bool(((cov - cov.mT).abs() > tol * scale).any()):
        raise ValueError(
            f"{name} is not symmetric (cov != cov.mT); a covariance matrix must be symmetric: "
            "pass A @ A.mT + eps * I, not a Cholesky factor or a general matrix A"
        )
    chol, info = torch.linalg.cholesky_ex(cov)
    if bool((info > 0).any()):
        raise ValueError(
            f"{name} is not symmetric positive definite (its Cholesky factorization failed); "
            "pass a covariance such as A @ A.mT + eps * I"
        )
    return chol


def _broadcast_batch(**batch_shapes: torch.Size) -> torch.Size:
    """The common batch shape of the means and covariances, or a ValueError that names them."""
    try:
        return torch.broadcast_shapes(*batch_shapes.values())
    except RuntimeError as err:
        shapes = {name: tuple(shape) for name, shape in batch_shapes.items()}
        raise ValueError(
            f"kl_full_gaussians: batch shapes {shapes} do not broadcast together; "
            "give means shape (..., K) and covariances shape (..., K, K) with matching (...)"
        ) from err


def _check_broadcast(func: str, *, finite: bool = False, **tensors: Tensor) -> tuple[Tensor, ...]:
    """The arguments as tensors of one dtype and device with a last dimension K, after
    checking that their shapes broadcast (and, if ``finite``, that they hold no NaN or inf:
    the VAE's KL term lets NaN from a diverged encoder through, for the training loop)."""
    tensors = {name: as_tensor(value, name) for name, value in tensors.items()}
    check_same_dtype_and_device(**tensors)
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if any(len(s) == 0 for s in shapes.values()):
        raise ValueError(f"{func}: every argument needs a last (event) dimension K, got {shapes}")
    try:
        torch.broadcast_shapes(*shapes.values())
    except RuntimeError as err:
        raise ValueError(
            f"{func}: shapes {shapes} do not broadcast together; give every argument shape (..., K)"
        ) from err
    if finite:
        for name, value in tensors.items():
            check_all_finite(value, name)
    return tuple(tensors.values())
