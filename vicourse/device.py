"""Choosing the device the chapters run on: CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import os

import torch

_KNOWN = ("cpu", "cuda", "mps")


def best_device(prefer: str | None = None) -> torch.device:
    """Return the fastest available device.

    The order is CUDA, MPS, CPU. ``prefer`` (or, if it is ``None``, the environment
    variable ``VICOURSE_DEVICE``) forces one of ``"cpu"``, ``"cuda"`` or ``"mps"``;
    asking for a device that is not available raises ``RuntimeError``.
    """
    if isinstance(prefer, torch.device):
        prefer = str(prefer)
    if prefer is not None and not isinstance(prefer, str):
        raise TypeError(f"prefer must be a device name ('cpu', 'cuda', 'cuda:1', 'mps'), a "
                        f"torch.device or None, got {type(prefer).__name__} {prefer!r}")
    choice = prefer if prefer is not None else os.environ.get("VICOURSE_DEVICE") or None
    if choice is not None:
        kind = choice.split(":")[0]
        if kind not in _KNOWN:
            raise ValueError(
                f"unknown device {choice!r}: use one of {', '.join(_KNOWN)} "
                "(set VICOURSE_DEVICE or pass prefer=...)"
            )
        device = _parse(choice)
        if not _available(kind):
            raise RuntimeError(
                f"device {choice!r} was requested but is not available on this machine; "
                "unset VICOURSE_DEVICE or pass prefer='cpu'"
            )
        if kind == "cuda":
            _check_cuda_index(device)
        return device
    for kind in ("cuda", "mps"):
        if _available(kind):
            return torch.device(kind)
    return torch.device("cpu")


def _parse(choice: str) -> torch.device:
    """``torch.device(choice)``, with an error that says how to write a device name."""
    try:
        return torch.device(choice)
    except RuntimeError as err:
        raise ValueError(
            f"cannot read device {choice!r}: write 'cpu', 'mps', 'cuda' or 'cuda:<index>'"
        ) from err


def _check_cuda_index(device: torch.device) -> None:
    """Raise if ``device`` names a CUDA index this machine does not have (e.g. cuda:3 of 1)."""
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise RuntimeError(
            f"device '{device}' was requested but this machine has {count} CUDA device(s), "
            "numbered from 0; ask for 'cuda' or 'cuda:0'"
        )


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        backend = getattr(torch.backends, "mps", None)
        return bool(backend is not None and backend.is_available())
    return True
