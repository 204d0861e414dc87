r"""The importance weighted bound :math:`\mathcal L_K` on the conjugate Gaussian toy model.

For :class:`~vicourse.models.toy_model.ConjugateGaussian` (:math:`z \sim \mathcal N(0, 1)`,
:math:`x \mid z \sim \mathcal N(z, s^2)`) and a Gaussian proposal
:math:`q(z) = \mathcal N(m, \sigma_q^2)`, everything the theory of :math:`\mathcal L_K` talks
about is known exactly: :math:`\log p(x)`, the ELBO :math:`\mathcal L_1`, and the
:math:`\chi^2` divergence from the posterior to q, which sets how fast
:math:`\mathcal L_K` approaches :math:`\log p(x)`:

.. math::

    \log p(x) - \mathcal L_K \approx \frac{\chi^2(p(z\mid x) \,\|\, q)}{2K},
    \qquad
    \operatorname{Var}\big[\widehat{\mathcal L}_K\big] \approx
        \frac{\chi^2(p(z\mid x) \,\|\, q)}{K}
    \quad (K \to \infty).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Normal

from vicourse._checks import check_positive_finite, is_finite_real, positive_count
from vicourse.objectives.bounds import log_mean_exp
from vicourse.models.toy_model import ConjugateGaussian


def toy_log_weights(
    model: ConjugateGaussian,
    x: float,
    q_mean: float,
    q_std: float,
    num_samples: int,
    repetitions: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    r""":math:`\log w = \log p(x, z) - \log q(z)` for :math:`z \sim \mathcal N(m, \sigma_q^2)`.

    Args:
        model: the toy model.
        x: one observation.
        q_mean, q_std: the proposal's mean m and standard deviation :math:`\sigma_q > 0`.
        num_samples: K, the draws per repetition.
        repetitions: R independent sets of K draws.
        generator: the random generator (for reproducible draws).

    Returns:
        Shape ``(R, K)``, float64.
    """
    if not is_finite_real(x) or not is_finite_real(q_mean):
        raise ValueError(f"x and q_mean must be finite numbers, got x={x!r}, q_mean={q_mean!r}")
    check_positive_finite(q_std, "q_std")
    num_samples = positive_count(num_samples, "num_samples")
    repetitions = positive_count(repetitions, "repetitions")
    eps = torch.randn(repetitions, num_samples, generator=generator, dtype=torch.float64)
    q = Normal(torch.tensor(float(q_mean), dtype=torch.float64),
               torch.tensor(float(q_std), dtype=torch.float64))
    z = q.loc + q.scale * eps
    return model.log_joint(torch.tensor(float(x), dtype=torch.float64), z) - q.log_prob(z)


def toy_bound_draws(
    model: ConjugateGaussian,
    x: float,
    q_mean: float,
    q_std: float,
    num_samples: int,
    repetitions: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""R independent draws of :math:`\widehat{\mathcal L}_K = \log \frac1K \sum_k w_k`.

    Their mean estimates :math:`\mathcal L_K` and their standard deviation divided by
    :math:`\sqrt R` is its standard error. Arguments as for :func:`toy_log_weights`.

    Returns:
        Shape ``(R,)``, float64.
    """
    log_w = toy_log_weights(model, x, q_mean, q_std, num_samples, repetitions, generator)
    return log_mean_exp(log_w, dim=1)


def chi_square_to_posterior(
    model: ConjugateGaussian, x: float, q_mean: float, q_std: float
) -> float:
    r""":math:`\chi^2(p(z \mid x) \,\|\, q) = \mathbb E_q[(w / p(x))^2] - 1`, in closed form.

    With the posterior :math:`\mathcal N(m_1, s_1^2)` and :math:`q = \mathcal N(m_2, s_2^2)`,

    .. math::

        \mathbb E_q\Big[\frac{p(z\mid x)^2}{q(z)^2}\Big]
            = \int \frac{p(z \mid x)^2}{q(z)}\,dz
            = \frac{s_2}{s_1^2 \sqrt a}\exp\Big(\frac{b^2/a - c}{2}\Big),

    :math:`a = 2/s_1^2 - 1/s_2^2`, :math:`b = 2m_1/s_1^2 - m_2/s_2^2`,
    :math:`c = 2m_1^2/s_1^2 - m_2^2/s_2^2`. The integral is finite only when
    :math:`a > 0`, that is :math:`s_2^2 > s_1^2 / 2`; for a narrower q the weights have
    infinite variance and the function returns ``inf``.

    This is :math:`\operatorname{Var}_q[w] / p(x)^2`, the relative variance of one weight.
    """
    check_positive_finite(q_std, "q_std")
    posterior = model.posterior(torch.tensor(float(x), dtype=torch.float64))
    m1, s1 = float(posterior.mean), float(posterior.stddev)
    m2, s2 = float(q_mean), float(q_std)
    a = 2 / s1**2 - 1 / s2**2
    if a <= 0:
        return math.inf
    b = 2 * m1 / s1**2 - m2 / s2**2
    c = 2 * m1**2 / s1**2 - m2**2 / s2**2
    log_second_moment = math.log(s2) - 2 * math.log(s1) - 0.5 * math.log(a) + 0.5 * (b**2 / a - c)
    return math.expm1(log_second_moment)
