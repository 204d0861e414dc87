"""The API contract on bad input for vicourse.objectives and vicourse.families.gaussian.

Every case either gives a correct result (finite, or exactly the IEEE answer an oracle gives)
or raises ValueError/TypeError with a message that names the argument. See tests/contract.py;
``python bench/api_sweep.py --list`` runs these cases as the "objectives" group.

NaN produced by a model (logits, encoder outputs, log weights) is propagated, not raised, by
the primitives that run inside training loops (log_weights, log_mean_exp, the Gaussian log
density, kl_diag_gaussian_std_normal, the Bernoulli likelihood's logits): the training loop
detects a diverged loss and says so; those cases check that NaN stays exactly where it was.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from contract import Case, assert_holds, finite
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from torch.distributions import Bernoulli, Normal

from vicourse.families.gaussian import gaussian_log_density, sticking_the_landing_log_density
from vicourse.models.toy_model import ConjugateGaussian
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
    negative_elbo_loss,
    negative_elbo_stl_loss,
    negative_iwae_loss,
)
from vicourse.objectives.elbo import elbo_estimate, elbo_samples
from vicourse.objectives.gaussian_kl import (
    kl_diag_gaussian_std_normal,
    kl_diag_gaussians,
    kl_full_gaussians,
)
from vicourse.objectives.gradients import (
    per_sample_gradients,
    reparameterized_surrogate,
    score_function_surrogate,
    score_term_surrogate,
    sticking_the_landing_surrogate,
)
from vicourse.objectives.knn_kl import knn_kl_divergence
from vicourse.objectives.toy_bounds import (
    chi_square_to_posterior,
    toy_bound_draws,
    toy_log_weights,
)
from vicourse.objectives.weights import log_mean_exp, log_weights

F32, F64 = torch.float32, torch.float64
NAN, INF = math.nan, math.inf
BAD_COUNTS = [0, -1, 1.5, True, None]


def _vae() -> VAE:
    torch.manual_seed(0)
    return VAE(data_dim=6, hidden=(8,), latent_dim=2)  # float32


MODEL = _vae()
IMAGES = (torch.arange(24).reshape(4, 6) % 3 == 0).float()  # (4, 6) binary, float32
TOY = ConjugateGaussian(noise_std=0.5)


def _seeded(fn):
    """Run fn with torch's global generator seeded, restored after (draws stay reproducible)."""
    def call():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return fn()
    return call


def shape_is(*shape):
    return lambda r: isinstance(r, torch.Tensor) and r.shape == shape and finite(r)


def close_to(expected, rtol=1e-6, atol=1e-9):
    expected = torch.as_tensor(expected, dtype=F64)
    return lambda r: (finite(r) and torch.as_tensor(r).shape == expected.shape
                      and torch.allclose(torch.as_tensor(r, dtype=F64), expected,
                                         rtol=rtol, atol=atol))


def nan_exactly_where(mask):
    mask = torch.as_tensor(mask)
    return lambda r: bool((r.isnan() == mask).all()) and bool(torch.isfinite(r[~mask]).all())


def _log_mean_exp_oracle(a, dim):
    a = np.asarray(a, dtype=np.float64)
    m = a.max(axis=dim, keepdims=True)
    return np.log(np.exp(a - m).mean(axis=dim)) + m.squeeze(dim)


def _bernoulli_oracle(logits, x):
    return Bernoulli(logits=torch.as_tensor(logits, dtype=F64)).log_prob(
        torch.as_tensor(x, dtype=F64)).sum(-1)


def _chi_square_oracle(x, q_mean, q_std, noise_std=0.5):
    """log of E_q[(p(z|x)/q(z))^2] in a form without cancellation, from the closed form."""
    s2 = noise_std**2
    m1, s1 = x / (1 + s2), math.sqrt(s2 / (1 + s2))
    r = s1 / q_std
    d = (m1 - q_mean) / q_std
    return math.log(q_std) - math.log(s1) - 0.5 * math.log(2 - r * r) + d * d / (2 - r * r)


def _cov(k=2):
    a = torch.tensor([[1.0, 0.3], [0.2, 0.9]], dtype=F64)[:k, :k]
    return a @ a.T + 0.1 * torch.eye(k, dtype=F64)


def _std_normal_log_joint(z):
    return Normal(0.0, 1.0).log_prob(z).sum(-1)


EPS = torch.randn(5, 1, generator=torch.Generator().manual_seed(1), dtype=F64)
MEAN, LOG_STD = torch.zeros(1, dtype=F64), torch.zeros(1, dtype=F64)
RNG = np.random.default_rng(0)
P_SAMPLES, Q_SAMPLES = RNG.normal(size=(2000, 1)), RNG.normal(size=(2000, 1)) + 1.0


CASES: list[Case] = []


def case(name, call, **kwargs):
    CASES.append(Case(name, call, **kwargs))


# --- weights: log_weights, log_mean_exp -----------------------------------------------------

case("log_weights/shape_mismatch", lambda: log_weights(torch.zeros(5, 3), torch.zeros(5)),
     raises=ValueError, names="log_joint")
case("log_weights/lists", lambda: log_weights([1.0, 2.0], [0.5, 0.5]), check=close_to([0.5, 1.5]))
case("log_weights/numpy", lambda: log_weights(np.array([1.0, 2.0]), np.array([0.5, 0.5])),
     check=close_to([0.5, 1.5]))
case("log_weights/string", lambda: log_weights("abc", torch.zeros(3)), raises=TypeError,
     names="log_p")
case("log_weights/nan_propagates", lambda: log_weights(torch.tensor([NAN, 1.0]), torch.zeros(2)),
     check=nan_exactly_where([True, False]))
case("log_mean_exp/dim_2_on_2d", lambda: log_mean_exp(torch.zeros(3, 4), dim=2),
     raises=ValueError, names="dim")
case("log_mean_exp/dim_-3_on_2d", lambda: log_mean_exp(torch.zeros(3, 4), dim=-3),
     raises=ValueError, names="dim")
case("log_mean_exp/dim_float", lambda: log_mean_exp(torch.zeros(3, 4), dim=1.5),
     raises=TypeError, names="dim")
case("log_mean_exp/dim_none", lambda: log_mean_exp(torch.zeros(3, 4), dim=None),
     raises=TypeError, names="dim")
case("log_mean_exp/empty_along_dim", lambda: log_mean_exp(torch.zeros(0, 3)), raises=ValueError,
     names="log_values")
case("log_mean_exp/scalar", lambda: log_mean_exp(torch.tensor(1.0)), raises=ValueError,
     names="log_values")
case("log_mean_exp/list", lambda: log_mean_exp([0.0, math.log(3.0)]),
     check=close_to(math.log(2.0)))
case("log_mean_exp/numpy", lambda: log_mean_exp(np.array([[0.0, 1.0], [2.0, 3.0]]), dim=1),
     check=close_to(_log_mean_exp_oracle([[0.0, 1.0], [2.0, 3.0]], 1)))
case("log_mean_exp/string", lambda: log_mean_exp("x"), raises=TypeError, names="log_values")
case("log_mean_exp/integers", lambda: log_mean_exp(torch.tensor([0, 2])),
     check=close_to(_log_mean_exp_oracle([0.0, 2.0], 0)))
case("log_mean_exp/extreme_float32", lambda: log_mean_exp(torch.tensor([-1e4, -1e4 + 1.0])),
     check=close_to(_log_mean_exp_oracle([-1e4, -1e4 + 1.0], 0), rtol=1e-6))
case("log_mean_exp/all_minus_inf_is_minus_inf", lambda: log_mean_exp(torch.full((3,), -INF)),
     check=lambda r: float(r) == -INF)
case("log_mean_exp/nan_propagates",
     lambda: log_mean_exp(torch.tensor([[NAN, 0.0], [1.0, 2.0]]), dim=0),
     check=nan_exactly_where([True, False]))

# --- bounds: the Bernoulli likelihood ------------------------------------------------------

case("bernoulli/shape_mismatch", lambda: bernoulli_log_likelihood(torch.zeros(2, 4),
                                                                  torch.zeros(2, 5)),
     raises=ValueError, names="logits")
case("bernoulli/bool_targets", lambda: bernoulli_log_likelihood(
        torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[True, False, True]])),
     check=close_to(_bernoulli_oracle([[0.5, -1.0, 2.0]], [[1.0, 0.0, 1.0]]), rtol=1e-6))
case("bernoulli/target_1e-20_message", lambda: bernoulli_log_likelihood(
        torch.zeros(1, 3, dtype=F64), torch.tensor([[1e-20, 0.0, 1.0]], dtype=F64)),
     raises=ValueError, names="1e-20")
case("bernoulli/target_0.5", lambda: bernoulli_log_likelihood(torch.zeros(1, 2),
                                                              torch.tensor([[0.5, 1.0]])),
     raises=ValueError, names="x")
case("bernoulli/target_nan", lambda: bernoulli_log_likelihood(torch.zeros(1, 2),
                                                              torch.tensor([[NAN, 1.0]])),
     raises=ValueError, names="x")
case("bernoulli/target_255_uint8", lambda: bernoulli_log_likelihood(
        torch.zeros(1, 2), torch.tensor([[255, 0]], dtype=torch.uint8)),
     raises=ValueError, names="x")
case("bernoulli/target_01_uint8", lambda: bernoulli_log_likelihood(
        torch.zeros(1, 2), torch.tensor([[1, 0]], dtype=torch.uint8)),
     check=close_to([-2 * math.log(2.0)]))
case("bernoulli/lists", lambda: bernoulli_log_likelihood([[0.0, 0.0]], [[1.0, 0.0]]),
     check=close_to([-2 * math.log(2.0)]))
case("bernoulli/numpy", lambda: bernoulli_log_likelihood(np.zeros((1, 2)), np.array([[1, 0]])),
     check=close_to([-2 * math.log(2.0)]))
case("bernoulli/integer_logits", lambda: bernoulli_log_likelihood(torch.zeros(1, 2,
                                                                             dtype=torch.long),
                                                                  torch.ones(1, 2)),
     raises=TypeError, names="logits")
case("bernoulli/scalar_logits", lambda: bernoulli_log_likelihood(torch.tensor(0.0),
                                                                 torch.tensor(1.0)),
     raises=ValueError, names="logits")
case("bernoulli/float64_targets_float32_logits", lambda: bernoulli_log_likelihood(
        torch.zeros(1, 2), torch.ones(1, 2, dtype=F64)), check=close_to([-2 * math.log(2.0)]))
case("bernoulli/broadcast_samples", lambda: bernoulli_log_likelihood(torch.zeros(3, 2, 4),
                                                                     torch.ones(2, 4)),
     check=shape_is(3, 2))
case("bernoulli/extreme_logits", lambda: bernoulli_log_likelihood(
        torch.tensor([[1e4, -1e4]]), torch.tensor([[0.0, 1.0]])), check=close_to([-2e4]))
case("bernoulli/nan_logits_propagate", lambda: bernoulli_log_likelihood(
        torch.tensor([[NAN, 0.0], [0.0, 0.0]]), torch.ones(2, 2)),
     check=nan_exactly_where([True, False]))

# --- bounds: the VAE's ELBO and importance weighted bounds ---------------------------------

VAE_FUNCTIONS = [("elbo", elbo), ("negative_elbo_loss", negative_elbo_loss),
                 ("elbo_sticking_the_landing", elbo_sticking_the_landing),
                 ("negative_elbo_stl_loss", negative_elbo_stl_loss),
                 ("iwae_bound", lambda m, x: iwae_bound(m, x, 3)),
                 ("negative_iwae_loss", lambda m, x: negative_iwae_loss(m, x, 3)),
                 ("log_importance_weights", lambda m, x: log_importance_weights(m, x, 3)),
                 ("log_importance_weights_chunked",
                  lambda m, x: log_importance_weights_chunked(m, x, 3, 2)),
                 ("log_likelihood_estimate", lambda m, x: log_likelihood_estimate(m, x, 3, 2))]
for _name, _fn in VAE_FUNCTIONS:
    case(f"{_name}/float64_images_float32_model",
         lambda fn=_fn: fn(MODEL, IMAGES.double()), raises=TypeError, names="x")
    case(f"{_name}/empty_batch", lambda fn=_fn: fn(MODEL, torch.zeros(0, 6)), raises=ValueError,
         names="x")
    case(f"{_name}/bool_images", _seeded(lambda fn=_fn: fn(MODEL, IMAGES.bool())), check=finite)
case("elbo/list_images", _seeded(lambda: elbo(MODEL, IMAGES.tolist())), check=shape_is(4))
case("elbo/numpy_images", _seeded(lambda: elbo(MODEL, IMAGES.numpy())), check=shape_is(4))
case("elbo/bool_equals_float", _seeded(lambda: elbo(MODEL, IMAGES.bool())),
     check=lambda r: torch.equal(r, _seeded(lambda: elbo(MODEL, IMAGES))()))
case("elbo/wrong_data_dim", lambda: elbo(MODEL, torch.zeros(2, 5)), raises=ValueError, names="x")
case("elbo/one_image_1d", lambda: elbo(MODEL, torch.zeros(6)), raises=ValueError, names="x")
case("elbo/three_dims", lambda: elbo(MODEL, torch.zeros(2, 2, 6)), raises=ValueError, names="x")
case("elbo/grey_levels", lambda: elbo(MODEL, torch.full((2, 6), 0.3)), raises=ValueError,
     names="x")
case("elbo/pixels_0_255_uint8", lambda: elbo(MODEL, torch.full((2, 6), 255, dtype=torch.uint8)),
     raises=TypeError, names="x")
case("elbo/nan_images", lambda: elbo(MODEL, torch.full((2, 6), NAN)), raises=ValueError,
     names="x")
case("elbo/model_not_a_vae", lambda: elbo("vae", IMAGES), raises=TypeError, names="model")
case("elbo/string_images", lambda: elbo(MODEL, "images"), raises=TypeError, names="x")
case("negative_elbo_loss/valid", _seeded(lambda: negative_elbo_loss(MODEL, IMAGES)),
     check=shape_is())
for _count in BAD_COUNTS:
    case(f"log_importance_weights/num_samples={_count!r}",
         lambda c=_count: log_importance_weights(MODEL, IMAGES, c), raises=ValueError,
         names="num_samples")
case("iwae_bound/num_samples=None", lambda: iwae_bound(MODEL, IMAGES, None), raises=ValueError,
     names="num_samples")
case("negative_iwae_loss/num_samples=0", lambda: negative_iwae_loss(MODEL, IMAGES, 0),
     raises=ValueError, names="num_samples")
case("log_importance_weights/shape", _seeded(lambda: log_importance_weights(MODEL, IMAGES, 3)),
     check=shape_is(3, 4))
case("log_importance_weights_chunked/num_samples=None",
     lambda: log_importance_weights_chunked(MODEL, IMAGES, None), raises=ValueError,
     names="num_samples")
case("log_importance_weights_chunked/shape",
     _seeded(lambda: log_importance_weights_chunked(MODEL, IMAGES, 5, 2)), check=shape_is(5, 4))
case("log_likelihood_estimate/chunk_size=0", lambda: log_likelihood_estimate(MODEL, IMAGES, 3, 0),
     raises=ValueError, names="chunk_size")
case("log_likelihood_estimate/num_samples=1.5",
     lambda: log_likelihood_estimate(MODEL, IMAGES, 1.5), raises=ValueError, names="num_samples")
case("log_likelihood_estimate/valid", _seeded(lambda: log_likelihood_estimate(MODEL, IMAGES, 7, 3)),
     check=shape_is(4))

# --- bounds: grouped_bound -----------------------------------------------------------------

case("grouped_bound/zero_groups", lambda: grouped_bound(torch.zeros(0, 3), 1), raises=ValueError,
     names="log_weights")
case("grouped_bound/no_images", lambda: grouped_bound(torch.zeros(4, 0), 2), raises=ValueError,
     names="log_weights")
for _count in BAD_COUNTS:
    case(f"grouped_bound/k={_count!r}", lambda c=_count: grouped_bound(torch.zeros(4, 2), c),
         raises=ValueError, names="k")
case("grouped_bound/not_a_multiple", lambda: grouped_bound(torch.zeros(5, 2), 2),
     raises=ValueError, names="log_weights")
case("grouped_bound/one_dim", lambda: grouped_bound(torch.zeros(4), 2), raises=ValueError,
     names="log_weights")
case("grouped_bound/nan", lambda: grouped_bound(torch.tensor([[NAN], [0.0]]), 1),
     raises=ValueError, names="log_weights")
case("grouped_bound/plus_inf", lambda: grouped_bound(torch.tensor([[INF], [0.0]]), 1),
     raises=ValueError, names="log_weights")
case("grouped_bound/list", lambda: grouped_bound([[0.0], [math.log(3.0)]], 2),
     check=close_to([math.log(2.0)]))
case("grouped_bound/k_equals_m", lambda: grouped_bound(torch.tensor([[0.0, 1.0], [2.0, 3.0]]), 2),
     check=close_to(_log_mean_exp_oracle([[0.0, 1.0], [2.0, 3.0]], 0)))

# --- elbo: the generic Monte Carlo ELBO ----------------------------------------------------

Q = Normal(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64))
for _count in BAD_COUNTS:
    case(f"elbo_samples/num_samples={_count!r}",
         lambda c=_count: elbo_samples(Q.log_prob, Q, c), raises=ValueError, names="num_samples")
case("elbo_samples/q_not_a_distribution", lambda: elbo_samples(Q.log_prob, torch.zeros(2), 3),
     raises=TypeError, names="q")
case("elbo_samples/q_without_rsample", lambda: elbo_samples(
        lambda z: z, Bernoulli(probs=torch.tensor([0.5])), 3), raises=TypeError, names="q")
case("elbo_samples/log_joint_not_callable", lambda: elbo_samples(3.0, Q, 3), raises=TypeError,
     names="log_joint")
case("elbo_samples/log_joint_wrong_shape", lambda: elbo_samples(
        lambda z: Q.log_prob(z).sum(-1), Q, 3), raises=ValueError, names="log_joint")
case("elbo_samples/log_joint_returns_float", lambda: elbo_samples(lambda z: 0.0, Q, 3),
     raises=ValueError, names="log_joint")
case("elbo_samples/exact_q_gives_zero", lambda: elbo_samples(Q.log_prob, Q, 4),
     check=close_to(torch.zeros(4, 2)))
case("elbo_estimate/num_samples=0", lambda: elbo_estimate(Q.log_prob, Q, 0), raises=ValueError,
     names="num_samples")
case("elbo_estimate/exact_q_gives_zero", lambda: elbo_estimate(Q.log_prob, Q, 4),
     check=close_to(torch.zeros(2)))

# --- gaussian_kl ---------------------------------------------------------------------------

case("kl_diag_gaussians/mixed_dtypes", lambda: kl_diag_gaussians(
        torch.zeros(2), torch.zeros(2, dtype=F64), torch.zeros(2), torch.zeros(2)),
     raises=TypeError, names="logvar_q")
case("kl_diag_gaussians/lists", lambda: kl_diag_gaussians([0.0], [0.0], [0.0], [math.log(4.0)]),
     check=close_to(0.5 * (0.25 - 1 - math.log(0.25)), rtol=1e-5))
case("kl_diag_gaussians/numpy", lambda: kl_diag_gaussians(np.zeros(1), np.zeros(1), np.ones(1),
                                                          np.zeros(1)), check=close_to(0.5))
case("kl_diag_gaussians/nan", lambda: kl_diag_gaussians(torch.tensor([NAN]), torch.zeros(1),
                                                        torch.zeros(1), torch.zeros(1)),
     raises=ValueError, names="mu_q")
case("kl_diag_gaussians/inf", lambda: kl_diag_gaussians(torch.zeros(1), torch.zeros(1),
                                                        torch.zeros(1), torch.tensor([INF])),
     raises=ValueError, names="logvar_p")
case("kl_diag_gaussians/no_broadcast", lambda: kl_diag_gaussians(
        torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2)), raises=ValueError,
     names="logvar_q")
case("kl_diag_gaussians/scalar", lambda: kl_diag_gaussians(
        torch.tensor(0.0), torch.zeros(1), torch.zeros(1), torch.zeros(1)), raises=ValueError,
     names="mu_q")
case("kl_diag_gaussians/string", lambda: kl_diag_gaussians("a", torch.zeros(1), torch.zeros(1),
                                                           torch.zeros(1)),
     raises=TypeError, names="mu_q")
case("kl_diag_gaussians/extreme_log_variances", lambda: kl_diag_gaussians(
        torch.zeros(1, dtype=F64), torch.tensor([30.0], dtype=F64), torch.zeros(1, dtype=F64),
        torch.tensor([-30.0], dtype=F64)), check=close_to(0.5 * (math.expm1(60.0) - 60.0)))
case("kl_std_normal/mixed_dtypes", lambda: kl_diag_gaussian_std_normal(
        torch.zeros(2), torch.zeros(2, dtype=F64)), raises=TypeError, names="logvar")
case("kl_std_normal/lists", lambda: kl_diag_gaussian_std_normal([[2.0]], [[0.0]]),
     check=close_to([2.0]))
case("kl_std_normal/scalar", lambda: kl_diag_gaussian_std_normal(torch.tensor(0.0),
                                                                 torch.tensor(0.0)),
     raises=ValueError, names="mu")
case("kl_std_normal/no_broadcast", lambda: kl_diag_gaussian_std_normal(torch.zeros(2, 3),
                                                                       torch.zeros(2, 2)),
     raises=ValueError, names="logvar")
case("kl_std_normal/nan_propagates", lambda: kl_diag_gaussian_std_normal(
        torch.tensor([[NAN], [0.0]]), torch.zeros(2, 1)), check=nan_exactly_where([True, False]))
case("kl_full/mixed_dtypes", lambda: kl_full_gaussians(torch.zeros(2), _cov(), torch.zeros(2,
                                                                                   dtype=F64),
                                                       _cov()),
     raises=TypeError, names="mu_q")
case("kl_full/integers", lambda: kl_full_gaussians(torch.zeros(2, dtype=torch.long),
                                                   torch.eye(2, dtype=torch.long),
                                                   torch.zeros(2, dtype=torch.long),
                                                   torch.eye(2, dtype=torch.long)),
     raises=TypeError, names="mu_q")
case("kl_full/nan_cov", lambda: kl_full_gaussians(
        torch.zeros(2, dtype=F64), torch.full((2, 2), NAN, dtype=F64), torch.zeros(2, dtype=F64),
        _cov()), raises=ValueError, names="cov_q")
case("kl_full/inf_mean", lambda: kl_full_gaussians(
        torch.zeros(2, dtype=F64), _cov(), torch.tensor([INF, 0.0], dtype=F64), _cov()),
     raises=ValueError, names="mu_p")
case("kl_full/lists", lambda: kl_full_gaussians([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]],
                                                [1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]),
     check=close_to(0.5))
case("kl_full/not_symmetric", lambda: kl_full_gaussians(
        torch.zeros(2, dtype=F64), torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=F64),
        torch.zeros(2, dtype=F64), _cov()), raises=ValueError, names="cov_q")
case("kl_full/not_positive_definite", lambda: kl_full_gaussians(
        torch.zeros(2, dtype=F64), _cov(), torch.zeros(2, dtype=F64),
        -torch.eye(2, dtype=F64)), raises=ValueError, names="cov_p")
case("kl_full/wrong_cov_shape", lambda: kl_full_gaussians(
        torch.zeros(2), torch.zeros(3, 2), torch.zeros(2), torch.eye(2)), raises=ValueError,
     names="cov_q")
case("kl_full/string", lambda: kl_full_gaussians(torch.zeros(2), "cov", torch.zeros(2),
                                                 torch.eye(2)),
     raises=TypeError, names="cov_q")
case("kl_full/same_gaussian_is_zero", lambda: kl_full_gaussians(
        torch.ones(2, dtype=F64), _cov(), torch.ones(2, dtype=F64), _cov()),
     check=lambda r: finite(r) and abs(float(r)) < 1e-12)

# --- families.gaussian ---------------------------------------------------------------------

case("gaussian_log_density/lists", lambda: gaussian_log_density([[0.0]], [0.0], [0.0]),
     check=close_to([-0.5 * math.log(2 * math.pi)]))
case("gaussian_log_density/python_scalars", lambda: gaussian_log_density(
        torch.zeros(3, 1, dtype=F64), 0.0, 0.0),
     check=close_to([-0.5 * math.log(2 * math.pi)] * 3))
case("gaussian_log_density/mixed_dtypes", lambda: gaussian_log_density(
        torch.zeros(3, 1), torch.zeros(1, dtype=F64), torch.zeros(1)), raises=TypeError,
     names="mean")
case("gaussian_log_density/mean_wider_than_z", lambda: gaussian_log_density(
        torch.zeros(3, 1), torch.zeros(4), torch.zeros(4)), raises=ValueError, names="mean")
case("gaussian_log_density/log_std_batch_bigger", lambda: gaussian_log_density(
        torch.zeros(3, 1), torch.zeros(1), torch.zeros(2, 3, 1)), raises=ValueError,
     names="log_std")
case("gaussian_log_density/scalar_z", lambda: gaussian_log_density(
        torch.tensor(0.0), torch.zeros(1), torch.zeros(1)), raises=ValueError, names="z")
case("gaussian_log_density/integer_z", lambda: gaussian_log_density(
        torch.zeros(2, 1, dtype=torch.long), torch.zeros(1), torch.zeros(1)), raises=TypeError,
     names="z")
case("gaussian_log_density/oracle", lambda: gaussian_log_density(
        torch.tensor([[0.3, -1.0]], dtype=F64), torch.tensor([0.1, 0.2], dtype=F64),
        torch.tensor([0.5, -0.3], dtype=F64)),
     check=close_to(Normal(torch.tensor([0.1, 0.2], dtype=F64),
                           torch.tensor([0.5, -0.3], dtype=F64).exp()).log_prob(
         torch.tensor([[0.3, -1.0]], dtype=F64)).sum(-1), rtol=1e-12))
case("gaussian_log_density/nan_propagates", lambda: gaussian_log_density(
        torch.tensor([[NAN], [0.0]]), torch.zeros(1), torch.zeros(1)),
     check=nan_exactly_where([True, False]))
case("stl_log_density/lists", lambda: sticking_the_landing_log_density([[0.0]], [0.0], [0.0]),
     check=close_to([-0.5 * math.log(2 * math.pi)]))
case("stl_log_density/mixed_dtypes", lambda: sticking_the_landing_log_density(
        torch.zeros(3, 1, dtype=F64), torch.zeros(1), torch.zeros(1, dtype=F64)),
     raises=TypeError, names="mean")
case("stl_log_density/mean_wider_than_z", lambda: sticking_the_landing_log_density(
        torch.zeros(3, 1), torch.zeros(2), torch.zeros(1)), raises=ValueError, names="mean")

# --- gradients -----------------------------------------------------------------------------

SURROGATES = [("reparameterized", reparameterized_surrogate),
              ("sticking_the_landing", sticking_the_landing_surrogate),
              ("score_function", score_function_surrogate), ("score_term", score_term_surrogate)]
for _name, _fn in SURROGATES:
    case(f"{_name}_surrogate/mixed_dtypes", lambda fn=_fn: fn(
            _std_normal_log_joint, MEAN, LOG_STD, EPS.float()), raises=TypeError, names="eps")
    case(f"{_name}_surrogate/eps_1d", lambda fn=_fn: fn(
            _std_normal_log_joint, MEAN, LOG_STD, EPS[:, 0]), raises=ValueError, names="eps")
    case(f"{_name}_surrogate/mean_wrong_dim", lambda fn=_fn: fn(
            _std_normal_log_joint, torch.zeros(3, dtype=F64), LOG_STD, EPS), raises=ValueError,
         names="mean")
    case(f"{_name}_surrogate/lists", lambda fn=_fn: fn(
            _std_normal_log_joint, [0.0], [0.0], EPS), check=shape_is(5))
    case(f"{_name}_surrogate/integer_eps", lambda fn=_fn: fn(
            _std_normal_log_joint, MEAN, LOG_STD, torch.zeros(5, 1, dtype=torch.long)),
         raises=TypeError, names="eps")
for _name, _fn in SURROGATES[:3]:
    case(f"{_name}_surrogate/log_joint_wrong_shape", lambda fn=_fn: fn(
            lambda z: Normal(0.0, 1.0).log_prob(z), MEAN, LOG_STD, EPS), raises=ValueError,
         names="log_joint")
case("reparameterized_surrogate/exact_q_gives_zero", lambda: reparameterized_surrogate(
        _std_normal_log_joint, MEAN, LOG_STD, EPS), check=close_to(torch.zeros(5), atol=1e-12))
case("per_sample_gradients/list_eps", lambda: per_sample_gradients(
        reparameterized_surrogate, _std_normal_log_joint, MEAN, LOG_STD, [[0.0]]),
     raises=TypeError, names="eps")
case("per_sample_gradients/mixed_dtypes", lambda: per_sample_gradients(
        reparameterized_surrogate, _std_normal_log_joint, MEAN.float(), LOG_STD, EPS),
     raises=TypeError, names="log_std")
case("per_sample_gradients/nan_eps", lambda: per_sample_gradients(
        reparameterized_surrogate, _std_normal_log_joint, MEAN, LOG_STD,
        torch.tensor([[NAN]], dtype=F64)), raises=ValueError, names="eps")
case("per_sample_gradients/inf_mean", lambda: per_sample_gradients(
        reparameterized_surrogate, _std_normal_log_joint, torch.tensor([INF], dtype=F64),
        LOG_STD, EPS), raises=ValueError, names="mean")
case("per_sample_gradients/empty_eps", lambda: per_sample_gradients(
        reparameterized_surrogate, _std_normal_log_joint, MEAN, LOG_STD,
        torch.zeros(0, 1, dtype=F64)), raises=ValueError, names="eps")
case("per_sample_gradients/surrogate_not_callable", lambda: per_sample_gradients(
        "reparameterization", _std_normal_log_joint, MEAN, LOG_STD, EPS), raises=TypeError,
     names="surrogate")
case("per_sample_gradients/log_joint_wrong_shape", lambda: per_sample_gradients(
        reparameterized_surrogate, lambda z: -0.5 * z.square(), MEAN, LOG_STD, EPS),
     raises=ValueError, names="log_joint")
case("per_sample_gradients/stl_at_exact_q_is_zero", lambda: per_sample_gradients(
        sticking_the_landing_surrogate, _std_normal_log_joint, MEAN, LOG_STD, EPS),
     check=lambda r: r.shape == (5, 2, 1) and bool((r.abs() < 1e-12).all()))

# --- knn_kl --------------------------------------------------------------------------------

case("knn/scale_1e-300", lambda: knn_kl_divergence(1e-300 * P_SAMPLES, 1e-300 * Q_SAMPLES),
     raises=ValueError, names="underflow")
case("knn/scale_1e300", lambda: knn_kl_divergence(1e300 * P_SAMPLES, 1e300 * Q_SAMPLES),
     raises=ValueError, names="overflow")
case("knn/scale_1e-100_is_fine", lambda: knn_kl_divergence(1e-100 * P_SAMPLES,
                                                           1e-100 * Q_SAMPLES),
     check=lambda r: r == pytest.approx(knn_kl_divergence(P_SAMPLES, Q_SAMPLES), rel=1e-9))
case("knn/duplicates", lambda: knn_kl_divergence(np.zeros((10, 1)), Q_SAMPLES[:10]),
     raises=ValueError, names="samples_p")
case("knn/one_dim_arrays", lambda: knn_kl_divergence(P_SAMPLES[:, 0], Q_SAMPLES[:, 0]),
     raises=ValueError, names="samples_p")
case("knn/nan", lambda: knn_kl_divergence(np.vstack([P_SAMPLES[:10], [[NAN]]]), Q_SAMPLES),
     raises=ValueError, names="samples_p")
case("knn/inf_in_q", lambda: knn_kl_divergence(P_SAMPLES, np.vstack([Q_SAMPLES, [[INF]]])),
     raises=ValueError, names="samples_q")
case("knn/strings", lambda: knn_kl_divergence([["a"], ["b"]], Q_SAMPLES), raises=TypeError,
     names="samples_p")
case("knn/none", lambda: knn_kl_divergence(None, Q_SAMPLES), raises=TypeError, names="samples_p")
case("knn/empty", lambda: knn_kl_divergence(np.zeros((0, 1)), Q_SAMPLES), raises=ValueError,
     names="samples_p")
case("knn/dimension_mismatch", lambda: knn_kl_divergence(P_SAMPLES, np.zeros((5, 2))),
     raises=ValueError, names="samples_q")
case("knn/too_few", lambda: knn_kl_divergence(P_SAMPLES[:3], Q_SAMPLES), raises=ValueError,
     names="samples_p")
for _count in BAD_COUNTS:
    case(f"knn/k={_count!r}", lambda c=_count: knn_kl_divergence(P_SAMPLES, Q_SAMPLES, k=c),
         raises=ValueError, names="k")
case("knn/lists", lambda: knn_kl_divergence(P_SAMPLES[:50].tolist(), Q_SAMPLES[:50].tolist()),
     check=lambda r: r == pytest.approx(knn_kl_divergence(P_SAMPLES[:50], Q_SAMPLES[:50])))
case("knn/float32_tensors", lambda: knn_kl_divergence(torch.tensor(P_SAMPLES, dtype=F32),
                                                      torch.tensor(Q_SAMPLES, dtype=F32)),
     check=lambda r: math.isfinite(r) and abs(r - 0.5) < 0.15)
case("knn/oracle_gaussians", lambda: knn_kl_divergence(P_SAMPLES, Q_SAMPLES),
     check=lambda r: abs(r - 0.5) < 0.15)  # KL(N(0, 1) || N(1, 1)) = 0.5

# --- toy_bounds ----------------------------------------------------------------------------

TOY_ARGS = {"x": 1.3, "q_mean": 0.5, "q_std": 0.8, "num_samples": 5, "repetitions": 2}
for _fn in (toy_log_weights, toy_bound_draws):
    _name = _fn.__name__
    for _count in BAD_COUNTS:
        case(f"{_name}/num_samples={_count!r}",
             lambda fn=_fn, c=_count: fn(TOY, **(TOY_ARGS | {"num_samples": c})),
             raises=ValueError, names="num_samples")
    case(f"{_name}/repetitions=0", lambda fn=_fn: fn(TOY, **(TOY_ARGS | {"repetitions": 0})),
         raises=ValueError, names="repetitions")
    for _value in (0.0, -1.0, NAN, INF, "0.8"):
        case(f"{_name}/q_std={_value!r}",
             lambda fn=_fn, v=_value: fn(TOY, **(TOY_ARGS | {"q_std": v})),
             raises=ValueError, names="q_std")
    case(f"{_name}/x=nan", lambda fn=_fn: fn(TOY, **(TOY_ARGS | {"x": NAN})), raises=ValueError,
         names="x")
    case(f"{_name}/q_mean=inf", lambda fn=_fn: fn(TOY, **(TOY_ARGS | {"q_mean": INF})),
         raises=ValueError, names="q_mean")
    case(f"{_name}/x_list", lambda fn=_fn: fn(TOY, **(TOY_ARGS | {"x": [1.0, 2.0]})),
         raises=ValueError, names="x")
    case(f"{_name}/model_not_conjugate", lambda fn=_fn: fn("toy", **TOY_ARGS), raises=TypeError,
         names="model")
    case(f"{_name}/generator_is_a_seed", lambda fn=_fn: fn(TOY, **TOY_ARGS, generator=3),
         raises=TypeError, names="generator")
    case(f"{_name}/x_tensor", lambda fn=_fn: fn(TOY, **(TOY_ARGS | {"x": torch.tensor(1.5)}),
                                              generator=torch.Generator().manual_seed(0)),
         check=lambda r, fn=_fn: torch.equal(r, fn(TOY, **(TOY_ARGS | {"x": 1.5}),
                                                 generator=torch.Generator().manual_seed(0))))
case("toy_bound_draws/shape", lambda: toy_bound_draws(TOY, **TOY_ARGS), check=shape_is(2))
case("toy_bound_draws/q_mean_1e3", lambda: toy_bound_draws(TOY, **(TOY_ARGS | {"q_mean": 1e3})),
     check=lambda r: finite(r) and bool((r < -1e5).all()))
case("chi_square/q_mean_1e3", lambda: chi_square_to_posterior(TOY, 1.3, 1e3, 0.8),
     check=lambda r: r == INF)  # log chi^2 is about 9e5: beyond the float range
case("chi_square/q_mean_1e200", lambda: chi_square_to_posterior(TOY, 1.3, 1e200, 0.8),
     check=lambda r: r == INF)
case("chi_square/q_std_1e-200", lambda: chi_square_to_posterior(TOY, 1.3, 0.5, 1e-200),
     check=lambda r: r == INF)  # q narrower than the posterior / sqrt(2): infinite
case("chi_square/q_std_1e300", lambda: chi_square_to_posterior(TOY, 1.3, 0.5, 1e300),
     check=lambda r: math.isfinite(r)
     and math.log(r) == pytest.approx(_chi_square_oracle(1.3, 0.5, 1e300), rel=1e-12))
case("chi_square/at_the_posterior_is_zero", lambda: chi_square_to_posterior(
        TOY, 1.3, 1.3 / 1.25, math.sqrt(0.25 / 1.25)), check=lambda r: abs(r) < 1e-12)
case("chi_square/far_x_at_the_posterior_is_zero", lambda: chi_square_to_posterior(
        TOY, 1e8, 1e8 / 1.25, math.sqrt(0.25 / 1.25)), check=lambda r: abs(r) < 1e-6)
case("chi_square/oracle", lambda: chi_square_to_posterior(TOY, 2.0, 0.5, 0.8),
     check=lambda r: math.log1p(r) == pytest.approx(_chi_square_oracle(2.0, 0.5, 0.8), rel=1e-12))
case("chi_square/x_nan", lambda: chi_square_to_posterior(TOY, NAN, 0.5, 0.8), raises=ValueError,
     names="x")
case("chi_square/q_mean_nan", lambda: chi_square_to_posterior(TOY, 1.3, NAN, 0.8),
     raises=ValueError, names="q_mean")
case("chi_square/q_std_0", lambda: chi_square_to_posterior(TOY, 1.3, 0.5, 0.0),
     raises=ValueError, names="q_std")
case("chi_square/model_not_conjugate", lambda: chi_square_to_posterior(None, 1.3, 0.5, 0.8),
     raises=TypeError, names="model")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_contract(case):
    assert_holds(case)


# --- properties: generated bad input -------------------------------------------------------

PROPERTY = settings(max_examples=60, deadline=None)
ENTRIES = st.sampled_from([0.0, 1.0, -3.5, 700.0, -1e4, NAN, INF, -INF])


def _named_error(error: Exception, names: tuple[str, ...]) -> bool:
    return isinstance(error, (ValueError, TypeError)) and any(n in str(error) for n in names)


@PROPERTY
@given(shape=st.lists(st.integers(0, 3), min_size=0, max_size=3), dim=st.integers(-4, 4),
       dtype=st.sampled_from([F32, F64, torch.long]), data=st.data())
def test_log_mean_exp_is_correct_or_names_its_argument(shape, dim, dtype, data):
    values = data.draw(st.lists(ENTRIES, min_size=math.prod(shape), max_size=math.prod(shape)))
    array = np.array(values, dtype=np.float64).reshape(shape)
    tensor = torch.tensor(array, dtype=F64).to(dtype) if dtype != torch.long else (
        torch.tensor(np.nan_to_num(array, posinf=5, neginf=-5), dtype=F64).long())
    try:
        result = log_mean_exp(tensor, dim=dim)
    except (ValueError, TypeError) as error:
        assert _named_error(error, ("dim", "log_values")), error
        assert len(shape) == 0 or not -len(shape) <= dim < len(shape) or shape[dim] == 0
        return
    array = tensor.double().numpy()
    oracle = logsumexp(array, axis=dim) - math.log(array.shape[dim])
    got = result.double().numpy()
    assert not (np.isnan(got) & ~np.isnan(array).any(axis=dim)).any()  # NaN only from NaN
    np.testing.assert_allclose(got, oracle, rtol=1e-12 if dtype == F64 else 1e-6)


@PROPERTY
@given(rows=st.integers(0, 3), cols=st.integers(0, 3), x_cols=st.integers(0, 3),
       target=st.sampled_from([0.0, 1.0, 0.5, 1e-20, -1.0, NAN, INF, True, 2]),
       x_dtype=st.sampled_from([F32, F64, torch.bool, torch.uint8]))
def test_bernoulli_log_likelihood_is_correct_or_names_its_argument(rows, cols, x_cols, target,
                                                                   x_dtype):
    logits = torch.linspace(-3, 3, rows * cols).reshape(rows, cols)
    x = torch.full((rows, x_cols), float(target), dtype=F64)
    if x_dtype in (torch.bool, torch.uint8):
        x = x.nan_to_num(2.0, 2.0, 2.0).abs().clamp(max=2).to(x_dtype)
    else:
        x = x.to(x_dtype)
    try:
        result = bernoulli_log_likelihood(logits, x)
    except (ValueError, TypeError) as error:
        assert _named_error(error, ("logits", "x")), error
        return
    assert finite(result)
    expected = _bernoulli_oracle(*torch.broadcast_tensors(logits.double(), x.double()))
    assert torch.allclose(result.double(), expected, rtol=1e-5, atol=1e-6)


@PROPERTY
@given(rows=st.integers(0, 3), cols=st.integers(5, 7), dtype=st.sampled_from([F32, F64,
                                                                              torch.bool,
                                                                              torch.uint8]),
       fill=st.sampled_from([0.0, 1.0, 0.3, NAN, 255.0]))
def test_elbo_is_finite_or_names_x(rows, cols, dtype, fill):
    x = torch.full((rows, cols), fill, dtype=F64)
    x = x.nan_to_num(3.0).to(dtype) if dtype in (torch.bool, torch.uint8) else x.to(dtype)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            result = elbo(MODEL, x)
    except (ValueError, TypeError) as error:
        assert _named_error(error, ("x",)), error
        return
    assert result.shape == (rows,) and finite(result)


@PROPERTY
@given(scale=st.sampled_from([1e-320, 1e-300, 1e-200, 1e-150, 1.0, 1e150, 1e200, 1e300]),
       k=st.integers(1, 4))
def test_knn_kl_divergence_is_scale_free_or_says_why_not(scale, k):
    x, y = P_SAMPLES[:200], Q_SAMPLES[:200]
    try:
        result = knn_kl_divergence(scale * x, scale * y, k=k)
    except ValueError as error:
        assert "underflow" in str(error) or "overflow" in str(error), error
        return
    assert result == pytest.approx(knn_kl_divergence(x, y, k=k), rel=1e-9, abs=1e-9)


FLOATS = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([NAN, INF, -INF, 1e200, -1e300]))
STDS = st.one_of(st.floats(-1.0, 1e3), st.sampled_from([0.0, NAN, INF, 1e-200, 1e300]))


@PROPERTY
@given(x=FLOATS, q_mean=FLOATS, q_std=STDS)
def test_chi_square_to_posterior_is_correct_or_names_its_argument(x, q_mean, q_std):
    try:
        result = chi_square_to_posterior(TOY, x, q_mean, q_std)
    except ValueError as error:
        assert _named_error(error, ("x", "q_mean", "q_std")), error
        return
    assert not math.isnan(result) and result > -1e-9
    s1 = math.sqrt(0.25 / 1.25)
    if 2 * q_std * q_std <= s1 * s1 * (1 + 1e-9):
        assert result == INF
        return
    log_moment = _chi_square_oracle(x, q_mean, q_std)
    if log_moment > 709:
        assert result == INF or math.log(result) == pytest.approx(log_moment, rel=1e-9)
    else:
        assert math.log1p(result) == pytest.approx(log_moment, rel=1e-6, abs=1e-9)
