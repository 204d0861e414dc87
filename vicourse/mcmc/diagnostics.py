r"""MCMC diagnostics: effective sample size and split R-hat, as in Stan and ArviZ.

Draws have shape ``(N, C, ...)``: N draws of C chains, of any number of scalar quantities;
every function returns one value per quantity, of shape ``(...)``.

* :func:`effective_sample_size` estimates :math:`N_\mathrm{eff} = CN / \tau` with the
  integrated autocorrelation time :math:`\tau = 1 + 2 \sum_{t \ge 1} \rho_t`, from the
  multi-chain autocorrelations and Geyer's initial monotone sequence estimator
  (Stan's method; Vehtari et al. 2021).
* :func:`split_rhat` compares the variance between and within the halves of the chains.

With ``rank_normalize=True`` both are computed on the normal scores of the pooled ranks
(Vehtari et al. 2021: "bulk" ESS and rank-normalized R-hat, which also work for heavy tails).
"""

from __future__ import annotations

import math

import torch
from scipy import stats
from torch import Tensor


def _check_draws(draws: Tensor, min_draws: int) -> Tensor:
    if not isinstance(draws, Tensor) or not draws.is_floating_point() or draws.ndim < 2:
        raise ValueError(
            "draws must be a floating-point tensor of shape (num_draws, num_chains, ...), got "
            + (f"shape {tuple(draws.shape)}, dtype {draws.dtype}" if isinstance(draws, Tensor)
               else type(draws).__name__)
            + "; for a single chain, use draws[:, None]"
        )
    if draws.shape[0] < min_draws:
        raise ValueError(f"need at least {min_draws} draws per chain, got {draws.shape[0]}")
    if not bool(torch.isfinite(draws).all()):
        raise ValueError("draws contain NaN or infinite values; diagnostics need finite draws")
    return draws.double()


def split_chains(draws: Tensor) -> Tensor:
    """Each chain cut into its first and second half: ``(N, C, ...)`` to ``(N // 2, 2C, ...)``
    (the middle draw of an odd N is dropped)."""
    half = draws.shape[0] // 2
    return torch.cat([draws[:half], draws[draws.shape[0] - half:]], dim=1)


def rank_normalize(draws: Tensor) -> Tensor:
    """Normal scores of the ranks, pooled over draws and chains, for each quantity:
    z = Phi^-1((r - 3/8) / (S + 1/4)) with average ranks r of ties and S = NC (Blom's
    offsets).
    """
    flat = draws.reshape(-1, *draws.shape[2:]).cpu().numpy()
    ranks = stats.rankdata(flat, axis=0, method="average")
    scores = stats.norm.ppf((ranks - 0.375) / (flat.shape[0] + 0.25))
    return torch.as_tensor(scores, dtype=torch.float64).reshape(draws.shape)


def autocovariance(draws: Tensor) -> Tensor:
    """The autocovariance of each chain at every lag, by FFT, shape (N, C, ...):
    gamma_t = (1/N) sum_{i=1}^{N-t} (x_i - mean)(x_{i+t} - mean).
    """
    n = draws.shape[0]
    centred = draws - draws.mean(0)
    spectrum = torch.fft.rfft(centred, n=2 * n, dim=0)  # zero padding: no wrap-around
    return torch.fft.irfft(spectrum.abs().square(), n=2 * n, dim=0)[:n] / n


def _variances(draws: Tensor) -> tuple[Tensor, Tensor]:
    """Within-chain variance W and the pooled estimate var+ = (N - 1) / N W + B / N."""
    n = draws.shape[0]
    within = draws.var(0).mean(0)
    pooled = (n - 1) / n * within
    if draws.shape[1] > 1:
        pooled = pooled + draws.mean(0).var(0)  # B / N: the variance of the chain means
    return within, pooled


def autocorrelation_time(draws: Tensor) -> float:
    """Geyer's initial monotone sequence estimate of tau for one quantity, over all chains.

    draws: (N, C) -> float
    """
    n = draws.shape[0]
    within, pooled = _variances(draws)
    if within == 0:
        return 1.0  # constant chains: every draw is the same number, the mean is exact
    rho = 1 - (within - autocovariance(draws).mean(1)) / pooled  # (N,), combined over chains
    rho[0] = 1.0
    pairs = rho[: 2 * ((n - 1) // 2)].reshape(-1, 2).sum(-1)  # P_m uses lags 2m and 2m + 1
    last = (n - 3) // 2  # Stan uses the pairs with lags up to N - 2 only
    stop = 0 if pairs[0] <= 0 else next((m for m in range(1, last + 1) if pairs[m] <= 0), last)
    monotone = torch.cummin(pairs[:stop], 0).values  # positive pairs, made decreasing
    # Stan's closing term: half of the first pair left out, through its even lag, if positive.
    tail = rho[2 * stop] if (rho[2 * stop] > 0 or pairs[stop] >= 0) else rho.new_zeros(())
    return float(-1 + 2 * monotone.sum() + tail)


def effective_sample_size(draws: Tensor, rank_normalize_draws: bool = False) -> Tensor:
    """The effective sample size of the mean of each quantity, from split chains.

    N_eff = S / tau, tau = -1 + 2 sum_{m=0}^{M-1} P_m, S = NC, with the monotone pair sums P_m
    of autocorrelation_time, capped at S log10 S as in Stan. rank_normalize_draws=True gives
    the "bulk" ESS of Vehtari et al. (2021).

    Args:
        draws: shape (N, C, ...) with N >= 8.

    Returns:
        float64 tensor of shape (...).
    """
    draws = split_chains(_check_draws(draws, 8))
    if rank_normalize_draws:
        draws = rank_normalize(draws)
    total = draws.shape[0] * draws.shape[1]
    flat = draws.reshape(draws.shape[0], draws.shape[1], -1)
    ess = [total / max(autocorrelation_time(flat[..., k]), 1 / math.log10(total))
           for k in range(flat.shape[-1])]
    return torch.tensor(ess, dtype=torch.float64).reshape(draws.shape[2:])


def split_rhat(draws: Tensor, rank_normalize_draws: bool = False) -> Tensor:
    """The potential scale reduction factor of each quantity, from split chains:

        R_hat = sqrt(var_plus / W),   var_plus = (N - 1) / N W + B / N,

    where W is the mean variance within the 2C half-chains and B/N the variance of their
    means. It is near 1 when all half-chains sample the same distribution. With
    rank_normalize_draws=True it is Vehtari et al.'s (2021) rank-normalized R-hat: the
    larger of the values for the rank-normalized draws and for the rank-normalized distances
    to the median (which detects chains that differ in spread only).

    Args:
        draws: shape (N, C, ...) with N >= 4.

    Returns:
        float64 tensor of shape (...).
    """
    draws = split_chains(_check_draws(draws, 4))
    if not rank_normalize_draws:
        return _rhat(draws)
    median = torch.quantile(draws.flatten(0, 1), 0.5, dim=0)
    return torch.maximum(_rhat(rank_normalize(draws)),
                         _rhat(rank_normalize((draws - median).abs())))


def _rhat(draws: Tensor) -> Tensor:
    """R-hat of chains that are already split, ``(N, C, ...)`` to ``(...)``."""
    within, pooled = _variances(draws)
    return (pooled / within).sqrt()
