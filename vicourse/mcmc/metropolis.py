r"""Random-walk Metropolis for continuous targets, vectorized over many independent chains.

Each of S chains holds a state :math:`x \in \mathbb R^D`. One step proposes
:math:`x' = x + \sigma \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I_D)`, and accepts it
with probability :math:`\min\{1, \pi(x') / \pi(x)\}`, where :math:`\pi` is the target density
up to a constant; a rejected proposal keeps :math:`x` *as the next state*. The proposal is
symmetric, so this kernel satisfies detailed balance with respect to :math:`\pi` and leaves it
invariant. All S chains move in one batched call of the log density.

The log density may be -inf (outside the support: such proposals are always rejected), but a
chain must start where it is finite, and NaN or +inf anywhere is an error naming the point.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vicourse._checks import (
    as_tensor,
    check_all_finite,
    check_float,
    check_generator,
    check_log_density_not_nan,
    check_log_density_shape,
    check_positive_finite,
    check_same_dtype_and_device,
    check_shape,
    positive_count,
)
from vicourse.objectives.weights import LogDensity

"""A log density up to a constant: points ``(S, D)`` to values ``(S,)``."""


def _log_density_at(log_density: LogDensity, x: Tensor, what: str) -> Tensor:
    """log_density(x), (S,), after checking its shape and that it has no NaN or +inf."""
    values = log_density(x)
    check_log_density_shape(values, x)
    if not float(values.max()) < math.inf:  # one reduction: the max is NaN or +inf if any is
        check_log_density_not_nan(values, x, what)
        _check_no_positive_infinity(values, x, what)
    return values


def _check_no_positive_infinity(values: Tensor, x: Tensor, what: str) -> None:
    bad = values == math.inf
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise ValueError(
            f"log_density returned +inf at {int(bad.sum())} of {len(values)} {what} (the "
            f"first at {x[first].tolist()}): a log density is finite, or -inf outside the "
            "support; +inf means an unbounded density (a log of infinity, a division by "
            "zero), where a chain would stick forever: fix the model there"
        )


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
    x, log_p = _check_metropolis_args(x, log_density, step_size, log_p, generator)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)  # (S, D)
    proposal = x + step_size * noise  # (S, D)
    log_p_proposal = _log_density_at(log_density, proposal, "proposals")  # (S,)
    log_u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device=x.device).log()
    accept = log_u < log_p_proposal - log_p  # (S,); always rejects log_p_proposal = -inf
    x_next = torch.where(accept[:, None], proposal, x)  # (S, D)
    return x_next, torch.where(accept, log_p_proposal, log_p), accept


def _check_metropolis_args(
    x: Tensor,
    log_density: LogDensity,
    step_size: float,
    log_p: Tensor | None,
    generator: torch.Generator | None,
    name: str = "x",
) -> tuple[Tensor, Tensor]:
    """x as a finite floating-point (S, D) tensor and log_p, the log density at x (computed if
    None), finite, shape (S,), after checking step_size and generator."""
    x = as_tensor(x, name)
    check_float(x, name)
    check_shape(x, name, "(S, D) with S, D >= 1: one row per chain",
                x.ndim == 2 and x.numel() > 0)
    check_all_finite(x, name)
    check_positive_finite(step_size, "step_size")
    check_generator(generator)
    if not callable(log_density):
        raise TypeError(f"log_density must be a function from points (S, D) to log densities "
                        f"(S,), got {type(log_density).__name__}")
    if log_p is None:
        log_p = _log_density_at(log_density, x, "current states")  # (S,)
        what = f"the log density at {name}"
    else:
        log_p = as_tensor(log_p, "log_p", dtype=x.dtype)
        check_shape(log_p, "log_p", f"(S,) = {tuple(x.shape[:1])}, the log density at x",
                    log_p.shape == x.shape[:1])
        check_same_dtype_and_device(x=x, log_p=log_p)
        what = "log_p"
    if not bool(torch.isfinite(log_p).all()):
        bad = ~torch.isfinite(log_p)
        first = int(bad.nonzero()[0])
        raise ValueError(
            f"{what} is not finite at {int(bad.sum())} of {len(log_p)} chains (chain {first}: "
            f"{name} = {x[first].tolist()}, log p = {log_p[first].item()}); start the chains "
            "where the density is positive: from a start outside the support (-inf) a chain "
            "never moves"
        )
    return x, log_p


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
    x0, log_p0, num_steps, keep = _check_run_metropolis_args(x0, log_density, num_steps,
                                                             step_size, keep, generator)
    x, log_p = x0, log_p0
    kept = {0: x0.clone()} if 0 in keep else {}
    accepted = 0
    for t in tqdm(range(1, num_steps + 1), desc="Metropolis", disable=not progress):
        x, log_p, accept = metropolis_step(x, log_density, step_size, log_p, generator)
        accepted += int(accept.sum())
        if t in keep:
            kept[t] = x.clone()
    return kept, accepted / (num_steps * x0.shape[0])


def _check_run_metropolis_args(
    x0: Tensor,
    log_density: LogDensity,
    num_steps: int,
    step_size: float,
    keep: Iterable[int],
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, int, list[int]]:
    """x0 as a tensor, the log density at x0, num_steps as an int and keep as a sorted list
    of ints, after checking them and the start (finite, where the density is positive)."""
    num_steps = positive_count(num_steps, "num_steps")
    try:
        steps = [operator.index(t) for t in keep]
    except TypeError:
        raise TypeError(f"keep must be an iterable of integer step counts, e.g. [0, 10], got "
                        f"{keep!r:.60}") from None
    keep = sorted(set(steps))
    if keep and not 0 <= keep[0] <= keep[-1] <= num_steps:
        raise ValueError(f"keep must hold step counts between 0 and num_steps = {num_steps}, "
                         f"got {keep}")
    x0, log_p0 = _check_metropolis_args(x0, log_density, step_size, None, generator, name="x0")
    return x0, log_p0, num_steps, keep
