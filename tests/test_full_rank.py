"""The full-rank Gaussian against torch.distributions.MultivariateNormal(scale_tril)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal

from vicourse.families.full_rank import (
    full_rank_entropy,
    full_rank_log_density,
    full_rank_sample,
    scale_tril,
)

F64 = torch.float64


@settings(max_examples=25, deadline=None)
@given(dim=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_log_density_and_entropy_match_multivariate_normal(dim, seed):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(dim, generator=g, dtype=F64)
    L = scale_tril(torch.randn(dim, dim, generator=g, dtype=F64))
    oracle = MultivariateNormal(mean, scale_tril=L)
    z = torch.randn(6, dim, generator=g, dtype=F64)
    torch.testing.assert_close(full_rank_log_density(z, mean, L), oracle.log_prob(z))
    torch.testing.assert_close(full_rank_entropy(L), oracle.entropy())
    eps = torch.randn(6, dim, generator=g, dtype=F64)
    torch.testing.assert_close(full_rank_sample(mean, L, eps), mean + eps @ L.T)


def test_scale_tril_is_lower_with_positive_diagonal():
    L = scale_tril(torch.randn(4, 4, dtype=F64))
    assert torch.equal(L, L.tril()) and bool((L.diagonal() > 0).all())


def test_bad_scale_tril():
    with pytest.raises(ValueError, match="lower triangular"):
        full_rank_entropy(torch.ones(2, 2, dtype=F64))
    with pytest.raises(ValueError, match="positive diagonal"):
        full_rank_entropy(-torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="square"):
        full_rank_entropy(torch.ones(2, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"\(\.\.\., S, D\)"):
        full_rank_sample(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64),
                         torch.zeros(3, dtype=F64))
