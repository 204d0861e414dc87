"""Tests of the VAE bounds (vicourse.objectives.bounds).

Oracles: torch.distributions.Bernoulli for the likelihood; the exact log p(x) of a tiny VAE
with a one-dimensional latent, by scipy quadrature; the two ELBO estimators (closed-form KL,
sampled log-weights) against each other; and the bound ordering ELBO <= L_K <= log p(x),
checked statistically with fixed seeds.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from torch.distributions import Bernoulli

from vicourse.models.vae import VAE
from vicourse.objectives.bounds import (
    bernoulli_log_likelihood,
    elbo,
    elbo_sticking_the_landing,
    grouped_bound,
    iwae_bound,
    log_importance_weights,
    log_importance_weights_chunked,
    log_likelihood_estimate,
    log_mean_exp,
    negative_elbo_loss,
    negative_elbo_stl_loss,
    negative_iwae_loss,
)

F64 = torch.float64


TORCH_SEED = 2024  # used by the seeded_torch fixture of tests/conftest.py


def tiny_vae(latent_dim: int = 1, data_dim: int = 6) -> VAE:
    """A small random VAE in double precision whose posterior is far from its encoder."""
    torch.manual_seed(7)
    model = VAE(data_dim=data_dim, hidden=(8,), latent_dim=latent_dim).double()
    with torch.no_grad():  # a sharper likelihood: a posterior narrower than the encoder's q
        model.decoder[-1].weight.mul_(6)
    return model


def tiny_images(n: int = 4, data_dim: int = 6) -> torch.Tensor:
    return (torch.rand(n, data_dim, dtype=F64) < 0.4).to(F64)


@functools.cache
def tiny_problem() -> tuple[VAE, torch.Tensor, np.ndarray]:
    """The tiny VAE, four images, and their exact log p(x) (computed once per session)."""
    model = tiny_vae()
    torch.manual_seed(5)
    x = tiny_images()
    return model, x, exact_log_evidence(model, x)


def exact_log_evidence(model: VAE, x: torch.Tensor) -> np.ndarray:
    """log p(x) = log of the integral over z of N(z; 0, 1) p(x | z), by adaptive quadrature.

    The integrand is scaled by its maximum on a grid (added back in log space), and the
    interval is split at that maximum and where the decoder's first activations switch
    (w_i z + b_i = 0), so quad integrates smooth, well-scaled pieces.
    """
    assert model.latent_dim == 1
    first = model.decoder[0]
    kinks = (-first.bias / first.weight[:, 0]).detach().tolist()

    def log_integrand(z: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            log_lik = bernoulli_log_likelihood(model.decode(z[:, None]), image[None])
        return log_lik - 0.5 * z**2 - 0.5 * math.log(2 * math.pi)

    out = []
    grid = torch.linspace(-12, 12, 4801, dtype=F64)
    for image in x:
        values = log_integrand(grid, image)
        peak, z_peak = float(values.max()), float(grid[values.argmax()])

        def integrand(z: float, image=image, peak=peak) -> float:
            return math.exp(float(log_integrand(torch.tensor([z], dtype=F64), image)) - peak)

        value, _ = quad(integrand, -12, 12,
                        points=[z_peak, *[k for k in kinks if abs(k) < 12]],
                        epsabs=0, epsrel=1e-10, limit=400)
        out.append(math.log(value) + peak)
    return np.array(out)


# --- the Bernoulli likelihood ------------------------------------------------------------

def test_bernoulli_log_likelihood_matches_torch_distributions():
    logits = torch.randn(5, 3, 10, dtype=F64) * 4
    x = (torch.rand(3, 10, dtype=F64) < 0.5).to(F64)
    expected = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).sum(-1)
    got = bernoulli_log_likelihood(logits, x)
    assert got.shape == (5, 3)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    # One set of logits for a whole batch of images broadcasts the other way.
    one = bernoulli_log_likelihood(logits[0, 0], x)
    assert one.shape == (3,)
    assert torch.allclose(one, Bernoulli(logits=logits[0, 0]).log_prob(x).sum(-1), atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.floats(-100, 100), st.sampled_from([0.0, 1.0]))
def test_bernoulli_log_likelihood_is_finite_and_nonpositive_for_extreme_logits(logit, target):
    value = bernoulli_log_likelihood(torch.tensor([[logit]]), torch.tensor([[target]]))
    assert torch.isfinite(value).all() and float(value) <= 0
    # Far on the right side the probability is ~1, far on the wrong side log p ~ -|logit|.
    if (logit > 0) == (target == 1.0) and abs(logit) > 50:
        assert float(value) > -1e-20
    if (logit > 0) != (target == 1.0) and abs(logit) > 50:
        assert float(value) == pytest.approx(-abs(logit), rel=1e-6)


@pytest.mark.parametrize("bad", [0.5, 2.0, -1.0, float("nan")])
def test_bernoulli_log_likelihood_rejects_targets_outside_zero_one(bad):
    x = torch.zeros(2, 4)
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r"targets in \{0, 1\}.*binarize"):
        bernoulli_log_likelihood(torch.zeros(2, 4), x)


def test_elbo_rejects_grey_levels():
    model = tiny_vae()
    with pytest.raises(ValueError, match="binarize_dynamic"):
        elbo(model, torch.full((2, 6), 0.3, dtype=F64))


# --- the ELBO ------------------------------------------------------------------------------

def test_elbo_closed_form_kl_agrees_with_the_sampled_log_weights():
    """E[log w] with sampled log p(z) - log q(z) is the same ELBO as the closed-form-KL one."""
    model, x = tiny_vae(latent_dim=3), tiny_images()
    with torch.no_grad():
        a = elbo(model, x.repeat(20_000, 1)).reshape(20_000, -1)
        b = log_importance_weights(model, x, 20_000)
    se = (a.var(0) / len(a) + b.var(0) / len(b)).sqrt()
    assert torch.all((a.mean(0) - b.mean(0)).abs() < 5 * se)


def test_elbo_is_below_the_exact_log_evidence():
    model, x, exact = tiny_problem()
    with torch.no_grad():
        draws = elbo(model, x.repeat(20_000, 1)).reshape(20_000, -1)
    mean, se = draws.mean(0).numpy(), (draws.std(0) / math.sqrt(len(draws))).numpy()
    assert np.all(mean + 5 * se < exact)


def test_negative_elbo_loss_is_the_batch_mean_and_has_gradients():
    model, x = tiny_vae(latent_dim=2), tiny_images(8)
    torch.manual_seed(3)
    loss = negative_elbo_loss(model, x)
    torch.manual_seed(3)
    per_image = elbo(model, x)
    assert torch.allclose(loss, -per_image.mean())
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in model.encoder.parameters() for g in [g.grad])


@settings(max_examples=40, deadline=None)
@given(st.floats(-100, 100), st.floats(-30, 30), st.floats(-10, 10))
def test_elbo_is_finite_for_extreme_logits_and_log_variances(logit, logvar, mean):
    """Encoder outputs (mean, log-variance) and decoder logits pinned to extreme values."""
    model = VAE(data_dim=4, hidden=(3,), latent_dim=2)
    with torch.no_grad():
        for net in (model.encoder, model.decoder):
            for p in net.parameters():
                p.zero_()
        model.encoder[-1].bias.copy_(torch.tensor([mean, mean, logvar, logvar]))
        model.decoder[-1].bias.fill_(logit)
        x = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
        assert torch.isfinite(elbo(model, x)).all()
        assert torch.isfinite(iwae_bound(model, x, 50)).all()
        assert torch.isfinite(elbo_sticking_the_landing(model, x)).all()


# --- L_K and the log-likelihood estimate ---------------------------------------------------

def test_log_importance_weights_shape():
    model, x = tiny_vae(latent_dim=2), tiny_images(3)
    assert log_importance_weights(model, x, 5).shape == (5, 3)
    assert iwae_bound(model, x, 5).shape == (3,)


def test_importance_bound_increases_with_k_and_stays_below_log_evidence():
    """L_1 < L_4 < L_64 < log p(x): means over 4,000 repetitions, 4 standard errors apart."""
    model, x, exact = tiny_problem()
    exact = torch.from_numpy(exact)
    means, ses = [], []
    with torch.no_grad():
        for k in (1, 4, 64):
            draws = iwae_bound(model, x.repeat(4000, 1), k).reshape(4000, len(x))
            means.append(draws.mean(0))
            ses.append(draws.std(0) / math.sqrt(len(draws)))
    for lo, hi, se_lo, se_hi in zip(means, means[1:], ses, ses[1:], strict=False):
        assert torch.all(hi - lo > 4 * torch.sqrt(se_lo**2 + se_hi**2))
    assert torch.all(means[-1] < exact + 4 * ses[-1])


def test_log_likelihood_estimate_converges_to_the_quadrature_value():
    model, x, exact = tiny_problem()
    estimate = log_likelihood_estimate(model, x, num_samples=20_000, chunk_size=1000).numpy()
    assert np.all(np.abs(estimate - exact) < 0.02)
    # ... and it is far tighter than the ELBO of the same (poor) encoder.
    with torch.no_grad():
        elbo_mean = elbo(model, x.repeat(5000, 1)).reshape(5000, -1).mean(0).numpy()
    assert np.all(exact - estimate < 0.2 * (exact - elbo_mean))


def test_log_likelihood_estimate_equals_iwae_bound_in_one_chunk():
    model, x = tiny_vae(latent_dim=2), tiny_images(5)
    torch.manual_seed(11)
    one_chunk = log_likelihood_estimate(model, x, num_samples=40, chunk_size=100)
    torch.manual_seed(11)
    direct = iwae_bound(model, x, 40)
    assert torch.allclose(one_chunk, direct, atol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 300, 1000])
def test_log_likelihood_estimate_combines_chunks_exactly(monkeypatch, chunk_size):
    """Serve a fixed table of log-weights chunk by chunk: the result is its log-mean-exp."""
    n_images, k = 6, 300
    table = torch.randn(k, n_images, dtype=F64) * 30 - 200  # spread and far below 0
    x = torch.arange(n_images, dtype=F64)[:, None]  # row i identifies image i
    served = [0] * n_images

    def from_table(model, images, num):
        ids = images[:, 0].long().tolist()
        out = torch.stack([table[served[i]:served[i] + num, i] for i in ids], dim=1)
        for i in ids:
            served[i] += num
        return out

    monkeypatch.setattr("vicourse.objectives.bounds.log_importance_weights", from_table)
    got = log_likelihood_estimate(None, x, num_samples=k, chunk_size=chunk_size)
    expected = torch.logsumexp(table, 0) - math.log(k)
    assert served == [k] * n_images
    assert torch.allclose(got, expected, rtol=0, atol=1e-10)


def test_log_likelihood_estimate_is_finite_for_ten_thousand_proposals():
    model = VAE(data_dim=784, hidden=(50,), latent_dim=5)
    x = (torch.rand(2, 784) < 0.2).float()
    value = log_likelihood_estimate(model, x, num_samples=10_000, chunk_size=2000)
    assert torch.isfinite(value).all()
    naive = torch.log(torch.exp(log_importance_weights(model, x, 10)).mean(0))
    assert torch.isinf(naive).all()  # what log-sum-exp avoids: exp(-500) underflows to 0


def test_log_likelihood_estimate_rejects_bad_counts():
    model, x = tiny_vae(), tiny_images()
    with pytest.raises(ValueError, match="num_samples"):
        log_likelihood_estimate(model, x, num_samples=0)
    with pytest.raises(ValueError, match="chunk_size"):
        log_likelihood_estimate(model, x, chunk_size=-1)


def _gradients(model: VAE, value: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(value, list(model.parameters())))


def test_elbo_sticking_the_landing_has_the_value_of_the_sampled_elbo():
    model, x = tiny_vae(latent_dim=3), tiny_images()
    torch.manual_seed(11)
    stl = elbo_sticking_the_landing(model, x)
    torch.manual_seed(11)
    sampled = log_importance_weights(model, x, 1)[0]  # the same draw of z
    assert stl.shape == (len(x),)
    torch.testing.assert_close(stl, sampled, rtol=0, atol=1e-12)
    torch.manual_seed(11)
    torch.testing.assert_close(negative_elbo_stl_loss(model, x), -stl.mean())


def test_elbo_sticking_the_landing_drops_exactly_the_score_term():
    """grad STL = grad(sampled ELBO) + grad log q(sg(z); encoder), with the same z."""
    model, x = tiny_vae(latent_dim=3), tiny_images()
    torch.manual_seed(12)
    stl = _gradients(model, elbo_sticking_the_landing(model, x).sum())
    torch.manual_seed(12)
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    log_q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    log_joint = (torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
                 + bernoulli_log_likelihood(model.decode(z), x))
    log_q_fixed_z = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(
        z.detach()).sum(-1)
    expected = _gradients(model, (log_joint - log_q + log_q_fixed_z).sum())
    for got, want in zip(stl, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    encoder_grads = stl[: len(list(model.encoder.parameters()))]
    assert max(g.abs().max() for g in encoder_grads) > 1e-3  # z is not detached


def test_elbo_sticking_the_landing_is_unbiased_for_the_elbo():
    model, x = tiny_vae(latent_dim=2), tiny_images()
    repeated = x.repeat(4000, 1)  # 4000 draws for each image, in one batch
    with torch.no_grad():
        draws = elbo_sticking_the_landing(model, repeated).reshape(4000, len(x))
        closed_form = elbo(model, repeated).reshape(4000, len(x))
    difference = draws.mean(0) - closed_form.mean(0)
    standard_error = torch.sqrt((draws.var(0) + closed_form.var(0)) / 4000)
    assert (difference.abs() < 5 * standard_error).all(), (difference, standard_error)


# --- log-mean-exp, chunked log weights, grouped bounds --------------------------------------

def test_log_mean_exp_matches_the_direct_formula_where_that_is_safe():
    a = torch.randn(7, 3, 4, dtype=F64) * 3
    for dim in (0, 1, -1):
        assert torch.allclose(log_mean_exp(a, dim), a.exp().mean(dim).log(), atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.floats(-1e4, 1e4), st.integers(1, 50), st.floats(0, 30))
def test_log_mean_exp_is_shift_equivariant_and_finite_at_extreme_values(shift, k, spread):
    """log-mean-exp(a + c) = log-mean-exp(a) + c, and the value lies in [mean(a), max(a)]."""
    a = torch.linspace(-spread, spread, k, dtype=F64)
    value, tol = log_mean_exp(a + shift), 1e-9 * (1 + abs(shift))
    assert torch.isfinite(value)
    assert float(value) == pytest.approx(float(log_mean_exp(a)) + shift, abs=tol)
    assert float((a + shift).mean()) - tol <= float(value) <= float((a + shift).max()) + tol


def test_log_mean_exp_of_float32_log_weights_near_minus_a_thousand():
    log_w = torch.tensor([-1000.0, -1001.0, -1002.0])
    assert torch.isinf(log_w.exp().mean().log())  # the naive formula underflows
    expected = -1000.0 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3)
    assert float(log_mean_exp(log_w)) == pytest.approx(expected, abs=1e-4)


def test_log_mean_exp_rejects_an_empty_dimension():
    with pytest.raises(ValueError, match="at least one term"):
        log_mean_exp(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="at least one term"):
        log_mean_exp(torch.tensor(1.0))


def test_log_importance_weights_chunked_draws_the_same_weights_as_one_call():
    model, x = tiny_vae(latent_dim=2), tiny_images(5)
    torch.manual_seed(12)
    one = log_importance_weights_chunked(model, x, 40, chunk_size=100)
    torch.manual_seed(12)
    direct = log_importance_weights(model, x, 40)
    assert torch.allclose(one, direct, atol=1e-12)
    chunked = log_importance_weights_chunked(model, x, 37, chunk_size=4)
    assert chunked.shape == (37, 5) and not chunked.requires_grad
    # The log-mean-exp over all of them is the log-likelihood estimate of the same draws.
    torch.manual_seed(13)
    a = log_mean_exp(log_importance_weights_chunked(model, x, 30, chunk_size=7))
    torch.manual_seed(13)
    b = log_likelihood_estimate(model, x, num_samples=30, chunk_size=7)
    assert torch.allclose(a, b, atol=1e-12)


def test_grouped_bound_at_the_extremes_and_in_between():
    log_w = torch.randn(12, 3, dtype=F64) * 5 - 100
    assert torch.allclose(grouped_bound(log_w, 1), log_w.mean(0))
    assert torch.allclose(grouped_bound(log_w, 12), log_mean_exp(log_w))
    by_hand = torch.stack([log_mean_exp(log_w[i:i + 4]) for i in (0, 4, 8)]).mean(0)
    assert torch.allclose(grouped_bound(log_w, 4), by_hand)


def test_grouped_bound_is_an_unbiased_estimate_of_l_k():
    """Groups of 8 of 8,000 draws against 1,000 independent one-shot iwae_bound draws."""
    model, x = tiny_vae(latent_dim=1), tiny_images(3)
    with torch.no_grad():
        grouped = grouped_bound(log_importance_weights(model, x, 8000), 8)
        oneshot = iwae_bound(model, x.repeat(1000, 1), 8).reshape(1000, 3)
    se = oneshot.std(0) / math.sqrt(1000)
    assert torch.all((grouped - oneshot.mean(0)).abs() < 5 * se)


def test_grouped_bound_rejects_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match="multiple of k=5"):
        grouped_bound(torch.zeros(12, 2), 5)
    with pytest.raises(ValueError, match="shape"):
        grouped_bound(torch.zeros(10), 5)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        grouped_bound(torch.zeros(10, 2), 0)


def test_negative_iwae_loss_is_minus_the_batch_mean_of_the_bound_and_has_gradients():
    model, x = tiny_vae(latent_dim=2), tiny_images(8)
    torch.manual_seed(4)
    loss = negative_iwae_loss(model, x, 5)
    torch.manual_seed(4)
    assert torch.allclose(loss, -iwae_bound(model, x, 5).mean())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    with pytest.raises(ValueError, match="num_samples"):
        negative_iwae_loss(model, x, 0)
