"""Bayesian logistic regression against torch.distributions (Bernoulli(logits), Normal)."""

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from vicourse.models.logistic_regression import (
    LogisticRegression,
    log_predictive_density,
    predictive_probability,
)

F64 = torch.float64


def _data(n=20, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=F64)
    y = (torch.rand(n, generator=g, dtype=F64) < 0.5).to(F64)
    return x, y


def test_log_joint_matches_torch_distributions():
    x, y = _data()
    model = LogisticRegression(x, y, prior_std=1.5)
    theta = torch.randn(4, 5, 3, dtype=F64)
    lik = Bernoulli(logits=theta @ x.T).log_prob(y).sum(-1)
    prior = Normal(0.0, 1.5).log_prob(theta).sum(-1)
    torch.testing.assert_close(model.log_likelihood(theta), lik)
    torch.testing.assert_close(model.log_joint(theta), lik + prior)
    blanket = model.blanket_log_joint(theta)
    torch.testing.assert_close(blanket, lik[..., None] + Normal(0.0, 1.5).log_prob(theta))


def test_log_likelihood_is_finite_at_extreme_logits():
    x, y = _data()
    model = LogisticRegression(x, y)
    assert torch.isfinite(model.log_likelihood(torch.full((3,), 100.0, dtype=F64)))


def test_predictive_against_a_loop():
    x, y = _data(n=7, seed=1)
    draws = torch.randn(50, 3, dtype=F64)
    probs = torch.sigmoid(draws @ x.T)  # (S, M)
    expected = torch.where(y.bool(), probs, 1 - probs).mean(0).log()
    torch.testing.assert_close(log_predictive_density(x, y, draws), expected)
    torch.testing.assert_close(predictive_probability(x, draws), probs.mean(0))


@pytest.mark.parametrize("labels, match", [([0, 1, 2], "0 or 1"), ([0, 1], "labels must have")])
def test_bad_labels(labels, match):
    with pytest.raises(ValueError, match=match):
        LogisticRegression(torch.randn(3, 2, dtype=F64), torch.tensor(labels))


def test_bad_theta_shape():
    x, y = _data()
    with pytest.raises(ValueError, match=r"\(\.\.\., D\) = \(\.\.\., 3\)"):
        LogisticRegression(x, y).log_joint(torch.zeros(2, 4, dtype=F64))
