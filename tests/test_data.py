"""Tests of vicourse.data: where MNIST is looked for, loading, binarization, minibatches.

Oracles: an independent reader of the IDX files (numpy + struct), the published MNIST facts
(60,000/10,000 images, first training labels 5 0 4 1 9, per-pixel mean 0.1307 and standard
deviation 0.3081 of the training images), tiny synthetic IDX files written by the tests,
and the Bernoulli mean and standard error for dynamic binarization.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vicourse.data import (
    MNIST_FILES,
    MNISTNotFoundError,
    MNISTTensors,
    binarize_dynamic,
    binarize_threshold,
    data_root,
    load_mnist,
    minibatches,
)

# ----------------------------------------------------------------------------- IDX helpers


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (the MNIST format), independently of torchvision."""
    raw = path.read_bytes()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype_code == 0x08, f"{path} is not an IDX file of unsigned bytes"
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_mnist(root: Path, compress: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write a tiny MNIST (3 training, 2 test images) into root/MNIST/raw; return its content."""
    rng = np.random.default_rng(0)
    splits = {
        "train": (rng.integers(0, 256, (3, 28, 28)), np.array([3, 1, 4])),
        "test": (rng.integers(0, 256, (2, 28, 28)), np.array([9, 2])),
    }
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, (images, labels) in zip(("train", "t10k"), splits.values(), strict=True):
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            if compress:
                (raw / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
            else:
                (raw / name).write_bytes(idx_bytes(array))
    return splits


# ----------------------------------------------------------------------------- data_root


def test_data_root_prefers_the_argument_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("VICOURSE_DATA", str(tmp_path / "from_env"))
    assert data_root(tmp_path / "from_arg") == tmp_path.resolve() / "from_arg"
    assert data_root(str(tmp_path / "from_arg")) == tmp_path.resolve() / "from_arg"


def test_data_root_uses_the_environment_without_an_argument(tmp_path, monkeypatch):
    monkeypatch.setenv("VICOURSE_DATA", str(tmp_path / "from_env"))
    assert data_root() == tmp_path.resolve() / "from_env"


@pytest.mark.parametrize("env", [None, ""])
def test_data_root_falls_back_to_the_cache_in_the_home_folder(tmp_path, monkeypatch, env):
    monkeypatch.setenv("HOME", str(tmp_path))
    if env is None:
        monkeypatch.delenv("VICOURSE_DATA", raising=False)
    else:
        monkeypatch.setenv("VICOURSE_DATA", env)
    assert data_root() == tmp_path.resolve() / ".cache" / "vicourse"


def test_data_root_expands_the_home_folder_and_makes_relative_paths_absolute(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VICOURSE_DATA", "~/mnist")
    assert data_root() == tmp_path.resolve() / "home" / "mnist"
    monkeypatch.chdir(tmp_path)
    assert data_root("relative/data") == tmp_path.resolve() / "relative" / "data"
    assert data_root("relative/data").is_absolute()


# ----------------------------------------------------------------------------- load_mnist


def raw_folder_or_skip() -> Path:
    raw = data_root() / "MNIST" / "raw"
    found = [(raw / n).exists() or (raw / f"{n}.gz").exists() for n in MNIST_FILES]
    if not all(found):
        pytest.skip(
            f"MNIST is not in {raw}: set VICOURSE_DATA to the folder that holds MNIST/raw "
            "(CI sets VICOURSE_DATA=../shared/data) to run the tests on the real data set"
        )
    return raw


@pytest.fixture(scope="module")
def mnist() -> dict[str, MNISTTensors]:
    """Both real MNIST splits, loaded once for this module (skips without the files)."""
    raw_folder_or_skip()
    return {split: load_mnist(split, download=False) for split in ("train", "test")}


@pytest.mark.parametrize(("split", "size"), [("train", 60_000), ("test", 10_000)])
def test_load_mnist_shapes_and_dtypes(mnist, split, size):
    tensors = mnist[split]
    assert isinstance(tensors, MNISTTensors) and len(tensors) == size
    assert tensors.images.shape == (size, 784) and tensors.images.dtype == torch.float32
    assert tensors.labels.shape == (size,) and tensors.labels.dtype == torch.int64
    assert tensors.images.device.type == "cpu"


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_grey_levels_are_bytes_divided_by_255(mnist, split):
    images = mnist[split].images
    assert images.min() == 0.0 and images.max() == 1.0
    scaled = images * 255
    assert torch.equal(scaled, scaled.round()), "grey levels should be k/255 for integer k"


@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_labels_are_balanced_digits(mnist, split):
    labels = mnist[split].labels
    counts = torch.bincount(labels, minlength=10)
    assert len(counts) == 10 and labels.min() == 0 and labels.max() == 9
    fractions = counts / len(labels)
    assert ((fractions > 0.085) & (fractions < 0.115)).all(), counts


def test_load_mnist_first_labels_are_the_published_ones(mnist):
    assert mnist["train"].labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert mnist["test"].labels[:5].tolist() == [7, 2, 1, 0, 4]


def test_load_mnist_training_pixel_statistics_are_the_published_ones(mnist):
    images = mnist["train"].images.double()
    assert images.mean().item() == pytest.approx(0.1307, abs=5e-4)
    assert images.std().item() == pytest.approx(0.3081, abs=5e-4)


@pytest.mark.parametrize(("split", "prefix"), [("train", "train"), ("test", "t10k")])
def test_load_mnist_agrees_with_an_independent_idx_reader(mnist, split, prefix):
    raw = raw_folder_or_skip()
    images = read_idx(raw / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte")
    assert images.shape[1:] == (28, 28)
    as_bytes = (mnist[split].images * 255).round().to(torch.uint8).reshape(-1, 28, 28)
    assert np.array_equal(as_bytes.numpy(), images)
    assert np.array_equal(mnist[split].labels.numpy(), labels.astype(np.int64))


def test_mnist_tensors_move_between_devices(mnist):
    moved = mnist["test"].to("cpu")
    assert isinstance(moved, MNISTTensors) and len(moved) == 10_000
    assert torch.equal(moved.images, mnist["test"].images)
    assert torch.equal(moved.labels, mnist["test"].labels)


def test_load_mnist_root_argument_beats_the_environment(mnist, tmp_path, monkeypatch):
    real_root = raw_folder_or_skip().parent.parent
    monkeypatch.setenv("VICOURSE_DATA", str(tmp_path))  # an empty folder
    test = load_mnist("test", root=real_root, download=False, device="cpu")
    assert torch.equal(test.labels, mnist["test"].labels)


@pytest.mark.parametrize("compress", [False, True], ids=["uncompressed", "gzip"])
def test_load_mnist_reads_standard_files_and_gzipped_ones(tmp_path, compress):
    """Tiny synthetic IDX files: images come back flattened as bytes / 255, labels as int64."""
    written = write_fake_mnist(tmp_path, compress)
    for split, (images, labels) in written.items():
        loaded = load_mnist(split, root=tmp_path, download=False)
        expected = torch.from_numpy(images.reshape(len(images), 784)).double() / 255
        torch.testing.assert_close(loaded.images.double(), expected, rtol=0, atol=1e-7)
        assert loaded.images.dtype == torch.float32
        assert loaded.labels.tolist() == labels.tolist() and loaded.labels.dtype == torch.int64


def test_missing_mnist_without_download_names_the_files_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("VICOURSE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(MNISTNotFoundError, match=r"download=False") as caught:
        load_mnist("test", download=False)
    message = str(caught.value)
    for name in MNIST_FILES:
        assert name in message
    assert "VICOURSE_DATA" in message
    assert str(tmp_path.resolve() / "nowhere" / "MNIST" / "raw") in message
    assert isinstance(caught.value, FileNotFoundError)


def test_failed_download_raises_mnist_not_found_with_the_reason(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    def refuse(self):
        raise RuntimeError("no route to the mirror")

    monkeypatch.setattr(MNIST, "download", refuse)
    expected = r"download failed: no route to the mirror"
    with pytest.raises(MNISTNotFoundError, match=expected) as caught:
        load_mnist("train", root=tmp_path, download=True)
    assert "VICOURSE_DATA" in str(caught.value) and MNIST_FILES[0] in str(caught.value)


@pytest.mark.parametrize("split", ["valid", "Train", "", None])
def test_load_mnist_rejects_unknown_splits(split, tmp_path):
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test', got"):
        load_mnist(split, root=tmp_path, download=False)


# ----------------------------------------------------------------------------- binarization


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threshold", [0.5, 0.2])
def test_binarize_threshold_is_a_strict_comparison(dtype, threshold):
    grey = np.array([[0.0, 0.1, 0.2, 0.3], [0.5, 0.51, 0.9, 1.0]])
    got = binarize_threshold(torch.tensor(grey, dtype=dtype), threshold=threshold)
    assert got.dtype == dtype and got.shape == grey.shape
    assert np.array_equal(got.numpy(), (grey > threshold).astype(float))


def test_binarize_threshold_on_mnist_gives_zeros_and_ones(mnist):
    images = mnist["test"].images
    binary = binarize_threshold(images)
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    assert binary.sum() == (images > 0.5).sum()


def test_binarize_dynamic_mean_matches_each_grey_level():
    levels = torch.linspace(0, 1, 11, dtype=torch.float64)
    n = 20_000
    draws = binarize_dynamic(levels.expand(n, -1), generator=torch.Generator().manual_seed(0))
    assert draws.dtype == torch.float64 and draws.shape == (n, 11)
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    assert (draws[:, 0] == 0).all() and (draws[:, -1] == 1).all()
    interior = slice(1, -1)
    standard_error = torch.sqrt(levels * (1 - levels) / n)[interior]
    z_scores = (draws.mean(0) - levels)[interior] / standard_error
    assert z_scores.abs().max() < 4.5, z_scores


def test_binarize_dynamic_on_mnist_preserves_the_mean_grey_level(mnist):
    images = mnist["test"].images.double()
    binary = binarize_dynamic(images, generator=torch.Generator().manual_seed(1))
    assert set(binary.unique().tolist()) == {0.0, 1.0}
    standard_error = math.sqrt((images * (1 - images)).sum().item()) / images.numel()
    assert abs(binary.mean().item() - images.mean().item()) < 4 * standard_error


def test_binarize_dynamic_draws_afresh_and_is_reproducible_with_a_generator():
    grey = torch.rand(64, 784, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(binarize_dynamic(grey), binarize_dynamic(grey))
    seeded = [binarize_dynamic(grey, generator=torch.Generator().manual_seed(s)) for s in (7, 7, 8)]
    assert torch.equal(seeded[0], seeded[1])
    assert not torch.equal(seeded[0], seeded[2])


BINARIZERS = [binarize_threshold, binarize_dynamic]


@pytest.mark.parametrize("binarize", BINARIZERS)
@pytest.mark.parametrize("bad", [[-0.1, 0.5], [0.5, 1.5], [0.0, 255.0]])
def test_binarizers_reject_grey_levels_outside_the_unit_interval(binarize, bad):
    with pytest.raises(ValueError, match=r"grey levels in \[0, 1\] \(divide uint8 pixels by 255"):
        binarize(torch.tensor(bad))


@pytest.mark.parametrize("binarize", BINARIZERS)
def test_binarizers_reject_nan(binarize):
    with pytest.raises(ValueError, match=r"grey levels in \[0, 1\].*NaN"):
        binarize(torch.tensor([0.2, float("nan")]))


@pytest.mark.parametrize("binarize", BINARIZERS)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_binarizers_reject_integer_images(binarize, dtype):
    with pytest.raises(TypeError, match=rf"float tensor in \[0, 1\], got dtype {dtype}"):
        binarize(torch.zeros(3, dtype=dtype))


# ----------------------------------------------------------------------------- minibatches


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), batch_size=st.integers(1, 350), seed=st.integers(0, 2**32 - 1))
def test_minibatches_cover_every_index_once_in_full_batches(n, batch_size, seed):
    batches = list(minibatches(n, batch_size, generator=torch.Generator().manual_seed(seed)))
    assert len(batches) == math.ceil(n / batch_size)
    assert all(b.dtype == torch.int64 and b.ndim == 1 for b in batches)
    assert all(len(b) == batch_size for b in batches[:-1])
    assert len(batches[-1]) == n - batch_size * (len(batches) - 1)
    assert torch.equal(torch.cat(batches).sort().values, torch.arange(n))


def test_minibatches_last_batch_holds_the_remainder():
    sizes = [len(b) for b in minibatches(10_000, 128, generator=torch.Generator().manual_seed(0))]
    assert sizes == [128] * 78 + [16]


def test_minibatches_are_shuffled_and_reproducible_with_a_seed():
    def epoch(seed):
        return torch.cat(list(minibatches(1000, 64, generator=torch.Generator().manual_seed(seed))))

    assert torch.equal(epoch(3), epoch(3))
    assert not torch.equal(epoch(3), epoch(4))
    assert not torch.equal(epoch(3), torch.arange(1000))


def test_minibatches_go_to_the_requested_device():
    assert all(b.device.type == "cpu" for b in minibatches(5, 2, device="cpu"))


@pytest.mark.parametrize(("n", "batch_size"), [(0, 5), (10, 0), (-1, 3), (10, -2)])
def test_minibatches_reject_non_positive_sizes_when_called(n, batch_size):
    with pytest.raises(ValueError, match=rf"must be positive, got n={n}, batch_size={batch_size}"):
        minibatches(n, batch_size)  # no iteration needed: the error comes at the call
