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

from vicourse._checks import positive_count
from vicourse.objectives.gaussian_kl import kl_diag_gaussian_std_normal
from vicourse.models.vae import VAE, reparameterized_sample


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    r""":math:`\log p(x \mid z) = \sum_d x_d \log\sigma(f_d) + (1 - x_d)\log(1 - \sigma(f_d))`.

    Computed from the logits :math:`f` with ``binary_cross_entropy_with_logits``, which stays
    finite for any finite logit (never ``log(sigmoid(f))``).

    Args:
        logits: shape ``(..., D)``.
        x: binary targets in {0, 1}; ``logits`` and ``x`` broadcast against each other.

    Returns:
        The broadcast shape without its last dimension: summed over the D pixels.
    """
    _check_binary(x)
    logits, x = torch.broadcast_tensors(logits, x.to(logits.dtype))
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def elbo(model: VAE, x: Tensor) -> Tensor:
    r"""Per-image ELBO: one reparameterized sample for the reconstruction term, the KL in
    closed form (chapter 3).

    .. math::

        \widehat{\mathrm{ELBO}}(x) = \log p_\theta(x \mid z) - \mathrm{KL}\big(
            \mathcal N(\mu, \operatorname{diag} e^{\ell}) \,\|\, \mathcal N(0, I)\big),
        \qquad z = \mu + e^{\ell/2} \odot \varepsilon .

    Args:
        model: the VAE.
        x: binary images, shape ``(B, D)``.

    Returns:
        Shape ``(B,)``, nats per image; differentiable in the parameters of both networks.
    """
    mu, logvar = model.encode(x)
    z = reparameterized_sample(mu, logvar)
    return bernoulli_log_likelihood(model.decode(z), x) - kl_diag_gaussian_std_normal(mu, logvar)


def negative_elbo_loss(model: VAE, x: Tensor) -> Tensor:
    """The training loss: the negative ELBO averaged over the images of the batch (a scalar).

    Both terms are per image before averaging, so the loss does not depend on the batch size.
    """
    return -elbo(model, x).mean()


def log_importance_weights(model: VAE, x: Tensor, num_samples: int) -> Tensor:
    r""":math:`\log w_k = \log p(z_k) + \log p(x \mid z_k) - \log q(z_k \mid x)` for
    :math:`z_k \sim q(z \mid x)`, :math:`k = 1..K`.

    Args:
        model: the VAE.
        x: binary images, shape ``(B, D)``.
        num_samples: K.

    Returns:
        Shape ``(K, B)``.
    """
    mu, logvar = model.encode(x)
    z = reparameterized_sample(mu, logvar, num_samples)  # (K, B, latent)
    return _log_weight(model, x, z, mu, logvar)


def _log_weight(model: VAE, x: Tensor, z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log p(z) + log p(x | z) - log N(z; mu, diag exp(logvar)), summed over dimensions."""
    log_q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    return log_prior + bernoulli_log_likelihood(model.decode(z), x) - log_q


def elbo_sticking_the_landing(model: VAE, x: Tensor) -> Tensor:
    r"""Per-image one-sample ELBO whose gradient is the *sticking the landing* estimator.

    .. math::

        \log p_\theta(z) + \log p_\theta(x \mid z)
        - \log \mathcal N\big(z;\ \operatorname{sg}(\mu),\
            \operatorname{diag} e^{\operatorname{sg}(\ell)}\big),
        \qquad z = \mu + e^{\ell/2} \odot \varepsilon,

    where sg stops the gradient: :math:`\log q` is *sampled* (not the closed-form KL) and
    evaluated with the encoder's outputs detached, while z stays reparameterized, so the
    encoder receives the path term of the gradient and not the score term
    :math:`-\nabla_\phi \log q_\phi(z \mid x)` (Roeder et al., 2017). The value is an
    unbiased estimate of the ELBO, as is the gradient. Do not detach z: that cuts the
    encoder off from the reconstruction term.

    Args:
        model: the VAE.
        x: binary images, shape ``(B, D)``.

    Returns:
        Shape ``(B,)``, nats per image.
    """
    mu, logvar = model.encode(x)
    z = reparameterized_sample(mu, logvar)
    return _log_weight(model, x, z, mu.detach(), logvar.detach())


def negative_elbo_stl_loss(model: VAE, x: Tensor) -> Tensor:
    """The training loss with the sticking-the-landing gradient: minus the batch mean of
    :func:`elbo_sticking_the_landing` (a scalar)."""
    return -elbo_sticking_the_landing(model, x).mean()


def log_mean_exp(log_values: Tensor, dim: int = 0) -> Tensor:
    r""":math:`\log \frac1K \sum_{k=1}^K e^{a_k}` along ``dim``, by log-sum-exp.

    .. math::

        \log \frac1K \sum_k e^{a_k} = a^* + \log \frac1K \sum_k e^{a_k - a^*},
        \qquad a^* = \max_k a_k,

    so the largest term is :math:`e^0 = 1` and nothing underflows to a zero sum: the result is
    finite whenever one :math:`a_k` is, however negative (``torch.logsumexp`` does the
    shifting).

    Args:
        log_values: the logarithms :math:`a_k`, any shape.
        dim: the dimension of the K terms (removed from the result).

    Returns:
        ``log_values``'s shape without ``dim``.
    """
    if log_values.ndim == 0 or log_values.shape[dim] == 0:
        raise ValueError(
            f"log_mean_exp needs at least one term along dim={dim}, got a tensor of shape "
            f"{tuple(log_values.shape)}; pass the log weights with the K samples along dim"
        )
    return torch.logsumexp(log_values, dim=dim) - math.log(log_values.shape[dim])


def iwae_bound(model: VAE, x: Tensor, num_samples: int) -> Tensor:
    r"""One-sample estimate of :math:`\mathcal L_K`, per image, by log-sum-exp:

    .. math::

        \widehat{\mathcal L}_K(x) = \operatorname{logsumexp}_k \log w_k - \log K .

    Returns:
        Shape ``(B,)``; differentiable (reparameterized), so it is also the IWAE training
        objective.
    """
    return log_mean_exp(log_importance_weights(model, x, num_samples), dim=0)


def negative_iwae_loss(model: VAE, x: Tensor, num_samples: int) -> Tensor:
    r"""The IWAE training loss: :math:`-\widehat{\mathcal L}_K` averaged over the batch.

    With ``num_samples=1`` it is the negative ELBO with a sampled (not closed-form) KL term.
    Pass it to :func:`vicourse.train.train_vae` as
    ``loss_fn=functools.partial(negative_iwae_loss, num_samples=K)``.
    """
    return -iwae_bound(model, x, positive_count(num_samples, "num_samples")).mean()


@torch.no_grad()
def log_likelihood_estimate(
    model: VAE, x: Tensor, num_samples: int = 1000, chunk_size: int = 100
) -> Tensor:
    r"""Importance-sampled estimate of :math:`\log p(x)` with K proposals from the encoder.

    The same quantity as :func:`iwae_bound` (without gradients): the log-mean-exp of the K
    log weights of each image, computed for memory in chunks of images, whose weights come
    in chunks of proposals from :func:`log_importance_weights_chunked`. As K grows it
    approaches :math:`\log p(x)` from below on average.

    Args:
        model: the VAE.
        x: binary images, shape ``(B, D)``.
        num_samples: K, the number of proposals per image.
        chunk_size: images and proposals handled at once (memory is about
            ``chunk_size**2 * D`` floats for the decoder, plus ``chunk_size * K`` weights).

    Returns:
        Shape ``(B,)``, nats per image.
    """
    chunk_size = positive_count(chunk_size, "chunk_size")
    return torch.cat([
        log_mean_exp(log_importance_weights_chunked(model, images, num_samples, chunk_size))
        for images in x.split(chunk_size)
    ])


@torch.no_grad()
def log_importance_weights_chunked(
    model: VAE, x: Tensor, num_samples: int, chunk_size: int = 100
) -> Tensor:
    """All K log weights of every image, without gradients, computed in chunks for memory.

    The same draws as :func:`log_importance_weights`, kept (not summed) so that several
    bounds can be read off one set of samples with :func:`grouped_bound`.

    Args:
        model: the VAE.
        x: binary images, shape ``(B, D)``.
        num_samples: K.
        chunk_size: images and proposals handled at once (memory is about
            ``chunk_size**2 * D`` floats).

    Returns:
        Shape ``(K, B)``.
    """
    num_samples = positive_count(num_samples, "num_samples")
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
    r"""Estimate :math:`\mathcal L_k` from M log weights per image, M a multiple of k.

    The M draws are cut into :math:`G = M / k` disjoint groups of k; each group gives an
    independent draw of the k-sample estimate, and their mean is an unbiased, G times less
    variable estimate of :math:`\mathcal L_k`:

    .. math::

        \widehat{\mathcal L}_k = \frac1G \sum_{g=1}^G
            \log \frac1k \sum_{j=1}^k w_{(g-1)k + j} .

    Args:
        log_weights: shape ``(M, B)``, the log weights of B images.
        k: the group size, a divisor of M.

    Returns:
        Shape ``(B,)``.
    """
    k = positive_count(k, "k")
    if log_weights.ndim != 2 or log_weights.shape[0] % k:
        raise ValueError(
            f"log_weights must have shape (M, B) with M a multiple of k={k}, got "
            f"{tuple(log_weights.shape)}; draw a multiple of k samples per image"
        )
    groups = log_weights.reshape(log_weights.shape[0] // k, k, log_weights.shape[1])
    return log_mean_exp(groups, dim=1).mean(0)


def _check_binary(x: Tensor) -> None:
    if int(torch.count_nonzero(x * (1 - x))):  # zero exactly when every x is 0 or 1
        bad = x[(x != 0) & (x != 1)].flatten()[:3].tolist()
        raise ValueError(
            "the Bernoulli likelihood needs targets in {0, 1}, got values such as "
            f"{[round(v, 4) for v in bad]}; binarize grey levels first with "
            "vicourse.data.binarize_dynamic (a Bernoulli draw) or binarize_threshold"
        )
