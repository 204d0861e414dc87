"""Tests of the k-nearest-neighbour KL estimator (vicourse.objectives.knn_kl).

Oracles: the closed-form KL between Gaussians (``torch.distributions.kl_divergence``), checked
within a statistical tolerance from seeded samples; a brute-force evaluation of the formula
with all pairwise distances (``scipy.spatial.distance.cdist``); and the invariances the
estimator has exactly (translation, rotation and common scaling of both samples).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from torch.distributions import MultivariateNormal, kl_divergence

from vicourse.objectives.knn_kl import knn_kl_divergence

PROPERTY = settings(max_examples=30, deadline=None)


def brute_force(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """The Wang-Kulkarni-Verdu formula with every distance computed."""
    n, d = x.shape
    within = cdist(x, x)
    np.fill_diagonal(within, np.inf)  # exclude x_i itself
    rho = np.sort(within, axis=1)[:, k - 1]
    nu = np.sort(cdist(x, y), axis=1)[:, k - 1]
    return d * np.mean(np.log(nu / rho)) + math.log(len(y) / (n - 1))


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("d", [1, 2, 4])
def test_matches_the_formula_computed_by_brute_force(k, d):
    rng = np.random.default_rng(k + 10 * d)
    x, y = rng.normal(size=(300, d)), 1.3 * rng.normal(size=(250, d)) + 0.4
    assert knn_kl_divergence(x, y, k=k) == pytest.approx(brute_force(x, y, k), rel=1e-12)


def gaussian_pair(d: int, seed: int):
    """Random Gaussians P and Q in d dimensions, Q wider than P in every direction.

    Where P has mass in Q's far tails, few samples of Q land there and the estimator is
    badly biased at any practical sample size; these pairs avoid that regime."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, d, d, generator=g, dtype=torch.float64)
    cov_p = a @ a.T / d + 0.5 * torch.eye(d, dtype=torch.float64)
    p = MultivariateNormal(torch.zeros(d, dtype=torch.float64), covariance_matrix=cov_p)
    q = MultivariateNormal(0.5 * torch.randn(d, generator=g, dtype=torch.float64),
                           covariance_matrix=1.5 * cov_p + b @ b.T / d)
    return p, q


@pytest.mark.parametrize("d, seed", [(1, 0), (2, 1), (2, 2), (3, 3)])
def test_converges_to_the_closed_form_gaussian_kl(d, seed):
    """With n = m = 20,000 the estimate is within 0.05 nats (bias and spread about 0.01)."""
    p, q = gaussian_pair(d, seed)
    exact = kl_divergence(p, q).item()
    torch.manual_seed(seed)
    estimates = [knn_kl_divergence(p.sample((20_000,)), q.sample((20_000,))) for _ in range(3)]
    assert abs(np.mean(estimates) - exact) < 0.05, (estimates, exact)
    assert np.std(estimates) < 0.05


def test_is_near_zero_for_the_same_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(5)
    same = [knn_kl_divergence(rng.normal(size=(5000, 2)), rng.normal(size=(5000, 2)))
            for _ in range(5)]
    assert abs(np.mean(same)) < 0.02
    shifts = (0.5, 1.0, 1.5)
    shifted = [knn_kl_divergence(rng.normal(size=(5000, 2)), rng.normal(size=(5000, 2))
                                 + [shift, 0.0]) for shift in shifts]
    exact = [shift**2 / 2 for shift in shifts]  # KL(N(0, I) || N(s e_1, I)) = s^2 / 2
    np.testing.assert_allclose(shifted, exact, atol=0.1)
    assert shifted[0] < shifted[1] < shifted[2]


@PROPERTY
@given(
    shift=st.lists(st.floats(-100, 100), min_size=2, max_size=2),
    angle=st.floats(0, 2 * math.pi),
    scale=st.floats(1e-3, 1e3),
)
def test_is_invariant_to_moving_both_samples_rigidly_and_scaling(shift, angle, scale):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 2)), rng.normal(size=(150, 2)) * [2.0, 0.5]
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    move = lambda v: scale * v @ rotation.T + shift  # noqa: E731
    assert knn_kl_divergence(move(x), move(y)) == pytest.approx(knn_kl_divergence(x, y),
                                                                abs=1e-9)


def test_accepts_numpy_and_torch_alike():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(100, 2)), rng.normal(size=(120, 2))
    from_torch = knn_kl_divergence(torch.from_numpy(x).float(), torch.from_numpy(y).float())
    assert from_torch == pytest.approx(knn_kl_divergence(x, y), abs=1e-5)


# ----------------------------------------------------------------------------- bad input


def test_duplicate_points_raise_a_clear_error():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(100, 2)), rng.normal(size=(100, 2))
    chain = np.repeat(x, 4, axis=0)  # an MCMC chain that rejected three proposals in a row
    with pytest.raises(ValueError, match=r"distance is zero for 400 of 400 points in samples_p"):
        knn_kl_divergence(chain, y, k=3)
    knn_kl_divergence(np.repeat(x, 2, axis=0), y, k=3)  # two copies are fine for k = 3
    y_with_copies = np.concatenate([y, np.repeat(x[:1], 3, axis=0)])
    with pytest.raises(ValueError, match=r"zero for 1 of 100 points in samples_q"):
        knn_kl_divergence(x, y_with_copies, k=3)


def test_bad_shapes_and_values_raise_clear_errors():
    x = np.zeros((10, 2)) + np.arange(10)[:, None]
    with pytest.raises(ValueError, match=r"shape \(number of samples, dimension\)"):
        knn_kl_divergence(np.arange(10.0), x)
    with pytest.raises(ValueError, match="same dimension, got 2 and 3"):
        knn_kl_divergence(x, np.ones((10, 3)))
    with pytest.raises(ValueError, match="need at least k \\+ 1 = 4 samples of P"):
        knn_kl_divergence(x[:3], x)
    with pytest.raises(ValueError, match="NaN or infinite"):
        knn_kl_divergence(x, np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        knn_kl_divergence(x, x, k=0)
