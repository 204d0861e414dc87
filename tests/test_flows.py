"""Tests of the normalizing flows (vicourse.families.flows).

Oracles: ``torch.func.jacrev`` + ``torch.linalg.slogdet`` for every log-determinant, the
inverse maps for round trips, ``torch.distributions`` (the density of an affine map of a
Gaussian, ``kl_divergence``) for the flow density and the ELBO, and hypothesis for the planar
invertibility constraint over arbitrary raw parameters.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

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

F64 = torch.float64
PROPERTY = settings(max_examples=50, deadline=None)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small tensors


def randomized(flow: torch.nn.Module, seed: int, scale: float = 0.5) -> torch.nn.Module:
    """The flow in float64 with every parameter redrawn (zero-initialized layers included),
    so that no layer is the identity."""
    flow = flow.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in flow.parameters():
            param.copy_(scale * torch.randn(param.shape, generator=g, dtype=F64))
    return flow


def make_flows(dim: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(dim)
    return {
        "planar layer": PlanarLayer(dim),
        "planar flow": planar_flow(dim, num_layers=4),
        "additive coupling": AdditiveCoupling(dim, flip=False, hidden=8),
        "additive coupling flipped": AdditiveCoupling(dim, flip=True, hidden=8),
        "affine coupling": AffineCoupling(dim, flip=False, hidden=8),
        "affine coupling flipped": AffineCoupling(dim, flip=True, hidden=8),
        "scaling": ElementwiseAffine(dim, loc=False),
        "nice": nice_flow(dim, num_couplings=3, hidden=8),
        "realnvp": realnvp_flow(dim, num_couplings=3, hidden=8),
        "diagonal gaussian": diagonal_gaussian(dim),
    }


FLOW_NAMES = list(make_flows(2))
INVERTIBLE = [name for name in FLOW_NAMES if "planar" not in name]


def jacobian_log_dets(flow: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """log|det df/dz| at each row of z (shape (S, D)), from the full Jacobian by autograd."""
    jacobians = torch.stack([torch.func.jacrev(lambda v: flow(v)[0])(row) for row in z])
    sign, log_abs_det = torch.linalg.slogdet(jacobians)
    assert (sign != 0).all()
    return log_abs_det


@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("name", FLOW_NAMES)
def test_log_det_matches_jacrev_and_slogdet(name, dim):
    flow = randomized(make_flows(dim)[name], seed=dim)
    z = 1.5 * torch.randn(16, dim, generator=torch.Generator().manual_seed(0), dtype=F64)
    x, log_det = flow(z)
    assert x.shape == z.shape and log_det.shape == (16,)
    torch.testing.assert_close(log_det, jacobian_log_dets(flow, z), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_flows_are_batched_over_any_leading_shape(name):
    flow = randomized(make_flows(3)[name], seed=4)
    z = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    x, log_det = flow(z)
    assert x.shape == (4, 5, 3) and log_det.shape == (4, 5)
    x_rows, log_det_rows = flow(z.reshape(-1, 3))
    torch.testing.assert_close(x.reshape(-1, 3), x_rows, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(log_det.reshape(-1), log_det_rows, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("name", INVERTIBLE)
def test_round_trip_inverts_the_map_and_its_log_det(name, dim):
    flow = randomized(make_flows(dim)[name], seed=10 + dim, scale=0.8)
    z = 2 * torch.randn(64, dim, generator=torch.Generator().manual_seed(2), dtype=F64)
    x, log_det = flow(z)
    z_back, log_det_inverse = flow.inverse(x)
    torch.testing.assert_close(z_back, z, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(log_det_inverse, -log_det, rtol=1e-10, atol=1e-10)
    x_again, _ = flow(flow.inverse(z)[0])
    torch.testing.assert_close(x_again, z, rtol=1e-10, atol=1e-10)


def test_new_coupling_layers_start_as_the_identity():
    z = torch.randn(8, 4, dtype=F64)
    for flow in (nice_flow(4).double(), realnvp_flow(4).double()):
        x, log_det = flow(z)
        torch.testing.assert_close(x, z, rtol=0, atol=0)
        assert (log_det == 0).all()


def test_affine_coupling_log_scale_is_bounded_and_shift_is_signed():
    layer = randomized(AffineCoupling(2, hidden=8, max_log_scale=1.5), seed=3, scale=3.0)
    cond = torch.linspace(-50, 50, 201, dtype=F64).unsqueeze(-1)
    log_scale, shift = layer.scale_and_shift(cond)
    assert log_scale.abs().max() <= 1.5
    assert (shift < 0).any() and (shift > 0).any()  # shifts are not forced to be positive


def planar_layer(w, u, b: float = 0.0) -> PlanarLayer:
    layer = PlanarLayer(2).double()
    with torch.no_grad():
        layer.w.copy_(torch.tensor(w))
        layer.u.copy_(torch.tensor(u))
        layer.b.fill_(b)
    return layer


@PROPERTY
@given(
    w=st.lists(st.floats(-3, 3), min_size=2, max_size=2).filter(
        lambda v: math.hypot(*v) > 1e-2),
    u=st.lists(st.floats(-3, 3), min_size=2, max_size=2),
    b=st.floats(-5, 5),
)
def test_planar_constraint_holds_for_any_raw_parameters(w, u, b):
    layer = planar_layer(w, u, b)
    assert (layer.w @ layer.u_hat()).item() > -1
    z = torch.linspace(-10, 10, 41, dtype=F64).unsqueeze(-1) * torch.tensor([1.0, -0.7])
    _, log_det = layer(z)
    assert torch.isfinite(log_det).all()
    # Along the direction w, f is strictly increasing, hence one-to-one.
    line = torch.linspace(-20, 20, 2001, dtype=F64).unsqueeze(-1) * layer.w.detach()
    projected = layer(line)[0] @ layer.w.detach()
    assert (projected.diff() > 0).all()


def test_planar_log_det_stays_finite_when_w_dot_u_hat_rounds_below_minus_one():
    """w.u = -35: w.u_hat = softplus(-35) - 1 = -1 + 6e-16 rounds to -1 - 9e-16, which
    would make log(1 + w.u_hat) NaN at h = 0; the layer's form cannot go negative."""
    layer = planar_layer([-5.0, 0.0], [7.0, 0.0])
    assert (layer.w @ layer.u_hat()).item() <= -1  # the rounding the layer must survive
    _, log_det = layer(torch.zeros(1, 2, dtype=F64))
    assert log_det.item() == pytest.approx(math.log(math.log1p(math.exp(-35.0))), rel=1e-12)


def test_planar_u_hat_leaves_a_valid_u_almost_alone():
    layer = planar_layer([1.0, 0.0], [30.0, 2.0])  # w.u = 30: softplus(30) - 1 - 30 ~ -1
    torch.testing.assert_close(layer.u_hat().detach(), torch.tensor([29.0, 2.0], dtype=F64))


def test_flow_density_matches_torch_distributions_for_an_affine_flow():
    flow = randomized(diagonal_gaussian(3), seed=5)
    layer = flow.layers[0]
    x, log_q = flow_sample(flow, 1000, generator=torch.Generator().manual_seed(0))
    q = Independent(Normal(layer.loc, layer.log_scale.exp()), 1)
    torch.testing.assert_close(log_q, q.log_prob(x), rtol=1e-12, atol=1e-12)


def test_flow_density_agrees_with_the_inverse_map():
    """log q(x) from the forward pass equals log N(f^-1(x)) + log|det J_{f^-1}(x)|."""
    flow = randomized(realnvp_flow(2, num_couplings=4, hidden=8), seed=6)
    x, log_q = flow_sample(flow, 500, generator=torch.Generator().manual_seed(1))
    z, log_det_inverse = flow.inverse(x)
    expected = Normal(0.0, 1.0).log_prob(z).sum(-1) + log_det_inverse
    torch.testing.assert_close(log_q, expected, rtol=1e-10, atol=1e-10)


def gaussian_target(dim: int = 2):
    """A correlated Gaussian known up to the constant log_c: log_joint = log N(x) + log_c."""
    g = torch.Generator().manual_seed(11)
    a = torch.randn(dim, dim, generator=g, dtype=F64)
    target = MultivariateNormal(torch.randn(dim, generator=g, dtype=F64),
                                covariance_matrix=a @ a.T / dim + 0.3 * torch.eye(dim, dtype=F64))
    log_c = -3.7
    return target, (lambda x: target.log_prob(x) + log_c), log_c


def test_flow_elbo_is_log_c_minus_the_kl():
    target, log_joint, log_c = gaussian_target()
    flow = randomized(diagonal_gaussian(2), seed=7)
    layer = flow.layers[0]
    q = MultivariateNormal(layer.loc, scale_tril=torch.diag(layer.log_scale.exp()))
    exact = log_c - kl_divergence(q, target).item()
    elbo, standard_error = evaluate_flow_elbo(flow, log_joint, 200_000, batch_size=30_000)
    assert 0 < standard_error < 0.01
    assert abs(elbo - exact) < 4 * standard_error, (elbo, exact, standard_error)
    terms = flow_elbo_samples(flow, log_joint, 100, torch.Generator().manual_seed(3))
    mean = flow_elbo(flow, log_joint, 100, torch.Generator().manual_seed(3))
    assert terms.shape == (100,)
    torch.testing.assert_close(mean, terms.mean())


def test_training_fits_a_gaussian_target():
    target, log_joint, log_c = gaussian_target()
    torch.manual_seed(0)
    flow = realnvp_flow(2, num_couplings=4, hidden=16).double()
    trace = train_flow(flow, log_joint, 600, lr=1e-2, final_lr=1e-3, progress=False)
    assert len(trace) == 600 and all(math.isfinite(v) for v in trace)
    elbo, _ = evaluate_flow_elbo(flow, log_joint, 50_000)
    assert log_c - elbo < 0.02, log_c - elbo  # the KL(q || target)
    assert sum(trace[-50:]) / 50 > trace[0] + 1


def test_sticking_the_landing_keeps_the_value_and_drops_the_score():
    """Same ELBO estimate; at the exact optimum every STL gradient is zero, the plain one not."""
    target = Independent(Normal(torch.tensor([0.3, -1.0], dtype=F64),
                                torch.tensor([0.5, 2.0], dtype=F64)), 1)
    flow = diagonal_gaussian(2).double()
    with torch.no_grad():
        flow.layers[0].loc.copy_(target.mean)
        flow.layers[0].log_scale.copy_(target.stddev.log())
    frozen = copy.deepcopy(flow).requires_grad_(False)
    values, grads = {}, {}
    for name, frz in (("stl", frozen), ("plain", None)):
        flow.zero_grad()
        values[name] = flow_elbo(flow, target.log_prob, 64, torch.Generator().manual_seed(0), frz)
        values[name].backward()
        grads[name] = torch.cat([p.grad.flatten() for p in flow.parameters()])
    torch.testing.assert_close(values["stl"], values["plain"], rtol=0, atol=1e-12)
    torch.testing.assert_close(values["stl"], torch.zeros((), dtype=F64), rtol=0, atol=1e-12)
    assert grads["stl"].abs().max() < 1e-12
    assert grads["plain"].abs().max() > 1e-2


def test_sticking_the_landing_training_fits_and_needs_an_inverse():
    target, log_joint, log_c = gaussian_target()
    torch.manual_seed(0)
    flow = realnvp_flow(2, num_couplings=2, hidden=8).double()
    train_flow(flow, log_joint, 300, lr=2e-2, final_lr=1e-3, stick_the_landing=True,
               progress=False)
    elbo, _ = evaluate_flow_elbo(flow, log_joint, 50_000)
    assert log_c - elbo < 0.02, log_c - elbo
    with pytest.raises(ValueError, match="stick_the_landing needs log q"):
        train_flow(PlanarLayer(2), log_joint, 5, stick_the_landing=True, progress=False)


def test_training_is_reproducible_from_the_seed():
    _, log_joint, _ = gaussian_target()
    traces = []
    for _ in range(2):
        torch.manual_seed(1)
        flow = planar_flow(2, num_layers=2).double()
        traces.append(train_flow(flow, log_joint, 20, seed=5, progress=False))
    assert traces[0] == traces[1]


# ----------------------------------------------------------------------------- bad input


def test_wrong_input_shapes_are_rejected():
    for name, flow in make_flows(2).items():
        with pytest.raises(ValueError, match=r"expects z of shape \(\.\.\., 2\)"):
            flow(torch.zeros(5, 3))
        if name in INVERTIBLE:
            with pytest.raises(ValueError, match=r"expects x of shape \(\.\.\., 2\)"):
                flow.inverse(torch.zeros(5, 3))


def test_bad_constructions_are_rejected():
    with pytest.raises(ValueError, match="coupling layer needs dim >= 2"):
        AffineCoupling(1)
    with pytest.raises(ValueError, match="at least one layer"):
        FlowSequence([])
    with pytest.raises(ValueError, match="same dim"):
        FlowSequence([PlanarLayer(2), PlanarLayer(3)])
    with pytest.raises(ValueError, match="num_couplings must be a positive integer"):
        realnvp_flow(2, num_couplings=0)
    with pytest.raises(ValueError, match="max_log_scale must be a positive finite number"):
        AffineCoupling(2, max_log_scale=0.0)


def test_planar_flows_have_no_inverse():
    with pytest.raises(NotImplementedError, match="no closed-form inverse"):
        planar_flow(2, 2).inverse(torch.zeros(3, 2))


def test_log_joint_with_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"log_joint returned shape \(10, 2\) but log q\(z\) "
                       r"has shape \(10,\); log_joint must return one value per draw"):
        flow_elbo(diagonal_gaussian(2), lambda x: x, 10)


def test_evaluation_rejects_non_finite_terms():
    with pytest.raises(FloatingPointError, match="some ELBO terms are not finite"):
        evaluate_flow_elbo(diagonal_gaussian(2), lambda x: x.sum(-1) / 0.0, 100)


def test_training_stops_on_a_non_finite_elbo():
    with pytest.raises(FloatingPointError, match="the ELBO became nan at step 0"):
        train_flow(diagonal_gaussian(2), lambda x: x.sum(-1) * float("nan"), 3, progress=False)
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        train_flow(diagonal_gaussian(2), lambda x: x.sum(-1), 0)
