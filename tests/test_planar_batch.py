"""Tests of the per-image planar posteriors (vicourse.families.planar_batch).

Oracles: ``torch.func.jacrev`` + ``torch.linalg.slogdet`` for the log-determinant of every
image's flow, :class:`~vicourse.families.flows.PlanarLayer` (one set of parameters) for the
layers, ``torch.distributions`` for the Gaussian density, and hypothesis for the
invertibility constraint over arbitrary raw parameters.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, Normal

from vicourse.families.flows import PlanarLayer
from vicourse.families.planar_batch import (
    IDENTITY_WU,
    PlanarPosterior,
    constrained_u,
    identity_planar_posterior,
    planar_layers,
    planar_posterior_sample,
)

F64 = torch.float64
PROPERTY = settings(max_examples=40, deadline=None)


def random_parameters(n: int, num_layers: int, k: int, seed: int = 0, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    u = scale * torch.randn(n, num_layers, k, generator=g, dtype=F64)
    w = scale * torch.randn(n, num_layers, k, generator=g, dtype=F64)
    b = torch.randn(n, num_layers, generator=g, dtype=F64)
    return u, w, b


def test_log_det_matches_jacrev_slogdet_for_every_image() -> None:
    u, w, b = random_parameters(n=3, num_layers=4, k=5, scale=1.5)
    z = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    _, log_det = planar_layers(z, u, w, b)
    for s in range(2):
        for n in range(3):
            def one_image(v, n=n):
                return planar_layers(v[None, None], u[n:n + 1], w[n:n + 1], b[n:n + 1])[0][0, 0]
            jacobian = torch.func.jacrev(one_image)(z[s, n])  # (K, K)
            sign, logabs = torch.linalg.slogdet(jacobian)
            assert sign > 0
            assert torch.allclose(log_det[s, n], logabs, atol=1e-10)


def test_layers_agree_with_planar_layer_of_flows() -> None:
    u, w, b = random_parameters(n=2, num_layers=3, k=4, seed=3)
    z = torch.randn(6, 2, 4, generator=torch.Generator().manual_seed(4), dtype=F64)
    out, log_det = planar_layers(z, u, w, b)
    for n in range(2):
        x, total = z[:, n], torch.zeros(6, dtype=F64)
        for layer in range(3):
            planar = PlanarLayer(4).to(F64)
            with torch.no_grad():
                planar.u.copy_(u[n, layer])
                planar.w.copy_(w[n, layer])
                planar.b.copy_(b[n, layer])
            x, ld = planar(x)
            total = total + ld
        assert torch.allclose(out[:, n], x, atol=1e-12)
        assert torch.allclose(log_det[:, n], total, atol=1e-12)


@PROPERTY
@given(st.lists(st.floats(-30, 30), min_size=6, max_size=6))
def test_constrained_u_keeps_every_layer_invertible(values: list[float]) -> None:
    u, w = torch.tensor(values[:3], dtype=F64), torch.tensor(values[3:], dtype=F64)
    if float(w.square().sum()) < 1e-6:
        w = w + 1.0
    u_hat = constrained_u(u, w)
    assert float(w @ u_hat) > -1 - 1e-9
    # the identity: w @ u_hat = softplus(w @ u) - 1
    assert math.isclose(float(w @ u_hat), float(torch.nn.functional.softplus(w @ u)) - 1,
                        rel_tol=1e-9, abs_tol=1e-9)


@PROPERTY
@given(st.integers(0, 10_000), st.floats(0.1, 20.0))
def test_log_det_finite_for_any_raw_parameters(seed: int, scale: float) -> None:
    u, w, b = random_parameters(n=3, num_layers=2, k=3, seed=seed, scale=scale)
    z = 5 * torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    out, log_det = planar_layers(z, u, w, b)
    assert torch.isfinite(out).all() and torch.isfinite(log_det).all()


def test_identity_posterior_is_the_gaussian() -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(5, 3, generator=g, dtype=F64)
    logvar = torch.randn(5, 3, generator=g, dtype=F64)
    posterior = identity_planar_posterior(mu, logvar, num_layers=4, generator=g)
    assert torch.allclose((posterior.w * posterior.u).sum(-1),
                          torch.full((5, 4), IDENTITY_WU, dtype=F64))
    assert torch.allclose(constrained_u(posterior.u, posterior.w), torch.zeros(5, 4, 3, dtype=F64),
                          atol=1e-12)
    z, log_q = planar_posterior_sample(posterior, 7, generator=torch.Generator().manual_seed(1))
    gaussian = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    assert torch.allclose(log_q, gaussian.log_prob(z), atol=1e-10)


def test_sample_log_q_is_base_density_minus_log_det() -> None:
    u, w, b = random_parameters(n=2, num_layers=3, k=2, seed=5)
    mu, logvar = torch.zeros(2, 2, dtype=F64), torch.full((2, 2), -1.0, dtype=F64)
    posterior = PlanarPosterior(mu, logvar, u, w, b)
    g = torch.Generator().manual_seed(2)
    z, log_q = planar_posterior_sample(posterior, 5, generator=g)
    eps = torch.randn(5, 2, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    z0 = mu + torch.exp(0.5 * logvar) * eps
    expected_z, log_det = planar_layers(z0, u, w, b)
    base = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1).log_prob(z0)
    assert torch.allclose(z, expected_z) and torch.allclose(log_q, base - log_det)


def test_flow_density_integrates_to_one_in_one_dimension() -> None:
    u, w, b = random_parameters(n=1, num_layers=3, k=1, seed=7, scale=2.0)
    posterior = PlanarPosterior(torch.zeros(1, 1, dtype=F64), torch.zeros(1, 1, dtype=F64), u, w, b)
    # log q at the pushed-forward grid, integrated over the image of the grid (the map is monotone)
    z0 = torch.linspace(-12, 12, 200_001, dtype=F64)[:, None, None]
    z, log_det = planar_layers(z0, u, w, b)
    log_q = Normal(0.0, 1.0).log_prob(z0[..., 0]) - log_det
    x, density = z[:, 0, 0], log_q[:, 0].exp()
    assert torch.all(x.diff() > 0)
    assert abs(float(torch.trapezoid(density, x)) - 1) < 1e-6
    assert posterior.num_layers == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(logvar=torch.zeros(3, 2)), "logvar must have shape"),
        (dict(u=torch.zeros(2, 4)), "u must have shape"),
        (dict(w=torch.zeros(2, 2, 3)), "w must have shape"),
        (dict(b=torch.zeros(2)), "b must have shape"),
        (dict(mu=torch.zeros(2, 3, dtype=torch.int64)), "floating-point"),
        (dict(b=torch.zeros(2, 1, dtype=F64)), "dtype"),
    ],
)
def test_bad_posteriors_are_rejected(change: dict, message: str) -> None:
    arguments = dict(mu=torch.zeros(2, 3), logvar=torch.zeros(2, 3), u=torch.zeros(2, 1, 3),
                     w=torch.ones(2, 1, 3), b=torch.zeros(2, 1))
    arguments.update(change)
    with pytest.raises((ValueError, TypeError), match=message):
        PlanarPosterior(**arguments)


def test_bad_layer_and_sample_arguments_are_rejected() -> None:
    u, w, b = random_parameters(n=2, num_layers=1, k=3)
    with pytest.raises(ValueError, match=r"z must have shape \(S, 2, 3\)"):
        planar_layers(torch.zeros(4, 3, 3, dtype=F64), u, w, b)
    posterior = identity_planar_posterior(torch.zeros(2, 3), torch.zeros(2, 3), 1)
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        planar_posterior_sample(posterior, 0)
    with pytest.raises(TypeError, match="PlanarPosterior"):
        planar_posterior_sample((torch.zeros(2, 3), torch.zeros(2, 3)), 3)
    with pytest.raises(ValueError, match="num_layers must be an integer >= 0"):
        identity_planar_posterior(torch.zeros(2, 3), torch.zeros(2, 3), -1)
