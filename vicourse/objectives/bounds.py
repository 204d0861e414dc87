r"""Bounds on :math:`\log p(x)` for a VAE: the ELBO, the importance weighted bound, and the
importance-sampled log-likelihood estimate.

For one image :math:`x` and an encoder :math:`q(z\mid x)`,

.. math::

    \mathrm{ELBO}(x) = \mathbb E_{q(z|x)}[\log p(x\mid z)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z)),

    \mathcal L_K(x) = \mathbb E\Big[\log \frac1K \sum_{k=1}^K
        \frac{p(x, z_k)}{q(z_k\mid x)}\Big], \quad z_k \sim q(z\mid x)
        \text{ independently},

and :math:`\mathcal L_1 = \mathrm{ELBO} \le \mathcal L_K \le \log p(x)`. Everything is per
image, in nats; a batch gives one value per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from vicourse._checks import as_tensor, check_float, positive_count
from vicourse.families.gaussian import gaussian_log_density, sticking_the_landing_log_density
from vicourse.models.vae import VAE, reparameterized_sample
from vicourse.objectives.gaussian_kl import kl_diag_gaussian_std_normal
from vicourse.objectives.weights import log_mean_exp, log_weights

__all__ = ["log_mean_exp"]  # shown with the bounds; defined with the log weights


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | z) of independent Bernoulli pixels, computed stably from the logits.

    logits: (..., D); x: binary, broadcasting with logits -> (...), summed over the D pixels
    """
    logits, x = _check_bernoulli_args(logits, x)
    logits, x = torch.broadcast_tensors(logits, x.to(logits.dtype))  # (..., D)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)  # (...)


def elbo(model: VAE, x: Tensor) -> Tensor:
    """ELBO per image: log p(x | z) at one reparameterized z, minus the KL in closed form.

    x: (B, D) binary -> (B,) nats
    """
    x = _check_images(model, x)
    mu, logvar = model.encode(x)  # (B, K) each
    z = reparameterized_sample(mu, logvar)  # (B, K)
    return bernoulli_log_likelihood(model.decode(z), x) - kl_diag_gaussian_std_normal(mu, logvar)


def negative_elbo_loss(model: VAE, x: Tensor) -> Tensor:
    """The training loss: minus the ELBO averaged over the images of the batch.

    x: (B, D) -> scalar
    """
    return -elbo(model, x).mean()


def log_importance_weights(model: VAE, x: Tensor, num_samples: int) -> Tensor:
    """log w_k = log p(z_k) + log p(x | z_k) - log q(z_k | x) for K draws z_k ~ q(z | x).

    x: (B, D), num_samples: K -> (K, B)
    """
    x, num_samples = _check_images(model, x), positive_count(num_samples, "num_samples")
    mu, logvar = model.encode(x)  # (B, latent) each
    z = reparameterized_sample(mu, logvar, num_samples)  # (K, B, latent)
    return _log_weight(model, x, z, gaussian_log_density(z, mu, 0.5 * logvar))  # (K, B)


def _log_weight(model: VAE, x: Tensor, z: Tensor, log_q: Tensor) -> Tensor:
    """log p(z) + log p(x | z) - log q(z | x); z: (..., B, K), x: (B, D), log_q: (..., B)."""
    log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)  # (..., B)
    return log_weights(log_prior + bernoulli_log_likelihood(model.decode(z), x), log_q)


def elbo_sticking_the_landing(model: VAE, x: Tensor) -> Tensor:
    """Sticking-the-landing ELBO per image: a sampled log q at the detached encoder outputs.

    x: (B, D) binary -> (B,) nats
    """
    x = _check_images(model, x)
    mu, logvar = model.encode(x)  # (B, K) each
    z = reparameterized_sample(mu, logvar)  # (B, K), not detached
    log_q = sticking_the_landing_log_density(z, mu, 0.5 * logvar)  # (B,), mu, logvar detached
    return _log_weight(model, x, z, log_q)  # (B,)


def negative_elbo_stl_loss(model: VAE, x: Tensor) -> Tensor:
    """The training loss with the sticking-the-landing gradient: minus the batch mean of
    elbo_sticking_the_landing (a scalar)."""
    return -elbo_sticking_the_landing(model, x).mean()


def iwae_bound(model: VAE, x: Tensor, num_samples: int) -> Tensor:
    """One-sample estimate of the K-sample bound L_K per image, log (1/K) sum_k w_k.

    x: (B, D), num_samples: K -> (B,); differentiable (reparameterized): the IWAE objective
    """
    return log_mean_exp(log_importance_weights(model, x, num_samples), dim=0)


def negative_iwae_loss(model: VAE, x: Tensor, num_samples: int) -> Tensor:
    """The IWAE training loss: minus the K-sample bound averaged over the batch.

    x: (B, D), num_samples: K -> scalar; for train_vae, use partial(..., num_samples=K)
    """
    return -iwae_bound(model, x, positive_count(num_samples, "num_samples")).mean()


@torch.no_grad()
def log_likelihood_estimate(
    model: VAE, x: Tensor, num_samples: int = 1000, chunk_size: int = 100
) -> Tensor:
    """Importance-sampled estimate of log p(x) with K proposals from the encoder, in chunks.

    x: (B, D), num_samples: K -> (B,) nats; memory about chunk_size**2 * D floats
    """
    x, chunk_size = _check_batch(x), positive_count(chunk_size, "chunk_size")
    return torch.cat([
        log_mean_exp(log_importance_weights_chunked(model, images, num_samples, chunk_size))
        for images in x.split(chunk_size)  # (chunk_size, D) each -> (chunk_size,)
    ])


@torch.no_grad()
def log_importance_weights_chunked(
    model: VAE, x: Tensor, num_samples: int, chunk_size: int = 100
) -> Tensor:
    """All K log weights of every image, without gradients, computed in chunks for memory.

    The same draws as log_importance_weights, kept (not summed) so that several bounds can
    be read off one set of samples with grouped_bound; memory is about chunk_size**2 * D
    floats.

    x: (B, D), num_samples: K -> (K, B)
    """
    x, num_samples = _check_batch(x), positive_count(num_samples, "num_samples")
    chunk_size = positive_count(chunk_size, "chunk_size")
    columns = []
    for images in x.split(chunk_size):
        rows = [
            log_importance_weights(model, images, min(chunk_size, num_samples - start))
            for start in range(0, num_samples, chunk_size)
        ]
        columns.append(torch.cat(rows, dim=0))
    return torch.cat(columns, dim=1)


def grouped_bound(log_weights: Tensor, k: int) -> Tensor:
    """Unbiased estimate of L_k: the mean of the k-sample bound over M / k disjoint groups.

    log_weights: (M, B), M a multiple of k -> (B,)
    """
    log_weights, k = _check_grouped_bound_args(log_weights, k)
    groups = log_weights.reshape(log_weights.shape[0] // k, k, log_weights.shape[1])  # (M/k, k, B)
    return log_mean_exp(groups, dim=1).mean(0)  # (B,)


def _check_bernoulli_args(logits: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """logits and x as tensors, after checking that logits is floating point, that the shapes
    broadcast and that x is binary (booleans are)."""
    logits, x = as_tensor(logits, "logits"), as_tensor(x, "x")
    check_float(logits, "logits")
    if logits.ndim == 0:
        raise ValueError("logits must have shape (..., D), one logit per pixel, got a scalar; "
                         "for one pixel use shape (1,)")
    if x.device != logits.device:
        raise TypeError(f"x is on {x.device} but logits is on {logits.device}; move one, "
                        "e.g. x.to(logits.device)")
    try:
        torch.broadcast_shapes(logits.shape, x.shape)
    except RuntimeError:
        raise ValueError(
            f"logits of shape {tuple(logits.shape)} and x of shape {tuple(x.shape)} do not "
            "broadcast; both must be (..., D) with the same D pixels (logits (B, D) for "
            "images x (B, D), or (K, B, D) for K samples of z)"
        ) from None
    _check_binary(x)
    return logits, x


def _check_binary(x: Tensor) -> None:
    if x.dtype == torch.bool:  # booleans are binary
        return
    if int(torch.count_nonzero(x * (1 - x))):  # zero exactly when every x is 0 or 1
        bad = x[(x != 0) & (x != 1)].flatten()[:3].tolist()
        raise ValueError(
            "x must hold binary targets: the Bernoulli likelihood needs targets in {0, 1}, got "
            f"values such as [{', '.join(f'{v:.3g}' for v in bad)}]; binarize grey levels first "
            "with vicourse.data.binarize_dynamic (a Bernoulli draw) or binarize_threshold"
        )


def _check_images(model: VAE, x: Tensor) -> Tensor:
    """x as a tensor of the model's dtype (booleans converted), after checking that it is a
    non-empty batch (B, D) on the model's device."""
    if not (isinstance(model, torch.nn.Module) and hasattr(model, "encode")
            and hasattr(model, "decode")):
        raise TypeError(f"model must be a VAE (a module with encode and decode), got "
                        f"{type(model).__name__}")
    x = as_tensor(x, "x")
    parameter = next(model.parameters(), torch.empty(0, dtype=x.dtype, device=x.device))
    if x.dtype == torch.bool:  # binary images: convert them, exactly
        x = x.to(parameter.dtype)
    if not x.is_floating_point():
        raise TypeError(
            f"x must be floating-point images with pixels in {{0, 1}}, got dtype {x.dtype}; "
            "for pixels in 0..255 use x.float() / 255 and binarize them "
            "(vicourse.data.binarize_dynamic or binarize_threshold)"
        )
    if x.dtype != parameter.dtype:
        raise TypeError(
            f"x has dtype {x.dtype} but the model's parameters are {parameter.dtype}; convert "
            f"the images with x.to({parameter.dtype}) (or the model with model.to({x.dtype}))"
        )
    if x.device != parameter.device:
        raise TypeError(
            f"x is on {x.device} but the model is on {parameter.device}; move the images "
            f"with x.to({str(parameter.device)!r})"
        )
    data_dim = getattr(model, "data_dim", x.shape[-1] if x.ndim else 0)
    if x.ndim != 2 or x.shape[1] != data_dim:
        raise ValueError(
            f"x must have shape (B, D) = (B, {data_dim}), one flattened image a row, got "
            f"{tuple(x.shape)}; flatten images with x.reshape(len(x), -1)"
        )
    return _check_batch(x)


def _check_batch(x: Tensor) -> Tensor:
    """x as a tensor, after checking that it holds at least one image (the model's checks on
    x are made chunk by chunk, in log_importance_weights)."""
    x = as_tensor(x, "x")
    if x.ndim == 0 or len(x) == 0:
        raise ValueError(f"x is an empty batch, shape {tuple(x.shape)}: the bound of no images "
                         "is undefined; pass at least one image, shape (B, D)")
    return x


def _check_grouped_bound_args(log_weights: Tensor, k: int) -> tuple[Tensor, int]:
    """log_weights as a tensor and k as an int, after checking that log_weights is (M, B),
    non-empty, with M a multiple of k, and holds no NaN or +inf."""
    k = positive_count(k, "k")
    log_weights = as_tensor(log_weights, "log_weights")
    if log_weights.ndim != 2 or log_weights.shape[0] % k or log_weights.numel() == 0:
        raise ValueError(
            f"log_weights must have shape (M, B) with M >= 1 a multiple of k={k} and B >= 1, "
            f"got {tuple(log_weights.shape)}; draw a multiple of k samples per image"
        )
    bad = log_weights.isnan() | (log_weights == math.inf)
    if bool(bad.any()):
        raise ValueError(
            f"log_weights has {int(bad.sum())} NaN or +inf values of {log_weights.numel()}; "
            "a log weight must be finite or -inf (a zero weight): the model that produced "
            "them diverged"
        )
    return log_weights, k
