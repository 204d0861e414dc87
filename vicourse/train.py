"""Training a VAE on whole-dataset tensors: random permutations for batches, no DataLoader.

The training images stay in one ``(N, D)`` tensor on the device. Each epoch draws a random
permutation, cuts it into index batches and, for dynamic binarization, draws fresh Bernoulli
pixels for the batch. Nothing in the loop touches PIL images or per-image Python code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vicourse._checks import check_positive_finite, positive_count
from vicourse.data import binarize_threshold, minibatches
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
    batch_size = positive_count(batch_size, "batch_size")
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
    epochs, batch_size = _check_train_vae_args(
        model, train_images, epochs, batch_size, lr, final_lr, binarize)
    data = binarize_threshold(train_images) if binarize == "static" else train_images  # (N, D)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    # the learning rate decays geometrically from lr in the first epoch to final_lr in the last
    decay = 1.0 if final_lr is None or epochs == 1 else (final_lr / lr) ** (1 / (epochs - 1))
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=decay)
    history = History()
    bar = tqdm(range(epochs), desc="epochs", disable=not progress)
    for _ in bar:
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
    epochs: int,
    batch_size: int,
    lr: float,
    final_lr: float | None,
    binarize: str,
) -> tuple[int, int]:
    """epochs and batch_size as ints, after checking the schedule, binarize and the images."""
    epochs = positive_count(epochs, "epochs")
    batch_size = positive_count(batch_size, "batch_size")
    check_positive_finite(lr, "lr")
    if final_lr is not None:
        check_positive_finite(final_lr, "final_lr")
    if binarize not in BINARIZATIONS:
        raise ValueError(f"binarize must be one of {BINARIZATIONS}, got {binarize!r}")
    if train_images.ndim != 2 or train_images.shape[1] != model.data_dim:
        raise ValueError(
            f"train_images must have shape (N, {model.data_dim}), got "
            f"{tuple(train_images.shape)}; flatten images with x.reshape(len(x), -1)"
        )
    return epochs, batch_size
