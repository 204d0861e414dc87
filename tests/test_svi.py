"""Tests of vicourse.conjugate.svi: stochastic variational inference for the mixture's means.

Oracles: the natural-gradient identity: the gradient of the closed-form ELBO with respect to
the natural parameters (autograd), premultiplied by the inverse Fisher matrix (the Hessian of
the log-normalizer, torch.func.hessian), equals the CAVI target minus the current parameter;
and so does the gradient with respect to the mean parameters. The minibatch target averaged
over every one-point minibatch is the full-data target, exactly; with the whole data set and
rho = 1 an SVI step is the CAVI update.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import hessian

from vicourse.conjugate.mixture_cavi import update_assignments, update_means
from vicourse.conjugate.mixture_elbo import mixture_elbo
from vicourse.conjugate.natural_params import (
    log_normalizer,
    mean_var_from_natural,
    natural_from_mean_var,
)
from vicourse.conjugate.svi import means_target, robbins_monro, svi_step
from vicourse.models.gaussian_mixture import GaussianMixture

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


def random_problem(n: int, k: int, d: int, prior_std: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    x, _, _ = GaussianMixture(k, d, prior_std).sample(n, generator=g)
    phi = torch.softmax(2 * torch.randn(n, k, generator=g), -1)
    m = prior_std * torch.randn(k, d, generator=g)
    s2 = torch.exp(torch.randn(k, generator=g) - 1)
    return x, phi, m, s2


def flatten(eta1: torch.Tensor, eta2: torch.Tensor) -> torch.Tensor:
    return torch.cat([eta1.reshape(-1), eta2])


def unflatten(flat: torch.Tensor, k: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    return flat[: k * d].reshape(k, d), flat[k * d :]


@PROPERTY
@given(n=st.integers(1, 30), k=st.integers(1, 4), d=st.integers(1, 3),
       prior_std=st.floats(0.5, 5.0), seed=st.integers(0, 2**16))
def test_natural_gradient_is_the_cavi_target_minus_the_current_parameter(n, k, d, prior_std,
                                                                         seed):
    x, phi, m, s2 = random_problem(n, k, d, prior_std, seed)
    eta = flatten(*natural_from_mean_var(m, s2))

    def elbo(flat: torch.Tensor) -> torch.Tensor:
        return mixture_elbo(x, phi, *mean_var_from_natural(*unflatten(flat, k, d)), prior_std)

    grad = torch.func.grad(elbo)(eta)  # the Euclidean gradient in natural parameters
    fisher = hessian(lambda v: log_normalizer(*unflatten(v, k, d)).sum())(eta)
    natural_gradient = torch.linalg.solve(fisher, grad)
    target = flatten(*means_target(x, phi, n, prior_std))
    scale = 1 + target.abs().max()
    assert torch.allclose(natural_gradient, target - eta, rtol=1e-7, atol=1e-8 * scale)


def test_gradient_in_mean_parameters_is_the_same_natural_gradient():
    k, d, prior_std = 3, 2, 2.0
    x, phi, m, s2 = random_problem(25, k, d, prior_std, seed=1)
    eta = flatten(*natural_from_mean_var(m, s2))
    # mean parameters: E mu = m and E |mu|^2 = |m|^2 + D s2
    mean_params = torch.cat([m.reshape(-1), (m * m).sum(-1) + d * s2])

    def elbo(flat: torch.Tensor) -> torch.Tensor:
        m_, second = flat[: k * d].reshape(k, d), flat[k * d :]
        return mixture_elbo(x, phi, m_, (second - (m_ * m_).sum(-1)) / d, prior_std)

    grad = torch.func.grad(elbo)(mean_params)
    target = flatten(*means_target(x, phi, 25, prior_std))
    assert torch.allclose(grad, target - eta, rtol=1e-8, atol=1e-8)


def test_one_point_minibatches_average_to_the_full_target():
    x, phi, _, _ = random_problem(17, 3, 2, 1.5, seed=2)
    full = means_target(x, phi, 17, 1.5)
    singles = [means_target(x[i : i + 1], phi[i : i + 1], 17, 1.5) for i in range(17)]
    for part in (0, 1):
        average = torch.stack([s[part] for s in singles]).mean(0)
        assert torch.allclose(average, full[part], rtol=1e-12)


def test_a_full_step_with_all_the_data_is_the_cavi_update():
    x, phi, m, s2 = random_problem(30, 4, 3, 2.0, seed=3)
    eta = natural_from_mean_var(m, s2)
    stepped = mean_var_from_natural(*svi_step(*eta, *means_target(x, phi, 30, 2.0), 1.0))
    for got, expected in zip(stepped, update_means(x, phi, 2.0), strict=True):
        assert torch.allclose(got, expected, rtol=1e-12)


@PROPERTY
@given(rho=st.floats(1e-6, 1.0), seed=st.integers(0, 2**16))
def test_a_step_is_a_convex_combination_and_keeps_q_gaussian(rho, seed):
    x, phi, m, s2 = random_problem(10, 2, 2, 1.0, seed)
    eta = natural_from_mean_var(m, s2)
    target = means_target(x[:3], update_assignments(x[:3], m, s2), 10, 1.0)
    new = svi_step(*eta, *target, rho)
    assert (new[1] < 0).all()
    for a, b, c in zip(eta, target, new, strict=True):
        assert torch.allclose(c, (1 - rho) * a + rho * b, rtol=1e-12, atol=1e-12)


def test_robbins_monro_step_sizes():
    rho = robbins_monro(1000, tau=4.0, kappa=0.6)
    t = torch.arange(1, 1001, dtype=F64)
    assert rho.shape == (1000,) and torch.allclose(rho, (t + 4) ** -0.6, rtol=1e-14)
    assert (rho.diff() < 0).all() and rho[0] < 1
    assert robbins_monro(1, tau=0.0, kappa=1.0).item() == 1.0  # the first step: CAVI's update
    # sum rho_t diverges like T^(1 - kappa); sum rho_t^2 converges for kappa > 1/2
    long = robbins_monro(10**6, tau=0.0, kappa=0.75)
    assert long.sum() > 4 * (10**6) ** 0.25 * 0.9
    assert (long**2).sum() < 1 + 1 / (2 * 0.75 - 1)


def test_bad_arguments_say_what_to_pass():
    x, phi, m, s2 = random_problem(6, 3, 2, 1.0, seed=4)
    eta = natural_from_mean_var(m, s2)
    target = means_target(x, phi, 100, 1.0)
    with pytest.raises(ValueError, match=r"kappa must lie in \(0.5, 1\]"):
        robbins_monro(10, 1.0, 0.5)
    with pytest.raises(ValueError, match="tau must be a finite number >= 0"):
        robbins_monro(10, -1.0, 0.7)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        robbins_monro(0)
    with pytest.raises(ValueError, match=r"rho must lie in \(0, 1\]"):
        svi_step(*eta, *target, 1.5)
    with pytest.raises(ValueError, match="rho must be a positive finite number"):
        svi_step(*eta, *target, math.nan)
    with pytest.raises(ValueError, match="num_data must be a positive integer"):
        means_target(x, phi, 0, 1.0)
    with pytest.raises(ValueError, match=r"means_target: phi must have shape \(N, K\) with "
                                         r"N = 6 \(from x\)"):
        means_target(x, phi[:2], 100, 1.0)
    with pytest.raises(ValueError, match=r"svi_step: eta1_hat must have shape \(K, D\) with "
                                         r"K = 3 \(from eta1\)"):
        svi_step(*eta, target[0][:2], target[1], 0.5)
    with pytest.raises(ValueError, match=r"eta2 = -1 / \(2 s2\) must be < 0"):
        svi_step(eta[0], -eta[1], *target, 0.5)
    assert torch.allclose(svi_step(*eta, *target, torch.tensor(0.5))[0],
                          svi_step(*eta, *target, 0.5)[0])
