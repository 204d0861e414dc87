"""The book's diagrams, drawn by code with daft-pgm: graphical models and computational graphs.

Each function builds a :class:`daft.PGM`, renders it into a new matplotlib figure and returns
it; ``pgm.figure`` is the figure, and :func:`graph` lists its nodes and edges. Latent variables
are white circles, observed ones grey, fixed hyperparameters dots; a plate repeats what it
holds. In the computational graphs, a dashed red arrow is an edge along which no gradient flows
(a ``detach`` in the code).
"""

from __future__ import annotations

import daft
import matplotlib.pyplot as plt

STOPPED = {"linestyle": "--", "ec": "C3", "fc": "C3"}  # an edge with no gradient through it
_DASHED = {"linestyle": "--"}  # the inference network, drawn as in Kingma and Welling (2014)
_ESTIMATORS = ("score function", "reparameterization", "sticking the landing")


def graph(pgm: daft.PGM) -> tuple[set[str], set[tuple[str, str]]]:
    """The names of a diagram's nodes and its edges as (from, to) pairs."""
    return set(pgm._nodes), {(e.node1.name, e.node2.name) for e in pgm._edges}


def stopped_edges(pgm: daft.PGM) -> set[tuple[str, str]]:
    """The edges of a computational graph along which no gradient flows (drawn dashed red)."""
    return {(e.node1.name, e.node2.name) for e in pgm._edges
            if e.plot_params.get("linestyle") == STOPPED["linestyle"]
            and e.plot_params.get("ec", e.plot_params.get("edgecolor")) == STOPPED["ec"]}


class _CurvedEdge(daft.Edge):
    """An edge drawn as an arc, so that it does not cover the edge in the opposite direction."""

    def render(self, ctx):
        ax = ctx.ax()
        start = ctx.convert(self.node1.x, self.node1.y)
        end = ctx.convert(self.node2.x, self.node2.y)
        radius = 72 / 2.54 * ctx.node_unit / 2  # a node's radius in points (units are cm)
        props = {"arrowstyle": "-|>", "connectionstyle": "arc3,rad=-0.5", "color": "k",
                 "shrinkA": radius * self.node1.scale, "shrinkB": radius * self.node2.scale,
                 "linewidth": ctx.line_width, **self.plot_params}
        return ax.annotate("", xy=end, xytext=start, arrowprops=props)


def _pgm(width: float, height: float, left: float = 0.0, bottom: float = 0.0,
         dpi: int = 150) -> daft.PGM:
    """An empty diagram showing the box [left, left + width] x [bottom, bottom + height]."""
    return daft.PGM(shape=[width, height], origin=[left, bottom], dpi=dpi)


def _text(pgm: daft.PGM, x: float, y: float, label: str, fontsize: float | None = None,
          where: str = "middle center") -> None:
    """Text centred (or placed as ``where`` says) at (x, y), in grid units."""
    pgm.add_plate([x, y, 0.0, 0.0], label=label, label_offset=(0, 0), position=where,
                  fontsize=fontsize, rect_params={"ec": "none"}, bbox={"fc": "none", "ec": "none"})


def _curved_edge(pgm: daft.PGM, start: str, end: str, **plot_params) -> None:
    pgm._edges.append(_CurvedEdge(pgm._nodes[start], pgm._nodes[end], plot_params=plot_params))


def _rendered(pgm: daft.PGM) -> daft.PGM:
    pgm.render(dpi=pgm._dpi)
    return pgm


def latent_variable_model() -> daft.PGM:
    """p(x, z) = p(z) p(x | z): z (white) generates x (grey); inference goes back (dashed)."""
    pgm = _pgm(3.2, 2.0, left=-1.2, bottom=-0.5)
    pgm.add_node("z", r"$z$", 0, 1)
    pgm.add_node("x", r"$x$", 0, 0, observed=True)
    pgm.add_edge("z", "x")
    _curved_edge(pgm, "x", "z", linestyle="--")
    _text(pgm, 0.35, 1.0, r"prior $p(z)$", where="middle left")
    _text(pgm, 0.35, 0.0, r"likelihood $p(x \mid z)$", where="middle left")
    _text(pgm, -0.75, 0.5, "inference:\n" r"$p(z \mid x)$", fontsize=8)
    return _rendered(pgm)


def vae_model() -> daft.PGM:
    """The VAE: decoder p_theta(x | z) (solid) and encoder q_phi(z | x) (dashed), N images."""
    pgm = _pgm(3.0, 2.4, left=-0.4, bottom=-0.25)
    pgm.add_node("z", r"$z_n$", 1.2, 1.5)
    pgm.add_node("x", r"$x_n$", 1.2, 0.5, observed=True)
    pgm.add_node("theta", r"$\theta$", 2.3, 1.0, fixed=True)
    pgm.add_node("phi", r"$\phi$", -0.1, 1.5, fixed=True)
    pgm.add_edge("z", "x")
    pgm.add_edge("theta", "x")
    _curved_edge(pgm, "x", "z", linestyle="--")
    pgm.add_edge("phi", "z", plot_params=_DASHED)
    pgm.add_plate([0.45, -0.15, 1.3, 2.1], label=r"$n = 1, \dots, N$", position="bottom right")
    return _rendered(pgm)


def banana_model() -> daft.PGM:
    """The banana: theta_j ~ N(0, sigma_theta^2), y_i ~ N(theta_1 + theta_2^2, sigma_y^2)."""
    pgm = _pgm(2.4, 2.8, left=0.1, bottom=0.0)
    pgm.add_node("sigma_theta", r"$\sigma_\theta$", 1, 2.5, fixed=True)
    pgm.add_node("theta1", r"$\theta_1$", 0.5, 1.7)
    pgm.add_node("theta2", r"$\theta_2$", 1.5, 1.7)
    pgm.add_node("y", r"$y_i$", 1, 0.75, observed=True)
    pgm.add_node("sigma_y", r"$\sigma_y$", 2.2, 0.75, fixed=True)
    for theta in ("theta1", "theta2"):
        pgm.add_edge("sigma_theta", theta)
        pgm.add_edge(theta, "y")
    pgm.add_edge("sigma_y", "y")
    pgm.add_plate([0.4, 0.1, 1.2, 1.05], label=r"$i = 1, \dots, n$", position="bottom right")
    return _rendered(pgm)


def gaussian_mixture_model() -> daft.PGM:
    """The GaussianMixture model: mu_k ~ N(0, sigma^2 I), c_i ~ Cat(1/K), x_i ~ N(mu_{c_i}, I)."""
    pgm = _pgm(3.0, 2.9, left=-0.4, bottom=0.1)
    pgm.add_node("sigma", r"$\sigma^2$", -0.1, 2.3, fixed=True)
    pgm.add_node("mu", r"$\mu_k$", 0.9, 2.3)
    pgm.add_node("c", r"$c_i$", 2.1, 1.05)
    pgm.add_node("x", r"$x_i$", 0.9, 1.05, observed=True)
    pgm.add_edge("sigma", "mu")
    pgm.add_edge("mu", "x")
    pgm.add_edge("c", "x")
    pgm.add_plate([0.45, 1.75, 1.6, 1.05], label=r"$k = 1, \dots, K$", position="bottom right",
                  fontsize=8)
    pgm.add_plate([0.45, 0.2, 2.1, 1.35], label=r"$i = 1, \dots, N$", position="bottom right",
                  fontsize=8)
    return _rendered(pgm)


def flow_composition() -> daft.PGM:
    """A flow z_K = f_K(...f_1(z_0)), z_0 ~ q_0: each layer subtracts its log|det J| from log q."""
    pgm = _pgm(6.2, 1.9, left=-0.5, bottom=-0.3, dpi=130)  # the widest diagram: fits a phone
    spots = [("z0", r"$z_0$"), ("z1", r"$z_1$"), ("dots", r"$\cdots$"), ("zK1", r"$z_{K-1}$"),
             ("zK", r"$z_K$")]
    for i, (name, content) in enumerate(spots):
        pgm.add_node(name, content, 1.3 * i, 1, aspect=1.25,
                     plot_params={"ec": "none"} if name == "dots" else None)
    for start, end, k in (("z0", "z1", "1"), ("z1", "dots", "2"), ("zK1", "zK", "K")):
        pgm.add_edge(start, end, label=rf"$f_{{{k}}}$")
    pgm.add_edge("dots", "zK1")
    for i, k in ((0, "1"), (1, "2"), (3, "K")):
        _text(pgm, 1.3 * i + 0.65, 0.6, rf"$-\log|\det J_{{f_{k}}}|$", fontsize=8)
    _text(pgm, 0, 1.45, r"$z_0 \sim q_0$")
    _text(pgm, 5.2, 1.45, r"$x = z_K$")
    _text(pgm, 2.6, 0.0, r"$\log q(x) = \log q_0(z_0) - \sum_{k=1}^K"
          r" \log|\det J_{f_k}(z_{k-1})|$")
    return _rendered(pgm)


def estimator_graph(estimator: str) -> daft.PGM:
    """The computational graph of one ELBO gradient estimator; dashed red edges carry no gradient.

    estimator: "score function", "reparameterization" or "sticking the landing" (the keys of
    vicourse.objectives.gradients.ESTIMATORS). Nodes: lambda, eps, z = m + sigma * eps,
    log p(x, z), log q_lambda(z), f = log p - log q, and for the score function the surrogate
    f * log q (its output); the others output f.
    """
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(map(repr, _ESTIMATORS))}, "
                         f"got {estimator!r}")
    stopped = {"score function": {("lambda", "z"), ("f", "surrogate")},
               "reparameterization": set(),
               "sticking the landing": {("lambda", "log_q")}}[estimator]
    score = estimator == "score function"
    pgm = _pgm(4.9, 3.3 if score else 2.6, left=-0.45, bottom=0.1)
    wide = {"aspect": 2.4}
    pgm.add_node("lambda", r"$\lambda$", 0, 2)
    pgm.add_node("eps", r"$\varepsilon$", 0, 0.6, observed=True)
    pgm.add_node("z", r"$z$", 1.1, 1.3)
    pgm.add_node("log_q", r"$\log q_\lambda(z)$", 2.5, 2, **wide)
    pgm.add_node("log_p", r"$\log p(x, z)$", 2.5, 0.6, **wide)
    pgm.add_node("f", r"$f$", 3.8, 1.3)
    edges = [("eps", "z"), ("lambda", "z"), ("z", "log_q"), ("lambda", "log_q"),
             ("z", "log_p"), ("log_q", "f"), ("log_p", "f")]
    if score:
        pgm.add_node("surrogate", r"$f \cdot \log q_\lambda(z)$", 3.8, 2.7, aspect=2.6)
        edges += [("log_q", "surrogate"), ("f", "surrogate")]
    for start, end in edges:
        pgm.add_edge(start, end, plot_params=STOPPED if (start, end) in stopped else None)
    _text(pgm, -0.35, 3.3 if score else 2.6, estimator, where="top left")
    return _rendered(pgm)


def close(pgm: daft.PGM) -> None:
    """Close a diagram's figure (tests draw many)."""
    plt.close(pgm.figure)
