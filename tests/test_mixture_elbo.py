"""Tests of vicourse.conjugate.mixture_elbo: the closed-form ELBO of the Gaussian mixture.

Oracles: a Monte Carlo estimate of E_q[log p(x, c, mu) - log q(c, mu)] with torch.distributions
(within five standard errors); the exact log evidence of a tiny data set, by enumerating
every assignment and integrating the means in closed form (the ELBO must lie below it, and the
gap must be the KL to the exact posterior, zero for K = 1 with q = the posterior).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical, MultivariateNormal, Normal

from vicourse.conjugate.mixture_cavi import update_assignments, update_means
from vicourse.conjugate.mixture_elbo import (
    expected_log_likelihood,
    global_terms,
    mixture_elbo,
    mixture_elbo_best_assignments,
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


def random_problem(n: int, k: int, d: int, seed: int):
    """Data x (n, d), assignment probabilities phi (n, k), means m (k, d), variances s2 (k,)."""
    g = torch.Generator().manual_seed(seed)
    x = 3 * torch.randn(n, d, generator=g)
    phi = torch.softmax(2 * torch.randn(n, k, generator=g), -1)
    m = 2 * torch.randn(k, d, generator=g)
    s2 = torch.exp(torch.randn(k, generator=g) - 1)
    return x, phi, m, s2


def monte_carlo_elbo(x, phi, m, s2, prior_std, num_samples: int, seed: int):
    """Mean and standard error of log p(x, c, mu) - log q(c, mu) over draws from q."""
    torch.manual_seed(seed)
    k, d = m.shape
    q_mu = Normal(m, s2.sqrt()[:, None].expand(k, d))
    q_c = Categorical(probs=phi)
    mu = q_mu.sample((num_samples,))  # (S, K, D)
    c = q_c.sample((num_samples,))  # (S, N)
    centers = torch.take_along_dim(mu, c.unsqueeze(-1), dim=1)  # (S, N, D)
    log_p = (Normal(0.0, prior_std).log_prob(mu).sum((1, 2)) - x.shape[0] * math.log(k)
             + Normal(centers, 1.0).log_prob(x).sum((1, 2)))
    log_q = q_mu.log_prob(mu).sum((1, 2)) + q_c.log_prob(c).sum(1)
    terms = log_p - log_q
    return terms.mean(), terms.std() / math.sqrt(num_samples)


@pytest.mark.parametrize(("n", "k", "d", "prior_std"), [(5, 1, 1, 1.0), (20, 3, 2, 2.5),
                                                        (40, 4, 3, 0.7)])
def test_closed_form_matches_monte_carlo(n, k, d, prior_std):
    x, phi, m, s2 = random_problem(n, k, d, seed=n)
    estimate, se = monte_carlo_elbo(x, phi, m, s2, prior_std, 200_000, seed=k)
    exact = mixture_elbo(x, phi, m, s2, prior_std)
    assert abs(exact - estimate) < 5 * se, (exact, estimate, se)


def test_expected_log_likelihood_matches_monte_carlo():
    x, _, m, s2 = random_problem(6, 3, 2, seed=1)
    torch.manual_seed(0)
    mu = Normal(m, s2.sqrt()[:, None].expand_as(m)).sample((400_000,))  # (S, K, D)
    log_lik = MultivariateNormal(mu[:, None], torch.eye(2)).log_prob(x[None, :, None])  # (S,N,K)
    se = log_lik.std(0) / math.sqrt(len(mu))
    assert ((expected_log_likelihood(x, m, s2) - log_lik.mean(0)).abs() < 5 * se).all()


def log_evidence_by_enumeration(x: torch.Tensor, k: int, prior_std: float) -> torch.Tensor:
    """log p(x) = log sum_c p(c) prod_k p(x_{c = k}); each group integrates its mean exactly."""
    n, d = x.shape
    terms = []
    for c in itertools.product(range(k), repeat=n):
        c = torch.tensor(c)
        total = -n * math.log(k)
        for j in range(k):
            group = x[c == j]  # (n_j, D): per coordinate, N(0, I + sigma^2 1 1^T)
            if len(group):
                cov = torch.eye(len(group)) + prior_std**2 * torch.ones(len(group), len(group))
                gaussian = MultivariateNormal(torch.zeros(len(group)), cov)
                total = total + gaussian.log_prob(group.T).sum()
        terms.append(total)
    return torch.logsumexp(torch.stack(terms), 0)


@PROPERTY
@given(n=st.integers(1, 5), k=st.integers(1, 3), d=st.integers(1, 2),
       prior_std=st.floats(0.3, 5.0), seed=st.integers(0, 2**16))
def test_elbo_lies_below_the_exact_log_evidence(n, k, d, prior_std, seed):
    x, phi, m, s2 = random_problem(n, k, d, seed)
    log_evidence = log_evidence_by_enumeration(x, k, prior_std)
    assert mixture_elbo(x, phi, m, s2, prior_std) <= log_evidence + 1e-10
    assert mixture_elbo_best_assignments(x, m, s2, prior_std) <= log_evidence + 1e-10


@pytest.mark.parametrize("prior_std", [0.5, 2.0])
def test_one_component_at_its_posterior_has_zero_gap(prior_std):
    x, _, _, _ = random_problem(7, 1, 2, seed=3)
    phi = torch.ones(7, 1)
    m, s2 = update_means(x, phi, prior_std)  # K = 1: the exact posterior of the mean
    elbo = mixture_elbo(x, phi, m, s2, prior_std)
    assert torch.isclose(elbo, log_evidence_by_enumeration(x, 1, prior_std), rtol=1e-12)


@PROPERTY
@given(n=st.integers(1, 30), k=st.integers(1, 5), d=st.integers(1, 3),
       prior_std=st.floats(0.3, 5.0), seed=st.integers(0, 2**16))
def test_best_assignments_are_the_cavi_update_and_beat_any_other(n, k, d, prior_std, seed):
    x, phi, m, s2 = random_problem(n, k, d, seed)
    best = mixture_elbo_best_assignments(x, m, s2, prior_std)
    at_update = mixture_elbo(x, update_assignments(x, m, s2), m, s2, prior_std)
    assert torch.isclose(best, at_update, rtol=1e-12, atol=1e-9)
    assert mixture_elbo(x, phi, m, s2, prior_std) <= best + 1e-9


def test_elbo_is_finite_for_hard_assignments_and_float32():
    x, phi, m, s2 = random_problem(10, 3, 2, seed=4)
    hard = torch.nn.functional.one_hot(phi.argmax(-1), 3).double()  # 0 log 0 = 0
    assert torch.isfinite(mixture_elbo(x, hard, m, s2, 1.0))
    value32 = mixture_elbo(x.float(), phi.float(), m.float(), s2.float(), 1.0)
    assert value32.dtype == torch.float32
    assert torch.isclose(value32.double(), mixture_elbo(x, phi, m, s2, 1.0), rtol=1e-5)


def test_global_terms_are_the_prior_expectation_plus_entropy():
    _, _, m, s2 = random_problem(1, 4, 3, seed=5)
    q = Normal(m, s2.sqrt()[:, None].expand_as(m))
    prior = Normal(0.0, 2.0)
    # E_q log p(mu) = -KL(q || p) - H(q)... so E_q log p + H(q) = -KL(q || p)
    kl = torch.distributions.kl_divergence(q, prior).sum()
    assert torch.isclose(global_terms(m, s2, 2.0), -kl, rtol=1e-12)


def test_bad_arguments_say_what_to_pass():
    x, phi, m, s2 = random_problem(6, 3, 2, seed=6)
    with pytest.raises(ValueError, match=r"mixture_elbo: phi must have shape \(N, K\) with "
                                         r"N = 6 \(from x\), got \(5, 3\)"):
        mixture_elbo(x, phi[:5], m, s2, 1.0)
    with pytest.raises(ValueError, match=r"m must have shape \(K, D\) with K = 3 \(from phi\)"):
        mixture_elbo(x, phi, m[:2], s2, 1.0)
    with pytest.raises(ValueError, match=r"s2 must have shape \(K\) with K = 3"):
        mixture_elbo(x, phi, m, s2[:2], 1.0)
    with pytest.raises(ValueError, match="the variances s2 must be > 0"):
        mixture_elbo(x, phi, m, -s2, 1.0)
    with pytest.raises(ValueError, match="each row of phi must sum to 1"):
        mixture_elbo(x, phi / 2, m, s2, 1.0)
    with pytest.raises(ValueError, match="prior_std must be a positive finite number"):
        mixture_elbo(x, phi, m, s2, 0.0)
    with pytest.raises(TypeError, match="m has dtype torch.float32 but x has torch.float64"):
        mixture_elbo_best_assignments(x, m.float(), s2, 1.0)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        expected_log_likelihood(x.long(), m, s2)
    with pytest.raises(ValueError, match=r"x is empty"):
        mixture_elbo_best_assignments(x[:0], m, s2, 1.0)
    with pytest.raises(ValueError, match="m has 1 non-finite values"):
        global_terms(torch.where(m > m.max() - 1e-9, math.inf, m), s2, 1.0)
