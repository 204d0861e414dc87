"""Tests of vicourse.objectives.gaussian_kl against torch.distributions and Monte Carlo.

Oracles: ``torch.distributions.kl_divergence`` (``Independent(Normal)`` for diagonal
Gaussians, ``MultivariateNormal`` for full covariances), and a seeded Monte Carlo estimate
of :math:`\\mathbb E_q[\\log q(z) - \\log p(z)]` checked within a few standard errors.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from vicourse.objectives.gaussian_kl import (
    kl_diag_gaussian_std_normal,
    kl_diag_gaussians,
    kl_full_gaussians,
)

F64 = torch.float64
PROPERTY = settings(max_examples=40, deadline=None)


def diag_normal(mu: torch.Tensor, logvar: torch.Tensor) -> Independent:
    """N(mu, diag exp(logvar)) as a torch distribution with event shape (K,)."""
    mu, logvar = torch.broadcast_tensors(mu, logvar)
    return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)


def random_spd(*shape: int, generator: torch.Generator) -> torch.Tensor:
    """Random symmetric positive-definite matrices of shape (*batch, K, K), float64."""
    k = shape[-1]
    a = torch.randn(*shape, k, generator=generator, dtype=F64) / math.sqrt(k)
    return a @ a.mT + 0.3 * torch.eye(k, dtype=F64)


# Shapes (mu_q, logvar_q, mu_p, logvar_p) that broadcast to a batch, with the event K last.
DIAG_SHAPES = [
    ((), (), (), ()),
    ((3,), (3,), (3,), (3,)),
    ((4, 1), (1, 3), (3,), ()),
    ((2, 1, 1), (1,), (5,), (2, 5)),
]


@pytest.mark.parametrize("k", [1, 2, 7, 50])
@pytest.mark.parametrize("batch_shapes", DIAG_SHAPES)
def test_kl_diag_gaussians_matches_torch(k, batch_shapes):
    g = torch.Generator().manual_seed(k)
    mu_q, logvar_q, mu_p, logvar_p = (
        torch.randn(*shape, k, generator=g, dtype=F64) * scale
        for shape, scale in zip(batch_shapes, (2.0, 1.5, 2.0, 1.5), strict=True)
    )
    expected = kl_divergence(diag_normal(mu_q, logvar_q), diag_normal(mu_p, logvar_p))
    got = kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p)
    assert got.shape == torch.broadcast_shapes(*batch_shapes)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k", [1, 3, 50])
@pytest.mark.parametrize("batch_shapes", [((), ()), ((6,), (6,)), ((4, 1), (5,))])
def test_kl_diag_gaussian_std_normal_matches_torch(k, batch_shapes):
    g = torch.Generator().manual_seed(100 + k)
    mu = torch.randn(*batch_shapes[0], k, generator=g, dtype=F64) * 2
    logvar = torch.randn(*batch_shapes[1], k, generator=g, dtype=F64) * 2
    standard = Independent(Normal(torch.zeros(k, dtype=F64), torch.ones(k, dtype=F64)), 1)
    expected = kl_divergence(diag_normal(mu, logvar), standard)
    got = kl_diag_gaussian_std_normal(mu, logvar)
    assert got.shape == torch.broadcast_shapes(*batch_shapes)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


FULL_SHAPES = [
    ((), (), (), ()),
    ((3,), (3,), (3,), (3,)),
    ((), (2, 1), (2, 3), ()),
    ((4, 1), (3,), (), (4, 3)),
]


@pytest.mark.parametrize("k", [1, 2, 5, 50])
@pytest.mark.parametrize("batch_shapes", FULL_SHAPES)
def test_kl_full_gaussians_matches_torch(k, batch_shapes):
    g = torch.Generator().manual_seed(200 + k)
    shape_mq, shape_cq, shape_mp, shape_cp = batch_shapes
    mu_q = torch.randn(*shape_mq, k, generator=g, dtype=F64)
    cov_q = random_spd(*shape_cq, k, generator=g)
    mu_p = torch.randn(*shape_mp, k, generator=g, dtype=F64)
    cov_p = random_spd(*shape_cp, k, generator=g)
    q = MultivariateNormal(mu_q, covariance_matrix=cov_q)
    p = MultivariateNormal(mu_p, covariance_matrix=cov_p)
    got = kl_full_gaussians(mu_q, cov_q, mu_p, cov_p)
    assert got.shape == torch.broadcast_shapes(*batch_shapes)
    torch.testing.assert_close(got, kl_divergence(q, p).expand(got.shape), rtol=1e-9, atol=1e-9)


def monte_carlo_kl(q, p, num_samples: int) -> tuple[float, float]:
    """Mean and standard error of log q(z) - log p(z) over z ~ q (seeded)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        z = q.sample((num_samples,))
    log_ratio = q.log_prob(z) - p.log_prob(z)
    return log_ratio.mean().item(), (log_ratio.std() / math.sqrt(num_samples)).item()


def test_kl_diag_gaussians_matches_monte_carlo():
    mu_q = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    logvar_q = torch.tensor([0.3, -0.7, 0.0], dtype=F64)
    mu_p = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    logvar_p = torch.tensor([0.0, 0.4, -0.2], dtype=F64)
    mean, se = monte_carlo_kl(diag_normal(mu_q, logvar_q), diag_normal(mu_p, logvar_p), 200_000)
    exact = kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p).item()
    assert abs(exact - mean) < 4 * se, (exact, mean, se)


def test_kl_full_gaussians_matches_monte_carlo():
    g = torch.Generator().manual_seed(3)
    mu_q, mu_p = torch.randn(2, 4, generator=g, dtype=F64)
    cov_q, cov_p = random_spd(2, 4, generator=g)
    q = MultivariateNormal(mu_q, covariance_matrix=cov_q)
    p = MultivariateNormal(mu_p, covariance_matrix=cov_p)
    mean, se = monte_carlo_kl(q, p, 200_000)
    exact = kl_full_gaussians(mu_q, cov_q, mu_p, cov_p).item()
    assert abs(exact - mean) < 4 * se, (exact, mean, se)


def test_nearly_equal_variances_keep_precision_in_float32():
    """With d = logvar_q - logvar_p tiny, KL = (e^d - 1 - d)/2 ~ d^2/4 must not round to 0."""
    d = torch.tensor([1e-3, -2e-3, 5e-4], dtype=torch.float32)
    got = kl_diag_gaussians(torch.zeros(3), d, torch.zeros(3), torch.zeros(3))
    d64 = d.double()
    series = 0.5 * (d64**2 / 2 + d64**3 / 6 + d64**4 / 24).sum()
    assert got.dtype == torch.float32
    assert abs(got.item() - series.item()) < 1e-3 * series.item()


# ----------------------------------------------------------------------------- properties

finite = st.floats(-4.0, 4.0, allow_nan=False)


@st.composite
def diag_pairs(draw, max_k: int = 6):
    """(mu_q, logvar_q, mu_p, logvar_p), each float64 of shape (K,)."""
    k = draw(st.integers(1, max_k))
    vectors = [torch.tensor(draw(st.lists(finite, min_size=k, max_size=k)), dtype=F64)
               for _ in range(4)]
    return tuple(vectors)


@st.composite
def spd_matrices(draw, k: int):
    """A float64 SPD matrix A A^T + eps I built from drawn entries of A."""
    entries = draw(st.lists(st.floats(-3.0, 3.0), min_size=k * k, max_size=k * k))
    eps = draw(st.floats(0.05, 2.0))
    a = torch.tensor(entries, dtype=F64).reshape(k, k)
    return a @ a.mT + eps * torch.eye(k, dtype=F64)


@st.composite
def full_pairs(draw, max_k: int = 4):
    k = draw(st.integers(1, max_k))
    mu_q = torch.tensor(draw(st.lists(finite, min_size=k, max_size=k)), dtype=F64)
    mu_p = torch.tensor(draw(st.lists(finite, min_size=k, max_size=k)), dtype=F64)
    return mu_q, draw(spd_matrices(k)), mu_p, draw(spd_matrices(k))


@PROPERTY
@given(diag_pairs())
def test_kl_diag_is_nonnegative(args):
    assert kl_diag_gaussians(*args).item() >= 0.0


@PROPERTY
@given(full_pairs())
def test_kl_full_is_nonnegative(args):
    assert kl_full_gaussians(*args).item() >= -1e-10


@PROPERTY
@given(diag_pairs(), full_pairs())
def test_kl_is_zero_when_q_equals_p(diag, full):
    mu, logvar = diag[0], diag[1]
    assert kl_diag_gaussians(mu, logvar, mu, logvar).item() == 0.0
    assert abs(kl_diag_gaussian_std_normal(torch.zeros_like(mu), torch.zeros_like(mu))) == 0.0
    mu, cov = full[0], full[1]
    assert abs(kl_full_gaussians(mu, cov, mu, cov).item()) < 1e-9


@PROPERTY
@given(diag_pairs(), st.data())
def test_kl_diag_is_positive_when_one_coordinate_differs_clearly(args, data):
    """Shift one mean by >= 0.5 std of p, or one log-variance by >= 0.5: KL is clearly > 0.

    KL(q||p) >= KL of that coordinate alone, which is >= 0.5 * 0.5**2 = 0.125 for the mean
    shift and >= (e^-0.5 + 0.5 - 1) / 2 > 0.05 for the log-variance shift.
    """
    _, _, mu_p, logvar_p = args
    k = mu_p.shape[0]
    i = data.draw(st.integers(0, k - 1))
    sign = data.draw(st.sampled_from([-1.0, 1.0]))
    shift = data.draw(st.floats(0.5, 3.0))
    mu_q, logvar_q = mu_p.clone(), logvar_p.clone()
    if data.draw(st.booleans()):
        mu_q[i] += sign * shift * torch.exp(0.5 * logvar_p[i])
        assert kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p).item() > 0.12
    else:
        logvar_q[i] += sign * shift
        assert kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p).item() > 0.05
    cov_q, cov_p = torch.diag(logvar_q.exp()), torch.diag(logvar_p.exp())
    assert kl_full_gaussians(mu_q, cov_q, mu_p, cov_p).item() > 0.05


extreme_logvar = st.floats(-30.0, 30.0)
large_mean = st.floats(-1e4, 1e4)


@PROPERTY
@given(
    st.sampled_from([torch.float32, torch.float64]),
    st.lists(st.tuples(large_mean, extreme_logvar, large_mean, extreme_logvar),
             min_size=1, max_size=5),
)
def test_kl_is_finite_at_extreme_logvars_and_large_means(dtype, rows):
    """Finite everywhere; the diagonal formulas (expm1(d) - d >= 0 termwise) never go below 0.

    The full-covariance formula cancels K against a trace and two log-determinants, so when
    q is (nearly) p it may come out a rounding error below 0.
    """
    mu_q, logvar_q, mu_p, logvar_p = torch.tensor(rows, dtype=dtype).unbind(-1)
    diagonal = [
        kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p),
        kl_diag_gaussian_std_normal(mu_q, logvar_q),
    ]
    full = kl_full_gaussians(mu_q, torch.diag(logvar_q.exp()), mu_p, torch.diag(logvar_p.exp()))
    rounding = 100 * torch.finfo(dtype).eps * (1 + (logvar_q.abs() + logvar_p.abs()).sum().item())
    for value in [*diagonal, full]:
        assert value.dtype == dtype and torch.isfinite(value), (diagonal, full)
    assert all(value.item() >= 0 for value in diagonal), diagonal
    assert full.item() >= -rounding, full


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("logvar", [-30.0, 30.0])
def test_kl_is_finite_at_the_corners(dtype, logvar):
    """The exact corners of the range: both log-variances at +-30, means 1e4 apart."""
    k = 3
    lv = torch.full((k,), logvar, dtype=dtype)
    far = torch.full((k,), 1e4, dtype=dtype)
    for value in (
        kl_diag_gaussians(far, lv, -far, -lv),
        kl_diag_gaussians(far, -lv, -far, lv),
        kl_diag_gaussian_std_normal(far, lv),
    ):
        assert torch.isfinite(value) and value > 0


@PROPERTY
@given(diag_pairs())
def test_std_normal_kl_is_diag_kl_with_standard_p(args):
    mu, logvar, _, _ = args
    zeros = torch.zeros_like(mu)
    torch.testing.assert_close(
        kl_diag_gaussian_std_normal(mu, logvar),
        kl_diag_gaussians(mu, logvar, zeros, zeros),
        rtol=1e-12,
        atol=1e-12,
    )


@PROPERTY
@given(diag_pairs())
def test_full_kl_agrees_with_diag_kl_for_diagonal_covariances(args):
    mu_q, logvar_q, mu_p, logvar_p = args
    full = kl_full_gaussians(mu_q, torch.diag(logvar_q.exp()), mu_p, torch.diag(logvar_p.exp()))
    torch.testing.assert_close(
        full, kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p), rtol=1e-9, atol=1e-9
    )


def test_kl_has_gradients_with_respect_to_all_parameters():
    g = torch.Generator().manual_seed(5)
    params = [torch.randn(3, generator=g, dtype=F64).requires_grad_() for _ in range(4)]
    kl_diag_gaussians(*params).backward()
    for param in params:
        assert param.grad is not None and torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- errors


def test_diag_kl_rejects_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"kl_diag_gaussians: shapes .* do not broadcast"):
        kl_diag_gaussians(torch.zeros(3), torch.zeros(3), torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"kl_diag_gaussian_std_normal: shapes .*\(2, 3\)"):
        kl_diag_gaussian_std_normal(torch.zeros(2, 3), torch.zeros(2, 4))


def test_diag_kl_rejects_scalars_without_an_event_dimension():
    with pytest.raises(ValueError, match=r"last \(event\) dimension K"):
        kl_diag_gaussians(torch.tensor(0.0), torch.zeros(1), torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match=r"last \(event\) dimension K"):
        kl_diag_gaussian_std_normal(torch.tensor(0.0), torch.tensor(0.0))


def full_args(k: int = 2):
    return torch.zeros(k), torch.eye(k), torch.zeros(k), torch.eye(k)


def test_full_kl_rejects_a_covariance_that_is_not_a_square_matrix():
    mu_q, _, mu_p, cov_p = full_args(3)
    with pytest.raises(ValueError, match=r"cov_q must have shape \(\.\.\., K, K\), got \(3, 2\)"):
        kl_full_gaussians(mu_q, torch.ones(3, 2), mu_p, cov_p)
    with pytest.raises(ValueError, match=r"cov_p must have shape .*got \(3,\).*kl_diag_gaussians"):
        kl_full_gaussians(mu_q, torch.eye(3), mu_p, torch.ones(3))


def test_full_kl_rejects_a_mean_that_does_not_match_its_covariance():
    mu_q, cov_q, _, cov_p = full_args(2)
    with pytest.raises(ValueError, match=r"mu_p has K=3 but cov_p is 2x2"):
        kl_full_gaussians(mu_q, cov_q, torch.zeros(3), cov_p)
    with pytest.raises(ValueError, match=r"mu_q has K=none"):
        kl_full_gaussians(torch.tensor(0.0), cov_q, mu_q, cov_p)


def test_full_kl_rejects_q_and_p_of_different_dimensions():
    with pytest.raises(ValueError, match=r"same dimension K, got 2 and 3"):
        kl_full_gaussians(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3))


def test_full_kl_rejects_batches_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"batch shapes .* do not broadcast"):
        kl_full_gaussians(torch.zeros(3, 2), torch.eye(2), torch.zeros(4, 2), torch.eye(2))


@pytest.mark.parametrize("which", ["cov_q", "cov_p"])
@pytest.mark.parametrize(
    "bad",
    [
        torch.tensor([[1.0, 2.0], [2.0, 1.0]]),  # eigenvalues 3 and -1
        torch.zeros(2, 2),
        -torch.eye(2),
        torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]),
    ],
)
def test_full_kl_rejects_covariances_that_are_not_positive_definite(which, bad):
    args = dict(zip(["mu_q", "cov_q", "mu_p", "cov_p"], full_args(2), strict=True))
    args[which] = torch.stack([torch.eye(2), bad])  # one bad matrix in a batch is enough
    with pytest.raises(ValueError, match=rf"{which} is not symmetric positive definite"):
        kl_full_gaussians(**args)


@pytest.mark.parametrize("which", ["cov_q", "cov_p"])
def test_full_kl_rejects_asymmetric_covariances(which):
    """A Cholesky factor passed as a covariance must not be read as its lower triangle."""
    args = dict(zip(["mu_q", "cov_q", "mu_p", "cov_p"], full_args(2), strict=True))
    args[which] = torch.tensor([[2.0, 1.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match=rf"{which} is not symmetric"):
        kl_full_gaussians(**args)


def test_full_kl_accepts_rounding_level_asymmetry():
    cov = torch.tensor([[2.0, 0.5], [0.5 + 1e-12, 1.0]], dtype=F64)
    mu = torch.zeros(2, dtype=F64)
    assert abs(kl_full_gaussians(mu, cov, mu, cov).item()) < 1e-12
