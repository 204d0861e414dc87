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
import math
import operator
import os
import shutil
import socket
import struct
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from vicourse._checks import as_tensor, check_positive_finite, is_finite_real

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DEFAULT_ROOT = Path("~/.cache/vicourse")
DOWNLOAD_TIMEOUT = 30.0
"""Seconds load_mnist waits for each network operation of a download before giving up."""


class MNISTNotFoundError(FileNotFoundError, ValueError):
    """MNIST is not on disk and could not be downloaded (also a ValueError: the data root
    given, or $VICOURSE_DATA, names a folder without the data)."""


class MNISTFileError(ValueError):
    """An MNIST file on disk is empty, truncated or not an MNIST file; the message names it."""


@dataclass(frozen=True)
class MNISTTensors:
    """One MNIST split as tensors.

    Attributes:
        images: float32, shape ``(N, 784)``, grey levels in [0, 1].
        labels: int64, shape ``(N,)``, digits 0-9.
    """

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        _check_split_tensors(self.images, self.labels)

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str) -> MNISTTensors:
        """The same split on another device."""
        device = _check_device(device)
        return MNISTTensors(self.images.to(device), self.labels.to(device))


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds ``MNIST/raw``: ``root``, else ``$VICOURSE_DATA``, else the cache."""
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path (a str or pathlib.Path) or None, got "
                        f"{type(root).__name__} {root!r}")
    chosen = root if root is not None else os.environ.get("VICOURSE_DATA") or DEFAULT_ROOT
    return Path(chosen).expanduser().resolve()


def load_mnist(
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    download: bool = True,
    *,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> MNISTTensors:
    """Load one MNIST split ("train": 60,000 images; "test": 10,000) as tensors.

    If the files are missing and ``download`` is true, torchvision downloads them (waiting at
    most ``timeout`` seconds for each network operation) into a temporary folder, moved into
    the data root once complete. Without the files and without a network, raises
    :class:`MNISTNotFoundError` saying where to put them; a damaged file raises
    :class:`MNISTFileError` naming it. A load that fails creates no folder.
    """
    folder, device = _check_load_args(split, root, device, download, timeout)
    from torchvision.datasets import MNIST

    raw = folder / "MNIST" / "raw"
    _gunzip_missing(raw)
    legacy = all((folder / "MNIST" / "processed" / f).is_file() for f in ("training.pt", "test.pt"))
    if not legacy:
        if not all((raw / name).is_file() for name in MNIST_FILES):
            if not download:
                raise MNISTNotFoundError(_missing_message(folder, "download=False"))
            _download(folder, timeout)
        _check_idx_files(raw, split)
    try:
        dataset = MNIST(str(folder), train=split == "train", download=False)
    except (RuntimeError, ValueError, TypeError, AssertionError) as error:
        prefix = "train" if split == "train" else "t10k"
        raise MNISTFileError(
            f"could not read {prefix}-images-idx3-ubyte and {prefix}-labels-idx1-ubyte in "
            f"{raw} ({type(error).__name__}: {error}); delete them and call load_mnist again "
            "to download them, or copy them again"
        ) from error
    images = dataset.data.reshape(-1, 28 * 28).to(torch.float32).div_(255.0)
    return MNISTTensors(images.to(device), dataset.targets.to(torch.int64).to(device))


def _check_load_args(
    split: str, root: object, device: object, download: object, timeout: object
) -> tuple[Path, torch.device]:
    """The data root and the device, after checking every argument of load_mnist."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")
    check_positive_finite(timeout, "timeout")
    return data_root(root), _check_device(device)


def _check_device(device: object, name: str = "device") -> torch.device:
    """device as a torch.device this machine has, or a ValueError/TypeError naming it."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be a device name such as 'cpu' or 'cuda', or a "
                        f"torch.device, got {type(device).__name__} {device!r}")
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise ValueError(f"{name} {str(device)!r} is not a device this machine has ({error}); "
                         "use 'cpu' or vicourse.device.best_device()") from None
    return device


def _check_split_tensors(images: object, labels: object) -> None:
    """Raise unless images is an (N, D) tensor and labels an (N,) tensor."""
    for name, value in (("images", images), ("labels", labels)):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(value).__name__}")
    if images.ndim != 2 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"images must have shape (N, D) and labels shape (N,), one label per image, got "
            f"images {tuple(images.shape)} and labels {tuple(labels.shape)}"
        )


def _gunzip_missing(raw: Path) -> None:
    """Decompress ``<name>.gz`` next to it wherever only the .gz of an MNIST file is present.

    torchvision reads only the uncompressed files when it does not download, and it accepts
    a .gz only if its checksum is that of the official archive. A corrupt or truncated .gz is
    an MNISTFileError that names it; folders we cannot write to are left alone (the caller
    then reports the missing files).
    """
    for name in MNIST_FILES:
        target, packed = raw / name, raw / f"{name}.gz"
        if target.exists() or not packed.exists():
            continue
        try:
            with gzip.open(packed, "rb") as src:
                content = src.read()
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise MNISTFileError(
                f"{packed} is corrupt or truncated ({type(error).__name__}: {error}); delete "
                f"it and call load_mnist again to download it, or replace it with a good copy"
            ) from None
        except OSError:  # unreadable: reported as missing
            continue
        partial = raw / f"{name}.partial"
        try:
            partial.write_bytes(content)
            partial.replace(target)
        except OSError:  # unwritable folder
            partial.unlink(missing_ok=True)


IDX_KINDS = {"images": (0x0803, 3), "labels": (0x0801, 1)}
"""The IDX magic number and number of dimensions of the MNIST image and label files."""


def _check_idx_files(raw: Path, split: str) -> None:
    """Raise MNISTFileError, naming the file, unless the split's two files have an MNIST IDX
    header and exactly the size it announces, and as many labels as images."""
    prefix = "train" if split == "train" else "t10k"
    counts = {}
    for kind, (magic, ndim) in IDX_KINDS.items():
        path = raw / f"{prefix}-{kind}-idx{ndim}-ubyte"
        fix = ("delete it and call load_mnist again to download it (download=True), or copy "
               "it again from a good source")
        size = path.stat().st_size
        if size == 0:
            raise MNISTFileError(f"{path} is empty (0 bytes); {fix}")
        with open(path, "rb") as file:
            header = file.read(4 + 4 * ndim)
        if header[:2] == b"\x1f\x8b":
            raise MNISTFileError(f"{path} is gzip-compressed; rename it to {path.name}.gz (it "
                                 f"is then decompressed), or {fix}")
        found = int.from_bytes(header[:4].ljust(4, b"\0"), "big")
        if found != magic:
            raise MNISTFileError(
                f"{path} is not an MNIST {kind} file: its header starts with 0x{found:08x}, "
                f"where an IDX file of {ndim}-D unsigned bytes starts with 0x{magic:08x}; {fix}"
            )
        if len(header) < 4 + 4 * ndim:
            raise MNISTFileError(f"{path} is truncated: {size} bytes, shorter than its header; "
                                 f"{fix}")
        shape = struct.unpack(f">{ndim}I", header[4:])
        expected = 4 + 4 * ndim + math.prod(shape)
        if size != expected or shape[1:] not in ((), (28, 28)):
            raise MNISTFileError(
                f"{path} is truncated or corrupt: {size} bytes, where its header announces "
                f"shape {shape} and so {expected} bytes (28 x 28 images); {fix}"
            )
        counts[kind] = (path, shape[0])
    (images, num_images), (labels, num_labels) = counts["images"], counts["labels"]
    if num_images != num_labels:
        raise MNISTFileError(
            f"{labels} holds {num_labels} labels but {images} holds {num_images} images; one "
            "of them is from another data set: delete both and call load_mnist again to "
            "download them"
        )


def _download(folder: Path, timeout: float) -> None:
    """Download the four files with torchvision into a temporary folder, waiting at most
    ``timeout`` seconds for each network operation, then move them into folder/MNIST/raw.
    Raises MNISTNotFoundError (nothing created) if the download fails."""
    from torchvision.datasets import MNIST

    raw = folder / "MNIST" / "raw"
    with tempfile.TemporaryDirectory(prefix="vicourse-mnist-") as staging:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            MNIST(staging, train=False, download=True)
        except Exception as failed:  # no network, blocked mirror, bad checksum, ...
            why = _download_failure(failed, timeout)
            raise MNISTNotFoundError(_missing_message(folder, why)) from failed
        finally:
            socket.setdefaulttimeout(previous)
        try:
            raw.mkdir(parents=True, exist_ok=True)
            for path in sorted((Path(staging) / "MNIST" / "raw").iterdir()):
                if not (raw / path.name).exists():
                    shutil.move(path, raw / path.name)
        except OSError as failed:
            raise MNISTNotFoundError(_missing_message(
                folder, f"downloaded, but could not write to {raw}: {failed}")) from failed


def _download_failure(failed: BaseException, timeout: float) -> str:
    """Why a download failed, in words: 'no network was reached' for network errors."""
    text = f"{type(failed).__name__}: {failed}" if not str(failed) else str(failed)
    if isinstance(failed, TimeoutError) or "timed out" in text:
        return (f"download failed: no network was reached, the mirror did not answer within "
                f"timeout={timeout:g} s ({text})")
    if isinstance(failed, OSError) or "urlopen error" in text:
        return f"download failed: no network was reached ({text})"
    return f"download failed: {text}"


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
    images = _check_binarize_args(images, threshold=threshold)
    return (images > threshold).to(images.dtype)


def binarize_dynamic(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Dynamic binarization: each pixel ~ Bernoulli(grey level), drawn anew at each call."""
    images = _check_binarize_args(images, generator=generator)
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
    n, batch_size, device = _check_minibatch_args(n, batch_size, generator, device)
    order = torch.randperm(n, generator=generator).to(device)
    return iter(order.split(batch_size))


def _check_minibatch_args(
    n: int, batch_size: int, generator: object, device: object
) -> tuple[int, int, torch.device]:
    """n and batch_size as ints and the device, after checking them and the generator."""
    counts = []
    for value in (n, batch_size):
        try:
            counts.append(0 if isinstance(value, bool) else operator.index(value))
        except TypeError:
            counts.append(0)
    if min(counts) < 1:
        raise ValueError(
            f"n and batch_size must be positive, got n={n!r}, batch_size={batch_size!r}; pass "
            "integers >= 1 (n: how many items, batch_size: how many per batch)"
        )
    _check_generator(generator)
    return counts[0], counts[1], _check_device(device)


def _check_generator(generator: object, like: Tensor | None = None) -> None:
    """TypeError unless generator is None or a torch.Generator (on like's kind of device)."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}; e.g. torch.Generator().manual_seed(0)")
    if like is not None and generator.device.type != like.device.type:
        raise TypeError(f"generator is on {generator.device} but images are on {like.device}; "
                        f"create it with torch.Generator({str(like.device)!r})")


def _check_binarize_args(
    images: Tensor, threshold: float = 0.5, generator: object = None
) -> Tensor:
    """images as a tensor (lists and arrays converted), after checking it holds grey levels,
    that threshold is in [0, 1) and that generator suits the images."""
    images = as_tensor(images, "images")
    _check_unit_interval(images)
    one_number = isinstance(threshold, Tensor) and threshold.numel() == 1
    value = threshold.item() if one_number else threshold
    if not (is_finite_real(value) and 0 <= value < 1):
        raise ValueError(f"threshold must be a number in [0, 1) (a grey level), got "
                         f"{threshold!r}")
    _check_generator(generator, images)
    return images


def _check_unit_interval(images: Tensor, name: str = "images") -> None:
    if not torch.is_floating_point(images):
        raise TypeError(f"{name} must be a float tensor in [0, 1], got dtype {images.dtype}")
    if bool(images.isnan().any()):
        raise ValueError(f"{name} must hold grey levels in [0, 1], but some pixels are NaN")
    if images.numel() and (bool(images.min() < 0) or bool(images.max() > 1)):
        raise ValueError(
            f"{name} must hold grey levels in [0, 1] (divide uint8 pixels by 255 first), "
            f"got range [{images.min().item():.3g}, {images.max().item():.3g}]"
        )
