"""MNIST as whole-dataset tensors, binarization, and fast random minibatches.

The images are read once through :class:`torchvision.datasets.MNIST` and kept as one
``(N, 784)`` float tensor, so training loops index a tensor instead of running per-image
Python transforms.

Where the files are looked for (the *data root*): the ``root`` argument, else the
environment variable ``VICOURSE_DATA``, else ``~/.cache/vicourse``. torchvision expects
``<root>/MNIST/raw/`` to hold the four standard files.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DEFAULT_ROOT = Path("~/.cache/vicourse")


class MNISTNotFoundError(FileNotFoundError):
    """MNIST is not on disk and could not be downloaded."""


@dataclass(frozen=True)
class MNISTTensors:
    """One MNIST split as tensors.

    Attributes:
        images: float32, shape ``(N, 784)``, grey levels in [0, 1].
        labels: int64, shape ``(N,)``, digits 0-9.
    """

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> MNISTTensors:
        """The same split on another device."""
        return MNISTTensors(self.images.to(device), self.labels.to(device))


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds ``MNIST/raw``: ``root``, else ``$VICOURSE_DATA``, else the cache."""
    chosen = root if root is not None else os.environ.get("VICOURSE_DATA") or DEFAULT_ROOT
    return Path(chosen).expanduser().resolve()


def load_mnist(
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    download: bool = True,
) -> MNISTTensors:
    """Load one MNIST split ("train": 60,000 images; "test": 10,000) as tensors.

    If the files are missing and ``download`` is true, torchvision downloads them into the
    data root. Without the files and without a network, raises :class:`MNISTNotFoundError`
    saying where to put them.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    from torchvision.datasets import MNIST

    folder = data_root(root)
    _gunzip_missing(folder / "MNIST" / "raw")
    try:
        dataset = MNIST(str(folder), train=split == "train", download=False)
    except RuntimeError as missing:
        if not download:
            raise MNISTNotFoundError(_missing_message(folder, "download=False")) from missing
        try:
            dataset = MNIST(str(folder), train=split == "train", download=True)
        except Exception as failed:  # no network, blocked mirror, partial files, ...
            message = _missing_message(folder, f"download failed: {failed}")
            raise MNISTNotFoundError(message) from failed
    images = dataset.data.reshape(-1, 28 * 28).to(torch.float32).div_(255.0)
    return MNISTTensors(images.to(device), dataset.targets.to(torch.int64).to(device))


def _gunzip_missing(raw: Path) -> None:
    """Decompress ``<name>.gz`` next to it wherever only the .gz of an MNIST file is present.

    torchvision reads only the uncompressed files when it does not download, and it accepts
    a .gz only if its checksum is that of the official archive. Folders we cannot write to
    are left alone (the caller then reports the missing files).
    """
    for name in MNIST_FILES:
        target, packed = raw / name, raw / f"{name}.gz"
        if target.exists() or not packed.exists():
            continue
        partial = raw / f"{name}.partial"
        try:
            with gzip.open(packed, "rb") as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
            partial.replace(target)
        except (OSError, EOFError):  # unwritable folder, corrupt or truncated archive
            partial.unlink(missing_ok=True)


def _missing_message(folder: Path, why: str) -> str:
    files = ", ".join(MNIST_FILES)
    return (
        f"MNIST was not found in {folder / 'MNIST' / 'raw'} ({why}). "
        f"Put the four files {files} (as downloaded, .gz or uncompressed) in "
        f"{folder / 'MNIST' / 'raw'}, or set the environment variable VICOURSE_DATA to a "
        "folder that contains MNIST/raw/ (an absolute path), or pass root=..."
    )


def binarize_threshold(images: Tensor, threshold: float = 0.5) -> Tensor:
    """Static binarization: 1 where the grey level exceeds ``threshold``, else 0 (same shape)."""
    _check_unit_interval(images)
    return (images > threshold).to(images.dtype)


def binarize_dynamic(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Dynamic binarization: each pixel ~ Bernoulli(grey level), drawn anew at each call."""
    _check_unit_interval(images)
    return torch.bernoulli(images, generator=generator)


def minibatches(
    n: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[Tensor]:
    """Index tensors for one epoch: a random permutation of range(n) cut into batches.

    The last batch is smaller when ``batch_size`` does not divide ``n``. The arguments are
    checked, and the permutation drawn, when the function is called (not at the first batch).
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be positive, got n={n}, batch_size={batch_size}")
    order = torch.randperm(n, generator=generator).to(device)
    return iter(order.split(batch_size))


def _check_unit_interval(images: Tensor) -> None:
    if not torch.is_floating_point(images):
        raise TypeError(f"images must be a float tensor in [0, 1], got dtype {images.dtype}")
    if bool(images.isnan().any()):
        raise ValueError("images must hold grey levels in [0, 1], but some pixels are NaN")
    if images.numel() and (bool(images.min() < 0) or bool(images.max() > 1)):
        raise ValueError(
            "images must hold grey levels in [0, 1] (divide uint8 pixels by 255 first), "
            f"got range [{images.min().item():.3g}, {images.max().item():.3g}]"
        )
