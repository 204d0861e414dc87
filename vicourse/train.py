"""Training a VAE on whole-dataset tensors: random permutations for batches, no DataLoader.

The training images stay in one ``(N, D)`` tensor on the device. Each epoch draws a random
permutation, cuts it into index batches and, for dynamic binarization, draws fresh Bernoulli
pixels for the batch. Nothing in the loop touches PIL images or per-image Python code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vicourse._checks import as_tensor, check_all_finite, check_positive_finite, positive_count
from vicourse.data import _check_unit_interval, binarize_threshold, minibatches
from vicourse.models.vae import VAE
from vicourse.objectives.bounds import elbo, negative_elbo_loss

Loss = Callable[[VAE, Tensor], Tensor]
BINARIZATIONS = ("dynamic", "static", "none")


@dataclass
class History:
    """Per-epoch records of a training run (one entry per epoch).

    Attributes:
        train_loss: the loss averaged over the epoch's images, as the parameters changed
            during the epoch (for the negative ELBO, minus the running train ELBO).
        test_elbo: the ELBO averaged over the test images after the epoch (empty if no
            test images were given).
        train_elbo: the same for the fixed binary training images passed as
            ``train_eval_x`` (empty if none were given): with ``test_elbo`` it shows the
            train/test gap.
        seconds: wall-clock seconds of each epoch's training steps (evaluation excluded).
    """

    train_loss: list[float] = field(default_factory=list)
    test_elbo: list[float] = field(default_factory=list)
    train_elbo: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


@torch.no_grad()
def evaluate_elbo(model: VAE, x: Tensor, batch_size: int = 2000) -> float:
    """The ELBO averaged over the binary images ``x`` of shape ``(N, D)`` (nats per image)."""
    x, batch_size = _check_evaluate_args(model, x, batch_size)
    was_training = model.training
    model.eval()
    total = sum(float(elbo(model, batch).sum()) for batch in x.split(batch_size))
    model.train(was_training)
    return total / len(x)


def train_vae(
    model: VAE,
    train_images: Tensor,
    test_x: Tensor | None = None,
    *,
    train_eval_x: Tensor | None = None,
    epochs: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    final_lr: float | None = None,
    binarize: str = "dynamic",
    loss_fn: Loss = negative_elbo_loss,
    progress: bool = True,
) -> History:
    """Train model in place with Adam on random batches of train_images, for the given epochs.

    train_images: (N, D) grey levels; test_x, train_eval_x: (M, D) binary, evaluated every epoch
    """
    epochs, batch_size, train_images, test_x, train_eval_x = _check_train_vae_args(
        model, train_images, test_x, train_eval_x, epochs, batch_size, lr, final_lr, binarize,
        loss_fn)
    data = binarize_threshold(train_images) if binarize == "static" else train_images  # (N, D)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    # the learning rate decays geometrically from lr in the first epoch to final_lr in the last
    decay = 1.0 if final_lr is None or epochs == 1 else (final_lr / lr) ** (1 / (epochs - 1))
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=decay)
    history = History()
    bar = tqdm(range(epochs), desc="epochs", disable=not progress)
    for epoch in bar:
        model.train()
        start, total = time.perf_counter(), torch.zeros(())
        for index in minibatches(len(data), batch_size, device=data.device):
            batch = data[index]  # (batch_size, D)
            if binarize == "dynamic":  # Bernoulli(grey level), faster than torch.bernoulli
                batch = (torch.rand_like(batch) < batch).to(batch.dtype)
            loss = loss_fn(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(index)
        schedule.step()
        history.seconds.append(time.perf_counter() - start)
        history.train_loss.append(float(total) / len(data))
        _check_finite_loss(history.train_loss[-1], epoch, epochs, lr)
        cuda = [data.device] if data.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # evaluating leaves training's draws alone
            if test_x is not None:
                history.test_elbo.append(evaluate_elbo(model, test_x))
            if train_eval_x is not None:
                history.train_elbo.append(evaluate_elbo(model, train_eval_x))
        bar.set_postfix(loss=history.train_loss[-1],
                        test_elbo=history.test_elbo[-1] if history.test_elbo else None)
    return history


def _check_train_vae_args(
    model: VAE,
    train_images: Tensor,
    test_x: Tensor | None,
    train_eval_x: Tensor | None,
    epochs: int,
    batch_size: int,
    lr: float,
    final_lr: float | None,
    binarize: str,
    loss_fn: Loss,
) -> tuple[int, int, Tensor, Tensor | None, Tensor | None]:
    """epochs and batch_size as ints and the images as tensors, after checking the schedule,
    binarize, loss_fn, the grey levels of train_images and the binary evaluation images."""
    epochs = positive_count(epochs, "epochs")
    batch_size = positive_count(batch_size, "batch_size")
    check_positive_finite(lr, "lr")
    if final_lr is not None:
        check_positive_finite(final_lr, "final_lr")
    if binarize not in BINARIZATIONS:
        raise ValueError(f"binarize must be one of {BINARIZATIONS}, got {binarize!r}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a function (model, batch) -> scalar loss, e.g. "
                        f"negative_elbo_loss, got {loss_fn!r}")
    train_images = _check_images(model, train_images, "train_images", binary=False)
    if test_x is not None:
        test_x = _check_images(model, test_x, "test_x", binary=True)
    if train_eval_x is not None:
        train_eval_x = _check_images(model, train_eval_x, "train_eval_x", binary=True)
    return epochs, batch_size, train_images, test_x, train_eval_x


def _check_evaluate_args(model: VAE, x: Tensor, batch_size: int) -> tuple[Tensor, int]:
    """x as binary images of the model's dtype and batch_size as an int, after checking them."""
    return _check_images(model, x, "x", binary=True), positive_count(batch_size, "batch_size")


def _check_images(model: VAE, x: Tensor, name: str, binary: bool) -> Tensor:
    """x as a tensor of the model's dtype (array-likes and booleans converted), after checking
    its dtype, device and shape (N, D) with N >= 1, and that it holds finite grey levels in
    [0, 1] (binary=False) or binary pixels (binary=True)."""
    if not (isinstance(model, torch.nn.Module) and hasattr(model, "encode")):
        raise TypeError(f"model must be a VAE (a module with encode and decode), got "
                        f"{type(model).__name__}")
    parameter = next(model.parameters())
    x = as_tensor(x, name, dtype=None if isinstance(x, Tensor) else parameter.dtype)
    if x.dtype == torch.bool:  # binary images, converted exactly
        x = x.to(parameter.dtype)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}; divide "
                        f"uint8 pixels by 255: {name}.float() / 255")
    if x.dtype != parameter.dtype or x.device != parameter.device:
        raise TypeError(
            f"{name} has dtype {x.dtype} on {x.device} but the model's parameters are "
            f"{parameter.dtype} on {parameter.device}; convert it with "
            f"{name}.to({parameter.dtype}) (or the model with model.to({x.dtype}))"
        )
    data_dim = getattr(model, "data_dim", x.shape[-1] if x.ndim else 0)
    if x.ndim != 2 or x.shape[1] != data_dim:
        raise ValueError(f"{name} must have shape (N, {data_dim}), got {tuple(x.shape)}; "
                         "flatten images with x.reshape(len(x), -1)")
    if len(x) == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); pass at least one image")
    if not binary:
        _check_unit_interval(x, name)
        return x
    check_all_finite(x, name)
    if int(torch.count_nonzero(x * (1 - x))):  # zero exactly when every pixel is 0 or 1
        bad = x[(x != 0) & (x != 1)][:3].tolist()
        raise ValueError(
            f"{name} must hold binary images (pixels 0 or 1), got values such as "
            f"[{', '.join(f'{v:.3g}' for v in bad)}]; binarize grey levels first with "
            "vicourse.data.binarize_dynamic (a Bernoulli draw) or binarize_threshold"
        )
    return x


def _check_finite_loss(loss: float, epoch: int, epochs: int, lr: float) -> None:
    """Raise FloatingPointError, naming lr, when an epoch's training loss is not finite."""
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"the training loss became {loss} in epoch {epoch + 1} of {epochs}: the parameters "
            f"diverged, most likely because lr={lr:g} is too large; lower lr (e.g. "
            f"lr={lr / 10:g}) or train in float64"
        )
