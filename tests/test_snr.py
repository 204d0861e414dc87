"""Tests of vicourse.objectives.snr: the signal-to-noise ratio of gradient draws.

Oracles: NumPy's mean and standard deviation (ddof=1), the closed-form SNR of a Gaussian
loss's gradient, and torch.autograd.grad for one draw.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vicourse.objectives.snr import gradient_draws, signal_to_noise


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 50), st.integers(0, 10_000), st.floats(0.01, 100),
       st.sampled_from([-1, 1]))
def test_snr_is_numpy_mean_over_std_and_scale_free(draws, seed, size, sign):
    scale = sign * size
    values = np.random.default_rng(seed).normal(1.0, 2.0, size=(draws, 3))
    expected = np.abs(values.mean(0)) / values.std(0, ddof=1)
    snr = signal_to_noise(torch.tensor(values))
    assert np.allclose(snr.numpy(), expected, rtol=1e-10)
    assert np.allclose(signal_to_noise(torch.tensor(scale * values)).numpy(), expected,
                       rtol=1e-8)


def test_gradient_draws_of_a_noisy_loss_have_the_known_snr():
    """loss = (a + noise) . theta has gradient a + noise: SNR = |a| / sd."""
    theta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    a, sd = torch.tensor([1.0, -0.2], dtype=torch.float64), 0.5
    torch.manual_seed(0)
    grads = gradient_draws(lambda: ((a + sd * torch.randn(2, dtype=torch.float64)) * theta)
                           .sum(), [theta], 20_000)
    assert grads.shape == (20_000, 2)
    expected = a.abs() / sd
    assert torch.allclose(signal_to_noise(grads), expected, rtol=0.03)


def test_gradient_draws_flatten_the_parameters_in_order():
    layer = torch.nn.Linear(3, 2).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    grads = gradient_draws(lambda: layer(x).square().sum(), list(layer.parameters()), 2)
    weight, bias = torch.autograd.grad(layer(x).square().sum(), list(layer.parameters()))
    assert torch.allclose(grads[1], torch.cat([weight.reshape(-1), bias]))


def test_bad_input_says_how_to_fix_it():
    with pytest.raises(ValueError, match="R >= 2 draws"):
        signal_to_noise(torch.ones(1, 3))
    with pytest.raises(TypeError, match="floating-point"):
        signal_to_noise(torch.ones(4, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="gradients must be a tensor"):
        signal_to_noise("gradients")
    theta = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="require grad"):
        gradient_draws(lambda: theta.sum(), [], 3)
    with pytest.raises(ValueError, match="require grad"):
        gradient_draws(lambda: theta.sum(), [torch.zeros(2)], 3)
    with pytest.raises(ValueError, match="draws must be a positive integer"):
        gradient_draws(lambda: theta.sum(), [theta], 0)
    assert math.isnan(float(signal_to_noise(torch.zeros(5, 1))[0]))  # 0 / 0, documented
