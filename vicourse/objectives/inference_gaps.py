r"""Where the ELBO loses to :math:`\log p(x)`: the amortization and the approximation gap.

For an image :math:`x`, an amortized posterior :math:`q_\phi(z \mid x)` and the best member
:math:`q^*` of the same family for that image (Cremer, Li and Duvenaud, 2018),

.. math::

    \log p(x) - \mathrm{ELBO}(q_\phi)
    = \underbrace{\log p(x) - \mathrm{ELBO}(q^*)}_{\text{approximation gap}}
    + \underbrace{\mathrm{ELBO}(q^*) - \mathrm{ELBO}(q_\phi)}_{\text{amortization gap}} .

:math:`q^*` is found by gradient ascent on the ELBO of each image's own parameters with the
decoder fixed (:func:`optimize_posterior`); the decoder enters only through
``log_likelihood``, a function from draws ``z`` of shape ``(S, N, K)`` to
:math:`\log p(x_n \mid z_{sn})` of shape ``(S, N)`` (:func:`bernoulli_decoder_likelihood` for a
VAE). The prior is :math:`\mathcal N(0, I_K)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from vicourse._checks import NonFiniteResultError, check_positive_finite, positive_count
from vicourse.families.planar_batch import PlanarPosterior, planar_posterior_sample
from vicourse.objectives.bounds import bernoulli_log_likelihood
from vicourse.objectives.weights import log_mean_exp

LogLikelihood = Callable[[Tensor], Tensor]
"""z: (S, N, K) -> log p(x_n | z_sn): (S, N)."""


def bernoulli_decoder_likelihood(model: nn.Module, x: Tensor) -> LogLikelihood:
    """z -> log p(x | z) of a VAE's Bernoulli decoder for the images x.

    x: (N, D) binary; the returned function maps z: (S, N, K) -> (S, N)
    """
    if not hasattr(model, "decode"):
        raise TypeError(f"model must be a VAE (a module with decode), got {type(model).__name__}")
    return lambda z: bernoulli_log_likelihood(model.decode(z), x)  # (S, N)


def posterior_log_weights(
    log_likelihood: LogLikelihood, posterior: PlanarPosterior, num_samples: int
) -> Tensor:
    """log w = log p(z) + log p(x | z) - log q(z) for S reparameterized draws per image.

    num_samples: S -> (S, N); its mean over S estimates each image's ELBO
    """
    z, log_q = planar_posterior_sample(posterior, num_samples)  # (S, N, K), (S, N)
    log_prior = -0.5 * (z.square() + math.log(2 * math.pi)).sum(-1)  # (S, N), log N(z; 0, I)
    return log_prior + _checked_call(log_likelihood, z) - log_q  # (S, N)


@torch.no_grad()
def posterior_elbo(
    log_likelihood: LogLikelihood, posterior: PlanarPosterior, num_samples: int = 500,
    chunk_size: int = 100,
) -> Tensor:
    """Monte Carlo ELBO of every image's posterior, the mean of S log weights, in chunks.

    num_samples: S -> (N,) nats
    """
    chunks = _chunks(num_samples, chunk_size)
    total = sum(posterior_log_weights(log_likelihood, posterior, s).sum(0) for s in chunks)
    return total / sum(chunks)  # (N,)


@torch.no_grad()
def posterior_log_likelihood(
    log_likelihood: LogLikelihood, posterior: PlanarPosterior, num_samples: int = 2000,
    chunk_size: int = 100,
) -> Tensor:
    """Importance-sampled log p(x) with the posterior as proposal: log (1/S) sum_s w_s.

    num_samples: S -> (N,) nats; a stochastic lower bound, L_S of the IWAE chapter
    """
    chunks = _chunks(num_samples, chunk_size)
    log_w = torch.cat([posterior_log_weights(log_likelihood, posterior, s) for s in chunks])
    return log_mean_exp(log_w, dim=0)  # (N,)


def optimize_posterior(
    log_likelihood: LogLikelihood, posterior: PlanarPosterior, steps: int = 300,
    lr: float = 1e-2, num_samples: int = 8, modules: tuple[nn.Module, ...] = (),
    progress: bool = True,
) -> PlanarPosterior:
    """Each image's posterior fitted by Adam on its own ELBO, the decoder fixed; a new posterior.

    posterior: the start, N images -> the optimized posterior (detached); modules: the networks
    inside log_likelihood, whose parameters are frozen during the optimization
    """
    steps, num_samples = _check_optimize_args(posterior, steps, lr, num_samples)
    params = [t.detach().clone().requires_grad_(True) for t in posterior.tensors()]
    optimizer = torch.optim.Adam(params, lr=lr)
    with frozen(*modules):
        for _ in tqdm(range(steps), desc="per-image steps", disable=not progress):
            current = PlanarPosterior(*params)
            elbo = posterior_log_weights(log_likelihood, current, num_samples).mean(0)  # (N,)
            # the sum: each image's parameters get the gradient of its own ELBO only
            loss = -elbo.sum()
            if not torch.isfinite(loss):
                raise NonFiniteResultError(f"the ELBO became {float(loss)} during the per-image "
                                           f"optimization; lower lr (now {lr:g})")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return PlanarPosterior(*params).detach()


def gap_decomposition(
    log_px: Tensor, best_elbo: Tensor, amortized_elbo: Tensor
) -> dict[str, Tensor]:
    """Per-image total, approximation and amortization gaps, in nats.

    log_px, best_elbo, amortized_elbo: (N,) -> {"total", "approximation", "amortization"}: (N,)
    """
    if not (log_px.shape == best_elbo.shape == amortized_elbo.shape):
        raise ValueError(f"log_px, best_elbo and amortized_elbo must have one shape (N,), got "
                         f"{tuple(log_px.shape)}, {tuple(best_elbo.shape)} and "
                         f"{tuple(amortized_elbo.shape)}")
    return {"total": log_px - amortized_elbo,  # log p(x) - ELBO(q_phi)
            "approximation": log_px - best_elbo,  # log p(x) - ELBO(q*)
            "amortization": best_elbo - amortized_elbo}  # ELBO(q*) - ELBO(q_phi)


@contextmanager
def frozen(*modules: nn.Module):
    """Within the block the modules' parameters do not require gradients; restored after."""
    params = [p for module in modules for p in module.parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def _checked_call(log_likelihood: LogLikelihood, z: Tensor) -> Tensor:
    """log_likelihood(z), after checking that it is callable and returns shape (S, N)."""
    if not callable(log_likelihood):
        raise TypeError(f"log_likelihood must be a function z (S, N, K) -> (S, N), e.g. "
                        f"bernoulli_decoder_likelihood(model, x), got "
                        f"{type(log_likelihood).__name__}")
    values = log_likelihood(z)
    if not isinstance(values, Tensor) or values.shape != z.shape[:-1]:
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"log_likelihood returned {got} for z of shape {tuple(z.shape)}; it "
                         f"must return {tuple(z.shape[:-1])}, log p(x_n | z_sn) for every draw "
                         "(sum over the pixels, not over the draws or the images)")
    return values


def _chunks(num_samples: int, chunk_size: int) -> list[int]:
    """num_samples split into chunk sizes of at most chunk_size."""
    num_samples = positive_count(num_samples, "num_samples")
    chunk_size = positive_count(chunk_size, "chunk_size")
    return [min(chunk_size, num_samples - start) for start in range(0, num_samples, chunk_size)]


def _check_optimize_args(
    posterior: PlanarPosterior, steps: int, lr: float, num_samples: int
) -> tuple[int, int]:
    """steps and num_samples as ints, after checking them, lr and the posterior's type."""
    if not isinstance(posterior, PlanarPosterior):
        raise TypeError(f"posterior must be a PlanarPosterior (the start of the optimization, "
                        f"e.g. the encoder's output), got {type(posterior).__name__}")
    check_positive_finite(lr, "lr")
    return positive_count(steps, "steps"), positive_count(num_samples, "num_samples")
