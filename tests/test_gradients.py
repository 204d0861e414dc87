"""Tests of the ELBO gradient estimators (vicourse.objectives.gradients).

Oracles: the exact gradient of the conjugate model's closed-form ELBO by autograd
(unbiasedness, within Monte Carlo error at fixed seeds); the per-draw gradients written out
by hand for a Gaussian target; torch.distributions.Normal for the log density; a Python loop
of single-draw autograd calls for the batched per-draw gradients. Property tests: the
pathwise estimate is sticking the landing plus the score term, and sticking the landing is
zero at the exact posterior whatever the draw.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Normal

from vicourse.models.toy_model import ConjugateGaussian
from vicourse.objectives.gradients import (
    ESTIMATORS,
    gaussian_log_density,
    per_sample_gradients,
    reparameterized_surrogate,
    score_function_surrogate,
    score_term_surrogate,
    sticking_the_landing_surrogate,
)

F64 = torch.float64
finite = st.floats(-3.0, 3.0, allow_nan=False)
log_stds = st.floats(-2.0, 1.5, allow_nan=False)
noise_stds = st.floats(0.2, 3.0, allow_nan=False)


def conjugate_problem(x: list[float], noise_std: float = 0.5):
    """D independent copies of the conjugate model: log p(x, z) summed over coordinates."""
    model = ConjugateGaussian(noise_std=noise_std)
    x = torch.tensor(x, dtype=F64)
    return model, x, lambda z: model.log_joint(x, z).sum(-1)


def exact_gradient(model: ConjugateGaussian, x, mean, log_std) -> torch.Tensor:
    """Gradient of the closed-form ELBO with respect to (mean, log_std), shape (2, D)."""
    mean = mean.clone().requires_grad_(True)
    log_std = log_std.clone().requires_grad_(True)
    value = model.elbo(x, mean, log_std.exp()).sum()
    return torch.stack(torch.autograd.grad(value, (mean, log_std)))


def closed_form(name: str, model, x, mean, log_std, eps) -> torch.Tensor:
    """The per-draw gradients of the conjugate model written out by hand, shape (S, 2, D)."""
    std = log_std.exp()
    z = mean + std * eps
    s2 = model.noise_std**2
    g = (x - z) / s2 - z  # d/dz log p(x, z)
    score = torch.stack([eps / std, eps**2 - 1], dim=1)  # grad of log q at fixed z
    if name == "score function":
        f = model.log_joint(x, z) - Normal(mean, std).log_prob(z)
        return f.sum(-1)[:, None, None] * score
    if name == "reparameterization":
        return torch.stack([g, g * std * eps + 1], dim=1)
    if name == "sticking the landing":
        path = g + eps / std
        return torch.stack([path, path * std * eps], dim=1)
    raise KeyError(name)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_per_sample_gradients_match_the_formulas_written_out(name):
    model, x, log_joint = conjugate_problem([1.3, -0.4])
    mean = torch.tensor([-1.0, 0.5], dtype=F64)
    log_std = torch.tensor([0.7, -1.2], dtype=F64)
    eps = torch.randn(50, 2, dtype=F64)
    got = per_sample_gradients(ESTIMATORS[name], log_joint, mean, log_std, eps)
    assert got.shape == (50, 2, 2)
    torch.testing.assert_close(got, closed_form(name, model, x, mean, log_std, eps),
                               rtol=1e-10, atol=1e-10)


def test_per_sample_gradients_match_one_backward_pass_per_draw():
    _, _, log_joint = conjugate_problem([0.8])
    mean, log_std = torch.tensor([0.3], dtype=F64), torch.tensor([-0.5], dtype=F64)
    eps = torch.randn(4, 1, dtype=F64)
    batched = per_sample_gradients(reparameterized_surrogate, log_joint, mean, log_std, eps)
    for s in range(4):
        m, ls = mean.clone().requires_grad_(True), log_std.clone().requires_grad_(True)
        value = reparameterized_surrogate(log_joint, m, ls, eps[s : s + 1]).sum()
        one = torch.stack(torch.autograd.grad(value, (m, ls)))
        torch.testing.assert_close(batched[s], one, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("q", [([-1.0, 2.0], [0.7, -1.0]), ([0.4, 0.1], [-0.3, 0.2])])
def test_estimators_are_unbiased_for_the_exact_gradient(name, q):
    model, x, log_joint = conjugate_problem([1.3, -0.4])
    mean, log_std = (torch.tensor(v, dtype=F64) for v in q)
    eps = torch.randn(200_000, 2, dtype=F64)
    grads = per_sample_gradients(ESTIMATORS[name], log_joint, mean, log_std, eps)
    standard_error = grads.std(0) / math.sqrt(len(eps))
    error = (grads.mean(0) - exact_gradient(model, x, mean, log_std)).abs()
    assert (error < 5 * standard_error).all(), (error, standard_error)


def test_the_score_term_has_mean_zero_and_the_three_variances_are_ordered_here():
    _, _, log_joint = conjugate_problem([1.3])
    mean, log_std = torch.tensor([-1.0], dtype=F64), torch.tensor([0.7], dtype=F64)
    eps = torch.randn(100_000, 1, dtype=F64)
    score = per_sample_gradients(score_term_surrogate, log_joint, mean, log_std, eps)
    assert (score.mean(0).abs() < 5 * score.std(0) / math.sqrt(len(eps))).all()
    variance = {name: per_sample_gradients(f, log_joint, mean, log_std, eps).var(0).sum()
                for name, f in ESTIMATORS.items()}
    assert variance["score function"] > variance["reparameterization"]
    assert variance["reparameterization"] > variance["sticking the landing"]


@settings(max_examples=40, deadline=None)
@given(x=finite, noise_std=noise_stds, seed=st.integers(0, 2**31 - 1))
def test_sticking_the_landing_is_zero_at_the_exact_posterior(x, noise_std, seed):
    model, x_t, log_joint = conjugate_problem([x], noise_std)
    posterior = model.posterior(x_t)
    eps = 3 * torch.randn(64, 1, dtype=F64, generator=torch.Generator().manual_seed(seed))
    mean, log_std = posterior.mean, posterior.stddev.log()
    stl = per_sample_gradients(sticking_the_landing_surrogate, log_joint, mean, log_std, eps)
    assert stl.abs().max() < 1e-10
    reparam = per_sample_gradients(reparameterized_surrogate, log_joint, mean, log_std, eps)
    assert reparam.var(0).sum() > 0.1  # the score term is still there


@settings(max_examples=40, deadline=None)
@given(x=finite, noise_std=noise_stds, m=finite, log_std=log_stds,
       seed=st.integers(0, 2**31 - 1))
def test_pathwise_is_sticking_the_landing_plus_the_score_term(x, noise_std, m, log_std, seed):
    _, _, log_joint = conjugate_problem([x], noise_std)
    mean, log_std_t = torch.tensor([m], dtype=F64), torch.tensor([log_std], dtype=F64)
    eps = torch.randn(16, 1, dtype=F64, generator=torch.Generator().manual_seed(seed))
    terms = {f: per_sample_gradients(f, log_joint, mean, log_std_t, eps)
             for f in (reparameterized_surrogate, sticking_the_landing_surrogate,
                       score_term_surrogate)}
    torch.testing.assert_close(
        terms[reparameterized_surrogate],
        terms[sticking_the_landing_surrogate] + terms[score_term_surrogate],
        rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(m=finite, log_std=st.floats(-30.0, 30.0), eps=st.floats(-8.0, 8.0))
def test_gaussian_log_density_matches_torch_and_stays_finite(m, log_std, eps):
    mean, log_std_t = torch.tensor([m, 0.0], dtype=F64), torch.tensor([log_std, 0.0], dtype=F64)
    z = mean + log_std_t.exp() * torch.tensor([eps, 0.5], dtype=F64)
    expected = Normal(mean, log_std_t.exp()).log_prob(z).sum(-1)
    got = gaussian_log_density(z, mean, log_std_t)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-8)


def test_same_value_for_the_pathwise_and_sticking_the_landing_surrogates():
    _, _, log_joint = conjugate_problem([1.0, 2.0])
    mean, log_std = torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64)
    eps = torch.randn(10, 2, dtype=F64)
    torch.testing.assert_close(
        reparameterized_surrogate(log_joint, mean, log_std, eps),
        sticking_the_landing_surrogate(log_joint, mean, log_std, eps))
    # the score-function surrogate is a different function: weight times log q
    value = score_function_surrogate(log_joint, mean, log_std, eps)
    assert value.shape == (10,)


def test_bad_arguments_are_reported():
    _, _, log_joint = conjugate_problem([1.0])
    mean, log_std, eps = torch.zeros(1), torch.zeros(1), torch.randn(5, 1)
    with pytest.raises(TypeError, match="mean must be a floating-point tensor"):
        per_sample_gradients(reparameterized_surrogate, log_joint, torch.zeros(1, dtype=torch.long),
                             log_std, eps)
    with pytest.raises(TypeError, match="eps must be a floating-point tensor"):
        per_sample_gradients(reparameterized_surrogate, log_joint, mean, log_std, [[0.0]])
    with pytest.raises(ValueError, match=r"must both have shape \(D,\)"):
        per_sample_gradients(reparameterized_surrogate, log_joint, mean, torch.zeros(2), eps)
    with pytest.raises(ValueError, match=r"for a scalar latent use shape \(1,\)"):
        per_sample_gradients(reparameterized_surrogate, log_joint, torch.tensor(0.0),
                             torch.tensor(0.0), eps)
    with pytest.raises(ValueError, match=r"eps must have shape \(S, 1\)"):
        per_sample_gradients(reparameterized_surrogate, log_joint, mean, log_std,
                             torch.randn(5, 2))
    with pytest.raises(ValueError, match=r"log_joint returned shape \(5, 1\) but log q\(z\) has "
                       r"shape \(5,\); log_joint must return one value per draw"):
        per_sample_gradients(reparameterized_surrogate, lambda z: -0.5 * z.square(),
                             mean, log_std, eps)
