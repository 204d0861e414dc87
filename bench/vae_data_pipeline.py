"""Seconds per epoch of VAE training on MNIST: the sources' pipeline vs vicourse's.

Both ways train the same 784-200-200-20 VAE (same initialization, same loss, same batch
size) for one epoch over the 60,000 training images, in one run:

1. **sources' way** (seeds 000-003): ``torchvision.datasets.MNIST`` with
   ``transforms.ToTensor()``, a ``DataLoader(shuffle=True)`` that builds every batch from
   60,000 PIL images one at a time, ``torch.bernoulli`` for dynamic binarization, and
   ``torch.optim.Adam`` with its default (for-each) update.
2. **vicourse's way** (``vicourse.train.train_vae``): the whole training set as one tensor,
   a random permutation cut into index batches, Bernoulli pixels by comparing with uniform
   noise, and Adam's fused update.

It also times the matrix multiplications one epoch contains (forward and backward, same
shapes, nothing else), to show how much of an epoch is left that is not arithmetic.

Run from the repository root (MNIST under $VICOURSE_DATA):

    python bench/vae_data_pipeline.py [--batch-size 128] [--epochs 1] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import MNIST

from vicourse.data import data_root, load_mnist
from vicourse.models.vae import VAE
from vicourse.objectives.bounds import negative_elbo_loss
from vicourse.train import train_vae


def sources_epoch(model: VAE, loader: DataLoader, optimizer: torch.optim.Optimizer) -> None:
    """One epoch as the source notebooks write it."""
    for images, _ in loader:
        x = torch.bernoulli(images.view(images.shape[0], -1))
        loss = negative_elbo_loss(model, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def matmul_seconds(model: VAE, n_images: int, batch_size: int) -> float:
    """Time of the forward and backward matrix multiplications of one epoch, alone.

    Per linear layer W (n_in -> n_out) and batch B: forward B x n_in @ n_in x n_out; backward
    the weight gradient (n_out x B @ B x n_in) and, except for the first layer, the input
    gradient (B x n_out @ n_out x n_in).
    """
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    steps, last = divmod(n_images, batch_size)
    batches = [batch_size] * steps + ([last] if last else [])
    work = []
    for layer in layers:  # the encoder's first layer needs no gradient for its input x
        w = layer.weight.detach()
        for b in sorted(set(batches)):
            a, g = torch.randn(b, w.shape[1]), torch.randn(b, w.shape[0])
            work.append((a, w, g, layer is not layers[0], batches.count(b)))
    start = time.perf_counter()
    for a, w, g, needs_input_grad, repeats in work:
        for _ in range(repeats):
            a @ w.T
            g.T @ a
            if needs_input_grad:
                g @ w
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    dataset = MNIST(str(data_root()), train=True, transform=transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True)
    torch.manual_seed(0)
    model = VAE()
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(args.epochs):
        sources_epoch(model, loader, optimizer)
    sources = (time.perf_counter() - start) / args.epochs

    train = load_mnist("train")
    model.load_state_dict(start_state)
    history = train_vae(model, train.images, epochs=args.epochs, batch_size=args.batch_size,
                        progress=False)
    ours = sum(history.seconds) / args.epochs
    matmuls = matmul_seconds(model, len(train), args.batch_size)

    print(f"threads {torch.get_num_threads()}, batch size {args.batch_size}, "
          f"{args.epochs} epoch(s) of {len(train)} images, seconds per epoch:")
    print(f"  sources' way (DataLoader + ToTensor): {sources:7.2f} s")
    print(f"  vicourse's way (tensors + permutation): {ours:7.2f} s")
    print(f"  speed-up: {sources / ours:.1f}x")
    print(f"  matrix multiplications alone:          {matmuls:7.2f} s "
          f"(vicourse's epoch takes {ours / matmuls:.1f}x that)")


if __name__ == "__main__":
    main()
