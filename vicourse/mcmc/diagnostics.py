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

Chains that never moved are reported, not counted as perfect mixing: if every chain is
constant (a sampler that rejects everything), the ESS is about one draw per chain, as in
ArviZ, with a UserWarning; if all draws are the same number, ESS and R-hat are undefined: NaN,
with a UserWarning (ArviZ returns N*C for the ESS there). Both diagnostics are scale-free, and
draws too large or too small for their squares (beyond 2**+-300) are rescaled first.
"""

from __future__ import annotations

import math
import warnings

import torch
from scipy import stats
from torch import Tensor

from vicourse._checks import as_tensor

_EXTREME = 2.0**300
"""Draws whose largest magnitude is beyond 2**300 (or below 2**-300) are rescaled by a power
of two before their variances are computed, which would overflow (underflow) otherwise."""


def _check_draws(draws: Tensor, min_draws: int, ndim: int | None = None) -> Tensor:
    """draws as a tensor (N, C, ...) (exactly ndim dimensions if given), N >= min_draws,
    non-empty and finite; integers and booleans as float64, array-likes converted."""
    draws = as_tensor(draws, "draws", dtype=torch.float64)
    if not draws.is_floating_point():
        draws = draws.double()
    if draws.ndim < 2 or (ndim is not None and draws.ndim != ndim):
        expected = "(num_draws, num_chains)" if ndim == 2 else "(num_draws, num_chains, ...)"
        raise ValueError(f"draws must have shape {expected}, got {tuple(draws.shape)}; for a "
                         "single chain, use draws[:, None]")
    if draws.shape[0] < min_draws:
        raise ValueError(f"draws must hold at least {min_draws} draws per chain, got "
                         f"{draws.shape[0]} (shape {tuple(draws.shape)})")
    if draws.numel() == 0:
        raise ValueError(f"draws is empty (shape {tuple(draws.shape)}); pass at least one "
                         "chain and one quantity")
    if not bool(torch.isfinite(draws).all()):
        raise ValueError("draws contain NaN or infinite values; diagnostics need finite draws")
    return draws


def _rescaled(draws: Tensor) -> Tensor:
    """float64 draws (N, C, ...), each quantity multiplied by a power of two (exactly) if its
    largest magnitude is beyond 2**300 or below 2**-300; unchanged otherwise."""
    largest = draws.abs().amax(dim=(0, 1))  # (...)
    extreme = (largest > _EXTREME) | ((largest < 1 / _EXTREME) & (largest > 0))
    if not bool(extreme.any()):
        return draws
    exponent = torch.where(extreme, torch.frexp(largest).exponent, 0).double()
    half = torch.floor(exponent / 2)  # two factors, each within the float64 range
    return draws * torch.pow(2.0, -half) * torch.pow(2.0, half - exponent)


def _warn_if_constant(draws: Tensor, what: str) -> bool:
    """Warn and return True if draws (N, C) are all the same number; warn and return False
    if every chain is constant (at different values: the chains never moved)."""
    if bool(draws.max() == draws.min()):
        warnings.warn(f"all draws are equal to {draws.flatten()[0].item():.6g}: the chains never "
                      f"moved, or the quantity is constant; {what} is undefined and returned "
                      "as NaN (ArviZ returns N*C for the ESS, as if the draws were independent)",
                      UserWarning, stacklevel=3)
        return True
    if bool((draws.amax(0) == draws.amin(0)).all()):
        warnings.warn(f"every chain is constant: the chains never moved from {draws.shape[1]} "
                      f"different values; {what} counts about one draw per chain (as ArviZ) "
                      "and R-hat is infinite: check the sampler (its acceptance rate, its step "
                      "size)", UserWarning, stacklevel=3)
    return False


def split_chains(draws: Tensor) -> Tensor:
    """Each chain cut into its first and second half: ``(N, C, ...)`` to ``(N // 2, 2C, ...)``
    (the middle draw of an odd N is dropped)."""
    draws = _check_split_args(draws)
    half = draws.shape[0] // 2
    return torch.cat([draws[:half], draws[draws.shape[0] - half:]], dim=1)


def _check_split_args(draws: Tensor) -> Tensor:
    """draws as a tensor of shape (N, C, ...) with N >= 2 (no pass over its values)."""
    draws = as_tensor(draws, "draws", dtype=torch.float64)
    if draws.ndim < 2 or draws.shape[0] < 2:
        raise ValueError(f"draws must have shape (num_draws, num_chains, ...) with at least 2 "
                         f"draws, got {tuple(draws.shape)}; for a single chain, use "
                         "draws[:, None]")
    return draws


def rank_normalize(draws: Tensor) -> Tensor:
    """Normal scores of the ranks, pooled over draws and chains, for each quantity:
    z = Phi^-1((r - 3/8) / (S + 1/4)) with average ranks r of ties and S = NC (Blom's
    offsets).
    """
    draws = _check_draws(draws, 1)
    flat = draws.reshape(-1, *draws.shape[2:]).cpu().numpy()
    ranks = stats.rankdata(flat, axis=0, method="average")
    scores = stats.norm.ppf((ranks - 0.375) / (flat.shape[0] + 0.25))
    return torch.as_tensor(scores, dtype=torch.float64).reshape(draws.shape)


def autocovariance(draws: Tensor) -> Tensor:
    """The autocovariance of each chain at every lag, by FFT, shape (N, C, ...):
    gamma_t = (1/N) sum_{i=1}^{N-t} (x_i - mean)(x_{i+t} - mean).
    """
    draws = _check_draws(draws, 1)
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

    draws: (N, C), N >= 4 -> float; NaN (with a UserWarning) if all draws are equal
    """
    draws = _rescaled(_check_draws(draws, 4, ndim=2).double())
    if _warn_if_constant(draws, "the autocorrelation time (and the ESS)"):
        return math.nan
    n = draws.shape[0]
    within, pooled = _variances(draws)
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
    the "bulk" ESS of Vehtari et al. (2021). Chains that never moved: see the module's
    docstring (a UserWarning, and about one draw per chain, or NaN if all draws are equal).

    Args:
        draws: shape (N, C, ...) with N >= 8.

    Returns:
        float64 tensor of shape (...).
    """
    draws = split_chains(_rescaled(_check_draws(draws, 8).double()))
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
        float64 tensor of shape (...); inf for chains stuck at different values, NaN (with a
        UserWarning) for a quantity whose draws are all equal.
    """
    draws = split_chains(_rescaled(_check_draws(draws, 4).double()))
    flat = draws.reshape(draws.shape[0], draws.shape[1], -1)
    for k in range(flat.shape[-1]):
        _warn_if_all_equal(flat[..., k])
    if not rank_normalize_draws:
        return _rhat(draws)
    median = torch.quantile(draws.flatten(0, 1), 0.5, dim=0)
    return torch.maximum(_rhat(rank_normalize(draws)),
                         _rhat(rank_normalize((draws - median).abs())))


def _warn_if_all_equal(draws: Tensor) -> None:
    if bool(draws.max() == draws.min()):
        warnings.warn(f"all draws are equal to {draws.flatten()[0].item():.6g}: the chains never "
                      "moved, or the quantity is constant; R-hat is undefined (0/0) and "
                      "returned as NaN", UserWarning, stacklevel=3)


def _rhat(draws: Tensor) -> Tensor:
    """R-hat of chains that are already split, ``(N, C, ...)`` to ``(...)``."""
    within, pooled = _variances(draws)
    return (pooled / within).sqrt()
