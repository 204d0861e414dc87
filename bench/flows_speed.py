"""Iterations per second of RealNVP training on the banana: the source's way vs vicourse's.

Both ways train a RealNVP flow with 8 affine couplings whose conditioners have two hidden
layers of 32 units, on the same banana data, with S = 100 Monte Carlo samples per step and
Adam, in one run:

1. **source's way** (seed 002, problem 3): four RealNVP blocks of two couplings each, every
   coupling with two separate MLPs (one for the log-scale, one for the shift) whose layers sit
   in a ``ModuleList`` looped over in Python; each step draws the base samples with numpy and
   converts them and the data to tensors, evaluates the likelihood as ``log(exp(.))`` over all
   S x n pairs, checks the loss for NaN/inf in Python, and updates with
   ``Adam(weight_decay=1e-5)`` (on a CPU, PyTorch's default Adam loops over the parameter
   tensors one by one). float32, as in the source.
2. **vicourse's way** (``vicourse.families.flows.realnvp_flow`` + ``train_flow``): one MLP
   per coupling that outputs log-scale and shift together, the likelihood through the
   sufficient statistic
   (``vicourse.models.banana.Banana.log_joint``: O(S) instead of O(S n)), base draws from a torch
   generator, and Adam's fused update. float64, as in the chapter; the ordinary
   reparameterization gradient, as in the source (the chapter's sticking-the-landing gradient
   costs a second pass through the flow).

Both are vectorized over the S samples: the source is too. At this size (100 x 2 numbers) the
arithmetic is tiny and the time goes to the overhead around it. For scale, a third line times
vicourse's flow evaluated one sample at a time, the way a loop over samples would.

Run from the repository root:

    python bench/flows_speed.py [--steps 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from vicourse.families.flows import realnvp_flow, train_flow
from vicourse.models.banana import Banana


class SourceMLP(nn.Module):
    """The source's MLP: 1 -> 32 -> 32 -> 1 with ReLU, layers in a ModuleList."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                     nn.ReLU(), nn.Linear(hidden, 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class SourceRealNVPBlock(nn.Module):
    """Two affine couplings with four separate MLPs, as the source writes them."""

    def __init__(self) -> None:
        super().__init__()
        self.scale1, self.shift1, self.scale2, self.shift2 = (SourceMLP() for _ in range(4))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z1, z2 = z.chunk(2, dim=1)
        s1 = self.scale1(z1)
        z2 = z2 * torch.exp(s1) + self.shift1(z1)
        s2 = self.scale2(z2)
        z1 = z1 * torch.exp(s2) + self.shift2(z2)
        return torch.cat([z1, z2], dim=1), (s1 + s2).reshape(-1)


class SourceFlow(nn.Module):
    """The source's model: blocks in a ModuleList and an ELBO that re-creates its inputs."""

    def __init__(self, data: np.ndarray, num_blocks: int = 4, sample_size: int = 100) -> None:
        super().__init__()
        self.data = data
        self.sample_size = sample_size
        self.flows = nn.ModuleList([SourceRealNVPBlock() for _ in range(num_blocks)])

    def elbo(self) -> torch.Tensor:
        sample = torch.tensor(np.random.normal(size=(self.sample_size, 2)), dtype=torch.float32)
        base = sample.detach().clone()
        data = torch.tensor(self.data, dtype=torch.float32)
        log_det = torch.zeros(self.sample_size)
        for flow in self.flows:
            sample, block_log_det = flow(sample)
            log_det += block_log_det
        t1, t2 = sample.chunk(2, dim=1)
        loglik = torch.sum(torch.log(torch.exp(-0.125 * (t1 + t2**2 - data) ** 2)
                                     / (2 * np.sqrt(2 * np.pi))), dim=1)
        log_prior = -0.5 * torch.sum(sample**2, dim=1) - np.log(2 * np.pi)
        log_base = -0.5 * torch.sum(base**2, dim=1) - np.log(2 * np.pi)
        return torch.mean(loglik + log_prior - log_base + log_det)


def source_iterations_per_second(data: np.ndarray, steps: int) -> float:
    np.random.seed(0)
    torch.manual_seed(0)
    model = SourceFlow(data)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    losses = []
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = -model.elbo()
        if not (torch.isnan(loss) or torch.isinf(loss)):
            loss.backward()
            optimizer.step()
            losses.append(loss.detach().clone().numpy())
        else:
            losses.append(losses[-1])
    return steps / (time.perf_counter() - start)


def vicourse_iterations_per_second(model: Banana, steps: int) -> float:
    torch.manual_seed(0)
    flow = realnvp_flow(dim=2, num_couplings=8, hidden=32).double()
    start = time.perf_counter()
    train_flow(flow, model.log_joint, steps, num_samples=100, progress=False)
    return steps / (time.perf_counter() - start)


def per_sample_iterations_per_second(model: Banana, steps: int) -> float:
    """vicourse's flow and log joint, but a Python loop over the S samples of each step."""
    torch.manual_seed(0)
    flow = realnvp_flow(dim=2, num_couplings=8, hidden=32).double()
    optimizer = torch.optim.Adam(flow.parameters(), lr=1e-3, fused=True)
    base = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    start = time.perf_counter()
    for _ in range(steps):
        total = torch.zeros((), dtype=torch.float64)
        for _ in range(100):
            z = torch.randn(1, 2, dtype=torch.float64)
            x, log_det = flow(z)
            total = total + model.log_joint(x)[0] - base.log_prob(z).sum() + log_det[0]
        optimizer.zero_grad(set_to_none=True)
        (-total / 100).backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = Banana()
    data = model.y.numpy()

    source_iterations_per_second(data, 20)  # warm up both
    vicourse_iterations_per_second(model, 20)
    source = source_iterations_per_second(data, args.steps)
    ours = vicourse_iterations_per_second(model, args.steps)
    looped = per_sample_iterations_per_second(model, max(args.steps // 50, 5))
    print(f"RealNVP (8 couplings, 2 x 32 hidden), S = 100, {args.steps} Adam steps, "
          f"{torch.get_num_threads()} thread(s):")
    print(f"  source's way (seed 002):                  {source:7.1f} iterations/s")
    print(f"  vicourse's way:                           {ours:7.1f} iterations/s")
    print(f"  speed-up of vicourse over the source: {ours / source:.1f}x")
    print(f"  for scale, a loop over the 100 samples:   {looped:7.1f} iterations/s "
          f"(vicourse is {ours / looped:.0f}x faster)")


if __name__ == "__main__":
    main()
