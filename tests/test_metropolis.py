"""Tests of random-walk Metropolis (vicourse.mcmc.metropolis).

Oracles: exact draws and moments of Gaussians from ``torch.distributions`` (a step applied
to exact draws of the target must leave their distribution unchanged, within seeded Monte
Carlo error; chains started elsewhere must reach the target's moments); the acceptance
probability min(1, pi(x') / pi(x)) computed by hand for one step; and the rule that a
rejected proposal repeats the current state.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from vicourse.mcmc.metropolis import metropolis_step, run_metropolis

MEAN = torch.tensor([1.0, -2.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
TARGET = MultivariateNormal(MEAN, covariance_matrix=COV)
PRECISION = torch.linalg.inv(COV)


def log_target(x: torch.Tensor) -> torch.Tensor:
    """The target's log density up to a constant, a fast quadratic form."""
    centred = x - MEAN
    return -0.5 * ((centred @ PRECISION) * centred).sum(-1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # batches of 2-D points


def moment_errors(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Errors of the sample mean and covariance in units of their standard errors (about)."""
    n = len(x)
    mean_z = (x.mean(0) - MEAN) / (COV.diagonal() / n).sqrt()
    cov = torch.cov(x.T)
    var = COV.diagonal()
    cov_se = ((var[:, None] * var[None, :] + COV**2) / n).sqrt()
    return mean_z, (cov - COV) / cov_se


def test_a_step_leaves_the_target_invariant_in_moments():
    g = torch.Generator().manual_seed(0)
    x0 = TARGET.sample((20_000,))
    kept, rate = run_metropolis(x0, log_target, 20, step_size=0.8, keep=[20], generator=g)
    assert 0.2 < rate < 0.8
    # The 20,000 chains are independent; after 20 steps they are still draws from the target.
    for errors in moment_errors(kept[20]):
        assert errors.abs().max() < 4.5, errors


def test_chains_started_far_away_reach_the_target():
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((5_000, 2), 6.0, dtype=torch.float64)
    kept, _ = run_metropolis(x0, log_target, 200, step_size=1.0, keep=[0, 200], generator=g)
    assert torch.equal(kept[0], x0)
    for errors in moment_errors(kept[200]):
        assert errors.abs().max() < 4.5, errors


def test_acceptance_rule_and_rejections_repeat_the_state():
    x = torch.tensor([[0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    log_density = TARGET.log_prob  # normalized: the check below compares exact differences
    trials = 4_000
    x_rep = x.repeat(trials, 1)
    g = torch.Generator().manual_seed(2)
    x_next, log_p, accepted = metropolis_step(x_rep, log_density, 1.0, generator=g)
    assert torch.equal(x_next[~accepted], x_rep[~accepted])  # rejected: the state repeats
    assert not torch.equal(x_next[accepted], x_rep[accepted])
    assert torch.allclose(log_p, log_density(x_next))
    # Replay the same proposals and uniforms: acceptance is exactly log u < log pi(x') - log pi(x).
    g = torch.Generator().manual_seed(2)
    proposal = x_rep + torch.randn(x_rep.shape, generator=g, dtype=torch.float64)
    log_u = torch.rand(len(x_rep), generator=g, dtype=torch.float64).log()
    expected = log_u < log_density(proposal) - log_density(x_rep)
    assert torch.equal(accepted, expected)
    # And its frequency matches E[min(1, pi(x') / pi(x))] within Monte Carlo error.
    probability = (log_density(proposal) - log_density(x_rep)).exp().clamp(max=1)
    for start in range(2):
        rate = accepted[start::2].double().mean()
        mean = probability[start::2].mean()
        assert abs(rate - mean) < 4 * math.sqrt(mean * (1 - mean) / trials)


def test_proposals_outside_the_support_are_rejected():
    def box(x: torch.Tensor) -> torch.Tensor:
        inside = (x.abs() < 1).all(-1)
        return torch.where(inside, torch.zeros(len(x), dtype=x.dtype), -math.inf)

    x0 = torch.zeros(2_000, 2, dtype=torch.float64)
    kept, rate = run_metropolis(x0, box, 50, step_size=1.5, keep=[50],
                                generator=torch.Generator().manual_seed(3))
    assert (kept[50].abs() < 1).all() and 0.05 < rate < 0.5


def test_errors_say_what_is_wrong():
    x = torch.zeros(3, 2, dtype=torch.float64)

    def nan_density(z: torch.Tensor) -> torch.Tensor:
        return torch.where(z[:, 0] > 0, torch.nan, 0.0)

    with pytest.raises(ValueError, match="log_density returned NaN at .* proposals"):
        metropolis_step(x, nan_density, 1.0, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="NaN at 3 of 3 current states"):
        metropolis_step(x, lambda z: torch.full((len(z),), torch.nan), 1.0)
    with pytest.raises(ValueError, match=r"values of shape \(S,\)"):
        metropolis_step(x, lambda z: z, 1.0)
    with pytest.raises(ValueError, match=r"shape \(S, D\)"):
        metropolis_step(torch.zeros(3), TARGET.log_prob, 1.0)
    with pytest.raises(ValueError, match="step_size must be a positive finite number"):
        metropolis_step(x, TARGET.log_prob, 0.0)
    with pytest.raises(ValueError, match="keep must hold step counts between 0 and"):
        run_metropolis(x, TARGET.log_prob, 5, 1.0, keep=[6])
