"""Tests of the book's diagrams (vicourse.diagrams): each draws what the code computes.

Oracles: the models themselves. The VAE's decoder parameters reach the pixels' logits and not
the encoder's output, and the other way round (autograd); the banana's likelihood depends on
both coordinates of theta and on sigma_y, its prior on sigma_theta and not on y. The estimator
graphs are executed: evaluating each node from its parents, with the dashed edges detached,
gives the same per-draw gradients as the package's surrogates (per_sample_gradients), as a
hypothesis property. No image comparison.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import daft  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vicourse import diagrams  # noqa: E402
from vicourse.families.gaussian import gaussian_log_density  # noqa: E402
from vicourse.models.banana import Banana  # noqa: E402
from vicourse.models.gaussian_mixture import GaussianMixture  # noqa: E402
from vicourse.models.vae import VAE  # noqa: E402
from vicourse.objectives.gradients import ESTIMATORS, per_sample_gradients  # noqa: E402

F64 = torch.float64
MODELS = {  # function: (nodes, edges, observed nodes, fixed nodes)
    "latent_variable_model": ({"z", "x"}, {("z", "x"), ("x", "z")}, {"x"}, set()),
    "vae_model": ({"z", "x", "theta", "phi"},
                  {("z", "x"), ("theta", "x"), ("x", "z"), ("phi", "z")}, {"x"},
                  {"theta", "phi"}),
    "banana_model": ({"theta1", "theta2", "y", "sigma_theta", "sigma_y"},
                     {("sigma_theta", "theta1"), ("sigma_theta", "theta2"), ("theta1", "y"),
                      ("theta2", "y"), ("sigma_y", "y")}, {"y"}, {"sigma_theta", "sigma_y"}),
    "gaussian_mixture_model": ({"sigma", "mu", "c", "x"},
                               {("sigma", "mu"), ("mu", "x"), ("c", "x")}, {"x"}, {"sigma"}),
}


@pytest.fixture
def draw():
    """Call a diagram function and close its figure afterwards."""
    drawn = []

    def _draw(function, *args):
        pgm = function(*args)
        drawn.append(pgm)
        return pgm

    yield _draw
    for pgm in drawn:
        diagrams.close(pgm)


def test_every_diagram_is_a_rendered_figure_that_fits_the_text_column(draw):
    functions = [getattr(diagrams, name) for name in MODELS] + [diagrams.flow_composition]
    pgms = [draw(f) for f in functions] + [draw(diagrams.estimator_graph, e) for e in ESTIMATORS]
    for pgm in pgms:
        assert isinstance(pgm, daft.PGM) and isinstance(pgm.figure, Figure)
        width, height = pgm.figure.get_size_inches()
        assert 1 < width <= 5.5 and 1 < height <= 4, (width, height)  # no shrinking needed


@pytest.mark.parametrize("name", sorted(MODELS))
def test_graphical_models_have_the_models_variables_and_dependencies(name, draw):
    nodes, edges, observed, fixed = MODELS[name]
    pgm = draw(getattr(diagrams, name))
    assert diagrams.graph(pgm) == (nodes, edges)
    assert {n for n, node in pgm._nodes.items() if node.observed} == observed
    assert {n for n, node in pgm._nodes.items() if node.fixed} == fixed


def test_vae_decoder_parameters_reach_x_and_encoder_parameters_reach_z_only(draw):
    _, edges = diagrams.graph(draw(diagrams.vae_model))
    vae = VAE(data_dim=6, hidden=(5,), latent_dim=2)
    for part, output, drawn_edge in (
        ("decoder", lambda: vae.decode(torch.randn(3, 2)), ("theta", "x")),
        ("encoder", lambda: vae.encode(torch.rand(3, 6))[0], ("phi", "z")),
    ):
        other = "encoder" if part == "decoder" else "decoder"
        grads = torch.autograd.grad(output().sum(), list(vae.parameters()), allow_unused=True)
        reached = {name.split(".")[0] for (name, _), g in zip(vae.named_parameters(), grads,
                                                               strict=True) if g is not None}
        assert part in reached and other not in reached, (part, reached)
        assert drawn_edge in edges


def test_banana_diagram_matches_what_each_density_depends_on(draw):
    _, edges = diagrams.graph(draw(diagrams.banana_model))
    theta = torch.tensor([0.3, -0.7], dtype=F64, requires_grad=True)
    gradient = torch.autograd.grad(Banana().log_likelihood(theta), theta)[0]
    assert (gradient != 0).all()  # y_i depends on theta_1 and on theta_2
    assert {("theta1", "y"), ("theta2", "y")} <= edges
    base, wider_y, wider_prior = Banana(), Banana(sigma_y=3.0), Banana(sigma_theta=2.0)
    assert wider_y.log_likelihood(theta) != base.log_likelihood(theta)  # sigma_y -> y
    assert wider_y.log_prior(theta) == base.log_prior(theta)
    assert wider_prior.log_prior(theta) != base.log_prior(theta)  # sigma_theta -> theta
    assert wider_prior.log_likelihood(theta) == base.log_likelihood(theta)
    assert ("sigma_y", "y") in edges and ("sigma_theta", "theta1") in edges
    assert ("sigma_y", "theta1") not in edges and ("sigma_theta", "y") not in edges


def test_mixture_diagram_matches_what_the_log_joint_depends_on(draw):
    _, edges = diagrams.graph(draw(diagrams.gaussian_mixture_model))
    model, wider = GaussianMixture(3, dim=2), GaussianMixture(3, dim=2, prior_std=2.0)
    x, c, mu = model.sample(5, generator=torch.Generator().manual_seed(0))
    other_c = (c + 1) % 3
    # sigma^2 -> mu only: changing it shifts log p by the same amount whatever x and c are
    shift = wider.log_joint(x, c, mu) - model.log_joint(x, c, mu)
    torch.testing.assert_close(wider.log_joint(x + 1, other_c, mu) - model.log_joint(x + 1,
                               other_c, mu), shift)
    assert ("sigma", "mu") in edges and ("sigma", "x") not in edges

    def grad_x(c, mu):  # the gradient in x_1 sees only its parents c_1 and mu_{c_1}
        x_ = x.clone().requires_grad_(True)
        return torch.autograd.grad(model.log_joint(x_, c, mu), x_)[0][1]

    moved = mu.clone()
    moved[(c[1] + 1) % 3] += 5.0  # a component x_1 is not assigned to
    torch.testing.assert_close(grad_x(c, moved), grad_x(c, mu))
    assert not torch.allclose(grad_x(other_c, mu), grad_x(c, mu))  # c_1 -> x_1
    assert {("mu", "x"), ("c", "x")} <= edges and ("c", "mu") not in edges


def test_flow_composition_is_a_chain_from_z0_to_zK_labelled_by_the_layers(draw):
    pgm = draw(diagrams.flow_composition)
    nodes, edges = diagrams.graph(pgm)
    chain = ["z0", "z1", "dots", "zK1", "zK"]
    assert nodes == set(chain)
    assert edges == set(zip(chain[:-1], chain[1:], strict=True))
    labels = [e.label for e in pgm._edges if e.label]
    assert labels == ["$f_{1}$", "$f_{2}$", "$f_{K}$"]


def run_graph(pgm: daft.PGM, log_joint, mean, log_std, eps) -> torch.Tensor:
    """Evaluate a computational graph node by node, detaching the inputs on dashed edges."""
    nodes, edges = diagrams.graph(pgm)
    stopped = diagrams.stopped_edges(pgm)
    values = {"lambda": (mean, log_std), "eps": eps}

    def parent(name: str, child: str):
        assert (name, child) in edges, f"the diagram has no edge {name} -> {child}"
        value = values[name]
        if (name, child) not in stopped:
            return value
        return tuple(v.detach() for v in value) if isinstance(value, tuple) else value.detach()

    m, s = parent("lambda", "z")
    values["z"] = m + s.exp() * parent("eps", "z")
    values["log_p"] = log_joint(parent("z", "log_p"))
    values["log_q"] = gaussian_log_density(parent("z", "log_q"), *parent("lambda", "log_q"))
    values["f"] = parent("log_p", "f") - parent("log_q", "f")
    if "surrogate" not in nodes:
        return values["f"]
    return parent("f", "surrogate") * parent("log_q", "surrogate")


@settings(max_examples=25, deadline=None)
@given(mean=st.lists(st.floats(-2, 2), min_size=2, max_size=2),
       log_std=st.lists(st.floats(-1, 1), min_size=2, max_size=2),
       seed=st.integers(0, 2**16))
def test_estimator_graphs_compute_the_packages_gradient_estimates(mean, log_std, seed):
    target_mean = torch.tensor([0.5, -1.0], dtype=F64)

    def log_joint(z):  # a correlated, non-Gaussian target, so every path matters
        return -0.5 * ((z - target_mean) ** 2).sum(-1) - 0.1 * z.prod(-1) ** 2

    mean, log_std = torch.tensor(mean, dtype=F64), torch.tensor(log_std, dtype=F64)
    eps = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(seed))
    for estimator, surrogate in ESTIMATORS.items():
        pgm = diagrams.estimator_graph(estimator)
        try:
            expected = per_sample_gradients(surrogate, log_joint, mean, log_std, eps)
            drawn = per_sample_gradients(lambda lj, m, s, e, g=pgm: run_graph(g, lj, m, s, e),
                                         log_joint, mean, log_std, eps)
        finally:
            diagrams.close(pgm)
        torch.testing.assert_close(drawn, expected, msg=lambda m, e=estimator: f"{e}: {m}")


def test_the_three_estimator_graphs_differ_only_in_what_is_stopped(draw):
    graphs = {e: draw(diagrams.estimator_graph, e) for e in ESTIMATORS}
    stopped = {e: diagrams.stopped_edges(pgm) for e, pgm in graphs.items()}
    assert stopped["reparameterization"] == set()
    assert stopped["sticking the landing"] == {("lambda", "log_q")}  # log q's parameters
    assert ("lambda", "z") in stopped["score function"]  # z is sampled, not differentiated
    path = diagrams.graph(graphs["reparameterization"])
    assert diagrams.graph(graphs["sticking the landing"]) == path


def test_unknown_estimator_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="sticking the landing"):
        diagrams.estimator_graph("pathwise")
