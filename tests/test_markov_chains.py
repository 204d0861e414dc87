"""Tests of the finite-state Markov chain tools (vicourse.mcmc.markov_chains).

Oracles: ``scipy.special.rel_entr`` and ``scipy.stats.entropy`` for the KL between pmfs;
the defining identities pT = p (invariance) and p_i T_ij = p_j T_ji (detailed balance),
checked entry by entry; the theorem KL(qT || p) <= KL(q || p) and its decomposition
KL(q || p) - KL(qT || p) = E_{qT}[KL(q_R(.|z') || R(.|z'))], on random instances drawn by
hypothesis, including generic p-invariant kernels built from random couplings of p with
itself (Sinkhorn scaling), which share no code with the module.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import rel_entr
from scipy.stats import entropy

from vicourse.mcmc.markov_chains import (
    add_circulation,
    block_kernel,
    cycle_flux,
    detailed_balance_gap,
    drop_rejections,
    evolve,
    is_invariant,
    kl_divergence,
    max_circulation,
    metropolis_kernel,
    reversal_kernel,
    ring_proposal,
)

PROPERTY = settings(max_examples=40, deadline=None)


def random_pmf(n: int, seed: int, zeros: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, generator=g, dtype=torch.float64) ** 3 + 1e-3
    p[torch.randperm(n, generator=g)[:zeros]] = 0.0
    return p / p.sum()


def random_kernel(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = torch.rand(n, n, generator=g, dtype=torch.float64) ** 4
    return k / k.sum(1, keepdim=True)


def coupling_kernel(p: torch.Tensor, seed: int) -> torch.Tensor:
    """A generic p-invariant kernel: T_ij = G_ij / p_i for a coupling G of p with itself.

    G comes from Sinkhorn scaling of a random positive matrix to row and column sums p; it is
    not symmetric, so T does not satisfy detailed balance."""
    g = torch.Generator().manual_seed(seed)
    coupling = torch.rand(len(p), len(p), generator=g, dtype=torch.float64) ** 4 + 1e-3
    for _ in range(20_000):  # Sinkhorn: alternate row and column scaling until both fit
        coupling *= (p / coupling.sum(1))[:, None]
        coupling *= (p / coupling.sum(0))[None, :]
        if (coupling.sum(1) - p).abs().max() < 1e-15:
            break
    kernel = coupling / coupling.sum(1, keepdim=True)
    assert (p @ kernel - p).abs().max() < 1e-12
    return kernel


# --- the KL between pmfs ---------------------------------------------------------------------


@pytest.mark.parametrize("zeros", [0, 3])
def test_kl_matches_scipy(zeros):
    p = random_pmf(10, seed=1)
    q = random_pmf(10, seed=2, zeros=zeros)
    assert kl_divergence(q, p).item() == pytest.approx(rel_entr(q.numpy(), p.numpy()).sum(),
                                                       rel=1e-12)
    assert kl_divergence(q, p).item() == pytest.approx(entropy(q.numpy(), p.numpy()), rel=1e-12)


def test_kl_conventions_and_batches():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    assert kl_divergence(torch.tensor([1.0, 0.0, 0.0]), p).item() == pytest.approx(np.log(2))
    assert kl_divergence(p, p).item() == 0.0  # 0 log 0 = 0 where both vanish
    assert kl_divergence(torch.tensor([0.5, 0.0, 0.5]), p).item() == float("inf")
    rows = torch.stack([random_pmf(6, seed=s) for s in range(4)]).reshape(2, 2, 6)
    p = random_pmf(6, seed=9)
    batched = kl_divergence(rows, p)
    assert batched.shape == (2, 2)
    expected = [[rel_entr(r.numpy(), p.numpy()).sum() for r in pair] for pair in rows]
    np.testing.assert_allclose(batched.numpy(), expected, rtol=1e-12)
    references = torch.stack([random_pmf(6, seed=s) for s in range(10, 14)]).reshape(2, 2, 6)
    pairwise = kl_divergence(rows, references)  # one reference pmf per row
    expected = [[entropy(r.numpy(), s.numpy()) for r, s in zip(a, b, strict=True)]
                for a, b in zip(rows, references, strict=True)]
    np.testing.assert_allclose(pairwise.numpy(), expected, rtol=1e-12)


def test_kl_stays_finite_for_tiny_probabilities():
    p = torch.tensor([1e-300, 1 - 1e-300], dtype=torch.float64)
    q = torch.tensor([1e-310, 1 - 1e-310], dtype=torch.float64)
    value = kl_divergence(q, p)
    assert torch.isfinite(value) and abs(value.item()) < 1e-290


def test_bad_pmfs_and_kernels_are_rejected():
    p = torch.tensor([0.5, 0.5], dtype=torch.float64)
    with pytest.raises(ValueError, match="every p must sum to 1"):
        kl_divergence(p, torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="non-negative"):
        kl_divergence(torch.tensor([1.5, -0.5]), p)
    with pytest.raises(ValueError, match="pmfs over the same states"):
        kl_divergence(torch.ones(3, dtype=torch.float64) / 3, p)
    with pytest.raises(ValueError, match="every q must sum to 1"):
        kl_divergence(torch.tensor([[0.5, 0.5], [0.2, 0.2]]), p)
    with pytest.raises(ValueError, match="must sum to 1, got 1.1"):
        evolve(torch.tensor([0.5, 0.6]), torch.eye(2), 1)
    with pytest.raises(ValueError, match="1-D probability vector"):
        evolve(torch.ones(2, 2) / 4, torch.eye(2), 1)
    with pytest.raises(ValueError, match="square matrix"):
        evolve(p, torch.ones(2, 3) / 3, 1)
    with pytest.raises(ValueError, match="every row of a Markov kernel must sum to 1"):
        evolve(p, torch.ones(2, 2), 1)
    with pytest.raises(ValueError, match="the kernel has 3 states but the pmf has 2"):
        metropolis_kernel(p, torch.eye(3))
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        evolve(p, torch.eye(2), 0)


# --- kernels ----------------------------------------------------------------------------------


@pytest.mark.parametrize("zeros", [0, 2])
def test_metropolis_kernel_satisfies_detailed_balance(zeros):
    p = random_pmf(12, seed=3, zeros=zeros)
    for proposal in (ring_proposal(12, 2), random_kernel(12, seed=4)):  # symmetric, not
        kernel = metropolis_kernel(p, proposal)
        assert (kernel >= 0).all()
        assert torch.allclose(kernel.sum(1), torch.ones(12, dtype=torch.float64))
        assert detailed_balance_gap(kernel, p) < 1e-15
        assert is_invariant(kernel, p)
    # The textbook formula, entry by entry, for the asymmetric proposal.
    q = random_kernel(12, seed=4)
    for i in range(12):
        for j in range(12):
            if i != j and p[i] > 0:
                accept = min(1.0, (p[j] * q[j, i] / (p[i] * q[i, j])).item())
                assert kernel[i, j].item() == pytest.approx(q[i, j].item() * accept, rel=1e-12)


def test_ring_proposal_is_symmetric_and_rejects_overlapping_steps():
    q = ring_proposal(9, 3)
    assert torch.equal(q, q.T) and torch.allclose(q.sum(1), torch.ones(9, dtype=torch.float64))
    assert (q > 0).sum(1).tolist() == [6] * 9
    with pytest.raises(ValueError, match="max_step must be below n / 2"):
        ring_proposal(6, 3)


def test_circulation_keeps_invariance_and_breaks_detailed_balance():
    p = random_pmf(8, seed=5)
    kernel = metropolis_kernel(p, ring_proposal(8, 1))
    flux = cycle_flux(8, list(range(8)))
    strength = max_circulation(kernel, p, flux)
    circulating = add_circulation(kernel, p, strength * flux)
    assert (circulating >= 0).all() and circulating.min() == 0  # the bound is tight
    assert is_invariant(circulating, p)
    flows = p[:, None] * circulating
    assert torch.allclose(flows - flows.T, 2 * strength * flux, atol=1e-15)
    assert detailed_balance_gap(circulating, p) == pytest.approx(2 * strength, rel=1e-9)
    with pytest.raises(ValueError, match="the flux is too strong"):
        add_circulation(kernel, p, 1.5 * strength * flux)
    with pytest.raises(ValueError, match="antisymmetric"):
        add_circulation(kernel, p, flux.abs())
    with pytest.raises(ValueError, match="at least 3 distinct states"):
        cycle_flux(8, [0, 1, 1])


def test_reversal_kernel():
    p = random_pmf(7, seed=6)
    kernel = coupling_kernel(p, seed=7)
    reversal = reversal_kernel(kernel, p)
    assert torch.allclose(reversal.sum(1), torch.ones(7, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(p[:, None] * kernel, (p[:, None] * reversal).T, atol=1e-15)
    assert detailed_balance_gap(kernel, p) > 1e-3  # a generic coupling is not symmetric
    metropolis = metropolis_kernel(p, random_kernel(7, seed=8))
    assert torch.allclose(reversal_kernel(metropolis, p), metropolis, atol=1e-12)
    with pytest.raises(ValueError, match="does not leave p invariant"):
        reversal_kernel(random_kernel(7, seed=9), p)
    with pytest.raises(ValueError, match="needs p > 0"):
        reversal_kernel(torch.eye(7), random_pmf(7, seed=6, zeros=1))


def test_jump_chain_leaves_the_wrong_pmf_invariant():
    p = random_pmf(10, seed=10)
    kernel = metropolis_kernel(p, ring_proposal(10, 2))
    jumps = drop_rejections(kernel)
    assert (jumps.diagonal() == 0).all()
    assert torch.allclose(jumps.sum(1), torch.ones(10, dtype=torch.float64))
    moving = p * (1 - kernel.diagonal())
    assert is_invariant(jumps, moving / moving.sum())
    assert not is_invariant(jumps, p, atol=1e-6)
    with pytest.raises(ValueError, match="never moves"):
        drop_rejections(torch.eye(3))


def test_block_kernel():
    p = random_pmf(9, seed=11)
    blocks = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    kernel = block_kernel(p, blocks)
    assert is_invariant(kernel, p) and detailed_balance_gap(kernel, p) < 1e-16
    assert kernel[0, 3] == 0 and kernel[0, 1] == pytest.approx((p[1] / p[:3].sum()).item())
    with pytest.raises(ValueError, match="integer labels"):
        block_kernel(p, blocks.double())


# --- the theorem on random instances -----------------------------------------------------------


@PROPERTY
@given(n=st.integers(2, 12), seed=st.integers(0, 10_000), kind=st.sampled_from(
    ["metropolis", "coupling", "circulation", "composition"]))
def test_kl_to_an_invariant_pmf_never_increases(n, seed, kind):
    p = random_pmf(n, seed)
    if kind == "metropolis":
        kernel = metropolis_kernel(p, random_kernel(n, seed + 1))
    elif kind == "coupling":
        kernel = coupling_kernel(p, seed + 1)
    elif kind == "circulation":
        base = metropolis_kernel(p, random_kernel(n, seed + 1))
        flux = cycle_flux(n, list(range(n))) if n >= 3 else torch.zeros(n, n)
        kernel = base if n < 3 else add_circulation(base, p, max_circulation(base, p, flux) * flux)
    else:
        kernel = (metropolis_kernel(p, random_kernel(n, seed + 1))
                  @ metropolis_kernel(p, random_kernel(n, seed + 2)))
    q0 = random_pmf(n, seed + 3, zeros=n // 3)
    kl = kl_divergence(evolve(q0, kernel, 10), p)
    assert (kl.diff() <= 1e-12).all(), kl
    # The decomposition behind the proof, for the first step.
    q1 = q0 @ kernel
    reversal = reversal_kernel(kernel, p)
    joint = q0[:, None] * kernel  # q(z) T(z'|z), rows z, columns z'
    gap = sum(kl_divergence(joint[:, j] / q1[j], reversal[j]) * q1[j]
              for j in range(n) if q1[j] > 0)
    assert (kl[0] - kl[1]).item() == pytest.approx(float(gap), abs=1e-12)


def test_equality_cases():
    p = random_pmf(9, seed=12)
    q = random_pmf(9, seed=13)
    blocks = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])
    kernel = block_kernel(p, blocks)
    weights = torch.tensor([0.2, 3.0, 1.0], dtype=torch.float64)[blocks]
    constant_ratio = p * weights / (p * weights).sum()  # q / p constant on every block
    for kernel_, q_ in ((torch.eye(9, dtype=torch.float64), q), (kernel, constant_ratio),
                        (metropolis_kernel(p, ring_proposal(9, 1)), p)):
        before, after = kl_divergence(evolve(q_, kernel_, 1), p)
        assert after.item() == pytest.approx(before.item(), abs=1e-14)
    before, after = kl_divergence(evolve(q, kernel, 1), p)
    assert after < before - 1e-3  # q / p is not constant on the blocks
    before, after = kl_divergence(evolve(constant_ratio, metropolis_kernel(p, ring_proposal(9, 1)),
                                         1), p)
    assert after < before - 1e-6  # an irreducible kernel with holding: equality only at p
    # The constant kernel T(z'|z) = p(z') jumps to p at once: strict, not equality.
    assert kl_divergence(q @ p.expand(9, 9), p).item() == pytest.approx(0, abs=1e-14)


def test_moves_in_a_fixed_order_are_invariant_but_not_reversible():
    p = random_pmf(10, seed=14)
    first = metropolis_kernel(p, ring_proposal(10, 1))
    second = metropolis_kernel(p, random_kernel(10, seed=15))
    product = first @ second
    assert is_invariant(product, p)
    assert detailed_balance_gap(product, p) > 1e-3
    # The reversal of a product is the product of the reversals in the opposite order.
    assert torch.allclose(reversal_kernel(product, p), second @ first, atol=1e-14)


def test_evolve_matches_matrix_powers():
    p = random_pmf(6, seed=16)
    kernel = random_kernel(6, seed=17)
    chain = evolve(p, kernel, 7)
    assert chain.shape == (8, 6)
    for t in (0, 3, 7):
        assert torch.allclose(chain[t], p @ torch.linalg.matrix_power(kernel, t), atol=1e-14)
