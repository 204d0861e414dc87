"""The API contract on bad input for vicourse.mcmc (HMC, Metropolis, diagnostics, finite-state
chains) and vicourse.families.flows.

Every case either gives a correct result (finite, or exactly the answer an oracle gives) or
raises ValueError/TypeError with a message that names the argument, or warns when the result
is legitimate but unreliable. See tests/contract.py; ``python bench/api_sweep.py --list`` runs
these cases as the "mcmc" group.

Conventions these cases pin down:

* HMC: NaN (log density or gradient) or +inf met anywhere along a trajectory is an error that
  names the point; leaving the support (-inf) and energy blow-ups are *divergences*: rejected,
  recorded with energy_error = inf (> 1000) and counted by ``HMCResult.num_divergent``.
* Metropolis: +inf anywhere, and a start where the log density is -inf, are errors.
* ESS of chains that never moved: constant chains at different values follow ArviZ (about one
  draw per chain) with a UserWarning; all draws equal gives NaN with a UserWarning (ArviZ
  returns N*C there, which claims perfect mixing).
* Flows: layers and flow_elbo run inside training loops and propagate NaN exactly where it
  is (no per-step synchronization); train_flow and evaluate_flow_elbo detect non-finite
  ELBOs and raise an error that is both a FloatingPointError and a ValueError.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from contract import Case, assert_holds, finite
from hypothesis import given, settings
from hypothesis import strategies as st

from vicourse.families.flows import (
    AdditiveCoupling,
    AffineCoupling,
    ElementwiseAffine,
    FlowSequence,
    PlanarLayer,
    diagonal_gaussian,
    evaluate_flow_elbo,
    flow_elbo,
    flow_elbo_samples,
    flow_sample,
    nice_flow,
    planar_flow,
    realnvp_flow,
    train_flow,
)
from vicourse.mcmc.diagnostics import (
    autocorrelation_time,
    autocovariance,
    effective_sample_size,
    rank_normalize,
    split_chains,
    split_rhat,
)
from vicourse.mcmc.hmc import (
    ChainState,
    hmc_step,
    initial_state,
    leapfrog,
    log_density_and_grad,
    sample_hmc,
)
from vicourse.mcmc.markov_chains import (
    add_circulation,
    as_kernel,
    as_pmf,
    block_kernel,
    cycle_flux,
    detailed_balance_gap,
    drop_rejections,
    evolve,
    is_invariant,
    kl_divergence,
    max_circulation,
    metropolis_kernel,
    reversal_kernel,
    ring_proposal,
)
from vicourse.mcmc.metropolis import metropolis_step, run_metropolis

F32, F64 = torch.float32, torch.float64
NAN, INF = math.nan, math.inf
BAD_COUNTS = [0, -1, 1.5, True, None]
BAD_POSITIVE = [0.0, -1.0, NAN, INF, True, None]
BAD_SEEDS = [1.5, True, None, "7"]

CASES: list[Case] = []


def case(name, call, check=None, **kwargs):
    """Add a case; a check that raises counts as a failed check."""
    def safe(result):
        try:
            return bool(check(result))
        except Exception:  # noqa: BLE001  (a wrong result, not a crash of the table)
            return False
    CASES.append(Case(name, call, check=None if check is None else safe, **kwargs))


def _seeded(fn):
    """Run fn with torch's global generator seeded, restored after."""
    def call():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return fn()
    return call


def close_to(expected, rtol=1e-6, atol=1e-9):
    expected = torch.as_tensor(expected, dtype=F64)
    return lambda r: (finite(r) and torch.as_tensor(r).shape == expected.shape
                      and torch.allclose(torch.as_tensor(r, dtype=F64), expected,
                                         rtol=rtol, atol=atol))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- log densities ----------------------------------------------------------------------------

def std_normal(theta):
    return -0.5 * theta.square().sum(-1)


def nan_band(theta):
    """A standard normal that is NaN in the band 0.9 < theta_1 < 1.1, with a zero gradient
    there (torch.where with a constant): trajectories cross the band without noticing."""
    inside = (theta[..., 0] - 1.0).abs() < 0.1
    return torch.where(inside, torch.full_like(theta[..., 0], NAN), std_normal(theta))


def posinf_band(theta):
    inside = (theta[..., 0] - 1.0).abs() < 0.1
    return torch.where(inside, torch.full_like(theta[..., 0], INF), std_normal(theta))


def nan_gradient(theta):
    """Finite everywhere, but the gradient is NaN where theta_1 > 0.5: the classic
    torch.where trap (the branch not taken still differentiates sqrt of a negative number)."""
    x = theta[..., 0]
    return std_normal(theta) + torch.where(x > 0.5, 0.0, (0.5 - x).sqrt())


def half_plane(theta):
    return torch.where(theta[..., 0] > 0, std_normal(theta), -INF)


def stiff(theta):
    """A Gaussian with standard deviation 0.01: steps of 0.5 make every trajectory diverge."""
    return -0.5 * (theta / 0.01).square().sum(-1)


THETA = torch.tensor([[0.0, 0.5], [1.0, -1.0], [-0.5, 2.0]], dtype=F64)  # (3, 2)
MOMENTUM = torch.tensor([[0.3, -0.2], [0.1, 0.4], [-1.0, 0.0]], dtype=F64)


def _leapfrog_oracle(theta, momentum, eps, steps):
    """Leapfrog for the standard normal: grad log p = -theta, written out."""
    theta, momentum = theta.clone(), momentum.clone()
    for _ in range(steps):
        momentum = momentum - 0.5 * eps * theta
        theta = theta + eps * momentum
        momentum = momentum - 0.5 * eps * theta
    return theta, momentum


def leapfrog_is_oracle(theta=THETA, momentum=MOMENTUM, eps=0.1, steps=3):
    expected = _leapfrog_oracle(theta, momentum, eps, steps)
    return lambda r: (finite(r) and torch.allclose(r[0].double(), expected[0], atol=1e-6)
                      and torch.allclose(r[1].double(), expected[1], atol=1e-6))


def _hmc(log_density=std_normal, initial=THETA, num_draws=5, step_size=0.2, num_steps=3,
         **kwargs):
    return lambda: sample_hmc(log_density, initial, num_draws, step_size, num_steps,
                              progress=False, **kwargs)


def _hmc_ok(num_draws=5, chains=3):
    return lambda r: (r.draws.shape == (num_draws, chains, 2) and finite(r.draws)
                      and r.accepted.shape == (num_draws, chains) and r.num_divergent == 0)


# --- hmc: log_density_and_grad, leapfrog ------------------------------------------------------

case("hmc/log_density_and_grad/list", lambda: log_density_and_grad(std_normal, THETA.tolist()),
     check=lambda r: finite(r) and torch.allclose(r[1].double(), -THETA, atol=1e-6))
case("hmc/log_density_and_grad/numpy", lambda: log_density_and_grad(std_normal, THETA.numpy()),
     check=lambda r: finite(r) and torch.allclose(r[1].double(), -THETA, atol=1e-6))
case("hmc/log_density_and_grad/int_theta",
     lambda: log_density_and_grad(std_normal, torch.zeros(3, 2, dtype=torch.long)),
     raises=TypeError, names="theta")
case("hmc/log_density_and_grad/1d_theta", lambda: log_density_and_grad(std_normal, torch.zeros(3)),
     raises=ValueError, names="theta")
case("hmc/log_density_and_grad/empty_theta",
     lambda: log_density_and_grad(std_normal, torch.zeros(0, 2)), raises=ValueError, names="theta")
case("hmc/log_density_and_grad/string_theta", lambda: log_density_and_grad(std_normal, "x"),
     raises=TypeError, names="theta")
case("hmc/log_density_and_grad/scalar_output",
     lambda: log_density_and_grad(lambda t: t.sum(), THETA), raises=ValueError,
     names="log_density")
case("hmc/log_density_and_grad/not_callable", lambda: log_density_and_grad(THETA, THETA),
     raises=TypeError, names="log_density")
# A divergence is detected from non-finite values, so NaN positions give NaN, exactly there.
case("hmc/log_density_and_grad/nan_theta_propagates",
     lambda: log_density_and_grad(std_normal, torch.tensor([[NAN, 0.0], [1.0, 1.0]])),
     check=lambda r: r[0].isnan().tolist() == [True, False] and r[0][1].item() == -1.0)

case("hmc/leapfrog/ok", lambda: leapfrog(std_normal, THETA, MOMENTUM, 0.1, 3),
     check=leapfrog_is_oracle())
case("hmc/leapfrog/lists", lambda: leapfrog(std_normal, THETA.tolist(), MOMENTUM.tolist(), 0.1, 3),
     check=leapfrog_is_oracle())
case("hmc/leapfrog/momentum_dtype",
     lambda: leapfrog(std_normal, THETA, MOMENTUM.float(), 0.1, 3), raises=TypeError,
     names="momentum")
case("hmc/leapfrog/momentum_shape", lambda: leapfrog(std_normal, THETA, MOMENTUM[:, :1], 0.1, 3),
     raises=ValueError, names="momentum")
case("hmc/leapfrog/grad_shape",
     lambda: leapfrog(std_normal, THETA, MOMENTUM, 0.1, 3, grad=torch.zeros(3, 3, dtype=F64)),
     raises=ValueError, names="grad")
case("hmc/leapfrog/grad_dtype",
     lambda: leapfrog(std_normal, THETA, MOMENTUM, 0.1, 3, grad=torch.zeros(3, 2)),
     raises=TypeError, names="grad")
case("hmc/leapfrog/int_theta",
     lambda: leapfrog(std_normal, THETA.long(), MOMENTUM.long(), 0.1, 3), raises=TypeError,
     names="theta")
case("hmc/leapfrog/nan_momentum",
     lambda: leapfrog(std_normal, THETA, MOMENTUM.nan_to_num().index_fill(0, torch.tensor([1]),
                                                                         NAN), 0.1, 3),
     raises=ValueError, names="momentum")
for _bad in BAD_POSITIVE:
    case(f"hmc/leapfrog/step_size={_bad!r}",
         lambda b=_bad: leapfrog(std_normal, THETA, MOMENTUM, b, 3), raises=ValueError,
         names="step_size")
for _bad in BAD_COUNTS:
    case(f"hmc/leapfrog/num_steps={_bad!r}",
         lambda b=_bad: leapfrog(std_normal, THETA, MOMENTUM, 0.1, b), raises=ValueError,
         names="num_steps")
# The issue: NaN met in the middle of a trajectory was swallowed.
case("hmc/leapfrog/nan_mid_trajectory",
     lambda: leapfrog(nan_band, torch.tensor([[0.5, 0.0]], dtype=F64),
                      torch.tensor([[1.0, 0.0]], dtype=F64), 0.2, 5),
     raises=ValueError, names="log_density returned NaN")
case("hmc/leapfrog/posinf_mid_trajectory",
     lambda: leapfrog(posinf_band, torch.tensor([[0.5, 0.0]], dtype=F64),
                      torch.tensor([[1.0, 0.0]], dtype=F64), 0.2, 5),
     raises=ValueError, names="+inf")
case("hmc/leapfrog/nan_gradient",
     lambda: leapfrog(nan_gradient, torch.tensor([[0.3, 0.0]], dtype=F64),
                      torch.tensor([[2.0, 0.0]], dtype=F64), 0.2, 5),
     raises=ValueError, names="gradient")
# Leaving the support is a divergence, not an error: the end point is -inf, the trajectory
# ran on with a zero gradient.
case("hmc/leapfrog/leaves_the_support",
     lambda: leapfrog(half_plane, torch.tensor([[0.5, 0.0]], dtype=F64),
                      torch.tensor([[-3.0, 0.0]], dtype=F64), 0.2, 5),
     check=lambda r: r[2].item() == -INF and finite(r[0]))

# --- hmc: initial_state, hmc_step, sample_hmc -------------------------------------------------

case("hmc/initial_state/list", lambda: initial_state(std_normal, THETA.tolist()),
     check=lambda r: isinstance(r, ChainState) and torch.allclose(r.grad.double(), -THETA,
                                                                   atol=1e-6))
case("hmc/initial_state/int", lambda: initial_state(std_normal, THETA.long()), raises=TypeError,
     names="theta")
case("hmc/initial_state/empty", lambda: initial_state(std_normal, torch.zeros(0, 2)),
     raises=ValueError, names="theta")
case("hmc/initial_state/no_dims", lambda: initial_state(std_normal, torch.zeros(3, 0)),
     raises=ValueError, names="theta")
case("hmc/initial_state/outside_support",
     lambda: initial_state(half_plane, torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=F64)),
     raises=ValueError, names="initial positions")
case("hmc/initial_state/posinf",
     lambda: initial_state(posinf_band, torch.tensor([[1.0, 0.0]], dtype=F64)),
     raises=ValueError, names="initial positions")
case("hmc/hmc_step/state_not_a_chain_state", lambda: hmc_step(std_normal, THETA, 0.1, 3),
     raises=TypeError, names="state")
case("hmc/hmc_step/bad_generator",
     lambda: hmc_step(std_normal, initial_state(std_normal, THETA), 0.1, 3, generator=3),
     raises=TypeError, names="generator")
case("hmc/hmc_step/step_size_nan",
     lambda: hmc_step(std_normal, initial_state(std_normal, THETA), NAN, 3),
     raises=ValueError, names="step_size")
case("hmc/hmc_step/nan_mid_trajectory",
     lambda: hmc_step(nan_band, initial_state(nan_band, torch.tensor([[0.5, 0.0]] * 4,
                                                                      dtype=F64)), 0.2, 5, gen()),
     raises=ValueError, names="log_density returned NaN")

case("hmc/sample_hmc/ok", _hmc(), check=_hmc_ok())
case("hmc/sample_hmc/list_initial", _hmc(initial=THETA.tolist()), check=_hmc_ok())
case("hmc/sample_hmc/float32", _hmc(initial=THETA.float()),
     check=lambda r: r.draws.dtype == F32 and finite(r.draws))
case("hmc/sample_hmc/int_initial", _hmc(initial=THETA.long()), raises=TypeError,
     names="initial")
case("hmc/sample_hmc/1d_initial", _hmc(initial=torch.zeros(3)), raises=ValueError,
     names="initial")
case("hmc/sample_hmc/nan_initial", _hmc(initial=torch.tensor([[0.0, NAN]])), raises=ValueError,
     names="initial")
case("hmc/sample_hmc/start_outside_support",
     _hmc(half_plane, initial=torch.tensor([[-1.0, 0.0]], dtype=F64)), raises=ValueError,
     names="initial positions")
for _bad in BAD_COUNTS:
    case(f"hmc/sample_hmc/num_draws={_bad!r}", _hmc(num_draws=_bad), raises=ValueError,
         names="num_draws")
for _bad in (-1, 1.5, True, None):
    case(f"hmc/sample_hmc/num_warmup={_bad!r}", _hmc(num_warmup=_bad), raises=ValueError,
         names="num_warmup")
for _bad in BAD_SEEDS:
    case(f"hmc/sample_hmc/seed={_bad!r}", _hmc(seed=_bad), raises=TypeError, names="seed")
case("hmc/sample_hmc/wrong_output_shape", _hmc(lambda t: t), raises=ValueError,
     names="log_density")
# The example: NaN in a band that trajectories cross (378 NaN evaluations, no error,
# acceptance 0.63 before).
case("hmc/sample_hmc/nan_band_crossed",
     _hmc(nan_band, initial=torch.zeros(20, 2, dtype=F64), num_draws=30, step_size=0.3,
          num_steps=5),
     raises=ValueError, names="log_density returned NaN")
case("hmc/sample_hmc/posinf_band",
     _hmc(posinf_band, initial=torch.zeros(20, 2, dtype=F64), num_draws=30, step_size=0.3,
          num_steps=5),
     raises=ValueError, names="+inf")
# Divergences are rejected, recorded with energy_error = inf and counted.
case("hmc/sample_hmc/divergences_counted",
     _hmc(stiff, initial=torch.full((4, 2), 0.001, dtype=F64), num_draws=5, step_size=0.5,
          num_steps=10),
     check=lambda r: (r.num_divergent == 20 and bool(r.divergent.all())
                      and bool((r.energy_error > 1000).all()) and finite(r.draws)
                      and r.acceptance_rate == 0.0))
case("hmc/sample_hmc/step_size_1e300",
     _hmc(initial=THETA, step_size=1e300, num_steps=2),
     check=lambda r: r.num_divergent == 15 and torch.equal(r.draws[-1], THETA))
case("hmc/sample_hmc/leaves_the_support",
     _hmc(half_plane, initial=torch.full((8, 2), 0.05, dtype=F64), num_draws=20,
          step_size=0.5, num_steps=4),
     check=lambda r: r.num_divergent > 0 and bool((r.draws[..., 0] > 0).all()))

# --- metropolis --------------------------------------------------------------------------------

X = torch.tensor([[0.0, 0.5], [1.0, -1.0], [-0.5, 2.0]], dtype=F64)


def _step(x=X, log_density=std_normal, step_size=0.5, log_p=None, generator=None):
    return lambda: metropolis_step(x, log_density, step_size, log_p,
                                   gen(0) if generator is None else generator)


def _step_ok(r):
    x_next, log_p, accepted = r
    return (x_next.shape == (3, 2) and finite(x_next) and finite(log_p)
            and torch.allclose(log_p.double(), std_normal(x_next.double()), atol=1e-5))


def _run(x0=X, log_density=std_normal, num_steps=5, step_size=0.5, keep=(), **kwargs):
    return lambda: run_metropolis(x0, log_density, num_steps, step_size, keep, gen(1), **kwargs)


case("metropolis/step/ok", _step(), check=_step_ok)
case("metropolis/step/list", _step(x=X.tolist()), check=_step_ok)
case("metropolis/step/numpy", _step(x=X.numpy()), check=_step_ok)
case("metropolis/step/int_x", _step(x=X.long()), raises=TypeError, names="x")
case("metropolis/step/1d_x", _step(x=torch.zeros(3)), raises=ValueError, names="x")
case("metropolis/step/empty_x", _step(x=torch.zeros(0, 2)), raises=ValueError, names="x")
case("metropolis/step/nan_x", _step(x=torch.tensor([[NAN, 0.0]])), raises=ValueError, names="x")
for _bad in BAD_POSITIVE:
    case(f"metropolis/step/step_size={_bad!r}", _step(step_size=_bad), raises=ValueError,
         names="step_size")
case("metropolis/step/log_p_shape", _step(log_p=torch.zeros(3, 1, dtype=F64)),
     raises=ValueError, names="log_p")
case("metropolis/step/log_p_dtype", _step(log_p=torch.zeros(3)), raises=TypeError, names="log_p")
case("metropolis/step/log_p_nan", _step(log_p=torch.tensor([0.0, NAN, 0.0], dtype=F64)),
     raises=ValueError, names="log_p")
case("metropolis/step/log_p_minus_inf", _step(log_p=torch.tensor([0.0, -INF, 0.0], dtype=F64)),
     raises=ValueError, names="log_p")
case("metropolis/step/log_p_list", _step(log_p=std_normal(X).tolist()), check=_step_ok)
case("metropolis/step/bad_generator", _step(generator="seed"), raises=TypeError,
     names="generator")
case("metropolis/step/log_density_not_callable", _step(log_density=X), raises=TypeError,
     names="log_density")
case("metropolis/step/posinf_at_proposals",
     _step(log_density=lambda z: torch.where(z[:, 0] > 0.2, INF, std_normal(z))),
     raises=ValueError, names="+inf")
case("metropolis/step/posinf_at_current",
     _step(log_density=lambda z: torch.full((len(z),), INF, dtype=z.dtype)),
     raises=ValueError, names="+inf")
case("metropolis/step/start_minus_inf", _step(log_density=half_plane), raises=ValueError,
     names="start")

case("metropolis/run/ok", _run(keep=[0, 5]),
     check=lambda r: set(r[0]) == {0, 5} and finite(r[0][5]) and 0 <= r[1] <= 1)
case("metropolis/run/list", _run(x0=X.tolist(), keep=[5]),
     check=lambda r: finite(r[0][5]) and r[0][5].shape == (3, 2))
case("metropolis/run/float32", _run(x0=X.float(), keep=[5]),
     check=lambda r: r[0][5].dtype == F32 and finite(r[0][5]))
case("metropolis/run/nan_x0", _run(x0=torch.tensor([[NAN, 0.0]], dtype=F64)), raises=ValueError,
     names="x0")
case("metropolis/run/int_x0", _run(x0=X.long()), raises=TypeError, names="x0")
for _bad in BAD_COUNTS:
    case(f"metropolis/run/num_steps={_bad!r}", _run(num_steps=_bad), raises=ValueError,
         names="num_steps")
case("metropolis/run/keep_out_of_range", _run(keep=[6]), raises=ValueError, names="keep")
case("metropolis/run/keep_float", _run(keep=[1.5]), raises=TypeError, names="keep")
case("metropolis/run/keep_none", _run(keep=[None]), raises=TypeError, names="keep")
case("metropolis/run/keep_not_iterable", _run(keep=3), raises=TypeError, names="keep")
# The issue: Metropolis stuck at +inf, and ran on from a -inf start with acceptance 0.
case("metropolis/run/posinf_sticks",
     _run(log_density=lambda z: torch.where(z[:, 0] > 1.5, INF, std_normal(z)), num_steps=50),
     raises=ValueError, names="+inf")
case("metropolis/run/start_minus_inf",
     _run(x0=torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=F64), log_density=half_plane),
     raises=ValueError, names="start")
case("metropolis/run/step_size_1e300", _run(step_size=1e300, keep=[5]),
     check=lambda r: r[1] == 0.0 and torch.equal(r[0][5], X))

# --- diagnostics -------------------------------------------------------------------------------


def ar1(phi=0.5, num_draws=40, num_chains=3, seed=0):
    rng = np.random.default_rng(seed)
    x = np.empty((num_draws, num_chains))
    x[0] = rng.standard_normal(num_chains)
    for i in range(1, num_draws):
        x[i] = phi * x[i - 1] + math.sqrt(1 - phi**2) * rng.standard_normal(num_chains)
    return torch.tensor(x)


DRAWS = ar1()
ESS = effective_sample_size(DRAWS).item()
RHAT = split_rhat(DRAWS).item()
CONSTANT = torch.ones(100, 4, dtype=F64)  # every chain at the same value: never moved
STUCK = torch.arange(4.0, dtype=F64).expand(100, 4).clone()  # each chain stuck at its start


def _arviz_ess(draws, method="bulk"):
    try:
        import arviz as az
    except ImportError:  # without ArviZ: about one draw per chain
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(az.ess(draws.T.numpy(), method=method))


def ess_like_arviz(draws, method):
    def check(r):
        expected = _arviz_ess(draws, method)
        if expected is None:
            return finite(r) and 0 < r.item() < 2 * draws.shape[1]
        return finite(r) and r.item() == pytest.approx(expected, rel=1e-9)
    return check


case("diagnostics/ess/ok", lambda: effective_sample_size(DRAWS), check=close_to(ESS))
case("diagnostics/ess/numpy", lambda: effective_sample_size(DRAWS.numpy()), check=close_to(ESS))
case("diagnostics/ess/list", lambda: effective_sample_size(DRAWS.tolist()), check=close_to(ESS))
case("diagnostics/ess/float32", lambda: effective_sample_size(DRAWS.float()),
     check=close_to(ESS, rtol=1e-4))
case("diagnostics/ess/int", lambda: effective_sample_size((10 * DRAWS).round().long()),
     check=close_to(effective_sample_size((10 * DRAWS).round())))
case("diagnostics/ess/bool", lambda: effective_sample_size(DRAWS > 0),
     check=close_to(effective_sample_size((DRAWS > 0).double())))
case("diagnostics/ess/string", lambda: effective_sample_size("draws"), raises=TypeError,
     names="draws")
case("diagnostics/ess/1d", lambda: effective_sample_size(DRAWS[:, 0]), raises=ValueError,
     names="draws")
case("diagnostics/ess/too_few", lambda: effective_sample_size(DRAWS[:7]), raises=ValueError,
     names="draws")
case("diagnostics/ess/no_chains", lambda: effective_sample_size(DRAWS[:, :0]), raises=ValueError,
     names="draws")
case("diagnostics/ess/nan", lambda: effective_sample_size(DRAWS.index_fill(0, torch.tensor([3]),
                                                                           NAN)),
     raises=ValueError, names="draws")
case("diagnostics/ess/inf", lambda: effective_sample_size(DRAWS.index_fill(0, torch.tensor([3]),
                                                                           INF)),
     raises=ValueError, names="draws")
# Scale invariance at the ends of the float64 range (variances over/underflow there).
case("diagnostics/ess/scale_1e300", lambda: effective_sample_size(1e300 * DRAWS),
     check=close_to(ESS, rtol=1e-9))
case("diagnostics/ess/scale_1e-300", lambda: effective_sample_size(1e-300 * DRAWS),
     check=close_to(ESS, rtol=1e-9))
case("diagnostics/rhat/scale_1e300", lambda: split_rhat(1e300 * DRAWS),
     check=close_to(RHAT, rtol=1e-9))
case("diagnostics/rhat/scale_1e-300", lambda: split_rhat(1e-300 * DRAWS),
     check=close_to(RHAT, rtol=1e-9))
# The issue: chains that never moved reported N*C, perfect mixing.
case("diagnostics/ess/constant_chains", lambda: effective_sample_size(CONSTANT),
     warns=UserWarning, check=lambda r: bool(r.isnan()))
case("diagnostics/ess/constant_chains_bulk",
     lambda: effective_sample_size(CONSTANT, rank_normalize_draws=True),
     warns=UserWarning, check=lambda r: bool(r.isnan()))
case("diagnostics/ess/stuck_chains", lambda: effective_sample_size(STUCK), warns=UserWarning,
     check=ess_like_arviz(STUCK, "mean"))
case("diagnostics/ess/stuck_chains_bulk",
     lambda: effective_sample_size(STUCK, rank_normalize_draws=True), warns=UserWarning,
     check=ess_like_arviz(STUCK, "bulk"))
case("diagnostics/rhat/stuck_chains", lambda: split_rhat(STUCK),
     check=lambda r: bool(torch.isinf(r)))
case("diagnostics/rhat/constant_chains", lambda: split_rhat(CONSTANT), warns=UserWarning,
     check=lambda r: bool(r.isnan()))
case("diagnostics/rhat/ok_numpy", lambda: split_rhat(DRAWS.numpy()), check=close_to(RHAT))
case("diagnostics/rhat/1d", lambda: split_rhat(DRAWS[:, 0]), raises=ValueError, names="draws")
case("diagnostics/rhat/too_few", lambda: split_rhat(DRAWS[:3]), raises=ValueError, names="draws")
case("diagnostics/rhat/nan", lambda: split_rhat(DRAWS.index_fill(0, torch.tensor([3]), NAN)),
     raises=ValueError, names="draws")
case("diagnostics/rhat/none", lambda: split_rhat(None), raises=TypeError, names="draws")
case("diagnostics/split_chains/ok", lambda: split_chains(DRAWS[:5]),
     check=lambda r: torch.equal(r, torch.cat([DRAWS[:2], DRAWS[3:5]], 1)))
case("diagnostics/split_chains/list", lambda: split_chains(DRAWS[:5].tolist()),
     check=lambda r: torch.equal(r, torch.cat([DRAWS[:2], DRAWS[3:5]], 1)))
case("diagnostics/split_chains/1d", lambda: split_chains(DRAWS[:, 0]), raises=ValueError,
     names="draws")
case("diagnostics/split_chains/one_draw", lambda: split_chains(DRAWS[:1]), raises=ValueError,
     names="draws")
case("diagnostics/rank_normalize/ok", lambda: rank_normalize(DRAWS),
     check=lambda r: r.shape == DRAWS.shape and finite(r)
     and torch.equal(r.flatten().argsort(), DRAWS.flatten().argsort()))
case("diagnostics/rank_normalize/list", lambda: rank_normalize(DRAWS.tolist()),
     check=lambda r: r.shape == DRAWS.shape and finite(r))
case("diagnostics/rank_normalize/nan", lambda: rank_normalize(DRAWS.index_fill(0, torch.tensor(
    [3]), NAN)), raises=ValueError, names="draws")
case("diagnostics/rank_normalize/empty", lambda: rank_normalize(DRAWS[:0]), raises=ValueError,
     names="draws")
case("diagnostics/autocovariance/ok", lambda: autocovariance(DRAWS),
     check=lambda r: r.shape == DRAWS.shape and torch.allclose(r[0], DRAWS.var(0,
                                                                              correction=0)))
case("diagnostics/autocovariance/list", lambda: autocovariance(DRAWS.tolist()),
     check=lambda r: r.shape == DRAWS.shape and finite(r))
case("diagnostics/autocovariance/0d", lambda: autocovariance(torch.tensor(1.0)),
     raises=ValueError, names="draws")
case("diagnostics/autocovariance/empty", lambda: autocovariance(DRAWS[:0]), raises=ValueError,
     names="draws")
case("diagnostics/autocovariance/nan", lambda: autocovariance(torch.tensor([[NAN], [1.0]])),
     raises=ValueError, names="draws")
case("diagnostics/autocorrelation_time/ok", lambda: autocorrelation_time(split_chains(DRAWS)),
     check=lambda r: math.isfinite(r) and r == pytest.approx(DRAWS.numel() / ESS, rel=1e-9))
case("diagnostics/autocorrelation_time/3d", lambda: autocorrelation_time(DRAWS[..., None]),
     raises=ValueError, names="draws")
case("diagnostics/autocorrelation_time/too_few", lambda: autocorrelation_time(DRAWS[:3]),
     raises=ValueError, names="draws")
case("diagnostics/autocorrelation_time/constant", lambda: autocorrelation_time(CONSTANT),
     warns=UserWarning, check=math.isnan)

# --- markov_chains -----------------------------------------------------------------------------

P3 = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
P32 = torch.rand(7, generator=gen(3))  # float32
P32 = P32 / P32.sum()  # sums to 1 in float32 only up to rounding (the example)
K3 = torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]], dtype=F64)
K32 = torch.rand(7, 7, generator=gen(4))
K32 = K32 / K32.sum(1, keepdim=True)


def is_pmf_like(expected):
    return lambda r: r.dtype == F64 and torch.allclose(r, torch.as_tensor(expected).double())


case("markov/as_pmf/float32_normalized", lambda: as_pmf(P32), check=is_pmf_like(P32))
case("markov/as_pmf/float32_sum_1.0000000149",
     lambda: as_pmf(torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=F32)),
     check=is_pmf_like([0.1, 0.2, 0.3, 0.4]))
case("markov/as_pmf/numpy_float32", lambda: as_pmf(P32.numpy()), check=is_pmf_like(P32))
case("markov/as_pmf/list", lambda: as_pmf([0.2, 0.3, 0.5]), check=is_pmf_like(P3))
case("markov/as_pmf/bool", lambda: as_pmf(torch.tensor([False, True])),
     check=is_pmf_like([0.0, 1.0]))
case("markov/as_pmf/float32_off_by_1e-4", lambda: as_pmf(torch.tensor([0.5, 0.5001])),
     raises=ValueError, names="p")
case("markov/as_pmf/sum_1.1", lambda: as_pmf(torch.tensor([0.5, 0.6])), raises=ValueError,
     names="p")
case("markov/as_pmf/negative", lambda: as_pmf(torch.tensor([1.5, -0.5])), raises=ValueError,
     names="p")
case("markov/as_pmf/nan", lambda: as_pmf(torch.tensor([NAN, 1.0])), raises=ValueError, names="p")
case("markov/as_pmf/2d", lambda: as_pmf(K3), raises=ValueError, names="p")
case("markov/as_pmf/empty", lambda: as_pmf(torch.zeros(0)), raises=ValueError, names="p")
case("markov/as_pmf/string", lambda: as_pmf("p"), raises=TypeError, names="p")
case("markov/as_pmf/none", lambda: as_pmf(None), raises=TypeError, names="p")
case("markov/as_kernel/float32", lambda: as_kernel(K32), check=is_pmf_like(K32))
case("markov/as_kernel/not_square", lambda: as_kernel(torch.ones(2, 3) / 3), raises=ValueError,
     names="kernel")
case("markov/as_kernel/rows", lambda: as_kernel(torch.ones(3, 3) / 2), raises=ValueError,
     names="kernel")
case("markov/as_kernel/size", lambda: as_kernel(K3, 2), raises=ValueError, names="kernel")
case("markov/as_kernel/empty", lambda: as_kernel(torch.zeros(0, 0)), raises=ValueError,
     names="kernel")
case("markov/evolve/float32", lambda: evolve(P32, K32, 3),
     check=close_to(evolve(P32.double() / P32.double().sum(),
                           K32.double() / K32.double().sum(1, keepdim=True), 3), rtol=1e-5))
# The issue: the sum message hid a kernel-size mismatch.
case("markov/evolve/size_mismatch_float32", lambda: evolve(torch.full((4,), 0.25), K3, 3),
     raises=ValueError, names="kernel")
case("markov/evolve/size_mismatch_unnormalized", lambda: evolve(torch.ones(4), K3, 3),
     raises=ValueError, names="kernel")
for _bad in BAD_COUNTS:
    case(f"markov/evolve/num_steps={_bad!r}", lambda b=_bad: evolve(P3, K3, b), raises=ValueError,
         names="num_steps")
case("markov/kl/float32", lambda: kl_divergence(P32, torch.full((7,), 1 / 7, dtype=F32)),
     check=close_to(kl_divergence(P32.double() / P32.double().sum(),
                                  torch.full((7,), 1 / 7, dtype=F64)), rtol=1e-5))
case("markov/kl/list", lambda: kl_divergence([0.5, 0.5], [0.25, 0.75]),
     check=close_to(0.5 * math.log(2) + 0.5 * math.log(2 / 3)))
case("markov/kl/zero_p_is_inf", lambda: kl_divergence(torch.tensor([0.5, 0.5]),
                                                      torch.tensor([1.0, 0.0])),
     check=lambda r: r.item() == INF)
case("markov/kl/shapes", lambda: kl_divergence(P3, torch.ones(2) / 2), raises=ValueError,
     names="p")
case("markov/kl/nan", lambda: kl_divergence(torch.tensor([NAN, 1.0]), torch.ones(2) / 2),
     raises=ValueError, names="q")
case("markov/kl/0d", lambda: kl_divergence(torch.tensor(1.0), torch.tensor(1.0)),
     raises=ValueError, names="q")
case("markov/kl/empty", lambda: kl_divergence(torch.zeros(0), torch.zeros(0)), raises=ValueError,
     names="q")
case("markov/is_invariant/float32", lambda: is_invariant(K3.float(),
                                                         torch.full((3,), 1 / 3, dtype=F32),
                                                         atol=1e-6),
     check=lambda r: r is True)
for _bad in (-1.0, NAN, None):
    case(f"markov/is_invariant/atol={_bad!r}", lambda b=_bad: is_invariant(K3, P3, atol=b),
         raises=(TypeError if _bad is None else ValueError), names="atol")
case("markov/detailed_balance_gap/size", lambda: detailed_balance_gap(K3, torch.ones(2) / 2),
     raises=ValueError, names="kernel")
case("markov/reversal_kernel/zero_p", lambda: reversal_kernel(K3, torch.tensor([0.5, 0.5, 0.0])),
     raises=ValueError, names="p")
case("markov/metropolis_kernel/float32", lambda: metropolis_kernel(P32, K32),
     check=lambda r: r.dtype == F64 and torch.allclose(r.sum(1), torch.ones(7, dtype=F64)))
case("markov/metropolis_kernel/size", lambda: metropolis_kernel(P3, torch.ones(2, 2) / 2),
     raises=ValueError, names="proposal")
for _bad in BAD_COUNTS:
    case(f"markov/ring_proposal/n={_bad!r}", lambda b=_bad: ring_proposal(b), raises=ValueError,
         names="n")
case("markov/ring_proposal/max_step", lambda: ring_proposal(4, 2), raises=ValueError,
     names="max_step")
case("markov/cycle_flux/float_state", lambda: cycle_flux(4, [0, 1.5, 2]), raises=TypeError,
     names="cycle")
case("markov/cycle_flux/none", lambda: cycle_flux(4, None), raises=TypeError, names="cycle")
case("markov/cycle_flux/strength_nan", lambda: cycle_flux(4, [0, 1, 2], NAN), raises=ValueError,
     names="strength")
case("markov/cycle_flux/ok_tensor", lambda: cycle_flux(3, torch.tensor([0, 1, 2]), 0.1),
     check=lambda r: torch.allclose(r + r.T, torch.zeros(3, 3, dtype=F64)))
case("markov/max_circulation/no_negative", lambda: max_circulation(K3, P3, torch.zeros(3, 3)),
     raises=ValueError, names="flux")
case("markov/max_circulation/shape", lambda: max_circulation(K3, P3, cycle_flux(4, [0, 1, 2])),
     raises=ValueError, names="flux")
case("markov/add_circulation/shape", lambda: add_circulation(K3, P3, cycle_flux(4, [0, 1, 2])),
     raises=ValueError, names="flux")
case("markov/add_circulation/too_strong",
     lambda: add_circulation(K3, P3, cycle_flux(3, [0, 1, 2], 10.0)), raises=ValueError,
     names="flux")
case("markov/add_circulation/nan_flux",
     lambda: add_circulation(K3, P3, torch.full((3, 3), NAN)), raises=ValueError, names="flux")
case("markov/drop_rejections/never_moves", lambda: drop_rejections(torch.eye(3)),
     raises=ValueError, names="kernel")
case("markov/drop_rejections/float32", lambda: drop_rejections(K32),
     check=lambda r: torch.allclose(r.sum(1), torch.ones(7, dtype=F64)))
case("markov/block_kernel/float_blocks", lambda: block_kernel(P3, torch.tensor([0.0, 0.0, 1.0])),
     raises=ValueError, names="blocks")
case("markov/block_kernel/length", lambda: block_kernel(P3, torch.tensor([0, 1])),
     raises=ValueError, names="blocks")
case("markov/block_kernel/list", lambda: block_kernel([0.2, 0.3, 0.5], [0, 0, 1]),
     check=lambda r: torch.allclose(r.sum(1), torch.ones(3, dtype=F64)))

# --- flows -------------------------------------------------------------------------------------


def _flow(kind="realnvp"):
    torch.manual_seed(0)
    make = dict(realnvp=lambda: realnvp_flow(2, 2, hidden=4), nice=lambda: nice_flow(2, 2, 4),
                planar=lambda: planar_flow(2, 2), gaussian=lambda: diagonal_gaussian(2))[kind]
    return make()  # float32, the default dtype


FLOW = _flow()
Z = torch.tensor([[0.1, -0.2], [1.0, 0.5], [-2.0, 0.3]])  # float32


def gaussian_log_joint(x):
    return -0.5 * x.square().sum(-1)


def same_as_flow_at(flow, z):
    expected = flow(torch.as_tensor(np.asarray(z), dtype=F32))
    return lambda r: finite(r) and torch.allclose(r[0], expected[0]) and torch.allclose(
        r[1], expected[1])


for _bad in BAD_COUNTS:
    case(f"flows/PlanarLayer/dim={_bad!r}", lambda b=_bad: PlanarLayer(b), raises=ValueError,
         names="dim")
case("flows/AffineCoupling/dim=1", lambda: AffineCoupling(1), raises=ValueError, names="dim")
case("flows/AffineCoupling/hidden=0", lambda: AffineCoupling(2, hidden=0), raises=ValueError,
     names="hidden")
case("flows/AffineCoupling/max_log_scale_nan", lambda: AffineCoupling(2, max_log_scale=NAN),
     raises=ValueError, names="max_log_scale")
case("flows/AdditiveCoupling/hidden=1.5", lambda: AdditiveCoupling(2, hidden=1.5),
     raises=ValueError, names="hidden")
case("flows/ElementwiseAffine/dim=None", lambda: ElementwiseAffine(None), raises=ValueError,
     names="dim")
case("flows/FlowSequence/empty", lambda: FlowSequence([]), raises=ValueError, names="layer")
case("flows/FlowSequence/dims", lambda: FlowSequence([PlanarLayer(2), PlanarLayer(3)]),
     raises=ValueError, names="dim")
case("flows/FlowSequence/not_a_layer", lambda: FlowSequence([torch.nn.Linear(2, 2)]),
     raises=TypeError, names="layers")
case("flows/FlowSequence/not_a_list", lambda: FlowSequence(PlanarLayer(2)), raises=TypeError,
     names="layers")
for _bad in BAD_COUNTS:
    case(f"flows/planar_flow/num_layers={_bad!r}", lambda b=_bad: planar_flow(2, b),
         raises=ValueError, names="num_layers")
    case(f"flows/realnvp_flow/num_couplings={_bad!r}", lambda b=_bad: realnvp_flow(2, b),
         raises=ValueError, names="num_couplings")
case("flows/nice_flow/hidden=0", lambda: nice_flow(2, 2, 0), raises=ValueError, names="hidden")
case("flows/diagonal_gaussian/dim=0", lambda: diagonal_gaussian(0), raises=ValueError,
     names="dim")

for _kind in ("realnvp", "nice", "planar", "gaussian"):
    case(f"flows/{_kind}/forward_float64_z", lambda k=_kind: _flow(k)(Z.double()),
         raises=TypeError, names="z")
    case(f"flows/{_kind}/forward_int_z", lambda k=_kind: _flow(k)(Z.long()), raises=TypeError,
         names="z")
    case(f"flows/{_kind}/forward_list", lambda k=_kind: _flow(k)(Z.tolist()),
         check=same_as_flow_at(_flow(_kind), Z))
    case(f"flows/{_kind}/forward_wrong_dim", lambda k=_kind: _flow(k)(torch.zeros(4, 3)),
         raises=ValueError, names="z")
    case(f"flows/{_kind}/forward_0d", lambda k=_kind: _flow(k)(torch.tensor(1.0)),
         raises=ValueError, names="z")
    case(f"flows/{_kind}/forward_empty", lambda k=_kind: _flow(k)(torch.zeros(0, 2)),
         check=lambda r: r[0].shape == (0, 2) and r[1].shape == (0,))
    # a pure map inside the training loop: NaN stays exactly in the rows where it was
    case(f"flows/{_kind}/forward_nan_propagates",
         lambda k=_kind: _flow(k)(torch.tensor([[NAN, 0.0], [0.5, 0.5]])),
         check=lambda r: r[0].isnan().any(-1).tolist() == [True, False]
         and finite(r[0][1]) and finite(r[1][1]))
for _kind in ("realnvp", "nice", "gaussian"):
    case(f"flows/{_kind}/inverse_float64", lambda k=_kind: _flow(k).inverse(Z.double()),
         raises=TypeError, names="x")
    case(f"flows/{_kind}/inverse_round_trip", lambda k=_kind: _flow(k).inverse(
        _flow(k)(Z)[0].tolist()), check=lambda r: finite(r) and torch.allclose(r[0], Z,
                                                                               atol=1e-5))
case("flows/PlanarLayer/forward_float64", lambda: PlanarLayer(2)(Z.double()), raises=TypeError,
     names="z")

for _bad in BAD_COUNTS:
    case(f"flows/flow_sample/num_samples={_bad!r}", lambda b=_bad: flow_sample(FLOW, b),
         raises=ValueError, names="num_samples")
case("flows/flow_sample/ok", lambda: flow_sample(FLOW, 5, gen(0)),
     check=lambda r: r[0].shape == (5, 2) and r[1].shape == (5,) and finite(r))
case("flows/flow_sample/not_a_flow", lambda: flow_sample(lambda z: z, 5), raises=TypeError,
     names="flow")
case("flows/flow_sample/bad_generator", lambda: flow_sample(FLOW, 5, generator=0),
     raises=TypeError, names="generator")
case("flows/flow_elbo/ok", lambda: flow_elbo(FLOW, gaussian_log_joint, 50, gen(0)),
     check=lambda r: finite(r) and r.shape == ())
case("flows/flow_elbo/wrong_shape", lambda: flow_elbo(FLOW, lambda x: x, 10, gen(0)),
     raises=ValueError, names="log_joint")
case("flows/flow_elbo/not_callable", lambda: flow_elbo(FLOW, Z, 10, gen(0)), raises=TypeError,
     names="log_joint")
case("flows/flow_elbo/num_samples=0", lambda: flow_elbo(FLOW, gaussian_log_joint, 0),
     raises=ValueError, names="num_samples")
case("flows/flow_elbo/num_samples=1.5", lambda: flow_elbo(FLOW, gaussian_log_joint, 1.5),
     raises=ValueError, names="num_samples")
case("flows/flow_elbo/frozen_planar", lambda: flow_elbo(_flow("planar"), gaussian_log_joint, 5,
                                                        gen(0), frozen=_flow("planar")),
     raises=ValueError, names="frozen")
case("flows/flow_elbo/frozen_other_dim",
     lambda: flow_elbo(FLOW, gaussian_log_joint, 5, gen(0), frozen=realnvp_flow(3, 2)),
     raises=ValueError, names="frozen")
case("flows/flow_elbo/frozen_float64",
     lambda: flow_elbo(FLOW, gaussian_log_joint, 5, gen(0), frozen=_flow().double()),
     raises=TypeError, names="frozen")
case("flows/flow_elbo/nan_log_joint_propagates",
     lambda: flow_elbo(FLOW, lambda x: x.sum(-1) * NAN, 5, gen(0)), check=lambda r: bool(r.isnan()))
case("flows/flow_elbo_samples/ok", lambda: flow_elbo_samples(FLOW, gaussian_log_joint, 7, gen(0)),
     check=lambda r: r.shape == (7,) and finite(r))
case("flows/flow_elbo_samples/float64_log_joint",  # promoted, as torch does
     lambda: flow_elbo_samples(FLOW, lambda x: gaussian_log_joint(x).double(), 7, gen(0)),
     check=lambda r: r.dtype == F64 and r.shape == (7,) and finite(r))
for _bad in BAD_COUNTS:
    case(f"flows/evaluate/batch_size={_bad!r}",
         lambda b=_bad: evaluate_flow_elbo(FLOW, gaussian_log_joint, 10, b), raises=ValueError,
         names="batch_size")
for _bad in BAD_SEEDS:
    case(f"flows/evaluate/seed={_bad!r}",
         lambda b=_bad: evaluate_flow_elbo(FLOW, gaussian_log_joint, 10, 5, b),
         raises=TypeError, names="seed")
case("flows/evaluate/non_finite", lambda: evaluate_flow_elbo(FLOW, lambda x: x.sum(-1) / 0.0, 10),
     raises=ValueError, names="log_joint")
case("flows/evaluate/ok", lambda: evaluate_flow_elbo(_flow("gaussian"), gaussian_log_joint, 1000,
                                                     300),
     check=lambda r: finite(r) and abs(r[0] - 0.5 * 2 * math.log(2 * math.pi)) < 1e-4)


def _train(flow=None, log_joint=gaussian_log_joint, num_steps=3, **kwargs):
    return lambda: train_flow(_flow("gaussian") if flow is None else flow, log_joint, num_steps,
                              num_samples=kwargs.pop("num_samples", 20), progress=False, **kwargs)


case("flows/train/ok", _train(), check=lambda r: len(r) == 3 and finite(r))
for _bad in BAD_COUNTS:
    case(f"flows/train/num_steps={_bad!r}", _train(num_steps=_bad), raises=ValueError,
         names="num_steps")
for _bad in BAD_POSITIVE:
    case(f"flows/train/lr={_bad!r}", _train(lr=_bad), raises=ValueError, names="lr")
case("flows/train/final_lr=0", _train(final_lr=0.0), raises=ValueError, names="final_lr")
for _bad in BAD_SEEDS:
    case(f"flows/train/seed={_bad!r}", _train(seed=_bad),
         raises=TypeError, names="seed")
case("flows/train/num_samples=0", _train(num_samples=0), raises=ValueError, names="num_samples")
case("flows/train/stl_planar", _train(flow=_flow("planar"), stick_the_landing=True),
     raises=ValueError, names="stick_the_landing")
case("flows/train/not_a_flow", _train(flow=torch.nn.Linear(2, 2)), raises=TypeError,
     names="flow")
case("flows/train/log_joint_not_callable", _train(log_joint=3.0), raises=TypeError,
     names="log_joint")
case("flows/train/nan_log_joint", _train(log_joint=lambda x: x.sum(-1) * NAN), raises=ValueError,
     names="lr")
case("flows/train/lr=1e6", _train(lr=1e6, num_steps=30), raises=ValueError, names="lr")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_contract(case):
    assert_holds(case)


# --- properties: generated bad input -------------------------------------------------------

PROPERTY = settings(max_examples=40, deadline=None)
ENTRIES = st.sampled_from([0.0, 0.25, 1.0, 3.0, -0.5, 1e-30, 1e300, NAN, INF, -INF])


def _named_error(error: Exception, names: tuple[str, ...]) -> bool:
    return isinstance(error, (ValueError, TypeError)) and any(n in str(error) for n in names)


@PROPERTY
@given(shape=st.lists(st.integers(0, 3), min_size=0, max_size=2),
       dtype=st.sampled_from([F32, F64, torch.float16, torch.long]), data=st.data())
def test_as_pmf_is_a_pmf_or_names_p(shape, dtype, data):
    values = data.draw(st.lists(ENTRIES, min_size=math.prod(shape), max_size=math.prod(shape)))
    if data.draw(st.booleans()) and values:  # normalized in the dtype itself, often
        total = sum(values)
        values = [v / total for v in values] if math.isfinite(total) and total > 0 else values
    array = np.array(values, dtype=np.float64).reshape(shape)
    tensor = (torch.tensor(np.nan_to_num(array, posinf=2, neginf=-2), dtype=F64).round().long()
              if dtype == torch.long else torch.tensor(array, dtype=F64).to(dtype))
    try:
        result = as_pmf(tensor)
    except (ValueError, TypeError) as error:
        assert _named_error(error, ("p",)), error
        return
    assert result.dtype == F64 and result.ndim == 1 and len(result) > 0
    assert bool((result >= 0).all()) and finite(result)
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 1e-15
    assert abs(result.sum().item() - 1) <= 8 * len(result) * eps
    assert torch.equal(result, tensor.double())


@PROPERTY
@given(num_draws=st.integers(0, 12), num_chains=st.integers(0, 3),
       fill=st.sampled_from(["ar1", "constant", "stuck", NAN, INF, 1e300, 1e-300]),
       dtype=st.sampled_from([F32, F64, torch.long]), rank=st.booleans())
def test_ess_is_honest_or_names_draws(num_draws, num_chains, fill, dtype, rank):
    if fill == "ar1":
        draws = ar1(0.3, max(num_draws, 1), max(num_chains, 1))[:num_draws, :num_chains]
    elif fill == "constant":
        draws = torch.ones(num_draws, num_chains, dtype=F64)
    elif fill == "stuck":
        draws = torch.arange(float(num_chains), dtype=F64).expand(num_draws, num_chains)
    else:
        draws = ar1(0.3, max(num_draws, 1), max(num_chains, 1))[:num_draws, :num_chains]
        draws = draws * fill if fill in (1e300, 1e-300) else draws.index_fill(0, torch.tensor(
            [0]), fill) if num_draws else draws
    draws = draws.to(dtype) if dtype != torch.long else (100 * draws.nan_to_num(
        0, 1e6, -1e6)).clamp(-1e6, 1e6).round().long()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = effective_sample_size(draws, rank_normalize_draws=rank)
        except (ValueError, TypeError) as error:
            assert _named_error(error, ("draws",)), error
            return
    total = num_draws * num_chains
    assert result.shape == ()
    if bool(result.isnan()):  # all draws equal: undefined, and said so
        assert caught and bool((draws == draws.flatten()[0]).all())
        return
    assert 0 < result.item() <= total * math.log10(total) + 1e-9
    halves = split_chains(draws.double())
    within_constant = bool((halves.amax(0) == halves.amin(0)).all())
    if within_constant:  # chains that never moved: a warning, and (as ArviZ) not N*C once
        assert caught  # there are enough draws for the estimator (Stan's cap rules below 10)
        assert num_draws < 10 or result.item() < total / 2


@PROPERTY
@given(chains=st.integers(0, 3), dim=st.integers(0, 3),
       fill=st.sampled_from([0.0, 0.5, NAN, INF, -INF, 1e200]),
       dtype=st.sampled_from([F32, F64, torch.long]),
       log_density=st.sampled_from(["normal", "half_plane", "nan_band", "posinf_band"]),
       sampler=st.sampled_from(["hmc", "metropolis"]))
def test_samplers_are_correct_or_name_the_problem(chains, dim, fill, dtype, log_density, sampler):
    initial = torch.full((chains, dim), fill, dtype=F64)
    if chains and dim:
        initial[0, 0] = 0.05
    initial = initial.to(dtype) if dtype != torch.long else initial.nan_to_num(0, 1, -1).long()
    target = dict(normal=std_normal, half_plane=half_plane, nan_band=nan_band,
                  posinf_band=posinf_band)[log_density]
    try:
        if sampler == "hmc":
            result = sample_hmc(target, initial, 10, 0.3, 5, progress=False)
            draws = result.draws
            assert bool((result.divergent == (result.energy_error > 1000)).all())
        else:
            kept, rate = run_metropolis(initial, target, 10, 0.5, keep=[10], generator=gen(0))
            draws = kept[10]
            assert 0 <= rate <= 1
    except (ValueError, TypeError) as error:
        assert _named_error(error, ("initial", "x0", "log_density", "+inf", "start")), error
        return
    assert finite(draws) and draws.shape[-2:] == (chains, dim)
    values = target(draws.reshape(-1, dim).double()) if dim else None
    if values is not None:  # every recorded state is where the density is positive and finite
        assert bool(torch.isfinite(values).all())


FLOWS = {kind: _flow(kind) for kind in ("realnvp", "nice", "planar", "gaussian")}


@PROPERTY
@given(kind=st.sampled_from(sorted(FLOWS)), shape=st.lists(st.integers(0, 3), min_size=0,
                                                          max_size=3),
       dtype=st.sampled_from([F32, F64, torch.long, torch.bool]), fill=ENTRIES)
def test_flows_map_z_or_name_it(kind, shape, dtype, fill):
    z = torch.full(shape, fill, dtype=F64)
    if z.numel():
        z.view(-1)[0] = 0.5
    z = z.to(dtype) if dtype.is_floating_point else z.nan_to_num(0, 1, -1).to(dtype)
    try:
        x, log_det = FLOWS[kind](z)
    except (ValueError, TypeError) as error:
        assert _named_error(error, ("z",)), error
        assert dtype != F32 or len(shape) == 0 or shape[-1] != 2
        return
    assert dtype == F32 and x.shape == z.shape and log_det.shape == z.shape[:-1]
    bad_rows = ~torch.isfinite(z).all(-1)  # NaN and inf propagate, to their own rows only
    assert bool(torch.isfinite(x[~bad_rows & (z.abs() < 1e30).all(-1)]).all())
