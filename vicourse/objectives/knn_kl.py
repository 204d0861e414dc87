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
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of shape (number of samples, dimension), got "
                        f"{type(x).__name__}")
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of numbers of shape (number of samples, "
                        f"dimension): {error}") from None
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"{name} must have shape (number of samples, dimension) with both > 0, got "
            f"{x.shape}; for one-dimensional samples use x.reshape(-1, 1)"
        )
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; remove them first")
    return x


def knn_kl_divergence(
    samples_p: ArrayLike | torch.Tensor, samples_q: ArrayLike | torch.Tensor, k: int = 3
) -> float:
    """The k-NN estimate of KL(P || Q) in nats (Wang, Kulkarni & Verdú 2009); can be negative.

    samples_p: (n, d), n >= k + 1; samples_q: (m, d), m >= k; numpy or torch -> float
    """
    x, y, k = _check_knn_args(samples_p, samples_q, k)  # float64 arrays (n, d), (m, d); int
    n, d = x.shape
    m = y.shape[0]
    # The nearest point to x_i among the x's is x_i itself (distance 0): ask for k + 1.
    rho = cKDTree(x).query(x, k=[k + 1])[0][:, 0]  # (n,)
    nu = cKDTree(y).query(x, k=[k])[0][:, 0]  # (n,)
    _check_distances(x, y, rho, nu, k)
    return float(d * np.mean(np.log(nu / rho)) + np.log(m / (n - 1)))


def _check_knn_args(
    samples_p: ArrayLike | torch.Tensor, samples_q: ArrayLike | torch.Tensor, k: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """The samples as float64 arrays and k as an int, after checking shapes and sizes."""
    k = positive_count(k, "k")
    x = _as_samples(samples_p, "samples_p")
    y = _as_samples(samples_q, "samples_q")
    n, d = x.shape
    m = y.shape[0]
    if y.shape[1] != d:
        raise ValueError(f"samples_p and samples_q must have the same dimension, got {d} and "
                         f"{y.shape[1]}; samples_q must have shape (m, {d})")
    if n < k + 1 or m < k:
        raise ValueError(f"need at least k + 1 = {k + 1} samples of P (samples_p) and k = {k} "
                         f"of Q (samples_q), got n = {n} and m = {m}")
    return x, y, k


# Below this distance the squared distances that cKDTree sums are subnormal floats (they lose
# digits, down to 0); above the other, they overflow to inf.
_TINY_DISTANCE = float(np.sqrt(np.finfo(np.float64).tiny))  # about 1.5e-154


def _check_distances(
    x: np.ndarray, y: np.ndarray, rho: np.ndarray, nu: np.ndarray, k: int
) -> None:
    """Raise ValueError if a k-th neighbour distance is zero (repeated points: log is -inf),
    underflows (data at a scale near 1e-154 or below) or overflows (near 1e154 or above)."""
    n = len(rho)
    for dist, where, points, rank in ((rho, "samples_p", x, k + 1), (nu, "samples_q", y, k)):
        if np.isinf(dist).any():
            raise ValueError(
                f"the k-th nearest-neighbour distances overflow (inf) for "
                f"{int(np.isinf(dist).sum())} of {n} points of samples_p (neighbours in "
                f"{where}): the samples are at a scale of about {_scale(x, y):.1e}, where "
                "squared distances exceed the float64 range; divide both samples by the same "
                "constant (the estimate does not change under a common scaling), e.g. by their "
                "largest |value|"
            )
        zero = dist == 0
        if zero.any():
            index = cKDTree(points).query(x[zero], k=[rank])[1][:, 0]
            if (points[index] == x[zero]).all():  # true copies
                raise ValueError(
                    f"the k-th nearest-neighbour distance is zero for {int(zero.sum())} of {n} "
                    f"points in {where}: a point of samples_p has k = {k} or more exact copies "
                    f"in {where} (repeated points, e.g. an MCMC chain that rejected proposals), "
                    "so log(distance) is infinite; remove duplicates, add tiny jitter, or raise k"
                )
        small = dist < _TINY_DISTANCE
        if small.any():
            raise ValueError(
                f"the k-th nearest-neighbour distances underflow for {int(small.sum())} of {n} "
                f"points of samples_p (neighbours in {where}; below {_TINY_DISTANCE:.1e}, "
                f"{int(zero.sum())} of them rounded to 0): the points are distinct, but the "
                f"samples are at a scale of about {_scale(x, y):.1e}, where squared distances "
                "are below the float64 range; multiply both samples by the same constant (the "
                "estimate does not change under a common scaling), e.g. by 1 / their largest "
                "|value|"
            )


def _scale(x: np.ndarray, y: np.ndarray) -> float:
    """The largest |value| of the samples, to report their scale."""
    return float(max(np.abs(x).max(), np.abs(y).max()))
