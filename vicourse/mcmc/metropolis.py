r"""Random-walk Metropolis for continuous targets, vectorized over many independent chains.

Each of S chains holds a state :math:`x \in \mathbb R^D`. One step proposes
:math:`x' = x + \sigma \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I_D)`, and accepts it
with probability :math:`\min\{1, \pi(x') / \pi(x)\}`, where :math:`\pi` is the target density
up to a constant; a rejected proposal keeps :math:`x` *as the next state*. The proposal is
symmetric, so this kernel satisfies detailed balance with respect to :math:`\pi` and leaves it
invariant. All S chains move in one batched call of the log density.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vicourse._checks import (
    check_log_density_not_nan,
    check_log_density_shape,
    check_positive_finite,
    positive_count,
)
from vicourse.objectives.weights import LogDensity

"""A log density up to a constant: points ``(S, D)`` to values ``(S,)``."""


def _log_density_at(log_density: LogDensity, x: Tensor, what: str) -> Tensor:
    values = log_density(x)
    check_log_density_shape(values, x)
    check_log_density_not_nan(values, x, what)
    return values


def metropolis_step(
    x: Tensor,
    log_density: LogDensity,
    step_size: float,
    log_p: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One random-walk Metropolis step of each of the S chains; a rejected chain stays at x.

    x: (S, D); log_density: (S, D) -> (S,); log_p: log density at x, (S,), if known
    -> x_next: (S, D), log_p_next: (S,), accepted: (S,) bool
    """
    _check_metropolis_args(x, step_size)
    if log_p is None:
        log_p = _log_density_at(log_density, x, "current states")  # (S,)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)  # (S, D)
    proposal = x + step_size * noise  # (S, D)
    log_p_proposal = _log_density_at(log_density, proposal, "proposals")  # (S,)
    log_u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device=x.device).log()
    accept = log_u < log_p_proposal - log_p  # (S,); always rejects log_p_proposal = -inf
    x_next = torch.where(accept[:, None], proposal, x)  # (S, D)
    return x_next, torch.where(accept, log_p_proposal, log_p), accept


def _check_metropolis_args(x: Tensor, step_size: float) -> None:
    """Raise ValueError unless x is a floating-point (S, D) tensor and step_size > 0."""
    if not isinstance(x, Tensor) or x.ndim != 2 or not x.is_floating_point():
        raise ValueError("x must be a floating-point tensor of shape (S, D): one row per chain")
    check_positive_finite(step_size, "step_size")


def run_metropolis(
    x0: Tensor,
    log_density: LogDensity,
    num_steps: int,
    step_size: float,
    keep: Iterable[int] = (),
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[dict[int, Tensor], float]:
    """Apply num_steps random-walk Metropolis steps to every row of x0.

    If the rows of x0 are draws from q, the rows after t steps are draws from qT^t, the
    distribution the chapter "MCMC contracts the KL" studies.

    Args:
        x0: starting states, shape (S, D).
        keep: the step counts t (between 0 and num_steps) at which to keep a copy of the
            states.

    Returns:
        A dict from each t in keep to the states after t steps, shape (S, D), and the
        acceptance rate over all chains and steps.
    """
    num_steps = positive_count(num_steps, "num_steps")
    keep = sorted(set(int(t) for t in keep))
    if keep and not 0 <= keep[0] <= keep[-1] <= num_steps:
        raise ValueError(f"keep must hold step counts between 0 and num_steps = {num_steps}, "
                         f"got {keep}")
    x, log_p = x0, None
    kept = {0: x0.clone()} if 0 in keep else {}
    accepted = 0
    for t in tqdm(range(1, num_steps + 1), desc="Metropolis", disable=not progress):
        x, log_p, accept = metropolis_step(x, log_density, step_size, log_p, generator)
        accepted += int(accept.sum())
        if t in keep:
            kept[t] = x.clone()
    return kept, accepted / (num_steps * x0.shape[0])
