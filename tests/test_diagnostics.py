"""Tests of the MCMC diagnostics (vicourse.mcmc.diagnostics).

Oracles: ArviZ's ``ess`` and ``rhat`` (skipped where ArviZ is not installed), the closed-form
autocorrelation time (1 + phi) / (1 - phi) of an AR(1) chain, a direct sum for the
autocovariance, and ``scipy.stats`` for the rank normalization.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from vicourse.mcmc.diagnostics import (
    autocovariance,
    effective_sample_size,
    rank_normalize,
    split_chains,
    split_rhat,
)

F64 = torch.float64
PROPERTY = settings(max_examples=25, deadline=None)


def ar1(phi: float, num_draws: int, num_chains: int, seed: int = 0) -> torch.Tensor:
    """Stationary AR(1) chains x_i = phi x_{i-1} + sqrt(1 - phi^2) e_i, shape (N, C)."""
    rng = np.random.default_rng(seed)
    x = np.empty((num_draws, num_chains))
    x[0] = rng.standard_normal(num_chains)
    noise = np.sqrt(1 - phi**2) * rng.standard_normal((num_draws, num_chains))
    for i in range(1, num_draws):
        x[i] = phi * x[i - 1] + noise[i]
    return torch.tensor(x)


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9, -0.4])
def test_ess_of_an_ar1_chain_matches_the_closed_form(phi):
    draws = ar1(phi, 20_000, 4, seed=1)
    expected = draws.numel() * (1 - phi) / (1 + phi)
    assert effective_sample_size(draws).item() == pytest.approx(expected, rel=0.1)


def test_ess_of_independent_draws_is_about_the_number_of_draws():
    draws = torch.randn(2000, 8, 3, dtype=F64)
    ess = effective_sample_size(draws)
    assert ess.shape == (3,)
    assert ((ess / draws[..., 0].numel() - 1).abs() < 0.1).all(), ess


def test_rhat_is_near_one_for_mixed_chains_and_large_for_stuck_ones():
    draws = ar1(0.5, 1000, 4, seed=2)
    assert split_rhat(draws).item() == pytest.approx(1.0, abs=0.01)
    shifted = draws + torch.tensor([0.0, 0.0, 0.0, 2.0], dtype=F64)  # one chain elsewhere
    assert split_rhat(shifted).item() > 1.2
    drifting = draws + torch.linspace(0, 3, 1000, dtype=F64)[:, None]  # halves differ
    assert split_rhat(drifting).item() > 1.2
    wider = draws * torch.tensor([1.0, 1.0, 1.0, 4.0], dtype=F64)  # same mean, wider
    assert split_rhat(wider, rank_normalize_draws=True) > split_rhat(wider) + 0.05


def test_quantities_are_diagnosed_separately():
    draws = torch.stack([ar1(0.2, 500, 3, seed=3), ar1(0.8, 500, 3, seed=4)], dim=-1)
    ess, rhat = effective_sample_size(draws), split_rhat(draws)
    assert ess.shape == rhat.shape == (2,)
    for k in range(2):
        assert ess[k] == effective_sample_size(draws[..., k])
        assert rhat[k] == split_rhat(draws[..., k])
    assert ess[0] > 2 * ess[1]


def test_autocovariance_is_the_biased_sum():
    x = torch.randn(50, 3, dtype=F64)
    centred = x - x.mean(0)
    direct = torch.stack([(centred[: 50 - t] * centred[t:]).sum(0) / 50 for t in range(50)])
    torch.testing.assert_close(autocovariance(x), direct, rtol=1e-10, atol=1e-12)


def test_split_chains_and_rank_normalize():
    x = torch.arange(14, dtype=F64).reshape(7, 2)
    halves = split_chains(x)
    assert halves.shape == (3, 4)
    assert halves[:, 2].tolist() == [8.0, 10.0, 12.0]  # the middle draw (6, 7) is dropped
    y = torch.tensor([[3.0, 1.0], [1.0, 5.0]], dtype=F64)
    ranks = stats.rankdata([3.0, 1.0, 1.0, 5.0])
    expected = stats.norm.ppf((ranks - 0.375) / 4.25).reshape(2, 2)
    np.testing.assert_allclose(rank_normalize(y).numpy(), expected, rtol=1e-12)


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(-100, 100).filter(lambda s: abs(s) > 1e-3),
       shift=st.floats(-1e3, 1e3))
def test_diagnostics_are_affine_invariant(seed, scale, shift):
    draws = ar1(0.6, 200, 3, seed=seed % 1000)
    moved = scale * draws + shift
    torch.testing.assert_close(effective_sample_size(moved), effective_sample_size(draws),
                               rtol=1e-6, atol=0)
    torch.testing.assert_close(split_rhat(moved), split_rhat(draws), rtol=1e-8, atol=0)


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), num_draws=st.integers(8, 300),
       num_chains=st.integers(1, 6), phi=st.floats(-0.9, 0.99))
def test_ess_is_positive_and_capped(seed, num_draws, num_chains, phi):
    draws = ar1(phi, num_draws, num_chains, seed=seed % 1000)
    ess = effective_sample_size(draws).item()
    total = 2 * (num_draws // 2) * num_chains
    assert 0 < ess <= total * np.log10(total) + 1e-9


def test_constant_chains_are_not_perfect_mixing():
    # All draws equal (chains that never moved, from one start): undefined, not N*C.
    with pytest.warns(UserWarning, match="all draws are equal"):
        assert torch.isnan(effective_sample_size(torch.ones(10, 2, dtype=F64)))
    with pytest.warns(UserWarning, match="all draws are equal"):
        assert torch.isnan(split_rhat(torch.ones(10, 2, dtype=F64)))


def test_chains_stuck_at_different_values_agree_with_arviz():
    az = pytest.importorskip("arviz")
    stuck = torch.arange(4.0, dtype=F64).expand(100, 4)  # (N, C): chain c stays at c
    for method, rank in (("mean", False), ("bulk", True)):
        with pytest.warns(UserWarning, match="every chain is constant"):
            got = effective_sample_size(stuck, rank_normalize_draws=rank).item()
        assert got == pytest.approx(float(az.ess(stuck.T.numpy(), method=method)), rel=1e-10)
        assert got < 10  # about one draw per chain, not N * C = 400
    assert torch.isinf(split_rhat(stuck))


def test_integer_and_array_like_draws_are_converted():
    draws = ar1(0.5, 50, 3)
    assert effective_sample_size(draws.numpy()) == effective_sample_size(draws)
    assert effective_sample_size(draws.tolist()) == effective_sample_size(draws)
    counts = (10 * draws).round()
    assert effective_sample_size(counts.long()) == effective_sample_size(counts)


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_diagnostics_are_scale_free_at_the_ends_of_the_float_range(scale):
    draws = ar1(0.5, 50, 3)
    assert effective_sample_size(scale * draws).item() == pytest.approx(
        effective_sample_size(draws).item(), rel=1e-12)
    assert split_rhat(scale * draws).item() == pytest.approx(split_rhat(draws).item(), rel=1e-12)


@pytest.mark.parametrize("phi, num_draws, num_chains", [
    (0.9, 500, 4), (0.5, 1001, 1), (-0.3, 57, 8), (0.99, 200, 3), (0.2, 9, 2), (0.0, 300, 5)])
def test_agrees_with_arviz(phi, num_draws, num_chains):
    az = pytest.importorskip("arviz")
    draws = ar1(phi, num_draws, num_chains, seed=5) + 0.3 * torch.randn(num_chains, dtype=F64)
    chains_first = draws.T.numpy()  # ArviZ wants (chain, draw)
    for method, rank in (("mean", False), ("bulk", True)):
        expected = az.ess(chains_first, method=method)
        got = effective_sample_size(draws, rank_normalize_draws=rank).item()
        assert got == pytest.approx(float(expected), rel=1e-10), method
    if num_chains > 1:  # ArviZ needs two chains for R-hat
        for method, rank in (("split", False), ("rank", True)):
            expected = az.rhat(chains_first, method=method)
            got = split_rhat(draws, rank_normalize_draws=rank).item()
            assert got == pytest.approx(float(expected), rel=1e-10), method


@pytest.mark.parametrize("draws, error, match", [
    (torch.zeros(10), ValueError, "shape \\(num_draws, num_chains, ...\\)"),
    (torch.zeros(10, 0), ValueError, "draws is empty"),
    ("draws", TypeError, "draws must be a tensor"),
    (torch.zeros(5, 2, dtype=F64), ValueError, "at least 8 draws"),
    (torch.tensor([[0.0], [float("nan")]] * 5, dtype=F64), ValueError, "NaN or infinite"),
])
def test_bad_draws_for_ess(draws, error, match):
    with pytest.raises(error, match=match):
        effective_sample_size(draws)


def test_bad_draws_for_rhat():
    with pytest.raises(ValueError, match="at least 4 draws"):
        split_rhat(torch.zeros(3, 2, dtype=F64))
    with pytest.raises(ValueError, match="draws\\[:, None\\]"):
        split_rhat(torch.zeros(30, dtype=F64))
