"""The API contract on bad input for the models (VAE, toy models, banana), the data loader,
the training loop and the device choice: a table of calls (CASES), each giving a correct,
finite result or a ValueError/TypeError whose message names the argument, plus hypothesis
properties that generate bad inputs.

Oracles: the layers of the model called directly, scipy.stats, torch.logit, a wider grid
for the banana's log Z, the same call with a tensor instead of a list; the MNIST cases use
copies (truncated, emptied, with a wrong header) of the real test files when they are on
disk, else tiny synthetic IDX files, and a local socket server on 127.0.0.1 that accepts
and never answers (no external address is contacted).
"""

from __future__ import annotations

import atexit
import gzip
import math
import os
import shutil
import socket
import struct
import tempfile
import threading
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from contract import Case, assert_holds, finite
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import nn

from vicourse.data import (
    MNIST_FILES,
    MNISTTensors,
    binarize_dynamic,
    binarize_threshold,
    data_root,
    load_mnist,
    minibatches,
)
from vicourse.device import best_device
from vicourse.models.banana import Banana, banana_data
from vicourse.models.toy_model import AffineGaussianEncoder, ConjugateGaussian, LinearGaussian
from vicourse.models.vae import VAE, active_units, mlp, reparameterized_sample
from vicourse.train import evaluate_elbo, train_vae

F64 = torch.float64
NAN, INF = float("nan"), float("inf")


# ----------------------------------------------------------------------------- helpers


def vae(dtype: torch.dtype = torch.float32) -> VAE:
    """A small VAE: 4 pixels, one hidden layer of 8, 2 latents."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return VAE(data_dim=4, hidden=(8,), latent_dim=2).to(dtype)


BINARY = [[0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]
GREY = [[0.1, 0.9, 0.2, 0.8], [0.7, 0.6, 0.1, 0.0], [0.3, 0.2, 0.9, 1.0]] * 4


def binary(*rows: list[float], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(rows or BINARY, dtype=dtype)


def seeded(call, seed: int = 0):
    """call() with torch's global generator seeded (for the stochastic ELBO)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return call()


def same(a, b) -> bool:
    return torch.equal(torch.as_tensor(a), torch.as_tensor(b))


def close(a, b, tol: float = 1e-6) -> bool:
    a, b = torch.as_tensor(a, dtype=F64), torch.as_tensor(b, dtype=F64)
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=tol, atol=tol))


def message_of(call, error: type[BaseException] = Exception) -> str:
    """'<ErrorType>: <message>' of the error ``call`` raises, or 'no error'."""
    try:
        call()
    except error as raised:
        return f"{type(raised).__name__}: {raised}"
    return "no error"


def train(images, **kwargs):
    """train_vae on the small VAE, one epoch unless told, without a progress bar."""
    kwargs = {"epochs": 1, "batch_size": 4, "progress": False, **kwargs}
    return seeded(lambda: train_vae(vae(), images, **kwargs))


def with_env(name: str, value: str, call):
    with mock.patch.dict(os.environ, {name: value}):
        return call()


# --- MNIST folders: copies of the real test split (or tiny synthetic files), then damaged

_TEMP: list[Path] = []


def scratch() -> Path:
    """A fresh empty folder, removed when the interpreter exits."""
    folder = Path(tempfile.mkdtemp(prefix="vicourse-contract-"))
    _TEMP.append(folder)
    return folder


atexit.register(lambda: [shutil.rmtree(f, ignore_errors=True) for f in _TEMP])


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def real_raw() -> Path | None:
    """The folder that holds the real MNIST files, if this machine has them."""
    here = Path(__file__).resolve().parents[2] / "shared" / "data" / "MNIST" / "raw"
    for raw in (data_root() / "MNIST" / "raw", here):
        if all((raw / name).is_file() for name in MNIST_FILES):
            return raw
    return None


_FILES: dict[str, bytes] = {}


def mnist_files() -> dict[str, bytes]:
    """The bytes of the four files: the real test split (or 5 synthetic images) and 3
    synthetic training images (a copy of the real 47 MB file is not needed here)."""
    if not _FILES:
        rng = np.random.default_rng(0)
        _FILES["train-images-idx3-ubyte"] = idx_bytes(rng.integers(0, 256, (3, 28, 28)))
        _FILES["train-labels-idx1-ubyte"] = idx_bytes(np.array([3, 1, 4]))
        raw = real_raw()
        for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            if raw is not None:
                _FILES[name] = (raw / name).read_bytes()
            elif "images" in name:
                _FILES[name] = idx_bytes(rng.integers(0, 256, (5, 28, 28)))
            else:
                _FILES[name] = idx_bytes(np.array([9, 2, 7, 0, 1]))
    return _FILES


def mnist_root(**replace: bytes | None) -> Path:
    """A data root whose MNIST/raw holds the four files; ``replace`` maps a file name
    (dashes as underscores, '.gz' as '_gz') to other bytes, or to None to leave it out."""
    root = scratch()
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    files = dict(mnist_files())
    for key, content in replace.items():
        name = key.replace("_gz", ".gz").replace("_", "-")
        files.pop(name.removesuffix(".gz"), None)
        if content is not None:
            files[name] = content
    for name, content in files.items():
        (raw / name).write_bytes(content)
    return root


def images_bytes() -> bytes:
    return mnist_files()["t10k-images-idx3-ubyte"]


def labels_bytes() -> bytes:
    return mnist_files()["t10k-labels-idx1-ubyte"]


def num_test() -> int:
    return struct.unpack(">I", labels_bytes()[4:8])[0]


def silent_server() -> int:
    """The port of a server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1]


def unreachable_load(root: Path, **kwargs):
    """load_mnist with downloads pointed at a server that never answers."""
    from torchvision.datasets import MNIST

    port = silent_server()
    with mock.patch.object(MNIST, "mirrors", [f"http://127.0.0.1:{port}/"]):
        return load_mnist("test", root=root, **kwargs)


def missing_root() -> Path:
    return scratch() / "no" / "such" / "folder"


def left_no_folder(call, root: Path) -> bool:
    """True if ``call`` failed with a clear error and created nothing under ``root``'s parent."""
    text = message_of(call, (ValueError, TypeError))
    return text != "no error" and not root.parent.parent.exists()


def loaded_test_split(result) -> bool:
    return (isinstance(result, MNISTTensors) and len(result) == num_test()
            and result.images.shape == (num_test(), 784) and result.images.dtype == torch.float32
            and float(result.images.min()) >= 0 and float(result.images.max()) <= 1)


# ----------------------------------------------------------------------------- oracles


def encoder_oracle(model: VAE, x) -> tuple[torch.Tensor, torch.Tensor]:
    return model.encoder(torch.as_tensor(x, dtype=torch.float32)).chunk(2, dim=-1)


def encodes_like_the_layers(x):
    model = vae()
    expected = encoder_oracle(model, x)
    return lambda result: all(close(a, b) for a, b in zip(result, expected, strict=True))


def bias_after(pixel_means, eps: float = 1e-3):
    model = vae()
    model.init_output_bias(pixel_means, eps=eps)
    return model.decoder[-1].bias.detach().clone()


def conjugate_oracle(x, s: float = 0.5) -> np.ndarray:
    return stats.norm.logpdf(np.asarray(x, dtype=float), scale=math.sqrt(1 + s**2))


BANANA = Banana()
LOG_Z = BANANA.log_normalizer(600, 9.0)  # a wider and finer grid than the default


def grid():
    return BANANA.posterior_grid(60)


# ----------------------------------------------------------------------------- the table

CASES: list[Case] = [
    # --- vae: construction
    Case("VAE data_dim=0", lambda: VAE(data_dim=0), raises=ValueError, names="data_dim"),
    Case("VAE data_dim=1.5", lambda: VAE(data_dim=1.5), raises=ValueError, names="data_dim"),
    Case("VAE latent_dim=True", lambda: VAE(latent_dim=True), raises=ValueError,
         names="latent_dim"),
    Case("VAE latent_dim=None", lambda: VAE(latent_dim=None), raises=ValueError,
         names="latent_dim"),
    Case("VAE hidden=5 (not a sequence)", lambda: VAE(hidden=5), raises=TypeError,
         names="hidden"),
    Case("VAE hidden=(8, -1)", lambda: VAE(hidden=(8, -1)), raises=ValueError, names="hidden"),
    Case("VAE activation=nn.ELU() (an instance)", lambda: VAE(activation=nn.ELU()),
         raises=TypeError, names="activation"),
    Case("mlp([4]) (no layer)", lambda: mlp([4]), raises=ValueError, names="sizes"),
    Case("mlp([4, 0, 2])", lambda: mlp([4, 0, 2]), raises=ValueError, names="sizes"),
    Case("mlp([4, 8, 2])", lambda: mlp([4, 8, 2]),
         check=lambda m: isinstance(m, nn.Sequential) and len(m) == 3),
    # --- vae: encode / decode
    Case("encode float64 x, float32 model", lambda: vae().encode(binary(dtype=F64)),
         raises=TypeError, names="x has dtype"),
    Case("encode float32 x, float64 model", lambda: vae(F64).encode(binary()),
         raises=TypeError, names="x has dtype"),
    Case("encode int64 x", lambda: vae().encode(binary().long()), raises=TypeError,
         names="x must be"),
    Case("encode list x", lambda: vae().encode(BINARY), check=encodes_like_the_layers(BINARY)),
    Case("encode NumPy float64 x", lambda: vae().encode(np.array(BINARY)),
         check=encodes_like_the_layers(BINARY)),
    Case("encode bool x (binary)", lambda: vae().encode(binary().bool()),
         check=encodes_like_the_layers(BINARY)),
    Case("encode x of shape (4,)", lambda: vae().encode(torch.zeros(4)), raises=ValueError,
         names="x must have shape"),
    Case("encode x of width 5", lambda: vae().encode(torch.zeros(2, 5)), raises=ValueError,
         names="x must have shape"),
    Case("encode empty batch", lambda: vae().encode(torch.zeros(0, 4)),
         check=lambda r: r[0].shape == r[1].shape == (0, 2)),
    Case("encode string x", lambda: vae().encode("images"), raises=TypeError, names="x must be"),
    Case("decode float64 z", lambda: vae().decode(torch.zeros(3, 2, dtype=F64)),
         raises=TypeError, names="z has dtype"),
    Case("decode z of shape (2,)", lambda: vae().decode(torch.zeros(2)), raises=ValueError,
         names="z must have shape"),
    Case("decode list z", lambda: vae().decode([[0.0, 0.5]]),
         check=lambda r: close(r, vae().decoder(torch.tensor([[0.0, 0.5]])))),
    # --- vae: init_output_bias, sample, reparameterized_sample, active_units
    Case("init_output_bias NaN pixel mean",
         lambda: bias_after(torch.tensor([0.1, NAN, 0.5, 0.5])), raises=ValueError,
         names="pixel_means"),
    Case("init_output_bias eps=0", lambda: bias_after(torch.tensor([0.0, 0.1, 0.5, 1.0]), 0.0),
         raises=ValueError, names="eps"),
    Case("init_output_bias eps=NaN", lambda: bias_after(torch.full((4,), 0.5), NAN),
         raises=ValueError, names="eps"),
    Case("init_output_bias eps=0.6", lambda: bias_after(torch.full((4,), 0.5), 0.6),
         raises=ValueError, names="eps"),
    Case("init_output_bias means of 0..255 pixels",
         lambda: bias_after(torch.tensor([12.0, 200.0, 0.0, 255.0])), raises=ValueError,
         names="pixel_means"),
    Case("init_output_bias wrong shape", lambda: bias_after(torch.full((5,), 0.5)),
         raises=ValueError, names="pixel_means must have shape"),
    Case("init_output_bias int64 means", lambda: bias_after(torch.zeros(4, dtype=torch.int64)),
         raises=TypeError, names="pixel_means"),
    Case("init_output_bias list", lambda: bias_after([0.0, 0.2, 0.5, 1.0]),
         check=lambda b: close(b, torch.logit(torch.tensor([1e-3, 0.2, 0.5, 1 - 1e-3])))),
    Case("init_output_bias float64 means", lambda: bias_after(torch.full((4,), 0.25, dtype=F64)),
         check=lambda b: close(b, torch.full((4,), math.log(1 / 3)))),
    Case("sample num_images=0", lambda: vae().sample(0), raises=ValueError, names="num_images"),
    Case("sample num_images=2.5", lambda: vae().sample(2.5), raises=ValueError,
         names="num_images"),
    Case("sample 3 images", lambda: vae().sample(3),
         check=lambda r: r.shape == (3, 4) and bool(((r > 0) & (r < 1)).all())),
    Case("sample from a float64 VAE", lambda: vae(F64).sample(2, torch.Generator().manual_seed(0)),
         check=lambda r: r.dtype == F64 and r.shape == (2, 4) and bool(((r > 0) & (r < 1)).all())),
    Case("reparameterized_sample float32 mu, float64 logvar",
         lambda: reparameterized_sample(torch.zeros(2, 3), torch.zeros(2, 3, dtype=F64)),
         raises=TypeError, names="logvar"),
    Case("reparameterized_sample shapes differ",
         lambda: reparameterized_sample(torch.zeros(2, 3), torch.zeros(3, 2)),
         raises=ValueError, names="logvar"),
    Case("reparameterized_sample lists",
         lambda: reparameterized_sample([[0.0, 1.0]], [[-50.0, -50.0]]),
         check=lambda z: close(z, [[0.0, 1.0]], 1e-6)),
    Case("reparameterized_sample num_samples=0",
         lambda: reparameterized_sample(torch.zeros(2, 3), torch.zeros(2, 3), 0),
         raises=ValueError, names="num_samples"),
    Case("active_units one image", lambda: active_units(vae(), torch.zeros(1, 4)),
         raises=ValueError, names="x must"),
    Case("active_units NaN image", lambda: active_units(vae(), torch.tensor([[NAN] * 4] * 3)),
         raises=ValueError, names="x has"),
    Case("active_units float64 x", lambda: active_units(vae(), binary(dtype=F64)),
         raises=TypeError, names="x has dtype"),
    Case("active_units threshold=NaN", lambda: active_units(vae(), binary(), threshold=NAN),
         raises=ValueError, names="threshold"),
    Case("active_units threshold=-1", lambda: active_units(vae(), binary(), threshold=-1.0),
         raises=ValueError, names="threshold"),
    Case("active_units list x", lambda: active_units(vae(), BINARY),
         check=lambda a: a == active_units(vae(), binary())),
    Case("active_units model is not a VAE", lambda: active_units("vae", binary()),
         raises=TypeError, names="model"),
    # --- toy model: ConjugateGaussian
    Case("ConjugateGaussian noise_std=NaN", lambda: ConjugateGaussian(noise_std=NAN),
         raises=ValueError, names="noise_std"),
    Case("ConjugateGaussian noise_std=True", lambda: ConjugateGaussian(noise_std=True),
         raises=ValueError, names="noise_std"),
    Case("conjugate log_prior list", lambda: ConjugateGaussian().log_prior([0.0, 1.0]),
         check=lambda r: close(r, stats.norm.logpdf([0.0, 1.0]))),
    Case("conjugate log_prior int64", lambda: ConjugateGaussian().log_prior(torch.tensor([1, 2])),
         raises=TypeError, names="z must be"),
    Case("conjugate log_prior NaN", lambda: ConjugateGaussian().log_prior(torch.tensor([NAN])),
         raises=ValueError, names="z has"),
    Case("conjugate log_likelihood list x",
         lambda: ConjugateGaussian(0.5).log_likelihood([0.3, 1.0], torch.tensor([0.0, 0.5])),
         check=lambda r: close(r, stats.norm.logpdf([0.3, 1.0], [0.0, 0.5], 0.5))),
    Case("conjugate log_likelihood shapes (3,) and (2,)",
         lambda: ConjugateGaussian().log_likelihood(torch.zeros(3), torch.zeros(2)),
         raises=ValueError, names="x and z"),
    Case("conjugate log_likelihood NaN x",
         lambda: ConjugateGaussian().log_likelihood(torch.tensor([NAN]), torch.zeros(1)),
         raises=ValueError, names="x has"),
    Case("conjugate log_likelihood float32 x, float64 z (promoted)",
         lambda: ConjugateGaussian(0.5).log_likelihood(torch.tensor([0.3]),
                                                       torch.tensor([0.1], dtype=F64)),
         check=lambda r: r.dtype == F64 and close(
             r, stats.norm.logpdf([float(torch.tensor(0.3))], 0.1, 0.5), 1e-12)),
    Case("conjugate log_joint string z", lambda: ConjugateGaussian().log_joint(0.0, "z"),
         raises=TypeError, names="z must be"),
    Case("conjugate log_evidence NumPy", lambda: ConjugateGaussian(0.5).log_evidence(
        np.array([0.0, 1.3])), check=lambda r: close(r, conjugate_oracle([0.0, 1.3]))),
    Case("conjugate log_evidence empty", lambda: ConjugateGaussian().log_evidence(torch.zeros(0)),
         check=lambda r: r.shape == (0,)),
    Case("conjugate log_evidence inf", lambda: ConjugateGaussian().log_evidence(
        torch.tensor([INF])), raises=ValueError, names="x has"),
    Case("conjugate posterior list", lambda: ConjugateGaussian(1.0).posterior([2.0, -1.0]).mean,
         check=lambda m: close(m, [1.0, -0.5])),
    Case("conjugate posterior NaN", lambda: ConjugateGaussian().posterior(torch.tensor([NAN])),
         raises=ValueError, names="x has"),
    Case("conjugate posterior int64", lambda: ConjugateGaussian().posterior(torch.tensor([1])),
         raises=TypeError, names="x must be"),
    Case("conjugate elbo q_std=NaN", lambda: ConjugateGaussian().elbo(
        torch.zeros(1), torch.zeros(1), torch.tensor([NAN])), raises=ValueError, names="q_std"),
    Case("conjugate elbo q_mean=inf", lambda: ConjugateGaussian().elbo(
        torch.zeros(1), torch.tensor([INF]), torch.ones(1)), raises=ValueError, names="q_mean"),
    Case("conjugate elbo q_std=0", lambda: ConjugateGaussian().elbo(0.0, 0.0, 0.0),
         raises=ValueError, names="q_std"),
    Case("conjugate elbo shapes (3,), (2,)", lambda: ConjugateGaussian().elbo(
        torch.zeros(3), torch.zeros(2), torch.ones(1)), raises=ValueError, names="q_mean"),
    Case("conjugate elbo lists at the posterior (= log evidence)",
         lambda: ConjugateGaussian(1.0).elbo([1.0, 2.0], [0.5, 1.0], [math.sqrt(0.5)] * 2),
         check=lambda r: close(r, conjugate_oracle([1.0, 2.0], 1.0), 1e-5)),
    Case("conjugate sample n=0", lambda: ConjugateGaussian().sample(0), raises=ValueError,
         names="n must"),
    Case("conjugate sample n=1.5", lambda: ConjugateGaussian().sample(1.5), raises=ValueError,
         names="n must"),
    # --- toy model: LinearGaussian
    Case("LinearGaussian weights=()", lambda: LinearGaussian(weights=()), raises=ValueError,
         names="weights"),
    Case("LinearGaussian weights=5", lambda: LinearGaussian(weights=5), raises=ValueError,
         names="weights"),
    Case("LinearGaussian weights with NaN", lambda: LinearGaussian(weights=(1.0, NAN)),
         raises=ValueError, names="weights"),
    Case("linear log_prior z of shape (3,)", lambda: LinearGaussian().log_prior(torch.zeros(3)),
         raises=ValueError, names="z must have shape"),
    Case("linear log_prior list", lambda: LinearGaussian().log_prior([[0.0, 1.0]]),
         check=lambda r: close(r, [stats.norm.logpdf([0.0, 1.0]).sum()])),
    Case("linear log_prior NaN z", lambda: LinearGaussian().log_prior(torch.tensor([[NAN, 0.0]])),
         raises=ValueError, names="z has"),
    Case("linear log_likelihood list x",
         lambda: LinearGaussian((1.0, 2.0), 0.5).log_likelihood([1.0], torch.tensor([[0.5, 0.25]])),
         check=lambda r: close(r, stats.norm.logpdf([1.0], 1.0, 0.5))),
    Case("linear log_likelihood x (4,), z (3, 2)",
         lambda: LinearGaussian().log_likelihood(torch.zeros(4), torch.zeros(3, 2)),
         raises=ValueError, names="x and z"),
    Case("linear log_evidence NaN", lambda: LinearGaussian().log_evidence(torch.tensor([NAN])),
         raises=ValueError, names="x has"),
    Case("linear posterior list", lambda: LinearGaussian((1.0, 1.0), 1.0).posterior([3.0]).mean,
         check=lambda m: close(m, [[1.0, 1.0]])),
    Case("linear posterior NaN", lambda: LinearGaussian().posterior(torch.tensor([NAN])),
         raises=ValueError, names="x has"),
    # --- toy model: AffineGaussianEncoder
    Case("AffineGaussianEncoder std=0", lambda: AffineGaussianEncoder(std=0.0),
         raises=ValueError, names="std"),
    Case("AffineGaussianEncoder slope=NaN", lambda: AffineGaussianEncoder(slope=NAN),
         raises=ValueError, names="slope"),
    Case("AffineGaussianEncoder intercept=inf", lambda: AffineGaussianEncoder(intercept=INF),
         raises=ValueError, names="intercept"),
    Case("AffineGaussianEncoder on a list",
         lambda: AffineGaussianEncoder(2.0, -1.0, 0.5)([0.0, 1.0]).mean,
         check=lambda m: close(m, [-1.0, 1.0])),
    Case("AffineGaussianEncoder on NaN", lambda: AffineGaussianEncoder()(torch.tensor([NAN])),
         raises=ValueError, names="x has"),
    # --- banana
    Case("banana_data seed=1.5", lambda: banana_data(seed=1.5), raises=TypeError, names="seed"),
    Case("banana_data seed=True", lambda: banana_data(seed=True), raises=TypeError,
         names="seed"),
    Case("banana_data seed=None", lambda: banana_data(seed=None), raises=TypeError,
         names="seed"),
    Case("banana_data seed=2**70", lambda: banana_data(seed=2**70), raises=ValueError,
         names="seed"),
    Case("banana_data NumPy seed", lambda: banana_data(seed=np.int64(5)),
         check=lambda y: same(y, banana_data(seed=5))),
    Case("banana_data n=0", lambda: banana_data(n=0), raises=ValueError, names="n must"),
    Case("banana_data theta=1.0 (not a pair)", lambda: banana_data(theta=1.0),
         raises=ValueError, names="theta"),
    Case("banana_data theta with NaN", lambda: banana_data(theta=(NAN, 1.0)), raises=ValueError,
         names="theta"),
    Case("banana_data NumPy theta", lambda: banana_data(theta=np.array([0.5, math.sqrt(0.5)])),
         check=lambda y: same(y, banana_data())),
    Case("Banana y=[]", lambda: Banana([]), raises=ValueError, names="y must"),
    Case("Banana y with NaN", lambda: Banana([1.0, NAN]), raises=ValueError, names="y "),
    Case("Banana y of shape (3, 2)", lambda: Banana(torch.ones(3, 2, dtype=F64)),
         raises=ValueError, names="y must"),
    Case("Banana y list", lambda: Banana([0.5, 1.5, 1.0]),
         check=lambda m: m.n == 3 and m.y.dtype == F64 and m.y_mean == pytest.approx(1.0)),
    Case("Banana sigma_theta=inf", lambda: Banana(sigma_theta=INF), raises=ValueError,
         names="sigma_theta"),
    Case("banana log_joint list theta", lambda: BANANA.log_joint([[0.5, 0.3]]),
         check=lambda r: close(r, BANANA.log_joint(torch.tensor([[0.5, 0.3]])))),
    Case("banana log_joint theta of shape (3,)", lambda: BANANA.log_joint(torch.zeros(3)),
         raises=ValueError, names="theta must have shape"),
    Case("banana log_joint int64 theta", lambda: BANANA.log_joint(torch.zeros(2).long()),
         raises=TypeError, names="theta must be"),
    Case("banana log_joint theta = (0, inf)",
         lambda: BANANA.log_joint(torch.tensor([0.0, INF], dtype=F64)),
         check=lambda r: float(r) == -INF),
    Case("banana log_joint empty batch", lambda: BANANA.log_joint(torch.zeros(0, 2, dtype=F64)),
         check=lambda r: r.shape == (0,)),
    Case("posterior_grid bound=0.1 (log Z -228.8, true -212.1)",
         lambda: BANANA.posterior_grid(100, bound=0.1), warns=UserWarning),
    Case("log_normalizer bound=1", lambda: BANANA.log_normalizer(100, bound=1.0),
         warns=UserWarning),
    Case("posterior_moments bound=2", lambda: BANANA.posterior_moments(100, bound=2.0),
         warns=UserWarning),
    Case("log_normalizer default", lambda: BANANA.log_normalizer(),
         check=lambda z: abs(z - LOG_Z) < 1e-8),
    Case("posterior_grid grid_size=2", lambda: BANANA.posterior_grid(2), raises=ValueError,
         names="grid_size"),
    Case("posterior_grid grid_size=1.5", lambda: BANANA.posterior_grid(1.5), raises=ValueError,
         names="grid_size"),
    Case("posterior_grid grid_size=10**6", lambda: BANANA.posterior_grid(10**6),
         raises=ValueError, names="grid_size"),
    Case("posterior_grid bound=NaN", lambda: BANANA.posterior_grid(50, NAN), raises=ValueError,
         names="bound"),
    Case("posterior_grid bound=1e300", lambda: BANANA.posterior_grid(50, 1e300),
         raises=ValueError, names="bound"),
    Case("expectation of values of the wrong shape",
         lambda: grid().expectation(torch.ones(60, 59, dtype=F64)), raises=ValueError,
         names="values must have shape"),
    Case("expectation of float32 values", lambda: grid().expectation(torch.ones(60, 60)),
         raises=TypeError, names="values"),
    Case("expectation of NaN values",
         lambda: grid().expectation(torch.full((60, 60), NAN, dtype=F64)), raises=ValueError,
         names="values has"),
    Case("expectation of ones", lambda: grid().expectation(torch.ones(60, 60, 2, dtype=F64)),
         check=lambda r: close(r, [1.0, 1.0], 1e-9)),
    Case("theta1_given_theta2 list", lambda: BANANA.theta1_given_theta2([0.0, 1.0]).mean,
         check=lambda m: close(m, BANANA.theta1_given_theta2(
             torch.tensor([0.0, 1.0], dtype=F64)).mean)),
    Case("theta1_given_theta2 NaN", lambda: BANANA.theta1_given_theta2(torch.tensor([NAN])),
         raises=ValueError, names="theta2"),
    Case("log_joint_theta2 list", lambda: BANANA.log_joint_theta2([0.5]),
         check=lambda r: close(r, BANANA.log_joint_theta2(torch.tensor([0.5], dtype=F64)))),
    Case("log_joint_theta2 NaN", lambda: BANANA.log_joint_theta2(torch.tensor([NAN])),
         raises=ValueError, names="theta2"),
    Case("sample_posterior num_samples=0", lambda: BANANA.sample_posterior(0),
         raises=ValueError, names="num_samples"),
    Case("sample_posterior generator='seed'", lambda: BANANA.sample_posterior(5, "seed"),
         raises=TypeError, names="generator"),
    # --- data: minibatches, binarization, data_root, MNISTTensors
    Case("minibatches(10.5, 3)", lambda: minibatches(10.5, 3), raises=ValueError,
         names="n=10.5"),
    Case("minibatches(None, 3)", lambda: minibatches(None, 3), raises=ValueError,
         names="n=None"),
    Case("minibatches(10, 2.5)", lambda: minibatches(10, 2.5), raises=ValueError,
         names="batch_size=2.5"),
    Case("minibatches(True, 3)", lambda: minibatches(True, 3), raises=ValueError,
         names="n=True"),
    Case("minibatches NumPy n", lambda: list(minibatches(np.int64(10), 3)),
         check=lambda b: same(torch.cat(b).sort().values, torch.arange(10))),
    Case("minibatches device='gpu0'", lambda: minibatches(10, 3, device="gpu0"),
         raises=ValueError, names="device"),
    Case("binarize_threshold list", lambda: binarize_threshold([[0.2, 0.7]]),
         check=lambda r: same(r, torch.tensor([[0.0, 1.0]]))),
    Case("binarize_threshold threshold=NaN",
         lambda: binarize_threshold(torch.tensor([0.2, 0.7]), NAN), raises=ValueError,
         names="threshold"),
    Case("binarize_threshold threshold=1.5",
         lambda: binarize_threshold(torch.tensor([0.2, 0.7]), 1.5), raises=ValueError,
         names="threshold"),
    Case("binarize_threshold 0..255 pixels", lambda: binarize_threshold(torch.tensor([0., 255.])),
         raises=ValueError, names="images must"),
    Case("binarize_dynamic uint8", lambda: binarize_dynamic(torch.zeros(3, dtype=torch.uint8)),
         raises=TypeError, names="images must"),
    Case("binarize_dynamic inf", lambda: binarize_dynamic(torch.tensor([0.5, INF])),
         raises=ValueError, names="images must"),
    Case("binarize_dynamic list", lambda: binarize_dynamic([[0.0, 1.0]]),
         check=lambda r: same(r, torch.tensor([[0.0, 1.0]]))),
    Case("binarize_dynamic generator='seed'",
         lambda: binarize_dynamic(torch.tensor([0.5]), generator="seed"), raises=TypeError,
         names="generator"),
    Case("data_root(123)", lambda: data_root(123), raises=TypeError, names="root"),
    Case("MNISTTensors with 3 images and 2 labels",
         lambda: MNISTTensors(torch.zeros(3, 784), torch.zeros(2, dtype=torch.int64)),
         raises=ValueError, names="labels"),
    Case("MNISTTensors.to('gpu0')",
         lambda: MNISTTensors(torch.zeros(1, 784), torch.zeros(1, dtype=torch.int64)).to("gpu0"),
         raises=ValueError, names="device"),
    # --- data: load_mnist
    Case("load_mnist the test split", lambda: load_mnist("test", root=mnist_root(),
                                                        download=False),
         check=loaded_test_split),
    Case("load_mnist truncated image file",
         lambda: load_mnist("test", root=mnist_root(t10k_images_idx3_ubyte=images_bytes()[:5000]),
                           download=False),
         raises=ValueError, names="t10k-images-idx3-ubyte"),
    Case("load_mnist truncated label file", lambda: load_mnist(
        "test", root=mnist_root(t10k_labels_idx1_ubyte=labels_bytes()[:-1]), download=False),
         raises=ValueError, names="t10k-labels-idx1-ubyte"),
    Case("load_mnist empty image file",
         lambda: load_mnist("test", root=mnist_root(t10k_images_idx3_ubyte=b""), download=False),
         raises=ValueError, names="t10k-images-idx3-ubyte"),
    Case("load_mnist image file with a wrong header", lambda: load_mnist(
        "test", root=mnist_root(t10k_images_idx3_ubyte=b"\x00\x00\x08\x09" + images_bytes()[4:]),
        download=False), raises=ValueError, names="t10k-images-idx3-ubyte"),
    Case("load_mnist labels file holding images", lambda: load_mnist(
        "test", root=mnist_root(t10k_labels_idx1_ubyte=images_bytes()), download=False),
         raises=ValueError, names="t10k-labels-idx1-ubyte"),
    Case("load_mnist fewer labels than images", lambda: load_mnist(
        "test", root=mnist_root(t10k_labels_idx1_ubyte=idx_bytes(np.zeros(3))), download=False),
         raises=ValueError, names="t10k-labels-idx1-ubyte"),
    Case("load_mnist corrupt .gz only", lambda: load_mnist(
        "test", root=mnist_root(t10k_images_idx3_ubyte_gz=b"not a gzip file"), download=False),
         raises=ValueError, names="t10k-images-idx3-ubyte.gz"),
    Case("load_mnist truncated .gz only", lambda: load_mnist("test", root=mnist_root(
        t10k_images_idx3_ubyte_gz=gzip.compress(images_bytes()[:99_999])[:2000]), download=False),
         raises=ValueError, names="t10k-images-idx3-ubyte.gz"),
    Case("load_mnist missing, download=False",
         lambda: load_mnist("test", root=missing_root(), download=False), raises=ValueError,
         names="download=False"),
    Case("load_mnist missing, download=False, creates no folder",
         lambda: (root := missing_root()) and left_no_folder(
             lambda: load_mnist("test", root=root, download=False), root), check=bool),
    Case("load_mnist server that never answers", lambda: unreachable_load(
        missing_root(), timeout=1.0), raises=ValueError, names="no network was reached"),
    Case("load_mnist server that never answers, creates no folder",
         lambda: (root := missing_root()) and left_no_folder(
             lambda: unreachable_load(root, timeout=1.0), root), check=bool),
    Case("load_mnist timeout=0", lambda: load_mnist("test", root=mnist_root(), download=False,
                                                      timeout=0),
         raises=ValueError, names="timeout"),
    Case("load_mnist download='no'", lambda: load_mnist("test", root=mnist_root(),
                                                       download="no"),
         raises=TypeError, names="download"),
    Case("load_mnist device='gpu0'", lambda: load_mnist("test", root=mnist_root(),
                                                       download=False, device="gpu0"),
         raises=ValueError, names="device"),
    Case("load_mnist root=3.5", lambda: load_mnist("test", root=3.5), raises=TypeError,
         names="root"),
    # --- train: evaluate_elbo, train_vae
    Case("evaluate_elbo on an empty tensor", lambda: evaluate_elbo(vae(), torch.zeros(0, 4)),
         raises=ValueError, names="x is empty"),
    Case("evaluate_elbo float64 x", lambda: evaluate_elbo(vae(), binary(dtype=F64)),
         raises=TypeError, names="x has dtype"),
    Case("evaluate_elbo grey x", lambda: evaluate_elbo(vae(), torch.full((2, 4), 0.5)),
         raises=ValueError, names="x must"),
    Case("evaluate_elbo NaN x", lambda: evaluate_elbo(vae(), torch.full((2, 4), NAN)),
         raises=ValueError, names="x has"),
    Case("evaluate_elbo batch_size=0", lambda: evaluate_elbo(vae(), binary(), 0),
         raises=ValueError, names="batch_size"),
    Case("evaluate_elbo model is a string", lambda: evaluate_elbo("vae", binary()),
         raises=TypeError, names="model"),
    Case("evaluate_elbo list x", lambda: seeded(lambda: evaluate_elbo(vae(), BINARY)),
         check=lambda v: v == seeded(lambda: evaluate_elbo(vae(), binary()))),
    Case("evaluate_elbo bool x", lambda: seeded(lambda: evaluate_elbo(vae(), binary().bool())),
         check=lambda v: v == seeded(lambda: evaluate_elbo(vae(), binary()))),
    Case("train_vae on pixels in 0..255", lambda: train(torch.tensor(GREY) * 255),
         raises=ValueError, names="train_images"),
    Case("train_vae on negative pixels", lambda: train(torch.tensor(GREY) - 0.5),
         raises=ValueError, names="train_images"),
    Case("train_vae on all-NaN images", lambda: train(torch.full((8, 4), NAN)),
         raises=ValueError, names="train_images"),
    Case("train_vae on an empty tensor", lambda: train(torch.zeros(0, 4)), raises=ValueError,
         names="train_images"),
    Case("train_vae on float64 images", lambda: train(torch.tensor(GREY, dtype=F64)),
         raises=TypeError, names="train_images"),
    Case("train_vae lr=1e6 raises FloatingPointError naming lr",
         lambda: message_of(lambda: train(torch.tensor(GREY), lr=1e6, epochs=3)),
         check=lambda m: m.startswith("FloatingPointError") and "lr=" in m),
    Case("train_vae lr=NaN", lambda: train(torch.tensor(GREY), lr=NAN), raises=ValueError,
         names="lr"),
    Case("train_vae epochs=0", lambda: train(torch.tensor(GREY), epochs=0), raises=ValueError,
         names="epochs"),
    Case("train_vae batch_size=1.5", lambda: train(torch.tensor(GREY), batch_size=1.5),
         raises=ValueError, names="batch_size"),
    Case("train_vae binarize='otsu'", lambda: train(torch.tensor(GREY), binarize="otsu"),
         raises=ValueError, names="binarize"),
    Case("train_vae loss_fn=None", lambda: train(torch.tensor(GREY), loss_fn=None),
         raises=TypeError, names="loss_fn"),
    Case("train_vae grey test_x", lambda: train(torch.tensor(GREY), test_x=torch.tensor(GREY)),
         raises=ValueError, names="test_x"),
    Case("train_vae test_x of width 3", lambda: train(torch.tensor(GREY),
                                                      test_x=torch.zeros(2, 3)),
         raises=ValueError, names="test_x"),
    Case("train_vae train_eval_x NaN", lambda: train(torch.tensor(GREY),
                                                     train_eval_x=torch.full((2, 4), NAN)),
         raises=ValueError, names="train_eval_x"),
    Case("train_vae list images", lambda: train(GREY, test_x=BINARY, epochs=2),
         check=lambda h: len(h.train_loss) == len(h.test_elbo) == 2 and finite(h.train_loss)
         and finite(h.test_elbo)),
    # --- device
    Case("best_device('tpu')", lambda: best_device("tpu"), raises=ValueError, names="prefer"),
    Case("best_device(1)", lambda: best_device(1), raises=TypeError, names="prefer"),
    Case("best_device('cpu')", lambda: best_device("cpu"),
         check=lambda d: d == torch.device("cpu")),
    Case("best_device(torch.device('cpu'))", lambda: best_device(torch.device("cpu")),
         check=lambda d: d == torch.device("cpu")),
    Case("best_device('cuda:x')", lambda: best_device("cuda:x"), raises=ValueError,
         names="cuda:x"),
    Case("best_device with VICOURSE_DEVICE=tpu",
         lambda: with_env("VICOURSE_DEVICE", "tpu", best_device), raises=ValueError,
         names="VICOURSE_DEVICE"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_contract(case):
    assert_holds(case)


# ----------------------------------------------------------------------------- properties

PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
DTYPES = [torch.float32, torch.float64, torch.int64, torch.bool, torch.float16]
SPECIAL = [0.0, 1.0, 0.5, NAN, INF, -INF, -1.0, 255.0, 1e-30]


def bad_tensor(draw, max_dims: int = 3, sizes=(0, 1, 2, 3, 4, 5)) -> torch.Tensor:
    shape = draw(st.lists(st.sampled_from(sizes), min_size=0, max_size=max_dims))
    dtype = draw(st.sampled_from(DTYPES))
    values = torch.tensor(draw(st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=4)))
    flat = values.repeat(math.prod(shape) // len(values) + 1)[: math.prod(shape)]
    return flat.reshape(shape).to(dtype) if dtype.is_floating_point else (
        flat.nan_to_num(0).clamp(-1, 255).to(dtype).reshape(shape))


def returns_or_names(call, names: tuple[str, ...], check) -> None:
    """call() returns a result that passes check, or raises ValueError/TypeError naming one of
    names (no raw torch error, no NaN)."""
    try:
        result = call()
    except (ValueError, TypeError) as error:
        assert any(name in str(error) for name in names), f"{type(error).__name__}: {error}"
        return
    assert check(result), result


@PROPERTY
@given(data=st.data())
def test_evaluate_elbo_on_generated_bad_images(data):
    x = bad_tensor(data.draw, sizes=(0, 1, 2, 4, 5))
    model = vae()

    def valid(value: float) -> bool:
        binary_float = (x.dtype in (torch.float32, torch.bool) and x.ndim == 2
                        and x.shape[1] == 4 and len(x) > 0)
        return binary_float and math.isfinite(value)

    returns_or_names(lambda: evaluate_elbo(model, x), ("x ", "x:"), valid)


@PROPERTY
@given(data=st.data())
def test_train_vae_on_generated_bad_images(data):
    images = bad_tensor(data.draw, max_dims=2, sizes=(0, 1, 4, 5))

    def valid(history) -> bool:
        return finite(history.train_loss) and bool(((images >= 0) & (images <= 1)).all())

    returns_or_names(lambda: train(images), ("train_images",), valid)


@PROPERTY
@given(data=st.data(), use_list=st.booleans())
def test_banana_log_joint_on_generated_theta(data, use_list):
    theta = bad_tensor(data.draw)
    argument = theta.tolist() if use_list and theta.ndim else theta

    def valid(values: torch.Tensor) -> bool:
        """The values of the same points in float64 (inf and NaN where they are)."""
        expected = BANANA.log_prior(theta.double()) + BANANA.log_likelihood(theta.double())
        values = values.double()
        same_special = all(bool((f(values) == f(expected)).all())
                           for f in (torch.isnan, torch.isposinf, torch.isneginf))
        regular = torch.isfinite(expected)
        tol = 1e-2 if theta.dtype == torch.float16 else 1e-5
        return values.shape == theta.shape[:-1] and same_special and close(
            values[regular], expected[regular], tol)

    returns_or_names(lambda: BANANA.log_joint(argument), ("theta",), valid)


@PROPERTY
@given(x=st.sampled_from([0.5, NAN, INF, [0.1, 0.2], "x", None]),
       data=st.data())
def test_conjugate_model_on_generated_inputs(x, data):
    z = bad_tensor(data.draw, max_dims=2)
    model = ConjugateGaussian(0.5)

    def valid(values: torch.Tensor) -> bool:
        """scipy's log p(x, z), rounded to z's dtype (float16 overflows to -inf correctly)."""
        if not (z.is_floating_point() and bool(torch.isfinite(z).all())):
            return False
        z64, x64 = z.double().numpy(), np.asarray(x, dtype=float)
        exact = stats.norm.logpdf(z64) + stats.norm.logpdf(x64, z64, 0.5)
        expected = torch.as_tensor(exact).to(z.dtype).double()
        tol = 1e-2 if z.dtype == torch.float16 else 1e-5
        return bool(torch.isclose(values.double(), expected, rtol=tol, atol=tol).all())

    returns_or_names(lambda: model.log_joint(x, z), ("x ", "z ", "x and z", "x must", "z must"),
                     valid)


@PROPERTY
@given(n=st.sampled_from([0, -1, 1.5, True, None, "3", np.int64(7), 7, 2.0**40, -(2**70)]),
       batch_size=st.sampled_from([0, -2, 2.5, False, None, 3, np.int32(4)]))
def test_minibatches_on_generated_counts(n, batch_size):
    def valid(batches) -> bool:
        return same(torch.cat(list(batches)).sort().values, torch.arange(int(n)))

    returns_or_names(lambda: minibatches(n, batch_size), ("n=", "batch_size="), valid)


@PROPERTY
@given(bound=st.sampled_from([0.05, 0.5, 1.0, 2.0, 3.0]),
       sigma_theta=st.sampled_from([0.5, 1.0, 3.0]))
def test_small_grids_warn_and_wide_grids_are_right(bound, sigma_theta):
    """A grid that cuts the posterior off warns; one that does not agrees with a wide grid."""
    import warnings

    model = Banana(sigma_theta=sigma_theta)
    reference = model.log_normalizer(300, 12.0 * sigma_theta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log_z = model.log_normalizer(300, bound)
    warned = any(issubclass(w.category, UserWarning) for w in caught)
    assert warned or abs(log_z - reference) < 1e-6, (log_z, reference)


# ----------------------------------------------------------------------------- MNIST in detail


def test_a_truncated_real_file_is_named_with_the_fix(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, content in mnist_files().items():
        (raw / name).write_bytes(content)
    damaged = raw / "t10k-images-idx3-ubyte"
    damaged.write_bytes(images_bytes()[: len(images_bytes()) // 2])
    with pytest.raises(ValueError) as caught:
        load_mnist("test", root=tmp_path, download=False)
    message = str(caught.value)
    assert str(damaged) in message and "truncated" in message
    assert "delete it and call load_mnist again" in message
    assert load_mnist("train", root=tmp_path, download=False).images.shape == (3, 784)


def test_a_download_that_never_answers_gives_up_after_the_timeout(tmp_path):
    import time

    root = tmp_path / "data"
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"no network was reached.*timeout=1 s") as caught:
        unreachable_load(root, timeout=1.0)
    assert time.perf_counter() - start < 10
    assert "MNIST was not found" in str(caught.value) and MNIST_FILES[0] in str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)  # an MNISTNotFoundError, as before
    assert not root.exists()
    assert socket.getdefaulttimeout() is None  # restored


def test_a_failed_download_leaves_an_existing_folder_as_it_was(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(labels_bytes())
    with pytest.raises(ValueError, match="no network was reached"):
        unreachable_load(tmp_path, timeout=0.5)
    assert [p.name for p in raw.iterdir()] == ["t10k-labels-idx1-ubyte"]


def test_a_download_lands_in_the_data_root_only_when_complete(tmp_path, monkeypatch):
    """torchvision's download replaced by one that writes the files: they are moved from the
    temporary folder into root/MNIST/raw, and files already there are kept."""
    from torchvision.datasets import MNIST

    seen = {}

    def fake_download(self):
        seen["timeout"] = socket.getdefaulttimeout()
        seen["folder"] = Path(self.raw_folder)
        Path(self.raw_folder).mkdir(parents=True)
        for name, content in mnist_files().items():
            Path(self.raw_folder, name).write_bytes(content)

    monkeypatch.setattr(MNIST, "download", fake_download)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    kept = idx_bytes(np.array([1, 2, 3]))
    (raw / "train-labels-idx1-ubyte").write_bytes(kept)
    loaded = load_mnist("test", root=tmp_path, timeout=7.0)
    assert loaded_test_split(loaded)
    assert seen["timeout"] == 7.0 and not seen["folder"].is_relative_to(tmp_path)
    assert not seen["folder"].exists()  # the temporary folder is gone
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_FILES)
    assert (raw / "train-labels-idx1-ubyte").read_bytes() == kept


def test_a_gzip_in_place_of_an_uncompressed_file_says_to_rename_it(tmp_path):
    root = mnist_root(t10k_labels_idx1_ubyte=gzip.compress(labels_bytes()))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte is gzip-compressed; rename it"):
        load_mnist("test", root=root, download=False)


# ----------------------------------------------------------------------------- no new warnings


def test_the_books_grids_do_not_warn():
    import warnings

    model = Banana(banana_data())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for size in (25, 50, 100, 200, 400, 800):
            model.log_normalizer(size)
        model.log_normalizer(400, bound=8.0)
        model.posterior_moments()


def test_the_edge_warning_says_what_to_do():
    with pytest.warns(UserWarning, match=r"edge of the grid.*pass a larger bound"):
        log_z = BANANA.log_normalizer(100, bound=0.1)
    assert log_z < LOG_Z - 10  # the silently wrong -228.8 of the issue, now with a warning
