r"""Monte Carlo estimates of the evidence lower bound.

.. math::

    \mathrm{ELBO}(q) = \mathbb E_{q(z)}\big[\log p(x, z) - \log q(z)\big]
    \approx \frac1S \sum_{s=1}^S \big[\log p(x, z_s) - \log q(z_s)\big],
    \qquad z_s = \text{reparameterized draws from } q .
"""

from __future__ import annotations

from torch import Tensor
from torch.distributions import Distribution

from vicourse._checks import positive_count
from vicourse.objectives.weights import LogDensity, log_weights


def elbo_samples(
    log_joint: LogDensity, q: Distribution, num_samples: int
) -> Tensor:
    """Per-sample ELBO terms log p(x, z_s) - log q(z_s) for S reparameterized draws z_s ~ q.

    log_joint: (S, *q.batch_shape, *q.event_shape) -> (S, *q.batch_shape), as is the result
    """
    num_samples = _check_elbo_args(log_joint, q, num_samples)
    z = q.rsample((num_samples,))  # (S, *q.batch_shape, *q.event_shape), differentiable
    log_p = log_joint(z)  # (S, *q.batch_shape)
    log_q = q.log_prob(z)  # (S, *q.batch_shape)
    return log_weights(log_p, log_q)


def elbo_estimate(
    log_joint: LogDensity, q: Distribution, num_samples: int
) -> Tensor:
    """The Monte Carlo ELBO: the mean of elbo_samples over the S draws; -> q.batch_shape."""
    return elbo_samples(log_joint, q, num_samples).mean(0)


def _check_elbo_args(log_joint: LogDensity, q: Distribution, num_samples: int) -> int:
    """num_samples as an int, after checking that log_joint is callable and q a distribution
    with a reparameterized sampler."""
    num_samples = positive_count(num_samples, "num_samples")
    if not callable(log_joint):
        raise TypeError(f"log_joint must be a function of z (a log density), got "
                        f"{type(log_joint).__name__}")
    if not isinstance(q, Distribution):
        raise TypeError(f"q must be a torch.distributions.Distribution such as Normal, got "
                        f"{type(q).__name__}")
    if not q.has_rsample:
        raise TypeError(
            f"q: {type(q).__name__} has no reparameterized sampler (rsample); "
            "use a reparameterizable q such as torch.distributions.Normal"
        )
    return num_samples
