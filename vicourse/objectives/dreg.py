r"""The doubly reparameterized gradient (DReG) of the importance weighted bound.

The reparameterized gradient of :math:`\log \frac1K \sum_k w_k`, with
:math:`w_k = p(x, z_k) / q_\phi(z_k)` and :math:`z_k = z(\varepsilon_k, \phi)`, is
:math:`\sum_k \tilde w_k \nabla \log w_k` with :math:`\tilde w_k = w_k / \sum_j w_j`. For the
encoder's parameters :math:`\phi` each :math:`\nabla_\phi \log w_k` has a path part (through
:math:`z_k`) and a score part :math:`-\nabla_\phi \log q_\phi(z)` at fixed :math:`z`.
Tucker, Lawson, Gu & Maddison (2019) reparameterize the score part's expectation a second
time, which turns the encoder's gradient into

.. math::

    \sum_{k=1}^K \tilde w_k^2\, \frac{\partial \log w_k}{\partial z_k}
        \frac{\partial z_k}{\partial \phi}
    \qquad (\log q \text{ at stop-gradient parameters}),

unbiased for the same :math:`\nabla_\phi \mathcal L_K`, with no score term at all. The
decoder's gradient is IWAE's, :math:`\sum_k \tilde w_k \nabla_\theta \log w_k`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Normal

from vicourse._checks import check_generator, is_finite_real, positive_count
from vicourse.families.gaussian import sticking_the_landing_log_density
from vicourse.models.toy_model import ConjugateGaussian
from vicourse.models.vae import VAE, reparameterized_sample
from vicourse.objectives.bounds import _check_images, _log_weight
from vicourse.objectives.toy_bounds import _check_toy_args
from vicourse.objectives.weights import log_mean_exp, log_weights

ESTIMATORS = ("iwae", "dreg")


def negative_dreg_loss(model: VAE, x: Tensor, num_samples: int) -> Tensor:
    """Minus the K-sample bound (IWAE's value), with the DReG gradient for the encoder.

    x: (B, D), num_samples: K -> scalar; for train_vae, use partial(..., num_samples=K).
    One pass: log q at detached encoder outputs, and a hook that weights dz by w~ once more.
    """
    x, num_samples = _check_dreg_args(model, x, num_samples)
    mu, logvar = model.encode(x)  # (B, latent) each
    z = reparameterized_sample(mu, logvar, num_samples)  # (K, B, latent)
    log_q = sticking_the_landing_log_density(z, mu, 0.5 * logvar)  # (K, B), no score term
    log_w = _log_weight(model, x, z, log_q)  # (K, B)
    if z.requires_grad:  # d loss / d z_k = w~_k d log w_k / d z_k; the hook makes it w~_k^2
        weights = torch.softmax(log_w.detach(), dim=0)  # (K, B), the normalized weights w~
        z.register_hook(lambda grad: grad * weights.unsqueeze(-1))  # (K, B, latent)
    return -log_mean_exp(log_w, dim=0).mean()


def toy_bound_gradients(
    model: ConjugateGaussian,
    x: float,
    q_mean: float,
    q_log_std: float,
    num_samples: int,
    draws: int,
    estimator: str = "iwae",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Independent draws of the gradient of log (1/K) sum_k w_k w.r.t. q's (mean, log std).

    The toy model, q = N(q_mean, exp(q_log_std)^2); estimator "iwae" (reparameterized) or
    "dreg" (the surrogate sum_k stopgrad(w~_k^2) log w_k, log q at detached parameters).
    num_samples: K; draws: R -> (R, 2) float64, columns d/d mean and d/d log std
    """
    x, q_mean, num_samples, draws = _check_toy_gradient_args(
        model, x, q_mean, q_log_std, num_samples, draws, estimator, generator)
    eps = torch.randn(draws, num_samples, generator=generator, dtype=torch.float64)  # (R, K)
    params = torch.tensor([[q_mean, float(q_log_std)]], dtype=torch.float64)  # (1, 2)
    params = params.repeat(draws, 1).requires_grad_(True)  # (R, 2): one copy per draw
    mean, log_std = params[:, :1], params[:, 1:]  # (R, 1) each
    z = mean + torch.exp(log_std) * eps  # (R, K)
    if estimator == "dreg":
        mean, log_std = mean.detach(), log_std.detach()  # log q without its score term
    log_q = Normal(mean, torch.exp(log_std)).log_prob(z)  # (R, K)
    log_w = log_weights(model.log_joint(torch.tensor(x, dtype=torch.float64), z), log_q)
    if estimator == "iwae":
        surrogate = log_mean_exp(log_w, dim=1)  # (R,)
    else:
        surrogate = (torch.softmax(log_w.detach(), dim=1) ** 2 * log_w).sum(1)  # (R,)
    (gradients,) = torch.autograd.grad(surrogate.sum(), params)  # (R, 2)
    return gradients


def _check_dreg_args(model: VAE, x: Tensor, num_samples: int) -> tuple[Tensor, int]:
    """x as checked images of the model and num_samples as an int >= 1."""
    return _check_images(model, x), positive_count(num_samples, "num_samples")


def _check_toy_gradient_args(
    model: ConjugateGaussian, x: float, q_mean: float, q_log_std: float, num_samples: int,
    draws: int, estimator: str, generator: torch.Generator | None,
) -> tuple[float, float, int, int]:
    """x and q_mean as floats, K and R as ints, after checking the model, the finite numbers
    x, q_mean, q_log_std, the estimator's name and the generator."""
    if not (is_finite_real(q_log_std) and abs(q_log_std) < 50):
        raise ValueError(f"q_log_std must be a finite number, the log of q's standard "
                         f"deviation (|q_log_std| < 50), got {q_log_std!r}")
    x, q_mean = _check_toy_args(model, x, q_mean, 1.0)
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    check_generator(generator)
    return (x, q_mean, positive_count(num_samples, "num_samples"),
            positive_count(draws, "draws"))
