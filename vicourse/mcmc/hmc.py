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

A trajectory that meets NaN (in the log density, or in its gradient where the density is
finite) or a log density of +inf raises an error that names the point: the model is broken
there. A trajectory that leaves the support (log density -inf) or whose energy blows up
(overflow to infinity, or an energy error above :data:`DIVERGENCE_THRESHOLD`) *diverges*: its
proposal is rejected, recorded with ``energy_error = inf`` (or above the threshold) and
counted by :attr:`HMCResult.num_divergent`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    check_seed,
    check_shape,
    positive_count,
)
from vicourse.objectives.weights import LogDensity

"""An unnormalized log density: positions ``(C, D)`` to log densities ``(C,)``."""

DIVERGENCE_THRESHOLD = 1000.0
"""An energy error Delta H above this marks a divergent transition (Stan's threshold): its
acceptance probability exp(-Delta H) is 0 in floating point."""


def log_density_and_grad(log_density: LogDensity, theta: Tensor) -> tuple[Tensor, Tensor]:
    """log p(theta_c) and its gradient for every chain c, by one backward pass through the sum.

    log_density: (C, D) -> (C,); theta: (C, D) -> log_p: (C,), grad: (C, D)
    """
    theta = _check_positions(log_density, theta, "theta")
    keep_graph = theta.requires_grad  # then the result can be differentiated again
    with torch.enable_grad():
        x = theta if keep_graph else theta.detach().requires_grad_(True)
        log_p = log_density(x)  # (C,)
        check_log_density_shape(log_p, theta)
        (grad,) = torch.autograd.grad(log_p.sum(), x, create_graph=keep_graph)  # (C, D)
    return (log_p if keep_graph else log_p.detach()), grad


def _check_positions(log_density: LogDensity, theta: Tensor, name: str) -> Tensor:
    """theta as a floating-point (C, D) tensor with C, D >= 1 (cheap: no pass over the
    values, since it runs at every leapfrog step), after checking that log_density is
    callable."""
    if not callable(log_density):
        raise TypeError(f"log_density must be a function from positions (C, D) to log "
                        f"densities (C,), got {type(log_density).__name__}")
    theta = as_tensor(theta, name)
    check_float(theta, name)
    check_shape(theta, name, "(chains, D) with chains, D >= 1: one row per chain",
                theta.ndim == 2 and theta.numel() > 0)
    return theta


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
    theta, momentum, num_steps = _check_leapfrog_args(log_density, theta, momentum, step_size,
                                                      num_steps, grad)
    if grad is None:
        _, grad = log_density_and_grad(log_density, theta)  # (C, D)
    check = _TrajectoryCheck(momentum, num_steps)  # NaN or +inf on the way: an error
    momentum = momentum + 0.5 * step_size * grad  # first half step
    for step in range(num_steps):
        theta = theta + step_size * momentum
        log_p, grad = log_density_and_grad(log_density, theta)
        check(log_p, grad, theta, momentum, step)
        # two half steps in momentum merged into one full step, except after the last step
        momentum = momentum + (step_size if step < num_steps - 1 else 0.5 * step_size) * grad
    return theta, momentum, log_p, grad


def _check_leapfrog_args(
    log_density: LogDensity,
    theta: Tensor,
    momentum: Tensor,
    step_size: float,
    num_steps: int,
    grad: Tensor | None,
) -> tuple[Tensor, Tensor, int]:
    """theta and momentum as tensors and num_steps as an int, after checking step_size and
    that momentum (and grad, if given) match theta, all finite."""
    theta = _check_positions(log_density, theta, "theta")
    momentum = as_tensor(momentum, "momentum")
    check_positive_finite(step_size, "step_size")
    num_steps = positive_count(num_steps, "num_steps")
    for name, tensor in (("momentum", momentum), ("grad", grad)):
        if tensor is None:
            continue
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name} must be a tensor of shape (chains, D), got "
                            f"{type(tensor).__name__}")
        if tensor.shape != theta.shape:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)} but theta has shape "
                             f"{tuple(theta.shape)}; they must match, (chains, D)")
        check_same_dtype_and_device(theta=theta, **{name: tensor})
        check_all_finite(tensor, name)
    check_all_finite(theta, "theta")
    return theta, momentum, num_steps


class _TrajectoryCheck:
    """Checks the points of one leapfrog trajectory of C chains that starts with momentum
    start (C, D): NaN in the log density, or in its gradient where the density is finite, is
    a ValueError at finite positions before the energy blew up (before momentum gained more
    than DIVERGENCE_THRESHOLD in kinetic energy), and +inf at any finite position.

    One cheap test per step while the chains that have not diverged are finite; a chain whose
    position or momentum overflowed or whose energy blew up has diverged, and is left out.
    """

    def __init__(self, start: Tensor, num_steps: int) -> None:
        self.start = start.detach()
        self.num_steps = num_steps
        self.alive: Tensor | None = None  # (C,) bool: not diverged; None: all of them

    def __call__(self, log_p: Tensor, grad: Tensor, theta: Tensor, momentum: Tensor,
                 step: int) -> None:
        log_p, grad = log_p.detach(), grad.detach()
        if self.alive is None:
            total = log_p.sum() + grad.sum()  # NaN or infinite if any value is
        else:
            total = (torch.where(self.alive, log_p, 0).sum()
                     + torch.where(self.alive[:, None], grad, 0).sum())
        if not math.isfinite(float(total)):
            self._classify(log_p, grad, theta.detach(), momentum.detach(), step)

    def _classify(self, log_p: Tensor, grad: Tensor, theta: Tensor, momentum: Tensor,
                  step: int) -> None:
        where = f"step {step + 1} of {self.num_steps}"
        finite = torch.isfinite(theta).all(-1)  # (C,)
        gained = 0.5 * (momentum.square().sum(-1) - self.start.square().sum(-1))  # (C,)
        calm = finite & (gained <= DIVERGENCE_THRESHOLD)  # NaN gained (overflow): not calm
        if self.alive is not None:
            calm = calm & self.alive
        positive = finite & (log_p == math.inf)
        nan_log_p = calm & log_p.isnan()
        nan_grad = calm & torch.isfinite(log_p) & grad.isnan().any(-1)
        if bool((positive | nan_log_p | nan_grad).any()):
            _raise_trajectory_error(positive, calm, nan_grad, theta, log_p, where)
        self.alive = calm  # the others diverged: left out of the following steps


def _raise_trajectory_error(
    positive: Tensor, calm: Tensor, nan_grad: Tensor, theta: Tensor, log_p: Tensor, where: str
) -> None:
    """Raise the ValueError for +inf (at positive), NaN among the calm chains, or a NaN
    gradient (at nan_grad), in that order; all masks (C,) over the positions theta (C, D)."""
    if bool(positive.any()):
        _raise_bad_points(positive, theta, log_p, f"log_density returned +inf at {{count}} of "
                          f"{{total}} positions along the leapfrog trajectory ({where})", (
                              "a log density is finite, or -inf outside the support; +inf "
                              "means an unbounded density (a log of infinity, a division by "
                              "zero): fix the model there"))
    check_log_density_not_nan(log_p[calm], theta[calm],
                              f"chains at finite positions, at leapfrog {where}")
    _raise_bad_points(nan_grad, theta, log_p, f"the gradient of log_density is NaN at "
                      f"{{count}} of {{total}} chains at finite positions where the log "
                      f"density is finite, at leapfrog {where}", (
                          "autograd differentiated a NaN somewhere, often the branch of a "
                          "torch.where that is not taken (sqrt or log of a negative number): "
                          "compute such branches on safe inputs (clamp first)"))


def _raise_bad_points(bad: Tensor, theta: Tensor, log_p: Tensor, what: str, fix: str) -> None:
    first = int(bad.nonzero()[0])
    raise ValueError(what.format(count=int(bad.sum()), total=len(bad))
                     + f" (the first at theta = {theta[first].tolist()}, log p = "
                     f"{log_p[first].item()}): {fix}")


@dataclass
class ChainState:
    """The current positions of C chains, with their log densities and gradients."""

    theta: Tensor  # (C, D)
    log_p: Tensor  # (C,)
    grad: Tensor  # (C, D)


def initial_state(log_density: LogDensity, theta: Tensor) -> ChainState:
    """The state at positions theta of shape (C, D); their log densities must be finite."""
    theta = _check_positions(log_density, theta, "theta")
    log_p, grad = log_density_and_grad(log_density, theta.detach())
    bad = ~torch.isfinite(log_p) | ~torch.isfinite(grad).all(-1)
    if bool(bad.any()):
        first = int(bad.nonzero()[0])
        raise ValueError(
            f"the log density or its gradient is not finite at the initial positions of "
            f"{int(bad.sum())} of {len(bad)} chains (chain {first}: theta = "
            f"{theta[first].tolist()}, log p = {log_p[first].item()}); start the chains "
            "where the density is positive (at finite positions, with a finite log density)"
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
    _check_hmc_step_args(state, generator)
    theta = state.theta
    momentum = torch.randn(theta.shape, generator=generator, dtype=theta.dtype,
                           device=theta.device)  # (C, D)
    new_theta, new_momentum, new_log_p, new_grad = leapfrog(
        log_density, theta, momentum, step_size, num_steps, state.grad)
    diverged = ~(torch.isfinite(new_theta) & torch.isfinite(new_momentum)).all(-1)  # (C,)
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


def _check_hmc_step_args(state: ChainState, generator: torch.Generator | None) -> None:
    if not isinstance(state, ChainState):
        raise TypeError(f"state must be a ChainState, got {type(state).__name__}; make one "
                        "with initial_state(log_density, theta)")
    check_generator(generator)


@dataclass
class HMCResult:
    """What sample_hmc returns.

    Attributes:
        draws: the state after every transition, shape (num_draws, C, D); after a
            rejection the previous state appears again.
        accepted: whether each transition accepted its proposal, bool (num_draws, C).
        energy_error: Delta H of each proposal, shape (num_draws, C); inf where the
            trajectory overflowed or left the support (see divergent).
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

    @property
    def divergent(self) -> Tensor:
        """Which transitions diverged, Delta H > DIVERGENCE_THRESHOLD: bool (num_draws, C).
        A divergent proposal is always rejected."""
        return self.energy_error > DIVERGENCE_THRESHOLD

    @property
    def num_divergent(self) -> int:
        """How many transitions diverged, over all chains and draws."""
        return int(self.divergent.sum())


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
    torch.Generator seeded with seed, on the device of initial. Divergent transitions are
    rejected and counted (HMCResult.num_divergent); NaN or +inf met along a trajectory is an
    error.
    """
    initial, num_draws, num_warmup, num_steps, seed = _check_sample_hmc_args(
        log_density, initial, num_draws, step_size, num_steps, num_warmup, seed)
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


def _check_sample_hmc_args(
    log_density: LogDensity,
    initial: Tensor,
    num_draws: int,
    step_size: float,
    num_steps: int,
    num_warmup: int,
    seed: int,
) -> tuple[Tensor, int, int, int, int]:
    """initial as a tensor, the counts and the seed as ints, after checking them."""
    initial = _check_positions(log_density, initial, "initial")
    num_draws = positive_count(num_draws, "num_draws")
    if isinstance(num_warmup, bool) or not isinstance(num_warmup, int) or num_warmup < 0:
        raise ValueError(f"num_warmup must be a non-negative integer, got {num_warmup!r}")
    check_positive_finite(step_size, "step_size")
    num_steps = positive_count(num_steps, "num_steps")
    return initial, num_draws, num_warmup, num_steps, check_seed(seed)
