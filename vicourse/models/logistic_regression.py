r"""Bayesian logistic regression: the book's non-conjugate model.

.. math::

    \theta \sim \mathcal N(0, s^2 I_D), \qquad
    y_n \mid \theta \sim \operatorname{Bernoulli}\big(\sigma(x_n^\top \theta)\big),
    \quad n = 1, \dots, N,

with features :math:`x_n \in \mathbb R^D` (a column of ones gives an intercept) and labels
:math:`y_n \in \{0, 1\}`. The posterior has no closed form. Every log density is computed from
logits, :math:`\log \sigma(a) = -\operatorname{softplus}(-a)`, never as the log of a sigmoid.

:func:`log_predictive_density` and :func:`predictive_probability` average the likelihood of
held-out points over draws of :math:`\theta` (from a variational fit or from MCMC).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from vicourse._checks import (
    as_tensor,
    check_all_finite,
    check_float,
    check_nonempty,
    check_positive_finite,
    check_same_dtype_and_device,
    check_shape,
)
from vicourse.objectives.weights import log_mean_exp


class LogisticRegression:
    """The model of one data set: features (N, D), labels (N,) of 0 and 1, prior N(0, s^2 I).

    All log densities take theta of shape (..., D), any batch shape, and are differentiable
    (also under torch.func transforms: they check shapes, never values).
    """

    def __init__(self, features: Tensor, labels: Tensor, prior_std: float = 1.0) -> None:
        self.features, self.labels = _check_data(features, labels)
        check_positive_finite(prior_std, "prior_std")
        self.prior_std = float(prior_std)

    def __repr__(self) -> str:
        n, d = self.features.shape
        return f"LogisticRegression(N={n}, D={d}, prior_std={self.prior_std})"

    @property
    def dim(self) -> int:
        """D, the number of coefficients."""
        return self.features.shape[1]

    def log_likelihood(self, theta: Tensor) -> Tensor:
        """sum_n log Bernoulli(y_n; sigmoid(x_n^T theta)); theta: (..., D) -> (...)."""
        theta = self._check_theta(theta)
        logits = theta @ self.features.T  # (..., N)
        labels = self.labels.expand_as(logits)  # (..., N)
        return -F.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(-1)

    def log_prior_terms(self, theta: Tensor) -> Tensor:
        """log N(theta_d; 0, s^2) of each coordinate; theta: (..., D) -> (..., D)."""
        theta = self._check_theta(theta)
        s = self.prior_std
        return -0.5 * (theta / s).square() - math.log(s) - 0.5 * math.log(2 * math.pi)

    def log_prior(self, theta: Tensor) -> Tensor:
        """log N(theta; 0, s^2 I_D); theta: (..., D) -> (...)."""
        return self.log_prior_terms(theta).sum(-1)

    def log_joint(self, theta: Tensor) -> Tensor:
        """log p(y, theta) = log p(theta) + log p(y | theta); theta: (..., D) -> (...)."""
        return self.log_prior(theta) + self.log_likelihood(theta)

    def blanket_log_joint(self, theta: Tensor) -> Tensor:
        """For each coordinate d, the terms of log p(y, theta) that contain theta_d: the whole
        log likelihood plus log N(theta_d; 0, s^2). theta: (..., D) -> (..., D)."""
        return self.log_likelihood(theta).unsqueeze(-1) + self.log_prior_terms(theta)

    def _check_theta(self, theta: Tensor) -> Tensor:
        theta = as_tensor(theta, "theta", dtype=self.features.dtype)
        check_float(theta, "theta")
        check_shape(theta, "theta", f"(..., D) = (..., {self.dim})",
                    theta.ndim >= 1 and theta.shape[-1] == self.dim)
        check_same_dtype_and_device(theta=theta, features=self.features)
        return theta


def log_predictive_density(features: Tensor, labels: Tensor, theta_draws: Tensor) -> Tensor:
    """log (1/S) sum_s p(y_m | x_m, theta_s) of each held-out point, by log-sum-exp.

    features: (M, D); labels: (M,) of 0 and 1; theta_draws: (S, D) -> (M,)
    """
    features, labels = _check_data(features, labels)
    theta_draws = _check_draws(theta_draws, features)
    logits = theta_draws @ features.T  # (S, M)
    log_lik = -F.binary_cross_entropy_with_logits(
        logits, labels.expand_as(logits), reduction="none")  # (S, M)
    return log_mean_exp(log_lik, dim=0)  # (M,)


def predictive_probability(features: Tensor, theta_draws: Tensor) -> Tensor:
    """p(y_m = 1 | x_m) = (1/S) sum_s sigmoid(x_m^T theta_s); features: (M, D), draws: (S, D)
    -> (M,)."""
    features = _check_features(features, "features")
    theta_draws = _check_draws(theta_draws, features)
    return torch.sigmoid(theta_draws @ features.T).mean(0)  # (M,)


def _check_features(features: Tensor, name: str) -> Tensor:
    features = as_tensor(features, name)
    check_float(features, name)
    check_shape(features, name, "(N, D): one row of D features per data point",
                features.ndim == 2)
    check_nonempty(features, name)
    check_all_finite(features, name)
    return features


def _check_data(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """features as a finite float (N, D) tensor, labels as (N,) of 0.0 and 1.0 in its dtype."""
    features = _check_features(features, "features")
    labels = as_tensor(labels, "labels")
    check_shape(labels, "labels", f"(N,) = ({features.shape[0]},), one label per row of "
                "features", labels.shape == features.shape[:1])
    if not bool(((labels == 0) | (labels == 1)).all()):
        bad = labels[(labels != 0) & (labels != 1)]
        raise ValueError(f"labels must be 0 or 1 (a Bernoulli likelihood), got "
                         f"{bad.numel()} other values such as {bad.flatten()[0].item()!r}; "
                         "encode the two classes as 0 and 1")
    labels = labels.to(dtype=features.dtype)
    check_same_dtype_and_device(features=features, labels=labels)
    return features, labels


def _check_draws(theta_draws: Tensor, features: Tensor) -> Tensor:
    theta_draws = as_tensor(theta_draws, "theta_draws", dtype=features.dtype)
    check_float(theta_draws, "theta_draws")
    check_shape(theta_draws, "theta_draws", f"(S, D) = (S, {features.shape[1]}): S draws of "
                "the coefficients", theta_draws.ndim == 2
                and theta_draws.shape[1] == features.shape[1])
    check_nonempty(theta_draws, "theta_draws")
    check_same_dtype_and_device(theta_draws=theta_draws, features=features)
    check_all_finite(theta_draws, "theta_draws")
    return theta_draws
