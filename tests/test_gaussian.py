"""vicourse.families.gaussian: the diagonal Gaussian's log density and its STL variant."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, Normal

from vicourse.families.gaussian import gaussian_log_density, sticking_the_landing_log_density

floats = st.floats(-5, 5)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(floats, floats, st.floats(-3, 3)), min_size=1, max_size=6))
def test_log_density_matches_torch_distributions(rows):
    z, mean, log_std = torch.tensor(rows, dtype=torch.float64).T
    expected = Independent(Normal(mean, log_std.exp()), 1).log_prob(z)
    assert torch.allclose(gaussian_log_density(z, mean, log_std), expected, atol=1e-10)


def test_log_density_broadcasts_over_draws_and_batches():
    z = torch.randn(7, 3, 4, dtype=torch.float64)
    mean, log_std = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    got = gaussian_log_density(z, mean, log_std)
    assert got.shape == (7, 3)
    expected = Independent(Normal(mean, log_std.exp()), 1).log_prob(z)
    assert torch.allclose(got, expected, atol=1e-10)


def test_sticking_the_landing_keeps_the_path_and_drops_the_score():
    mean = torch.tensor([0.3, -1.0], dtype=torch.float64, requires_grad=True)
    log_std = torch.tensor([0.2, -0.4], dtype=torch.float64, requires_grad=True)
    eps = torch.tensor([0.7, -1.3], dtype=torch.float64)
    z = mean + log_std.exp() * eps
    value = sticking_the_landing_log_density(z, mean, log_std)
    assert torch.equal(value, gaussian_log_density(z, mean, log_std))  # same value
    grad_mean, grad_log_std = torch.autograd.grad(value, (mean, log_std), retain_graph=True)
    # only the path through z: d/dz log q = -(z - m) / s^2, dz/dm = 1, dz/dlog_std = s * eps
    dlogq_dz = (-(z - mean) / (2 * log_std).exp()).detach()
    assert torch.allclose(grad_mean, dlogq_dz, atol=1e-12)
    assert torch.allclose(grad_log_std, dlogq_dz * log_std.exp().detach() * eps, atol=1e-12)
    # with the score term the total derivative is (0, -1) whatever the draw (eps^2 - 1 - eps^2)
    full = torch.autograd.grad(gaussian_log_density(z, mean, log_std), (mean, log_std))
    assert torch.allclose(full[0], torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(full[1], -torch.ones(2, dtype=torch.float64), atol=1e-12)  # -1
    assert torch.allclose(grad_log_std, -eps**2, atol=1e-12)  # -eps^2 without the score
