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
import sys

import torch
from torch import Tensor
from torch.distributions import Normal

from vicourse._checks import check_positive_finite, is_finite_real, positive_count
from vicourse.models.toy_model import ConjugateGaussian
from vicourse.objectives.weights import log_mean_exp, log_weights


def toy_log_weights(
    model: ConjugateGaussian,
    x: float,
    q_mean: float,
    q_std: float,
    num_samples: int,
    repetitions: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """log w = log p(x, z) - log q(z) for R independent sets of K draws z ~ N(q_mean, q_std^2).

    x, q_mean: finite numbers; q_std > 0; num_samples: K; repetitions: R -> (R, K) float64
    """
    x, q_mean = _check_toy_args(model, x, q_mean, q_std)
    num_samples = positive_count(num_samples, "num_samples")
    repetitions = positive_count(repetitions, "repetitions")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}; pass torch.Generator().manual_seed(seed)")
    eps = torch.randn(repetitions, num_samples, generator=generator, dtype=torch.float64)
    q = Normal(torch.tensor(float(q_mean), dtype=torch.float64),
               torch.tensor(float(q_std), dtype=torch.float64))
    z = q.loc + q.scale * eps
    return log_weights(model.log_joint(torch.tensor(float(x), dtype=torch.float64), z),
                       q.log_prob(z))


def toy_bound_draws(
    model: ConjugateGaussian,
    x: float,
    q_mean: float,
    q_std: float,
    num_samples: int,
    repetitions: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """R independent draws of the K-sample bound log (1/K) sum_k w_k on the toy model.

    Arguments as for toy_log_weights -> (R,) float64
    """
    log_w = toy_log_weights(model, x, q_mean, q_std, num_samples, repetitions, generator)  # (R, K)
    return log_mean_exp(log_w, dim=1)  # (R,)


def chi_square_to_posterior(
    model: ConjugateGaussian, x: float, q_mean: float, q_std: float
) -> float:
    """chi^2(p(z | x) || q) = E_q[(w / p(x))^2] - 1 = Var_q[w] / p(x)^2, in closed form.

    With the posterior N(m1, s1^2) and q = N(m2, s2^2),

        E_q[p(z | x)^2 / q(z)^2] = s2 / (s1^2 sqrt(a)) exp((b^2 / a - c) / 2),

    a = 2/s1^2 - 1/s2^2, b = 2 m1/s1^2 - m2/s2^2, c = 2 m1^2/s1^2 - m2^2/s2^2. The integral
    is finite only when a > 0, that is s2^2 > s1^2 / 2; for a narrower q the weights have
    infinite variance and the function returns inf. It also returns inf where the value is
    beyond the float range (q far from the posterior).
    """
    x, q_mean = _check_toy_args(model, x, q_mean, q_std)
    posterior = model.posterior(torch.tensor(float(x), dtype=torch.float64))
    m1, s1 = float(posterior.mean), float(posterior.stddev)
    m2, s2 = float(q_mean), float(q_std)
    log_second_moment = _log_second_moment(m1, s1, m2, s2)
    return math.inf if log_second_moment > _LOG_FLOAT_MAX else math.expm1(log_second_moment)


_LOG_FLOAT_MAX = math.log(sys.float_info.max)  # about 709.8


def _log_second_moment(m1: float, s1: float, m2: float, s2: float) -> float:
    """log E_q[p(z | x)^2 / q(z)^2] for p(z | x) = N(m1, s1^2), q = N(m2, s2^2); inf if the
    integral diverges (a <= 0). The formula of the docstring of chi_square_to_posterior, or,
    where its terms overflow or cancel (b^2 / a and c agree to many digits: x and q_mean far
    from 0), the same value in a form without cancellation (b^2 - a c = 2 (m1 - m2)^2 / (s1^2
    s2^2))."""
    try:
        a = 2 / s1**2 - 1 / s2**2
        if a <= 0:
            return math.inf
        b = 2 * m1 / s1**2 - m2 / s2**2
        c = 2 * m1**2 / s1**2 - m2**2 / s2**2
        if abs(c) < 1e6:  # b^2 / a - c loses at most about 1e6 * eps = 2e-10 nats
            return math.log(s2) - 2 * math.log(s1) - 0.5 * math.log(a) + 0.5 * (b**2 / a - c)
    except (OverflowError, ZeroDivisionError):
        pass
    r = s1 / s2  # a > 0 exactly when r^2 < 2
    if not r * r < 2:
        return math.inf
    d = (m1 - m2) / s2
    return math.log(s2) - math.log(s1) - 0.5 * math.log(2 - r * r) + d * d / (2 - r * r)


def _check_toy_args(
    model: ConjugateGaussian, x: float, q_mean: float, q_std: float
) -> tuple[float, float]:
    """x and q_mean as floats (numbers, or tensors with one element), after checking that the
    model is the conjugate model, that x and q_mean are finite and q_std > 0 finite."""
    if not isinstance(model, ConjugateGaussian):
        raise TypeError(f"model must be a ConjugateGaussian, got {type(model).__name__}")
    values = []
    for name, value in (("x", x), ("q_mean", q_mean)):
        if isinstance(value, Tensor) and value.numel() == 1 and value.is_floating_point():
            value = float(value)
        if not is_finite_real(value):
            raise ValueError(f"x and q_mean must be finite numbers, got {name}={value!r}")
        values.append(value)
    check_positive_finite(q_std, "q_std")
    return values[0], values[1]
