"""Tests of vicourse.models.gaussian_mixture: the Bayesian mixture of unit-variance Gaussians.

Oracles: the log joint written term by term with torch.distributions (MultivariateNormal,
Categorical); summed over every assignment of one point, it must give the log density of
torch.distributions.MixtureSameFamily. Samples: the residuals x_i - mu_{c_i} are N(0, I).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
)

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


def log_joint_oracle(model: GaussianMixture, x, c, mu) -> torch.Tensor:
    """log p(x, c, mu) from torch.distributions, for one (c, mu)."""
    k, d = model.num_components, model.dim
    eye = torch.eye(d, dtype=F64)
    prior = MultivariateNormal(torch.zeros(d, dtype=F64), model.prior_std**2 * eye)
    assignments = Categorical(logits=torch.zeros(k, dtype=F64))
    likelihood = MultivariateNormal(mu[c], eye)
    return prior.log_prob(mu).sum() + assignments.log_prob(c).sum() + likelihood.log_prob(x).sum()


@PROPERTY
@given(k=st.integers(1, 5), d=st.integers(1, 3), n=st.integers(1, 20),
       prior_std=st.floats(0.1, 10.0), seed=st.integers(0, 2**16))
def test_log_joint_matches_torch_distributions(k, d, n, prior_std, seed):
    model = GaussianMixture(k, d, prior_std)
    g = torch.Generator().manual_seed(seed)
    x, c, mu = model.sample(n, generator=g)
    expected = log_joint_oracle(model, x.double(), c, mu.double())
    assert torch.allclose(model.log_joint(x.double(), c, mu.double()), expected, rtol=1e-12)


def test_log_joint_is_batched_and_broadcasts():
    model = GaussianMixture(3, 2, 2.0)
    g = torch.Generator().manual_seed(1)
    x, _, _ = model.sample(7, generator=g)
    mu = torch.randn(4, 1, 3, 2, generator=g)  # (4, 1, K, D)
    c = torch.randint(3, (5, 7), generator=g)  # (5, N)
    got = model.log_joint(x, c, mu)
    assert got.shape == (4, 5)
    for a in range(4):
        for b in range(5):
            expected = log_joint_oracle(model, x, c[b], mu[a, 0])
            assert torch.isclose(got[a, b], expected, rtol=1e-12)


def test_summing_out_the_assignment_gives_the_mixture_density():
    model = GaussianMixture(4, 3, 1.5)
    g = torch.Generator().manual_seed(2)
    x, _, mu = model.sample(1, generator=g)
    joint = torch.stack([model.log_joint(x, torch.tensor([k]), mu) for k in range(4)])
    log_prior_mu = Independent(Normal(torch.zeros(4, 3), 1.5), 2).log_prob(mu)
    mixture = MixtureSameFamily(Categorical(logits=torch.zeros(4)),
                                Independent(Normal(mu, torch.ones(4, 3)), 1))
    assert torch.isclose(torch.logsumexp(joint, 0) - log_prior_mu, mixture.log_prob(x[0]),
                         rtol=1e-12)


def test_samples_have_the_model_distribution():
    model = GaussianMixture(3, 2, 4.0)
    x, c, mu = model.sample(200_000, generator=torch.Generator().manual_seed(3))
    assert x.shape == (200_000, 2) and c.shape == (200_000,) and mu.shape == (3, 2)
    residual = x - mu[c]
    se = 1 / math.sqrt(len(x))
    assert residual.mean(0).abs().max() < 5 * se
    assert (residual.var(0) - 1).abs().max() < 5 * math.sqrt(2) * se
    counts = torch.bincount(c, minlength=3) / len(c)
    assert (counts - 1 / 3).abs().max() < 5 * math.sqrt(2 / 9 / len(c))
    means = GaussianMixture(2, 1, 4.0).sample(1, generator=torch.Generator().manual_seed(4))[2]
    assert means.shape == (2, 1)


def test_sample_is_reproducible_with_a_generator():
    model = GaussianMixture(3, 2, 1.0)
    first = model.sample(5, generator=torch.Generator().manual_seed(9))
    second = model.sample(5, generator=torch.Generator().manual_seed(9))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_components": 0}, "num_components must be a positive integer"),
    ({"num_components": 2.5}, "num_components must be a positive integer"),
    ({"num_components": 2, "dim": 0}, "dim must be a positive integer"),
    ({"num_components": 2, "prior_std": 0.0}, "prior_std must be a positive finite number"),
    ({"num_components": 2, "prior_std": math.inf}, "prior_std must be a positive finite"),
])
def test_bad_model_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**kwargs)


def test_bad_sample_and_log_joint_arguments_say_what_to_pass():
    model = GaussianMixture(3, 2, 1.0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample(0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        model.sample(3, generator=0)
    x, c, mu = model.sample(4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\) with D = 2"):
        model.log_joint(x[:, :1], c, mu)
    with pytest.raises(ValueError, match=r"mu must have shape \(\.\.\., K, D\) = \(\.\.\., 3, 2\)"):
        model.log_joint(x, c, mu[:2])
    with pytest.raises(ValueError, match=r"c must have shape \(\.\.\., N\) with N = 4"):
        model.log_joint(x, c[:3], mu)
    with pytest.raises(ValueError, match=r"component indices in \[0, 3\), got values in"):
        model.log_joint(x, c + 3, mu)
    with pytest.raises(TypeError, match="c must hold integer component indices"):
        model.log_joint(x, c.float(), mu)
    with pytest.raises(TypeError, match="mu has dtype torch.float64 but x has torch.float32"):
        model.log_joint(x.float(), c, mu)
    with pytest.raises(ValueError, match="x has 1 non-finite values"):
        model.log_joint(torch.where(torch.arange(8).reshape(4, 2) == 5, math.nan, x), c, mu)
