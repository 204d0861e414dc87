"""The argument checks of vicourse.conjugate: one call per function, built on vicourse._checks."""

from __future__ import annotations

from torch import Tensor

from vicourse._checks import (
    as_tensor,
    check_all_finite,
    check_float,
    check_nonempty,
    check_positive_finite,
    check_same_dtype_and_device,
    check_shape,
    probability_tolerance,
)


def check_mixture_args(func: str, prior_std: float | None = None, **given: object
                       ) -> tuple[Tensor, ...]:
    """The tensors among x (N, D), m (K, D), s2 (K,), phi (N, K), eta1 (K, D), eta2 (K,),
    in the order given, after checking that they are finite floating-point tensors of one
    dtype and device, of agreeing shapes, with s2 > 0, eta2 < 0 and the rows of phi
    probabilities; prior_std, when given, must be a positive number."""
    if prior_std is not None:
        check_positive_finite(prior_std, f"{func}: prior_std")
    tensors = {name: as_tensor(value, name) for name, value in given.items()}
    for name, tensor in tensors.items():
        check_float(tensor, name)
    check_same_dtype_and_device(**tensors)
    sizes: dict[str, tuple[int, str]] = {}  # N, K, D: (value, the argument that set it)
    for name, tensor in tensors.items():
        dims = _DIMS[name]
        check_shape(tensor, f"{func}: {name}", _expected(dims, sizes),
                    tensor.dim() == len(dims) and all(
                        dim not in sizes or tensor.shape[i] == sizes[dim][0]
                        for i, dim in enumerate(dims)))
        for i, dim in enumerate(dims):
            sizes.setdefault(dim, (tensor.shape[i], name))
        check_nonempty(tensor, f"{func}: {name}")
        check_all_finite(tensor, f"{func}: {name}")
    if "s2" in tensors and not bool((tensors["s2"] > 0).all()):
        raise ValueError(f"{func}: the variances s2 must be > 0, got a minimum of "
                         f"{tensors['s2'].min().item():.3g}")
    if "eta2" in tensors and not bool((tensors["eta2"] < 0).all()):
        raise ValueError(f"{func}: eta2 = -1 / (2 s2) must be < 0, got a maximum of "
                         f"{tensors['eta2'].max().item():.3g}; it is not the natural parameter "
                         "of a Gaussian")
    if "phi" in tensors:
        _check_probabilities(tensors["phi"], func)
    return tuple(tensors.values())


_DIMS = {"x": "ND", "m": "KD", "s2": "K", "phi": "NK", "eta1": "KD", "eta2": "K",
         "eta1_hat": "KD", "eta2_hat": "K"}


def _expected(dims: str, sizes: dict[str, tuple[int, str]]) -> str:
    """The documented shape, with the sizes already fixed by earlier arguments."""
    shape = f"({', '.join(dims)})"
    known = [f"{dim} = {sizes[dim][0]} (from {sizes[dim][1]})" for dim in dims if dim in sizes]
    return shape + (f" with {', '.join(known)}" if known else "")


def _check_probabilities(phi: Tensor, func: str) -> None:
    """ValueError unless each row of phi (N, K) is a probability vector, up to rounding."""
    tolerance = probability_tolerance(phi.dtype, phi.shape[-1])
    row_error = (phi.sum(-1) - 1).abs().max()
    if bool((phi.min() >= 0) & (phi.max() <= 1 + tolerance) & (row_error <= tolerance)):
        return  # the usual case, with one synchronization
    if bool((phi < 0).any()) or bool((phi > 1 + tolerance).any()):
        raise ValueError(f"{func}: phi holds assignment probabilities, which must lie in "
                         f"[0, 1]; got values in [{phi.min().item():.3g}, "
                         f"{phi.max().item():.3g}]")
    error = row_error.item()
    if error > tolerance:
        raise ValueError(f"{func}: each row of phi must sum to 1 (row i is q(c_i)), got a "
                         f"row sum off by {error:.3g}; normalize with phi / phi.sum(-1, "
                         "keepdim=True) or compute phi with a softmax")
