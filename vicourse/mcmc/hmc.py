r"""Hamiltonian Monte Carlo, vectorized over many chains, with gradients by autograd.

The target is a log density :math:`\log p(\theta)` known up to a constant. HMC adds a momentum
:math:`r \sim \mathcal N(0, I_D)` and simulates the dynamics of the Hamiltonian

.. math::

    H(\theta, r) = U(\theta) + \tfrac12 r^\top r, \qquad U(\theta) = -\log p(\theta),

with the leapfrog integrator (:func:`leapfrog`), then accepts the end point with probability
:math:`\min(1, e^{-\Delta H})` (:func:`hmc_step`). A rejected proposal leaves the chain where
it is, and that state is recorded again as the next draw (:func:`sample_hmc`).

Every function works on a batch of ``C`` independent chains at once: positions and momenta
have shape ``(C, D)``, and ``log_density`` maps ``(C, D)`` to ``(C,)``. Since the chains are
independent, the gradient of the *sum* of their log densities with respect to the batch of
positions is the batch of their gradients: one call of ``torch.autograd.grad`` per step
serves every chain.
"""

from __future__ import annotations

from dataclasses import dataclass

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

"""An unnormalized log density: positions ``(C, D)`` to log densities ``(C,)``."""


def log_density_and_grad(log_density: LogDensity, theta: Tensor) -> tuple[Tensor, Tensor]:
    """log p(theta_c) and its gradient for every chain c, by one backward pass through the sum.

    log_density: (C, D) -> (C,); theta: (C, D) -> log_p: (C,), grad: (C, D)
    """
    keep_graph = theta.requires_grad  # then the result can be differentiated again
    with torch.enable_grad():
        x = theta if keep_graph else theta.detach().requires_grad_(True)
        log_p = log_density(x)  # (C,)
        check_log_density_shape(log_p, theta)
        (grad,) = torch.autograd.grad(log_p.sum(), x, create_graph=keep_graph)  # (C, D)
    return (log_p if keep_graph else log_p.detach()), grad


def leapfrog(
    log_density: LogDensity,
    theta: Tensor,
    momentum: Tensor,
    step_size: float,
    num_steps: int,
    grad: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """num_steps leapfrog steps of size step_size for H = -log p(theta) + |r|^2 / 2.

    theta, momentum: (C, D); grad: grad log p(theta), (C, D), if known
    -> theta, momentum: (C, D), log_p: (C,), grad: (C, D) at the end of the trajectory
    """
    num_steps = _check_leapfrog_args(theta, momentum, step_size, num_steps)
    if grad is None:
        _, grad = log_density_and_grad(log_density, theta)  # (C, D)
    momentum = momentum + 0.5 * step_size * grad  # first half step
    for step in range(num_steps):
        theta = theta + step_size * momentum
        log_p, grad = log_density_and_grad(log_density, theta)
        # two half steps in momentum merged into one full step, except after the last step
        momentum = momentum + (step_size if step < num_steps - 1 else 0.5 * step_size) * grad
    return theta, momentum, log_p, grad


def _check_leapfrog_args(theta: Tensor, momentum: Tensor, step_size: float, num_steps: int) -> int:
    """num_steps as an int, after checking step_size and that momentum matches theta."""
    check_positive_finite(step_size, "step_size")
    num_steps = positive_count(num_steps, "num_steps")
    if momentum.shape != theta.shape:
        raise ValueError(f"momentum has shape {tuple(momentum.shape)} but theta has shape "
                         f"{tuple(theta.shape)}; they must match, (chains, D)")
    return num_steps


@dataclass
class ChainState:
    """The current positions of C chains, with their log densities and gradients."""

    theta: Tensor  # (C, D)
    log_p: Tensor  # (C,)
    grad: Tensor  # (C, D)


def initial_state(log_density: LogDensity, theta: Tensor) -> ChainState:
    """The state at positions theta of shape (C, D); their log densities must be finite."""
    if not isinstance(theta, Tensor) or not theta.is_floating_point() or theta.ndim != 2:
        raise ValueError(
            "initial positions must be a floating-point tensor of shape (chains, D), got "
            + (f"shape {tuple(theta.shape)}, dtype {theta.dtype}" if isinstance(theta, Tensor)
               else type(theta).__name__)
        )
    log_p, grad = log_density_and_grad(log_density, theta.detach())
    bad = ~torch.isfinite(log_p) | ~torch.isfinite(grad).all(-1)
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise ValueError(
            f"the log density or its gradient is not finite at the initial positions of "
            f"{int(bad.sum())} of {len(bad)} chains (chain {first}: theta = "
            f"{theta[first].tolist()}, log p = {log_p[first].item()}); start the chains where "
            "the density is positive"
        )
    return ChainState(theta.detach(), log_p, grad)


def hmc_step(
    log_density: LogDensity,
    state: ChainState,
    step_size: float,
    num_steps: int,
    generator: torch.Generator | None = None,
) -> tuple[ChainState, Tensor, Tensor]:
    """One HMC transition of every chain: fresh momentum, leapfrog, then accept or reject.

    state: C chains in D dimensions -> (new_state, accepted: (C,) bool, energy_error: (C,))
    """
    theta = state.theta
    momentum = torch.randn(theta.shape, generator=generator, dtype=theta.dtype,
                           device=theta.device)  # (C, D)
    new_theta, new_momentum, new_log_p, new_grad = leapfrog(
        log_density, theta, momentum, step_size, num_steps, state.grad)
    diverged = ~(torch.isfinite(new_theta) & torch.isfinite(new_momentum)).all(-1)  # (C,)
    finite = ~diverged  # NaN is expected where the trajectory diverged to infinity
    check_log_density_not_nan(new_log_p[finite], new_theta[finite],
                              "chains at finite positions")
    energy_error = (state.log_p - new_log_p
                    + 0.5 * (new_momentum.square().sum(-1) - momentum.square().sum(-1)))  # (C,)
    energy_error = torch.where(diverged | torch.isnan(energy_error),
                               torch.full_like(energy_error, float("inf")), energy_error)
    log_u = torch.rand(theta.shape[:-1], generator=generator, dtype=theta.dtype,
                       device=theta.device).log()  # (C,)
    accepted = log_u < -energy_error  # (C,)
    keep = accepted.unsqueeze(-1)  # (C, 1)
    new_state = ChainState(
        torch.where(keep, new_theta, theta),
        torch.where(accepted, new_log_p, state.log_p),
        torch.where(keep, new_grad, state.grad),
    )
    return new_state, accepted, energy_error


@dataclass
class HMCResult:
    """What sample_hmc returns.

    Attributes:
        draws: the state after every transition, shape (num_draws, C, D); after a
            rejection the previous state appears again.
        accepted: whether each transition accepted its proposal, bool (num_draws, C).
        energy_error: Delta H of each proposal, shape (num_draws, C).
        step_size, num_steps: the settings of the run.
    """

    draws: Tensor
    accepted: Tensor
    energy_error: Tensor
    step_size: float
    num_steps: int

    @property
    def acceptance_rate(self) -> float:
        """The fraction of accepted proposals, over all chains and draws."""
        return self.accepted.double().mean().item()

    @property
    def acceptance_prob(self) -> Tensor:
        """min(1, exp(-Delta H)) of every proposal, shape (num_draws, C)."""
        return torch.exp(-self.energy_error.clamp(min=0))


def sample_hmc(
    log_density: LogDensity,
    initial: Tensor,
    num_draws: int,
    step_size: float,
    num_steps: int,
    num_warmup: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> HMCResult:
    """Run C HMC chains from initial (shape (C, D)) and record every state.

    The first num_warmup transitions are run and discarded (the step size stays fixed:
    there is no adaptation); the next num_draws are returned, including the repeated
    states of rejected proposals: dropping them biases the draws towards the regions where
    proposals are accepted more often. Momenta and acceptance draws come from a
    torch.Generator seeded with seed, on the device of initial.
    """
    num_draws = positive_count(num_draws, "num_draws")
    if isinstance(num_warmup, bool) or not isinstance(num_warmup, int) or num_warmup < 0:
        raise ValueError(f"num_warmup must be a non-negative integer, got {num_warmup!r}")
    check_positive_finite(step_size, "step_size")
    num_steps = positive_count(num_steps, "num_steps")
    state = initial_state(log_density, initial)
    generator = torch.Generator(device=initial.device).manual_seed(seed)
    draws, accepted, energy_error = [], [], []
    for iteration in tqdm(range(num_warmup + num_draws), desc="HMC", disable=not progress):
        state, accept, error = hmc_step(log_density, state, step_size, num_steps, generator)
        if iteration >= num_warmup:
            draws.append(state.theta)
            accepted.append(accept)
            energy_error.append(error)
    return HMCResult(torch.stack(draws), torch.stack(accepted), torch.stack(energy_error),
                     float(step_size), num_steps)
