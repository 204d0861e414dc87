r"""The k-nearest-neighbour estimator of KL(P || Q) from samples of P and Q.

Wang, Kulkarni and Verdú (2009): with :math:`x_1, \dots, x_n \sim P` and
:math:`y_1, \dots, y_m \sim Q` in :math:`\mathbb R^d`, let :math:`\rho_k(i)` be the distance
from :math:`x_i` to its k-th nearest neighbour among the other :math:`x`'s and
:math:`\nu_k(i)` the distance from :math:`x_i` to its k-th nearest neighbour among the
:math:`y`'s. Then

.. math::

    \widehat{\mathrm{KL}}(P \,\|\, Q) = \frac{d}{n} \sum_{i=1}^n \log\frac{\nu_k(i)}{\rho_k(i)}
    + \log\frac{m}{n - 1},

which converges to :math:`\mathrm{KL}(P \,\|\, Q)` as :math:`n, m \to \infty` with k fixed.
This is the estimator of the ITE toolbox's ``BDKL_KnnK`` (Euclidean distances, k = 3 by
default), computed here with ``scipy.spatial.cKDTree``.

The idea: :math:`k / ((n-1)\, V_d \rho_k^d)` and :math:`k / (m\, V_d \nu_k^d)` are k-NN density
estimates of :math:`p(x_i)` and :math:`q(x_i)` (:math:`V_d` is the volume of the unit ball),
so the average of :math:`\log` of their ratio estimates :math:`\mathbb E_P[\log p/q]`; the
ball volumes and the k's cancel.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from vicourse._checks import positive_count


def _as_samples(x: ArrayLike | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape (number of samples, dimension) with both > 0, got "
            f"{x.shape}; for one-dimensional samples use x.reshape(-1, 1)"
        )
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def knn_kl_divergence(
    samples_p: ArrayLike | torch.Tensor, samples_q: ArrayLike | torch.Tensor, k: int = 3
) -> float:
    r"""The k-NN estimate of :math:`\mathrm{KL}(P \,\|\, Q)` (Wang, Kulkarni & Verdú 2009).

    Args:
        samples_p: draws from P, shape ``(n, d)`` with ``n >= k + 1`` (numpy or torch).
        samples_q: draws from Q, shape ``(m, d)`` with ``m >= k``.
        k: which neighbour, k >= 1 (ITE's default is 3).

    Returns:
        The estimate in nats (it can be negative: it is not a divergence itself).

    Raises:
        ValueError: on bad shapes, or when a k-th neighbour distance is zero. Zero distances
            come from repeated points, e.g. an MCMC chain that stays put after a rejection,
            or rounding; the logarithm is then infinite. Remove the duplicates, add jitter
            far below the scale of the distribution, or use a larger k.
    """
    k = positive_count(k, "k")
    x = _as_samples(samples_p, "samples_p")
    y = _as_samples(samples_q, "samples_q")
    n, d = x.shape
    m = y.shape[0]
    if y.shape[1] != d:
        raise ValueError(f"samples_p and samples_q must have the same dimension, got {d} and "
                         f"{y.shape[1]}")
    if n < k + 1 or m < k:
        raise ValueError(f"need at least k + 1 = {k + 1} samples of P and k = {k} of Q, got "
                         f"n = {n} and m = {m}")
    # The nearest point to x_i among the x's is x_i itself (distance 0): ask for k + 1.
    rho = cKDTree(x).query(x, k=[k + 1])[0][:, 0]
    nu = cKDTree(y).query(x, k=[k])[0][:, 0]
    for dist, where in ((rho, "samples_p"), (nu, "samples_q")):
        zero = int((dist == 0).sum())
        if zero:
            raise ValueError(
                f"the k-th nearest-neighbour distance is zero for {zero} of {n} points in "
                f"{where}: a point of samples_p has k = {k} or more exact copies in {where} "
                "(repeated points, e.g. an MCMC chain that rejected proposals), so "
                "log(distance) is infinite; remove duplicates, add tiny jitter, or raise k"
            )
    return float(d * np.mean(np.log(nu / rho)) + np.log(m / (n - 1)))
