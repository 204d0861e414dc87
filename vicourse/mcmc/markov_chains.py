r"""Markov chains on a finite state space: kernels, their invariant pmf, exact evolution, KL.

A distribution on the states :math:`\{0, \dots, n-1\}` is a probability vector ``q`` of shape
``(n,)``; a Markov kernel is a row-stochastic matrix ``T`` of shape ``(n, n)``,
:math:`T_{ij} = \Pr(z_{t+1} = j \mid z_t = i)`. One step of the chain maps :math:`q` to the
row vector :math:`qT`, :math:`(qT)_j = \sum_i q_i T_{ij}`, so every quantity of the chapter
"MCMC contracts the KL" is computed exactly:

* :func:`metropolis_kernel` builds the Metropolis-Hastings kernel of a target ``p``, which
  satisfies detailed balance; :func:`add_circulation` adds a probability flux around a cycle,
  which keeps ``p`` invariant but breaks detailed balance; :func:`drop_rejections` is the
  chain that forgets rejected proposals, whose invariant pmf is *not* ``p``;
* :func:`is_invariant`, :func:`detailed_balance_gap` and :func:`reversal_kernel` check the
  properties the theorem needs;
* :func:`evolve` computes :math:`q_t = q_0 T^t` and :func:`kl_divergence` the exact
  :math:`\mathrm{KL}(q_t \,\|\, p)`.

Everything is float64 torch tensors. Inputs may be tensors or array-likes of any floating
dtype: a sum to 1 is checked to the precision of the dtype they come in (a float32 pmf sums to
1 only up to float32 rounding), and shapes are checked before values.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from numbers import Real

import torch
from torch import Tensor

from vicourse._checks import (
    as_tensor,
    check_positive_finite,
    is_finite_real,
    positive_count,
    probability_tolerance,
)

_SUM_TOLERANCE = 1e-9
"""The tolerance of a sum to 1 in float64 (more for a lower precision: _sum_tolerance)."""


def as_pmf(p: Tensor, name: str = "p") -> Tensor:
    """p as a float64 probability vector of shape (n,); raise if it is not one."""
    p, source = _as_float64(p, name)
    _check_pmf_shape(p, name)
    _check_pmf_values(p, name, source)
    return p


def as_kernel(kernel: Tensor, n: int | None = None, *, name: str = "kernel") -> Tensor:
    """kernel as a float64 row-stochastic (n, n) matrix; raise if it is not one."""
    kernel, source = _as_float64(kernel, name)
    _check_kernel_shape(kernel, n, name)
    _check_kernel_values(kernel, name, source)
    return kernel


def _pmf_and_kernel(
    p: Tensor, kernel: Tensor, p_name: str = "p", kernel_name: str = "kernel"
) -> tuple[Tensor, Tensor]:
    """as_pmf(p) and as_kernel(kernel, len(p)), with both shapes checked before any value."""
    p, p_source = _as_float64(p, p_name)
    kernel, kernel_source = _as_float64(kernel, kernel_name)
    _check_pmf_shape(p, p_name)
    _check_kernel_shape(kernel, len(p), kernel_name, p_name)
    _check_pmf_values(p, p_name, p_source)
    _check_kernel_values(kernel, kernel_name, kernel_source)
    return p, kernel


def _as_float64(x: Tensor, name: str) -> tuple[Tensor, torch.dtype]:
    """x as a float64 tensor, and the floating dtype it came in (float64 for Python numbers
    and integers), whose precision sets the tolerance of its sums."""
    if isinstance(x, Tensor):
        source = x.dtype
    else:
        source = getattr(torch, str(getattr(x, "dtype", "float64")), torch.float64)
    if not isinstance(source, torch.dtype) or not source.is_floating_point:
        source = torch.float64
    return as_tensor(x, name, dtype=torch.float64).to(torch.float64), source


def _check_pmf_shape(p: Tensor, name: str) -> None:
    if p.ndim != 1 or len(p) == 0:
        raise ValueError(f"{name} must be a 1-D probability vector of shape (n,) with n >= 1, "
                         f"got shape {tuple(p.shape)}")


def _check_kernel_shape(kernel: Tensor, n: int | None, name: str, p_name: str = "p") -> None:
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.numel() == 0:
        raise ValueError(f"{name}: a Markov kernel must be a square matrix (n, n) with n >= 1, "
                         f"got shape {tuple(kernel.shape)}")
    if n is not None and kernel.shape[0] != n:
        raise ValueError(f"{name} has shape {tuple(kernel.shape)}: the kernel has "
                         f"{kernel.shape[0]} states but the pmf has {n} ({p_name} has shape "
                         f"({n},)); pass both over the same states")


def _check_pmf_values(p: Tensor, name: str, source: torch.dtype) -> None:
    _check_probabilities(p, name, f"{name} must sum to 1, got {{total:.12g}}; divide it by its sum",
                         source)


def _check_kernel_values(kernel: Tensor, name: str, source: torch.dtype) -> None:
    _check_probabilities(kernel, f"{name} (a Markov kernel)",
                         f"every row of a Markov kernel must sum to 1 (row i is the law of the "
                         f"next state from state i); the worst row of {name} is off by "
                         "{worst:.3g}", source)


def _sum_tolerance(source: torch.dtype, size: int) -> float:
    """How far from 1 a sum of size probabilities that came in dtype source may be."""
    return max(_SUM_TOLERANCE, probability_tolerance(source, size))


def _check_probabilities(
    x: Tensor, name: str, sum_message: str, source: torch.dtype = torch.float64
) -> None:
    """Raise unless x has finite, non-negative entries that sum to 1 over its last
    dimension, to the precision of source, the dtype x came in. sum_message is formatted
    with worst (the largest deviation of a sum from 1) and total (that sum).
    """
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
        raise ValueError(f"{name} must have finite, non-negative entries")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); pass at least one state")
    deviations = (x.sum(-1) - 1).abs().flatten()
    worst = int(deviations.argmax())
    if deviations[worst] > _sum_tolerance(source, x.shape[-1]):
        total = x.sum(-1).flatten()[worst].item()
        raise ValueError(sum_message.format(worst=deviations[worst].item(), total=total))


def kl_divergence(q: Tensor, p: Tensor) -> Tensor:
    """The exact KL(q || p) = sum_i q_i log(q_i / p_i) between pmfs.

    Terms with q_i = 0 are zero (0 log 0 = 0, whatever p_i); a state with q_i > 0 = p_i makes
    the divergence +inf.

    Args:
        q: pmfs of shape (..., n) (each row sums to 1), for example a whole chain
            q_0, ..., q_t from evolve.
        p: the reference pmf, shape (n,), or one per row of q (any shape that broadcasts
            against q, with the states last).

    Returns:
        Shape (...), float64, in nats.
    """
    (q, q_source), (p, p_source) = _as_float64(q, "q"), _as_float64(p, "p")
    if q.ndim == 0 or p.ndim == 0 or q.shape[-1] != p.shape[-1] or q.shape[-1] == 0:
        raise ValueError(f"q and p must hold pmfs over the same states (at least one) in their "
                         f"last dimension, got shapes q {tuple(q.shape)} and p {tuple(p.shape)}")
    try:
        torch.broadcast_shapes(q.shape, p.shape)
    except RuntimeError:
        raise ValueError(f"p of shape {tuple(p.shape)} does not broadcast against q of shape "
                         f"{tuple(q.shape)}; pass one reference pmf (n,) or one per row of q"
                         ) from None
    for name, pmfs, source in (("q", q, q_source), ("p", p, p_source)):
        _check_probabilities(pmfs, name, f"every {name} must sum to 1 over its last dimension; "
                             "one is off by {worst:.3g}", source)
    q, p = torch.broadcast_tensors(q, p)
    terms = torch.where(q > 0, q * (q.log() - p.log()), torch.zeros_like(q))
    return terms.sum(-1)


def evolve(q0: Tensor, kernel: Tensor, num_steps: int) -> Tensor:
    """The exact marginals q_t = q_0 T^t, t = 0, ..., num_steps.

    Returns:
        Shape (num_steps + 1, n): row t is q_t.
    """
    q, kernel = _pmf_and_kernel(q0, kernel, "q0")
    num_steps = positive_count(num_steps, "num_steps")
    rows = [q]
    for _ in range(num_steps):
        rows.append(rows[-1] @ kernel)
    return torch.stack(rows)


def is_invariant(kernel: Tensor, p: Tensor, atol: float = 1e-12) -> bool:
    """Whether pT = p, that is sum_i p_i T_ij = p_j for every state j."""
    p, kernel = _pmf_and_kernel(p, kernel)
    if isinstance(atol, bool) or not isinstance(atol, Real):
        raise TypeError(f"atol must be a number >= 0, got {atol!r}")
    if not (is_finite_real(atol) and atol >= 0):
        raise ValueError(f"atol must be a finite number >= 0, got {atol!r}")
    return bool(((p @ kernel) - p).abs().max() <= atol)


def detailed_balance_gap(kernel: Tensor, p: Tensor) -> float:
    """max_ij |p_i T_ij - p_j T_ji|: zero exactly when T is p-reversible."""
    p, kernel = _pmf_and_kernel(p, kernel)
    flow = p[:, None] * kernel
    return (flow - flow.T).abs().max().item()


def reversal_kernel(kernel: Tensor, p: Tensor) -> Tensor:
    """The time reversal R_ji = p_i T_ij / p_j of a p-invariant kernel.

    R(. | j) is the law of the previous state given the current state j, for the chain started
    in p: p_i T_ij = p_j R_ji. It is a kernel because sum_i p_i T_ij = p_j; it equals T when T
    satisfies detailed balance. Needs p > 0 everywhere.
    """
    p, kernel = _pmf_and_kernel(p, kernel)
    if bool((p <= 0).any()):
        raise ValueError("reversal_kernel needs p > 0 at every state (it divides by p)")
    if not is_invariant(kernel, p, atol=1e-10):
        raise ValueError("the kernel does not leave p invariant (pT != p), so it has no "
                         "reversal with respect to p")
    return (p[:, None] * kernel).T / p[:, None]


def metropolis_kernel(p: Tensor, proposal: Tensor) -> Tensor:
    """The Metropolis-Hastings kernel T of the target p with proposal kernel Q.

    p: (n,); proposal Q: (n, n), row-stochastic -> T: (n, n), float64
    """
    p, proposal = _pmf_and_kernel(p, proposal, kernel_name="proposal")
    forward = p[:, None] * proposal  # p_i Q_ij, (n, n)
    backward = forward.T  # p_j Q_ji
    ratio = backward / forward.where(forward > 0, torch.ones_like(forward))
    # a_ij = min(1, p_j Q_ji / (p_i Q_ij)); from a state with p_i = 0 every proposal is accepted
    acceptance = torch.where(forward > 0, ratio.clamp(max=1.0), torch.ones_like(forward))
    moves = proposal * acceptance  # T_ij = Q_ij a_ij for j != i
    moves.fill_diagonal_(0.0)
    return moves + torch.diag(1.0 - moves.sum(1))  # rejections stay: T_ii = 1 - sum_j T_ij


def ring_proposal(n: int, max_step: int = 1) -> Tensor:
    """The random walk on the ring {0, ..., n-1}: a step of +-1, ..., +-max_step (mod n),
    each with probability 1 / (2 max_step).

    Symmetric, so the Metropolis acceptance is min(1, p_j / p_i). Shape (n, n).
    """
    n = positive_count(n, "n")
    max_step = positive_count(max_step, "max_step")
    if 2 * max_step >= n:
        raise ValueError(f"max_step must be below n / 2 = {n / 2} so that the steps +-1, ..., "
                         f"+-max_step reach distinct states, got {max_step}")
    states = torch.arange(n)
    proposal = torch.zeros(n, n, dtype=torch.float64)
    for step in range(1, max_step + 1):
        for sign in (1, -1):
            proposal[states, (states + sign * step) % n] += 1.0 / (2 * max_step)
    return proposal


def cycle_flux(n: int, cycle: Sequence[int], strength: float = 1.0) -> Tensor:
    """A probability flux of size strength around cycle (states visited in order).

    F_ab = +c and F_ba = -c for each edge a -> b of the cycle (including the last state back to
    the first). F is antisymmetric and each row sums to 0: what flows into a state flows out
    of it. Shape (n, n).
    """
    n = positive_count(n, "n")
    check_positive_finite(strength, "strength")
    cycle = _check_cycle(cycle)
    if len(cycle) < 3 or len(set(cycle)) != len(cycle) or not all(0 <= s < n for s in cycle):
        raise ValueError(f"cycle must list at least 3 distinct states in 0..{n - 1}, got "
                         f"{cycle[:10]}{'...' if len(cycle) > 10 else ''}")
    flux = torch.zeros(n, n, dtype=torch.float64)
    for a, b in zip(cycle, cycle[1:] + cycle[:1], strict=True):
        flux[a, b] += strength
        flux[b, a] -= strength
    return flux


def _check_cycle(cycle: Sequence[int]) -> list[int]:
    """cycle as a list of Python ints (TypeError for anything else)."""
    try:
        return [operator.index(s) for s in cycle]
    except TypeError:
        raise TypeError(f"cycle must be a sequence of integer states, e.g. [0, 1, 2], got "
                        f"{cycle!r:.60}") from None


def _as_flux(flux: Tensor, kernel: Tensor) -> Tensor:
    """flux as a finite float64 tensor of the kernel's shape."""
    flux = as_tensor(flux, "flux", dtype=torch.float64).to(torch.float64)
    if flux.shape != kernel.shape:
        raise ValueError(f"flux must have the kernel's shape {tuple(kernel.shape)}, got "
                         f"{tuple(flux.shape)}")
    if not bool(torch.isfinite(flux).all()):
        raise ValueError("flux must be finite; build it with cycle_flux")
    return flux


def max_circulation(kernel: Tensor, p: Tensor, flux: Tensor) -> float:
    """The largest c for which T + c diag(p)^-1 F is still a kernel.

    Entries where F_ij < 0 shrink: c <= p_i T_ij / (-F_ij).
    """
    p, kernel = _pmf_and_kernel(p, kernel)
    flux = _as_flux(flux, kernel)
    negative = flux < 0
    if not bool(negative.any()):
        raise ValueError("the flux has no negative entry; build it with cycle_flux")
    return ((p[:, None] * kernel)[negative] / (-flux[negative])).min().item()


def add_circulation(kernel: Tensor, p: Tensor, flux: Tensor) -> Tensor:
    """The kernel T' = T + diag(p)^-1 F: p stays invariant, detailed balance is broken by 2F.

    kernel T: (n, n); p: (n,), p > 0; flux F: (n, n), at most max_circulation(...) -> (n, n)
    """
    kernel, p, flux = _check_circulation_args(kernel, p, flux)
    result = kernel + flux / p[:, None]  # (n, n)
    _check_circulation_result(result, kernel, p, flux)
    return result.clamp(min=0.0)


def _check_circulation_args(
    kernel: Tensor, p: Tensor, flux: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """kernel, p and flux as float64 tensors, after checking that they fit together."""
    p, kernel = _pmf_and_kernel(p, kernel)
    flux = _as_flux(flux, kernel)
    scale = flux.abs().max().item()
    if (flux + flux.T).abs().max() > 1e-12 * scale or flux.sum(1).abs().max() > 1e-12 * scale:
        raise ValueError("flux must be antisymmetric (F_ij = -F_ji) with rows that sum to 0, "
                         "as a flow around cycles is; build it with cycle_flux")
    if bool((p <= 0).any()):
        raise ValueError("add_circulation needs p > 0 at every state (it divides by p)")
    return kernel, p, flux


def _check_circulation_result(result: Tensor, kernel: Tensor, p: Tensor, flux: Tensor) -> None:
    """Raise ValueError if the flux made an entry of the kernel negative (beyond rounding)."""
    if bool((result < -1e-15).any()):
        raise ValueError(f"the flux is too strong: the kernel would get negative entries; "
                         f"scale it to at most max_circulation(...) = "
                         f"{max_circulation(kernel, p, flux):.3g} times its current size")


def drop_rejections(kernel: Tensor) -> Tensor:
    """The jump chain: the kernel moved to a new state at every step, rejections forgotten.

    J_ij = T_ij / (1 - T_ii) for j != i, J_ii = 0. This is what a sampler computes that records
    only accepted proposals. If T leaves p invariant, J leaves pi_i proportional to
    p_i (1 - T_ii) invariant instead, which is not p unless the rejection probability T_ii is
    the same at every state.
    """
    kernel = as_kernel(kernel)
    stay = kernel.diagonal()
    if bool((stay >= 1 - 1e-12).any()):
        state = int((stay >= 1 - 1e-12).nonzero()[0])
        raise ValueError(f"kernel has a state that never moves (T_ii = 1 at state {state}): "
                         "a chain that never moves has no jump chain")
    moves = kernel.clone()
    moves.fill_diagonal_(0.0)
    return moves / (1 - stay)[:, None]


def block_kernel(p: Tensor, blocks: Tensor) -> Tensor:
    """Resample within blocks: T_ij = p_j / p(B) for i, j in the same block B.

    The state's block never changes, and within it the next state is drawn from p
    restricted to the block. T leaves p invariant and satisfies detailed balance.

    Args:
        p: the target pmf, shape (n,), with positive mass on every block.
        blocks: integer block labels, shape (n,).
    """
    p = as_pmf(p)
    blocks = as_tensor(blocks, "blocks")
    if blocks.shape != p.shape or blocks.is_floating_point():
        raise ValueError(f"blocks must be integer labels of shape {tuple(p.shape)}, got "
                         f"{blocks.dtype} of shape {tuple(blocks.shape)}")
    same = (blocks[:, None] == blocks[None, :]).to(torch.float64)
    mass = same @ p
    if bool((mass <= 0).any()):
        raise ValueError("every block needs positive mass under p")
    return same * p[None, :] / mass[:, None]
