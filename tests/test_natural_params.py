"""Tests of vicourse.conjugate.natural_params: q(mu) = N(m, s^2 I_D) as an exponential family.

Oracles: torch.distributions.Normal's log density must equal
-D/2 log(2 pi) + eta . t(mu) - A(eta); the gradient of A (autograd) must be the mean of
t(mu) = (mu, |mu|^2), and its Hessian (torch.func.hessian) the covariance of t(mu), both in
closed form and by Monte Carlo.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal
from torch.func import hessian

from vicourse.conjugate.natural_params import (
    log_normalizer,
    mean_var_from_natural,
    natural_from_mean_var,
)

F64 = torch.float64
PROPERTY = settings(max_examples=40, deadline=None)
pytestmark = pytest.mark.usefixtures("one_torch_thread", "float64")


@pytest.fixture
def float64():
    """Float64 as torch's default dtype for one test, restored after."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    yield
    torch.set_default_dtype(default)


def random_q(k: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 3 * torch.randn(k, d, generator=g), torch.exp(torch.randn(k, generator=g))


@PROPERTY
@given(k=st.integers(1, 5), d=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_round_trip(k, d, seed):
    m, s2 = random_q(k, d, seed)
    m_back, s2_back = mean_var_from_natural(*natural_from_mean_var(m, s2))
    assert torch.allclose(m_back, m, rtol=1e-12, atol=1e-12)
    assert torch.allclose(s2_back, s2, rtol=1e-12)


@PROPERTY
@given(k=st.integers(1, 4), d=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_exponential_family_density_matches_torch(k, d, seed):
    m, s2 = random_q(k, d, seed)
    eta1, eta2 = natural_from_mean_var(m, s2)
    mu = m + 2 * torch.randn(7, k, d, generator=torch.Generator().manual_seed(seed))
    log_q = -0.5 * d * math.log(2 * math.pi) + (eta1 * mu).sum(-1) + eta2 * (mu * mu).sum(-1)
    log_q = log_q - log_normalizer(eta1, eta2)
    expected = Normal(m, s2.sqrt()[:, None].expand_as(m)).log_prob(mu).sum(-1)
    assert torch.allclose(log_q, expected, rtol=1e-10, atol=1e-10)


def stacked_log_normalizer(flat: torch.Tensor, k: int, d: int) -> torch.Tensor:
    """sum_k A(eta_k) as a function of the flat vector (eta1 (K*D), eta2 (K))."""
    return log_normalizer(flat[: k * d].reshape(k, d), flat[k * d :]).sum()


def test_gradient_and_hessian_of_a_are_the_moments_of_t():
    k, d = 2, 3
    m, s2 = random_q(k, d, seed=1)
    eta1, eta2 = natural_from_mean_var(m, s2)
    flat = torch.cat([eta1.reshape(-1), eta2]).requires_grad_()
    grad = torch.autograd.grad(stacked_log_normalizer(flat, k, d), flat)[0]
    assert torch.allclose(grad[: k * d].reshape(k, d), m, rtol=1e-12)
    assert torch.allclose(grad[k * d :], (m * m).sum(-1) + d * s2, rtol=1e-12)
    fisher = hessian(lambda v: stacked_log_normalizer(v, k, d))(flat.detach())
    # closed form: Cov(mu) = s2 I, Cov(mu, |mu|^2) = 2 s2 m, Var |mu|^2 = 2 D s2^2 + 4 s2 |m|^2
    expected = torch.zeros(k * d + k, k * d + k)
    for j in range(k):
        block = slice(j * d, (j + 1) * d)
        expected[block, block] = s2[j] * torch.eye(d)
        expected[block, k * d + j] = expected[k * d + j, block] = 2 * s2[j] * m[j]
        expected[k * d + j, k * d + j] = 2 * d * s2[j] ** 2 + 4 * s2[j] * (m[j] ** 2).sum()
    assert torch.allclose(fisher, expected, rtol=1e-10, atol=1e-10)
    torch.manual_seed(0)
    mu = Normal(m, s2.sqrt()[:, None].expand_as(m)).sample((400_000,))  # (S, K, D)
    stats = torch.cat([mu.reshape(len(mu), -1), (mu * mu).sum(-1)], 1)  # (S, K*D + K)
    assert torch.allclose(stats.T.cov(), fisher, rtol=0.05, atol=0.05 * fisher.abs().max())


def test_bad_arguments_say_what_to_pass():
    m, s2 = random_q(3, 2, seed=2)
    eta1, eta2 = natural_from_mean_var(m, s2)
    with pytest.raises(ValueError, match=r"eta2 = -1 / \(2 s2\) must be < 0"):
        mean_var_from_natural(eta1, -eta2)
    with pytest.raises(ValueError, match=r"log_normalizer: eta2 must have shape \(K\) with "
                                         r"K = 3 \(from eta1\), got \(2,\)"):
        log_normalizer(eta1, eta2[:2])
    with pytest.raises(ValueError, match="the variances s2 must be > 0"):
        natural_from_mean_var(m, torch.zeros(3))
    with pytest.raises(ValueError, match=r"m must have shape \(K, D\), got \(3,\)"):
        natural_from_mean_var(m[:, 0], s2)
