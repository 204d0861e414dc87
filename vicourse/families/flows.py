r"""Normalizing flows for variational inference: planar, NICE, RealNVP, and a Gaussian baseline.

A flow pushes base draws :math:`z \sim \mathcal N(0, I_D)` through an invertible,
differentiable map :math:`f = f_K \circ \dots \circ f_1`. By the change of variables formula,
:math:`x = f(z)` has the density

.. math::

    \log q(x) = \log \mathcal N(z; 0, I_D) - \sum_{k=1}^K \log \big|\det J_{f_k}(z_{k-1})\big|,
    \qquad z_0 = z,\ z_k = f_k(z_{k-1}).

Every layer here maps ``z`` of shape ``(..., D)`` to ``(x, log_det)``, with ``x`` of shape
``(..., D)`` and ``log_det`` = :math:`\log|\det J(z)|` of shape ``(...)``, for all samples at
once. :class:`FlowSequence` chains layers and adds their log-determinants; :func:`flow_elbo`
and :func:`train_flow` fit a flow to an unnormalized target by maximizing the Monte Carlo
ELBO (:func:`flow_elbo_samples`).

The layers and the ELBO run inside training loops, so they check shapes, dtypes and devices
(cheap) but not values: NaN in z or in log_joint's values propagates to exactly the rows it
comes from. :func:`train_flow` and :func:`evaluate_flow_elbo` check that the ELBO is finite
and raise :class:`~vicourse._checks.NonFiniteResultError` (a FloatingPointError and a
ValueError) if it is not.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Normal
from torch.nn import functional as F
from tqdm.auto import tqdm

from vicourse._checks import (
    NonFiniteResultError,
    as_tensor,
    check_float,
    check_generator,
    check_positive_finite,
    check_seed,
    positive_count,
)
from vicourse.objectives.weights import LogDensity, log_weights

STANDARD_NORMAL = Normal(torch.tensor(0.0, dtype=torch.float64),
                         torch.tensor(1.0, dtype=torch.float64), validate_args=False)
"""The base distribution, per coordinate (0-dim parameters: log densities keep z's dtype)."""


def _check_input(
    z: Tensor, dim: int, layer: str, reference: Tensor | None, name: str = "z"
) -> Tensor:
    """z as a floating-point tensor of shape (..., dim) with the dtype and device of the
    layer's parameter reference (array-likes converted)."""
    z = as_tensor(z, name)
    check_float(z, name)
    if z.ndim == 0 or z.shape[-1] != dim:
        raise ValueError(f"{layer} expects {name} of shape (..., {dim}), got {tuple(z.shape)}")
    if reference is not None and (z.dtype != reference.dtype or z.device != reference.device):
        raise TypeError(
            f"{name} is {z.dtype} on {z.device} but the {layer}'s parameters are "
            f"{reference.dtype} on {reference.device}; convert {name} with "
            f"{name}.to({reference.dtype}) (or the flow with flow.to({z.dtype}))"
        )
    return z


class PlanarLayer(nn.Module):
    """A planar layer f(z) = z + u_hat tanh(w @ z + b), invertible since w @ u_hat > -1.

    z: (..., D) -> x: (..., D), log|det J|: (...)
    """

    def __init__(self, dim: int = 2) -> None:
        super().__init__()
        self.dim = positive_count(dim, "dim")
        self.w = nn.Parameter(torch.randn(self.dim) / math.sqrt(self.dim))
        self.u = nn.Parameter(torch.randn(self.dim) / math.sqrt(self.dim))
        self.b = nn.Parameter(torch.zeros(()))

    def _u_hat_and_softplus(self) -> tuple[Tensor, Tensor]:
        wu = self.w @ self.u
        softplus = F.softplus(wu)
        return self.u + (softplus - 1 - wu) * self.w / self.w.square().sum(), softplus

    def u_hat(self) -> Tensor:
        """The constrained vector u_hat, (D,), with w @ u_hat > -1."""
        return self._u_hat_and_softplus()[0]

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = _check_input(z, self.dim, "PlanarLayer", self.w)
        u_hat, softplus = self._u_hat_and_softplus()  # softplus = w @ u_hat + 1
        h = torch.tanh(z @ self.w + self.b)  # (...)
        x = z + h.unsqueeze(-1) * u_hat  # (..., D)
        h2 = h.square()
        # det J = 1 + (1 - h^2) w @ u_hat, as a sum of non-negative terms (no cancellation)
        return x, torch.log(h2 + (1 - h2) * softplus)


class _Coupling(nn.Module):
    """Shared bookkeeping of coupling layers: which coordinates condition, which move.

    The first ``D // 2`` coordinates condition and the rest are transformed, or the other way
    round when ``flip`` is true. The conditioner is an MLP with two hidden tanh layers whose
    last layer starts at zero, so that a new coupling layer is the identity.
    """

    def __init__(self, dim: int, flip: bool, hidden: int, outputs_per_coordinate: int) -> None:
        super().__init__()
        self.dim = positive_count(dim, "dim")
        if self.dim < 2:
            raise ValueError(f"a coupling layer needs dim >= 2 (it splits z in two), got {dim}")
        hidden = positive_count(hidden, "hidden")
        self.flip = bool(flip)
        first = self.dim // 2
        self.sizes = [first, self.dim - first]
        n_cond, n_move = (self.sizes[1], self.sizes[0]) if self.flip else self.sizes
        self.conditioner = nn.Sequential(
            nn.Linear(n_cond, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
            nn.Linear(hidden, outputs_per_coordinate * n_move),
        )
        nn.init.zeros_(self.conditioner[-1].weight)
        nn.init.zeros_(self.conditioner[-1].bias)

    def split(self, z: Tensor, name: str = "z") -> tuple[Tensor, Tensor]:
        """``(conditioning part, moving part)`` of ``z`` (named ``name`` in errors)."""
        z = _check_input(z, self.dim, type(self).__name__, self.conditioner[0].weight, name)
        first, second = z.split(self.sizes, dim=-1)
        return (second, first) if self.flip else (first, second)

    def join(self, cond: Tensor, moved: Tensor) -> Tensor:
        """Inverse of split."""
        return torch.cat([moved, cond] if self.flip else [cond, moved], dim=-1)


class AdditiveCoupling(_Coupling):
    """NICE's additive coupling x_a = z_a, x_b = z_b + m(z_a), with log|det J| = 0.

    z: (..., D) -> x: (..., D), log|det J|: (...)
    """

    def __init__(self, dim: int = 2, flip: bool = False, hidden: int = 32) -> None:
        super().__init__(dim, flip, hidden, outputs_per_coordinate=1)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        cond, moving = self.split(z)  # (..., D_a), (..., D_b)
        x = self.join(cond, moving + self.conditioner(cond))  # (..., D)
        return x, x.new_zeros(x.shape[:-1])

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z = f^-1(x) and log|det J_inverse(x)|."""
        cond, moved = self.split(x, "x")
        z = self.join(cond, moved - self.conditioner(cond))
        return z, z.new_zeros(z.shape[:-1])


class AffineCoupling(_Coupling):
    """RealNVP's affine coupling x_a = z_a, x_b = z_b * exp(s(z_a)) + t(z_a); log|det J| = sum s.

    z: (..., D) -> x: (..., D), log|det J|: (...)
    """

    def __init__(
        self, dim: int = 2, flip: bool = False, hidden: int = 32, max_log_scale: float = 2.0
    ) -> None:
        super().__init__(dim, flip, hidden, outputs_per_coordinate=2)
        check_positive_finite(max_log_scale, "max_log_scale")
        self.max_log_scale = float(max_log_scale)

    def scale_and_shift(self, cond: Tensor) -> tuple[Tensor, Tensor]:
        """The bounded log-scale s = c tanh(raw / c) and the shift t, each (..., D_b)."""
        raw_log_scale, shift = self.conditioner(cond).chunk(2, dim=-1)
        c = self.max_log_scale
        return c * torch.tanh(raw_log_scale / c), shift

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        cond, moving = self.split(z)  # (..., D_a), (..., D_b)
        log_scale, shift = self.scale_and_shift(cond)  # (..., D_b) each
        x = self.join(cond, moving * log_scale.exp() + shift)  # (..., D)
        return x, log_scale.sum(-1)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z = f^-1(x) and log|det J_inverse(x)|."""
        cond, moved = self.split(x, "x")
        log_scale, shift = self.scale_and_shift(cond)
        return self.join(cond, (moved - shift) * (-log_scale).exp()), -log_scale.sum(-1)


class ElementwiseAffine(nn.Module):
    """x = loc + exp(log_scale) * z with free loc, log_scale in R^D; log|det J| = sum log_scale.

    On a standard normal base this is the diagonal Gaussian N(loc, diag exp(2 log_scale))
    (diagonal_gaussian); with loc=False it is NICE's final scaling layer.
    """

    def __init__(self, dim: int = 2, loc: bool = True) -> None:
        super().__init__()
        self.dim = positive_count(dim, "dim")
        self.loc = nn.Parameter(torch.zeros(self.dim)) if loc else None
        self.log_scale = nn.Parameter(torch.zeros(self.dim))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = _check_input(z, self.dim, "ElementwiseAffine", self.log_scale)
        x = z * self.log_scale.exp()  # (..., D)
        if self.loc is not None:
            x = x + self.loc
        return x, self.log_scale.sum().expand(z.shape[:-1])  # (..., D), (...)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z = f^-1(x) and log|det J_inverse(x)|."""
        x = _check_input(x, self.dim, "ElementwiseAffine", self.log_scale, "x")
        if self.loc is not None:
            x = x - self.loc
        return x * (-self.log_scale).exp(), -self.log_scale.sum().expand(x.shape[:-1])


class FlowSequence(nn.Module):
    """The composition f_K o ... o f_1 of flow layers.

    forward(z) returns x = f(z) and sum_k log|det J_{f_k}(z_{k-1})|, shape (...).
    """

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        layers = _check_layers(layers)
        dims = {layer.dim for layer in layers}
        if len(dims) != 1:
            raise ValueError(f"all layers of a flow must have the same dim, got {sorted(dims)}")
        self.dim = dims.pop()
        self.layers = nn.ModuleList(layers)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        z = _check_input(z, self.dim, "FlowSequence", next(self.parameters(), None))
        total = z.new_zeros(z.shape[:-1])
        for layer in self.layers:
            z, log_det = layer(z)
            total = total + log_det
        return z, total

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """z = f^-1(x) and log|det J_inverse(x)|; needs every layer to have an inverse."""
        missing = [type(layer).__name__ for layer in self.layers if not hasattr(layer, "inverse")]
        if missing:
            raise NotImplementedError(
                f"layers {sorted(set(missing))} have no closed-form inverse (planar flows do "
                "not); only NICE, RealNVP and elementwise affine flows can be inverted"
            )
        x = _check_input(x, self.dim, "FlowSequence", next(self.parameters(), None), "x")
        total = x.new_zeros(x.shape[:-1])
        for layer in reversed(self.layers):
            x, log_det = layer.inverse(x)
            total = total + log_det
        return x, total


def _check_layers(layers: Sequence[nn.Module]) -> list[nn.Module]:
    """layers as a non-empty list of flow layers (modules with an integer dim)."""
    try:
        layers = list(layers)
    except TypeError:
        raise TypeError(f"layers must be a sequence of flow layers, e.g. [PlanarLayer(2), "
                        f"PlanarLayer(2)], got {type(layers).__name__}") from None
    if len(layers) == 0:
        raise ValueError("a flow needs at least one layer")
    for layer in layers:
        if not isinstance(layer, nn.Module) or not isinstance(getattr(layer, "dim", None), int):
            raise TypeError(f"layers must be flow layers (modules with an attribute dim that "
                            f"map z to (x, log_det)), got {type(layer).__name__}")
    return layers


def _has_inverse(flow: nn.Module) -> bool:
    """Whether flow.inverse exists and works: every layer of a FlowSequence has one."""
    if isinstance(flow, FlowSequence):
        return all(hasattr(layer, "inverse") for layer in flow.layers)
    return hasattr(flow, "inverse")


def _check_flow(flow: nn.Module, name: str = "flow") -> None:
    """TypeError unless flow is a flow: a module with an integer dim."""
    if not isinstance(flow, nn.Module) or not isinstance(getattr(flow, "dim", None), int):
        raise TypeError(f"{name} must be a flow (an nn.Module with an integer attribute dim, "
                        f"e.g. realnvp_flow(2)), got {type(flow).__name__}")


def planar_flow(dim: int = 2, num_layers: int = 8) -> FlowSequence:
    """num_layers planar layers (PlanarLayer)."""
    num_layers = positive_count(num_layers, "num_layers")
    return FlowSequence([PlanarLayer(dim) for _ in range(num_layers)])


def nice_flow(dim: int = 2, num_couplings: int = 4, hidden: int = 32) -> FlowSequence:
    """NICE: additive couplings that alternate which half moves, then a scaling layer."""
    num_couplings = positive_count(num_couplings, "num_couplings")
    couplings = [AdditiveCoupling(dim, flip=k % 2 == 1, hidden=hidden)
                 for k in range(num_couplings)]
    return FlowSequence([*couplings, ElementwiseAffine(dim, loc=False)])


def realnvp_flow(
    dim: int = 2, num_couplings: int = 8, hidden: int = 32, max_log_scale: float = 2.0
) -> FlowSequence:
    """RealNVP: affine couplings that alternate which half moves."""
    num_couplings = positive_count(num_couplings, "num_couplings")
    return FlowSequence([
        AffineCoupling(dim, flip=k % 2 == 1, hidden=hidden, max_log_scale=max_log_scale)
        for k in range(num_couplings)
    ])


def diagonal_gaussian(dim: int = 2) -> FlowSequence:
    """The baseline q = N(mu, diag sigma^2), one ElementwiseAffine layer."""
    return FlowSequence([ElementwiseAffine(dim, loc=True)])


def _dtype_and_device(flow: nn.Module) -> tuple[torch.dtype, torch.device]:
    param = next(flow.parameters(), None)
    if param is None:
        return torch.get_default_dtype(), torch.device("cpu")
    return param.dtype, param.device


def flow_sample(
    flow: nn.Module, num_samples: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Draws x = f(z), z ~ N(0, I), with log q(x) = log N(z; 0, I) - log|det J_f(z)|.

    num_samples: S -> x: (S, D), log_q: (S,), in the flow's dtype; reparameterized
    """
    num_samples = _check_sample_args(flow, num_samples, generator)
    dtype, device = _dtype_and_device(flow)
    z = torch.randn(num_samples, flow.dim, generator=generator, dtype=dtype, device=device)
    x, log_det = flow(z)  # (S, D), (S,)
    return x, STANDARD_NORMAL.log_prob(z).sum(-1) - log_det  # (S, D), (S,)


def _check_sample_args(
    flow: nn.Module, num_samples: int, generator: torch.Generator | None
) -> int:
    """num_samples as an int, after checking flow and generator."""
    _check_flow(flow)
    check_generator(generator)
    return positive_count(num_samples, "num_samples")


def flow_elbo_samples(
    flow: nn.Module,
    log_joint: LogDensity,
    num_samples: int,
    generator: torch.Generator | None = None,
    frozen: nn.Module | None = None,
) -> Tensor:
    """Per-sample ELBO terms log p(y, x_s) - log q(x_s), shape (S,).

    Args:
        flow: a flow with attribute dim, mapping (S, D) to (x, log_det).
        log_joint: the unnormalized log target, (S, D) -> (S,).
        num_samples: S.
        generator: the source of the base draws (default: torch's global generator).
        frozen: for the "sticking the landing" gradient, a copy of flow with the same
            parameter values that does not require gradients. Then log q(x_s) is evaluated
            as log N(g(x_s)) + log|det J_g(x_s)| with g the frozen flow's inverse: the same
            values, but the gradient keeps only the path through x_s = f(z_s) and drops the
            score term grad log q(x), whose expectation is zero. Needs frozen.inverse.
    """
    _check_elbo_args(flow, log_joint, frozen)
    if frozen is None:
        x, log_q = flow_sample(flow, num_samples, generator)
    else:
        num_samples = _check_sample_args(flow, num_samples, generator)
        dtype, device = _dtype_and_device(flow)
        z = torch.randn(num_samples, flow.dim, generator=generator, dtype=dtype, device=device)
        x, _ = flow(z)
        z_back, log_det_inverse = frozen.inverse(x)
        log_q = STANDARD_NORMAL.log_prob(z_back).sum(-1) + log_det_inverse
    return log_weights(log_joint(x), log_q)  # (S,)


def _check_elbo_args(flow: nn.Module, log_joint: LogDensity, frozen: nn.Module | None) -> None:
    """Check flow, that log_joint is callable, and that frozen (if given) is an invertible
    flow of the same dim, dtype and device as flow."""
    _check_flow(flow)
    if not callable(log_joint):
        raise TypeError(f"log_joint must be a function from points (S, D) to log densities "
                        f"(S,), got {type(log_joint).__name__}")
    if frozen is None:
        return
    _check_flow(frozen, "frozen")
    if not _has_inverse(frozen):
        raise ValueError(f"frozen must have an inverse (sticking the landing evaluates log q "
                         f"at x through it), and this {type(frozen).__name__} has none; use "
                         "frozen=None, or a NICE, RealNVP or elementwise affine flow")
    if frozen.dim != flow.dim:
        raise ValueError(f"frozen has dim {frozen.dim} but flow has dim {flow.dim}; frozen must "
                         "be a copy of flow (copy.deepcopy(flow).requires_grad_(False))")
    (dtype, device), (frozen_dtype, frozen_device) = (_dtype_and_device(flow),
                                                      _dtype_and_device(frozen))
    if (dtype, device) != (frozen_dtype, frozen_device):
        raise TypeError(f"frozen is {frozen_dtype} on {frozen_device} but flow is {dtype} on "
                        f"{device}; frozen must be a copy of flow")


def flow_elbo(
    flow: nn.Module,
    log_joint: LogDensity,
    num_samples: int = 100,
    generator: torch.Generator | None = None,
    frozen: nn.Module | None = None,
) -> Tensor:
    """The Monte Carlo ELBO (1/S) sum_s [log p(y, f(z_s)) - log q(f(z_s))], a scalar; its
    gradient is the reparameterization gradient (or, with frozen, the sticking-the-landing
    gradient: see flow_elbo_samples)."""
    return flow_elbo_samples(flow, log_joint, num_samples, generator, frozen).mean()


@torch.no_grad()
def evaluate_flow_elbo(
    flow: nn.Module,
    log_joint: LogDensity,
    num_samples: int = 10**6,
    batch_size: int = 10**5,
    seed: int = 0,
) -> tuple[float, float]:
    """The ELBO from many draws, and its standard error sigma_hat / sqrt(S) (the sample
    standard deviation of the terms over sqrt(S)), drawn in batches to bound memory.
    Returns (elbo, standard_error)."""
    num_samples = positive_count(num_samples, "num_samples")
    batch_size = positive_count(batch_size, "batch_size")
    _check_elbo_args(flow, log_joint, None)
    seed = check_seed(seed)
    generator = torch.Generator(device=_dtype_and_device(flow)[1]).manual_seed(seed)
    terms = []
    for start in range(0, num_samples, batch_size):
        size = min(batch_size, num_samples - start)
        terms.append(flow_elbo_samples(flow, log_joint, size, generator).double())
    values = torch.cat(terms)
    if not bool(torch.isfinite(values).all()):
        raise NonFiniteResultError("some ELBO terms are not finite: the flow or log_joint "
                                   "overflowed (or returned NaN); evaluate in float64")
    return values.mean().item(), (values.std() / math.sqrt(num_samples)).item()


def train_flow(
    flow: nn.Module,
    log_joint: LogDensity,
    num_steps: int,
    num_samples: int = 100,
    lr: float = 1e-2,
    final_lr: float = 1e-4,
    stick_the_landing: bool = False,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> list[float]:
    """Maximize the Monte Carlo ELBO with Adam, the learning rate decaying from lr to final_lr.

    log_joint: (S, D) -> (S,); returns the ELBO estimate of every step, before its update
    """
    num_steps = _check_train_flow_args(flow, log_joint, num_steps, num_samples, lr, final_lr,
                                       stick_the_landing, seed)
    frozen = None  # with stick_the_landing, a copy of the flow whose parameters are detached
    if stick_the_landing:
        frozen = copy.deepcopy(flow).requires_grad_(False)
        pairs = list(zip(frozen.parameters(), flow.parameters(), strict=True))
    generator = torch.Generator(device=_dtype_and_device(flow)[1]).manual_seed(seed)
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr, fused=True)
    gamma = (final_lr / lr) ** (1 / max(num_steps - 1, 1))  # geometric decay per step
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    trace = torch.empty(num_steps, dtype=torch.float64)
    for step in tqdm(range(num_steps), desc=desc, disable=not progress):
        if frozen is not None:
            with torch.no_grad():
                for stale, fresh in pairs:
                    stale.copy_(fresh)
        elbo = flow_elbo(flow, log_joint, num_samples, generator, frozen)
        optimizer.zero_grad(set_to_none=True)
        (-elbo).backward()
        optimizer.step()
        schedule.step()
        trace[step] = elbo.detach()
    values = trace.tolist()
    _check_finite_elbos(values, lr)
    return values


def _check_train_flow_args(
    flow: nn.Module,
    log_joint: LogDensity,
    num_steps: int,
    num_samples: int,
    lr: float,
    final_lr: float,
    stick_the_landing: bool,
    seed: int,
) -> int:
    """num_steps as an int, after checking the other arguments and that STL has an inverse."""
    _check_elbo_args(flow, log_joint, None)
    num_steps = positive_count(num_steps, "num_steps")
    positive_count(num_samples, "num_samples")
    check_positive_finite(lr, "lr")
    check_positive_finite(final_lr, "final_lr")
    check_seed(seed)
    if stick_the_landing and not _has_inverse(flow):
        raise ValueError(
            f"stick_the_landing needs log q(x) at a given x, through the flow's inverse, "
            f"and {type(flow).__name__} has no inverse; train it with "
            "stick_the_landing=False"
        )
    return num_steps


def _check_finite_elbos(values: list[float], lr: float) -> None:
    """Raise NonFiniteResultError (a FloatingPointError) at the first ELBO of a training run
    that is not finite."""
    if not all(math.isfinite(v) for v in values):
        first = next(i for i, v in enumerate(values) if not math.isfinite(v))
        raise NonFiniteResultError(
            f"the ELBO became {values[first]} at step {first}; lower lr (it was {lr}) or train "
            "in float64; if it is NaN from the first step, check that log_joint is finite at "
            "the flow's draws"
        )
