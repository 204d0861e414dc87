r"""Monte Carlo estimates of the evidence lower bound.

.. math::

    \mathrm{ELBO}(q) = \mathbb E_{q(z)}\big[\log p(x, z) - \log q(z)\big]
    \approx \frac1S \sum_{s=1}^S \big[\log p(x, z_s) - \log q(z_s)\big],
    \qquad z_s = \text{reparameterized draws from } q .
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor
from torch.distributions import Distribution

from vicourse._checks import positive_count


def elbo_samples(
    log_joint: Callable[[Tensor], Tensor], q: Distribution, num_samples: int
) -> Tensor:
    r"""Per-sample ELBO terms :math:`\log p(x, z_s) - \log q(z_s)`, :math:`z_s \sim q`.

    Draws are reparameterized (``q.rsample``), so gradients flow to q's parameters.

    Args:
        log_joint: maps z of shape ``(S, *q.batch_shape, *q.event_shape)`` to
            :math:`\log p(x, z)` of shape ``(S, *q.batch_shape)``.
        q: the variational distribution (with ``rsample``).
        num_samples: S >= 1.

    Returns:
        Tensor of shape ``(S, *q.batch_shape)``.
    """
    num_samples = positive_count(num_samples, "num_samples")
    if not q.has_rsample:
        raise TypeError(
            f"{type(q).__name__} has no reparameterized sampler (rsample); "
            "use a reparameterizable q such as torch.distributions.Normal"
        )
    z = q.rsample((num_samples,))
    log_p = log_joint(z)
    log_q = q.log_prob(z)
    if log_p.shape != log_q.shape:
        raise ValueError(
            f"log_joint returned shape {tuple(log_p.shape)} but log q(z) has shape "
            f"{tuple(log_q.shape)}; log_joint must sum over the event dimensions of z"
        )
    return log_p - log_q


def elbo_estimate(
    log_joint: Callable[[Tensor], Tensor], q: Distribution, num_samples: int
) -> Tensor:
    """The Monte Carlo ELBO: the mean over S of :func:`elbo_samples`, shape ``q.batch_shape``."""
    return elbo_samples(log_joint, q, num_samples).mean(0)
