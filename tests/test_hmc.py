"""Tests of Hamiltonian Monte Carlo (vicourse.mcmc.hmc).

Oracles: the exact solution of Hamilton's equations for a Gaussian target (a harmonic
oscillator), ``torch.func.jacrev`` for the Jacobian of the leapfrog map, the closed-form
gradient and moments of ``torch.distributions.MultivariateNormal``, and the banana posterior's
moments by quadrature.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal

from vicourse.mcmc.diagnostics import effective_sample_size
from vicourse.mcmc.hmc import (
    hmc_step,
    initial_state,
    leapfrog,
    log_density_and_grad,
    sample_hmc,
)
from vicourse.models.banana import Banana

F64 = torch.float64
PROPERTY = settings(max_examples=30, deadline=None)
COV = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=F64)
GAUSSIAN = MultivariateNormal(torch.tensor([0.5, -1.0], dtype=F64), COV)
BANANA = Banana()
PRECISION = torch.linalg.inv(COV)


def gaussian(theta: torch.Tensor) -> torch.Tensor:
    """GAUSSIAN.log_prob up to a constant, written out elementwise (no matmul: fast on
    small batches, with any number of threads)."""
    x, y = (theta - GAUSSIAN.loc).unbind(-1)
    p = PRECISION.tolist()
    return -0.5 * (p[0][0] * x**2 + 2 * p[0][1] * x * y + p[1][1] * y**2)


def quartic(theta: torch.Tensor) -> torch.Tensor:
    """A non-Gaussian log density, -sum(theta^4)/4 - theta_1 theta_2."""
    return -(theta**4).sum(-1) / 4 - theta[..., 0] * theta[..., 1]


def hamiltonian(log_density, theta, momentum):
    return -log_density(theta) + 0.5 * momentum.square().sum(-1)


def test_gradient_of_the_sum_is_the_batch_of_gradients():
    theta = torch.randn(7, 2, dtype=F64)
    log_p, grad = log_density_and_grad(GAUSSIAN.log_prob, theta)
    expected = -torch.linalg.solve(COV, (theta - GAUSSIAN.loc).T).T  # -Sigma^{-1} (x - mu)
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_p, GAUSSIAN.log_prob(theta))
    torch.testing.assert_close(log_density_and_grad(gaussian, theta)[1], expected)
    assert not log_p.requires_grad and not grad.requires_grad


def test_gradient_keeps_the_graph_when_the_input_requires_grad():
    theta = torch.randn(3, 2, dtype=F64, requires_grad=True)
    _, grad = log_density_and_grad(quartic, theta)
    (second,) = torch.autograd.grad(grad[:, 0].sum(), theta)
    torch.testing.assert_close(second[:, 0], -3 * theta[:, 0].detach() ** 2)
    torch.testing.assert_close(second[:, 1], -torch.ones(3, dtype=F64))


def test_leapfrog_converges_to_the_harmonic_oscillator_at_second_order():
    """For a standard normal target, theta(t) = theta cos t + r sin t exactly."""
    theta = torch.randn(50, 2, dtype=F64)
    momentum = torch.randn(50, 2, dtype=F64)

    def standard(x):
        return -0.5 * x.square().sum(-1)

    errors = []
    for eps in (0.1, 0.05, 0.025):
        end, _, _, _ = leapfrog(standard, theta, momentum, eps, round(1 / eps))
        exact = theta * math.cos(1.0) + momentum * math.sin(1.0)
        errors.append((end - exact).abs().max().item())
    assert errors[0] / errors[1] == pytest.approx(4, rel=0.05)
    assert errors[1] / errors[2] == pytest.approx(4, rel=0.05)


def test_leapfrog_energy_error_is_second_order_on_the_banana():
    theta = BANANA.sample_posterior(200, torch.Generator().manual_seed(0))
    momentum = torch.randn(200, 2, dtype=F64)
    h0 = hamiltonian(BANANA.log_joint, theta, momentum)
    errors = []
    for eps in (0.01, 0.005, 0.0025):
        end, r_end, log_p, _ = leapfrog(BANANA.log_joint, theta, momentum, eps, round(1 / eps))
        torch.testing.assert_close(log_p, BANANA.log_joint(end))
        errors.append((hamiltonian(BANANA.log_joint, end, r_end) - h0).abs().mean().item())
    assert 3.6 < errors[0] / errors[1] < 4.4 and 3.6 < errors[1] / errors[2] < 4.4, errors


def test_leapfrog_preserves_volume():
    def flow(z):
        theta, momentum, _, _ = leapfrog(quartic, z[None, :2], z[None, 2:], 0.1, 15)
        return torch.cat([theta[0], momentum[0]])

    for z in torch.randn(5, 4, dtype=F64):
        jacobian = torch.func.jacrev(flow)(z)
        assert torch.linalg.det(jacobian).item() == pytest.approx(1.0, abs=1e-10)
        assert not torch.allclose(jacobian, torch.eye(4, dtype=F64), atol=0.1)  # it moved


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.01, 0.3), steps=st.integers(1, 30))
def test_leapfrog_is_reversible(seed, eps, steps):
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(4, 2, generator=generator, dtype=F64)
    momentum = torch.randn(4, 2, generator=generator, dtype=F64)
    theta1, r1, _, _ = leapfrog(gaussian, theta, momentum, eps, steps)
    theta2, r2, _, _ = leapfrog(gaussian, theta1, -r1, eps, steps)
    torch.testing.assert_close(theta2, theta, rtol=0, atol=1e-10)
    torch.testing.assert_close(-r2, momentum, rtol=0, atol=1e-10)


@PROPERTY
@given(seed=st.integers(0, 2**31 - 1), eps=st.floats(0.01, 1.0), steps=st.integers(1, 5))
def test_hmc_step_bookkeeping(seed, eps, steps):
    """Accepted chains move to the proposal, rejected ones keep their state exactly."""
    generator = torch.Generator().manual_seed(seed)
    state = initial_state(quartic, torch.randn(16, 2, generator=generator, dtype=F64))
    replay = torch.Generator().manual_seed(seed + 1)
    new, accepted, energy_error = hmc_step(quartic, state, eps, steps,
                                           torch.Generator().manual_seed(seed + 1))
    momentum = torch.randn(16, 2, generator=replay, dtype=F64)
    proposal, r_end, _, _ = leapfrog(quartic, state.theta, momentum, eps, steps)
    expected_error = (hamiltonian(quartic, proposal, r_end)
                      - hamiltonian(quartic, state.theta, momentum))
    torch.testing.assert_close(energy_error, expected_error, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(new.theta[accepted], proposal[accepted])
    assert torch.equal(new.theta[~accepted], state.theta[~accepted])
    torch.testing.assert_close(new.log_p, quartic(new.theta))
    assert bool((energy_error[energy_error <= 0] <= 0).all())
    assert bool(accepted[energy_error <= 0].all())  # downhill in energy: always accepted


def test_sampler_leaves_a_gaussian_invariant():
    """Chains started from the target stay there: moments within Monte Carlo error."""
    start = GAUSSIAN.sample((400,))
    result = sample_hmc(gaussian, start, 300, 0.3, 5, seed=1, progress=False)
    draws = result.draws
    assert draws.shape == (300, 400, 2) and result.accepted.shape == (300, 400)
    assert 0.5 < result.acceptance_rate < 1.0
    flat = draws.flatten(0, 1)
    mean_se = flat.std(0) / effective_sample_size(draws).sqrt()
    assert ((flat.mean(0) - GAUSSIAN.loc).abs() < 4 * mean_se).all()
    centred = draws - GAUSSIAN.loc
    products = torch.stack([centred[..., 0] ** 2, centred[..., 1] ** 2,
                            centred[..., 0] * centred[..., 1]], dim=-1)
    second = products.flatten(0, 1).mean(0)
    second_se = products.flatten(0, 1).std(0) / effective_sample_size(products).sqrt()
    expected = torch.stack([COV[0, 0], COV[1, 1], COV[0, 1]])
    assert ((second - expected).abs() < 4 * second_se).all(), (second, expected, second_se)


def test_sampler_converges_from_a_bad_start_on_the_banana():
    start = torch.full((200, 2), 0.5, dtype=F64)
    result = sample_hmc(BANANA.log_joint, start, 300, 0.1, 10, num_warmup=50, seed=2,
                        progress=False)
    mean, cov = BANANA.posterior_moments()
    flat = result.draws.flatten(0, 1)
    se = flat.std(0) / effective_sample_size(result.draws).sqrt()
    assert ((flat.mean(0) - mean).abs() < 4 * se).all(), (flat.mean(0), mean, se)
    torch.testing.assert_close(flat.var(0), cov.diagonal(), rtol=0.1, atol=0)


def test_rejected_transitions_repeat_the_state_and_are_counted():
    result = sample_hmc(quartic, torch.randn(50, 2, dtype=F64), 40, 0.9, 3, seed=0,
                        progress=False)
    repeated = (result.draws[1:] == result.draws[:-1]).all(-1)
    assert torch.equal(repeated, ~result.accepted[1:])
    assert 0 < result.acceptance_rate < 1
    assert result.acceptance_rate == pytest.approx(result.accepted.double().mean().item())
    prob = result.acceptance_prob
    assert bool(((prob >= 0) & (prob <= 1)).all())
    torch.testing.assert_close(prob, torch.exp(-result.energy_error).clamp(max=1))


def test_diverging_trajectories_are_rejected_without_error():
    def stiff(theta):
        return -1e6 * theta.square().sum(-1)

    state = initial_state(stiff, torch.full((3, 2), 1e-3, dtype=F64))
    new, accepted, energy_error = hmc_step(stiff, state, 1.0, 200)
    assert not accepted.any() and torch.isinf(energy_error).all()
    assert torch.equal(new.theta, state.theta)


def test_same_seed_same_chain():
    start = torch.randn(5, 2, dtype=F64)
    a = sample_hmc(quartic, start, 20, 0.2, 4, seed=7, progress=False)
    b = sample_hmc(quartic, start, 20, 0.2, 4, seed=7, progress=False)
    c = sample_hmc(quartic, start, 20, 0.2, 4, seed=8, progress=False)
    assert torch.equal(a.draws, b.draws) and not torch.equal(a.draws, c.draws)


def test_nan_log_density_raises_a_clear_error():
    def broken(theta):  # NaN where theta_1 < 0: log of a negative number
        return torch.log(theta[..., 0] + 10) - theta.square().sum(-1) + torch.where(
            theta[..., 0] < 0.5, torch.tensor(float("nan"), dtype=F64), 0.0)

    state = initial_state(broken, torch.ones(4, 2, dtype=F64))
    with pytest.raises(ValueError, match="NaN at .* chains at finite positions"):
        for _ in range(50):
            state, _, _ = hmc_step(broken, state, 0.5, 3)


@pytest.mark.parametrize("initial, error, match", [
    (torch.zeros(3), ValueError, "shape \\(chains, D\\)"),
    (torch.zeros(0, 2), ValueError, "shape \\(chains, D\\)"),
    (torch.zeros(3, 2, dtype=torch.int64), TypeError, "floating-point"),
    ("theta", TypeError, "initial must be a tensor"),
    (torch.tensor([[0.0, 0.0], [float("nan"), 0.0]], dtype=F64), ValueError,
     "not finite at the initial"),
])
def test_bad_initial_positions(initial, error, match):
    with pytest.raises(error, match=match):
        sample_hmc(quartic, initial, 10, 0.1, 2, progress=False)


def test_initial_positions_as_a_list():
    a = sample_hmc(quartic, [[0.0, 0.5]], 5, 0.1, 2, progress=False)
    b = sample_hmc(quartic, torch.tensor([[0.0, 0.5]]), 5, 0.1, 2, progress=False)
    assert torch.equal(a.draws, b.draws)


def test_initial_position_outside_the_support():
    def half_plane(theta):
        return torch.where(theta[..., 0] > 0, -theta.square().sum(-1), -torch.inf)

    with pytest.raises(ValueError, match="start the chains where the density is positive"):
        initial_state(half_plane, torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=F64))


@pytest.mark.parametrize("kwargs, match", [
    (dict(step_size=0.0), "step_size must be a positive"),
    (dict(step_size=float("nan")), "step_size must be a positive"),
    (dict(num_steps=0), "num_steps must be a positive integer"),
    (dict(num_draws=0), "num_draws must be a positive integer"),
    (dict(num_warmup=-1), "num_warmup must be a non-negative integer"),
    (dict(num_warmup=1.5), "num_warmup must be a non-negative integer"),
])
def test_bad_sampler_settings(kwargs, match):
    settings_ = dict(num_draws=5, step_size=0.1, num_steps=2) | kwargs
    with pytest.raises(ValueError, match=match):
        sample_hmc(quartic, torch.zeros(2, 2, dtype=F64), progress=False, **settings_)


def test_log_density_with_the_wrong_output_shape():
    with pytest.raises(ValueError, match="one log density per chain, shape \\(4,\\)"):
        log_density_and_grad(lambda theta: theta.sum(), torch.zeros(4, 2, dtype=F64))


def test_leapfrog_argument_checks():
    theta = torch.zeros(3, 2, dtype=F64)
    with pytest.raises(ValueError, match="momentum has shape \\(3, 1\\)"):
        leapfrog(quartic, theta, torch.zeros(3, 1, dtype=F64), 0.1, 1)
    with pytest.raises(ValueError, match="step_size must be a positive"):
        leapfrog(quartic, theta, theta, -0.1, 1)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        leapfrog(quartic, theta, theta, 0.1, 0)
