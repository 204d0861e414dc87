"""Tests of vicourse.conjugate.mixture_cavi: the CAVI updates of the Gaussian mixture.

Oracles: brute-force numerical maximization of the closed-form ELBO over one factor with the
others fixed (L-BFGS over unconstrained parameters: logits for phi_i, m_k and log s_k^2 for
q(mu_k)), the ELBO's gradient by autograd (zero at the update), and a hypothesis property:
along CAVI from random data and initializations, the ELBO never decreases.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vicourse.conjugate.mixture_cavi import update_assignments, update_means
from vicourse.conjugate.mixture_elbo import expected_log_likelihood, mixture_elbo
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
    """Data from the model, and a random q: phi (n, k), m (k, d), s2 (k,)."""
    g = torch.Generator().manual_seed(seed)
    x, _, _ = GaussianMixture(k, d, prior_std).sample(n, generator=g)
    phi = torch.softmax(2 * torch.randn(n, k, generator=g), -1)
    m = prior_std * torch.randn(k, d, generator=g)
    s2 = torch.exp(torch.randn(k, generator=g) - 1)
    return x, phi, m, s2


def maximize(loss, params: list[torch.Tensor]) -> None:
    """Minimize loss() over params in place with L-BFGS (strong Wolfe line search)."""
    optimizer = torch.optim.LBFGS(params, lr=1, max_iter=500, tolerance_grad=1e-12,
                                  tolerance_change=1e-15, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        value = loss()
        value.backward()
        return value

    for _ in range(3):
        optimizer.step(closure)


@pytest.mark.parametrize(("n", "k", "d"), [(8, 2, 1), (15, 3, 2)])
def test_assignment_update_maximizes_the_elbo_over_phi(n, k, d):
    x, phi, m, s2 = random_problem(n, k, d, 2.0, seed=n)
    logits = torch.log(phi).clone().requires_grad_()
    maximize(lambda: -mixture_elbo(x, torch.softmax(logits, -1), m, s2, 2.0), [logits])
    numerical = torch.softmax(logits.detach(), -1)
    update = update_assignments(x, m, s2)
    assert torch.allclose(update, numerical, atol=1e-6)
    assert mixture_elbo(x, update, m, s2, 2.0) >= mixture_elbo(x, numerical, m, s2, 2.0) - 1e-10


@pytest.mark.parametrize(("n", "k", "d", "prior_std"), [(8, 2, 1, 1.0), (15, 3, 2, 3.0)])
def test_mean_update_maximizes_the_elbo_over_q_mu(n, k, d, prior_std):
    x, phi, m, s2 = random_problem(n, k, d, prior_std, seed=n)
    mean = m.clone().requires_grad_()
    log_var = s2.log().clone().requires_grad_()
    maximize(lambda: -mixture_elbo(x, phi, mean, log_var.exp(), prior_std), [mean, log_var])
    m_new, s2_new = update_means(x, phi, prior_std)
    assert torch.allclose(m_new, mean.detach(), atol=1e-6)
    assert torch.allclose(s2_new, log_var.detach().exp(), rtol=1e-6)


@PROPERTY
@given(n=st.integers(1, 40), k=st.integers(1, 4), d=st.integers(1, 3),
       prior_std=st.floats(0.3, 5.0), seed=st.integers(0, 2**16))
def test_the_elbo_gradient_vanishes_at_each_update(n, k, d, prior_std, seed):
    x, phi, m, s2 = random_problem(n, k, d, prior_std, seed)
    m_new, s2_new = update_means(x, phi, prior_std)
    mean, log_var = m_new.clone().requires_grad_(), s2_new.log().clone().requires_grad_()
    mixture_elbo(x, phi, mean, log_var.exp(), prior_std).backward()
    assert mean.grad.abs().max() < 1e-8 * (1 + x.abs().sum())
    assert log_var.grad.abs().max() < 1e-8 * (1 + n)
    logits = torch.log(update_assignments(x, m, s2)).requires_grad_()
    mixture_elbo(x, torch.softmax(logits, -1), m, s2, prior_std).backward()
    assert logits.grad.abs().max() < 1e-8 * (1 + x.abs().max() ** 2)


@PROPERTY
@given(n=st.integers(1, 60), k=st.integers(1, 5), d=st.integers(1, 3),
       prior_std=st.floats(0.3, 10.0), init_scale=st.floats(0.01, 10.0),
       seed=st.integers(0, 2**16))
def test_cavi_never_decreases_the_elbo(n, k, d, prior_std, init_scale, seed):
    x, _, _, _ = random_problem(n, k, d, prior_std, seed)
    g = torch.Generator().manual_seed(seed + 1)
    m = init_scale * torch.randn(k, d, generator=g)
    s2 = torch.full((k,), init_scale**2)
    phi = torch.full((n, k), 1 / k)
    elbos = [mixture_elbo(x, phi, m, s2, prior_std)]
    for _ in range(15):
        phi = update_assignments(x, m, s2)
        elbos.append(mixture_elbo(x, phi, m, s2, prior_std))
        m, s2 = update_means(x, phi, prior_std)
        elbos.append(mixture_elbo(x, phi, m, s2, prior_std))
    elbos = torch.stack(elbos)
    slack = 1e-10 * elbos.abs().max()  # rounding in sums of N terms
    assert (elbos.diff() >= -slack).all(), elbos.diff().min()


def test_assignments_are_a_softmax_of_the_expected_log_likelihood():
    x, _, m, s2 = random_problem(12, 3, 2, 1.0, seed=7)
    expected = torch.softmax(expected_log_likelihood(x, m, s2), -1)  # uniform prior: no shift
    assert torch.allclose(update_assignments(x, m, s2), expected, rtol=1e-12)


def test_updates_stay_finite_far_from_the_means():
    x = torch.tensor([[1e4, -1e4], [0.0, 0.0]])
    m = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    phi = update_assignments(x, m, torch.ones(2))  # logits of order 1e4: exp overflows
    assert torch.isfinite(phi).all() and torch.allclose(phi.sum(-1), torch.ones(2))
    phi32 = update_assignments(x.float(), m.float(), torch.ones(2, dtype=torch.float32))
    assert phi32.dtype == torch.float32 and torch.isfinite(phi32).all()
    m_new, s2_new = update_means(x, phi, 1e-3)
    assert torch.isfinite(m_new).all() and (s2_new > 0).all()


def test_mean_update_is_the_conjugate_posterior_for_one_component():
    x, _, _, _ = random_problem(9, 1, 2, 2.0, seed=8)
    m, s2 = update_means(x, torch.ones(9, 1), 2.0)
    precision = 1 / 4 + 9
    assert torch.allclose(m[0], x.sum(0) / precision, rtol=1e-12)
    assert torch.isclose(s2[0], torch.tensor(1 / precision), rtol=1e-12)


def test_bad_arguments_say_what_to_pass():
    x, phi, m, s2 = random_problem(6, 3, 2, 1.0, seed=9)
    with pytest.raises(ValueError, match=r"update_assignments: m must have shape \(K, D\) with "
                                         r"D = 2 \(from x\), got \(3, 1\)"):
        update_assignments(x, m[:, :1], s2)
    with pytest.raises(ValueError, match=r"update_assignments: s2 must have shape \(K\) with "
                                         r"K = 3 \(from m\), got \(3, 1\)"):
        update_assignments(x, m, s2[:, None])
    with pytest.raises(ValueError, match="the variances s2 must be > 0"):
        update_assignments(x, m, torch.zeros(3))
    with pytest.raises(ValueError, match=r"update_means: phi must have shape \(N, K\) with "
                                         r"N = 6 \(from x\), got \(4, 3\)"):
        update_means(x, phi[:4], 1.0)
    with pytest.raises(ValueError, match=r"phi holds assignment probabilities.*\[0, 1\]"):
        update_means(x, phi - 0.5, 1.0)
    with pytest.raises(ValueError, match="update_means: prior_std must be a positive finite"):
        update_means(x, phi, -1.0)
    with pytest.raises(TypeError, match="x must be a tensor"):
        update_means("data", phi, 1.0)
    with pytest.raises(ValueError, match="x has 1 non-finite values"):
        update_assignments(torch.where(x == x.max(), math.nan, x), m, s2)
    got = update_assignments(x.tolist(), m.tolist(), s2.tolist())  # array-likes are converted
    assert torch.allclose(got, update_assignments(x, m, s2))
