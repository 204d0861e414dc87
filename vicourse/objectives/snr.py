r"""The signal-to-noise ratio of a stochastic gradient, estimated from independent draws.

For one coordinate :math:`g` of a gradient estimator, Rainforth et al. (2018) define

.. math::

    \mathrm{SNR} = \frac{\lvert \mathbb E[g] \rvert}{\sqrt{\operatorname{Var}[g]}},

the size of the gradient against its noise: an estimator whose SNR goes to 0 points in a
random direction, however long one trains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from vicourse._checks import as_tensor, check_float, check_shape, positive_count


def signal_to_noise(gradients: Tensor) -> Tensor:
    """|mean| / std of gradient draws over the draw axis (std with n - 1; 0/0 gives NaN).

    gradients: (R, ...) with R >= 2 draws -> (...)
    """
    gradients = _check_gradients(gradients)
    return gradients.mean(0).abs() / gradients.std(0)  # (...)


def gradient_draws(
    loss_fn: Callable[[], Tensor], parameters: Sequence[nn.Parameter], draws: int
) -> Tensor:
    """R independent gradients of a random loss, each flattened over the given parameters.

    loss_fn: () -> scalar, a fresh random estimate per call; parameters: P numbers in all
    -> (R, P)
    """
    parameters, draws = _check_draw_args(parameters, draws)
    rows = []
    for _ in range(draws):
        grads = torch.autograd.grad(loss_fn(), parameters)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))  # (P,)
    return torch.stack(rows)  # (R, P)


def _check_gradients(gradients: Tensor) -> Tensor:
    """gradients as a floating-point tensor with at least two draws along dim 0."""
    gradients = as_tensor(gradients, "gradients")
    check_float(gradients, "gradients")
    check_shape(gradients, "gradients", "(R, ...) with R >= 2 draws along dim 0 (a standard "
                "deviation needs two)", gradients.ndim >= 1 and gradients.shape[0] >= 2)
    return gradients


def _check_draw_args(
    parameters: Sequence[nn.Parameter], draws: int
) -> tuple[list[Tensor], int]:
    """parameters as a non-empty list of tensors that require grad; draws as an int >= 1."""
    parameters = list(parameters)
    if not parameters or not all(isinstance(p, Tensor) and p.requires_grad for p in parameters):
        raise ValueError("parameters must be a non-empty sequence of tensors that require "
                         "grad, e.g. list(model.encoder.parameters())")
    return parameters, positive_count(draws, "draws")
