"""Effective samples per second of HMC on the banana: the source's way vs vicourse's.

Both samplers target the banana posterior of the book's data set with the same step size and
number of leapfrog steps, start from exact posterior draws, and are timed in one run:

1. **source's way** (seed 002, problem 3(3)): one chain in NumPy, a Python loop over
   iterations, the state as a (2, 1) column, the hand-written gradient of the potential
   summing over all n observations, functions U, K, H and an acceptance probability
   ``min(1, exp(-H' + H))``, momenta from ``np.random.multivariate_normal``. Unlike the
   source, a rejected proposal is recorded as a repeated state (the source drops it, which
   biases the chain: see the chapter), so that both samplers are correct and their effective
   sample sizes comparable.
2. **the same, tidied**: one chain in NumPy with the sufficient statistic (O(1) per gradient
   instead of O(n)) and ``standard_normal`` momenta: the best a single Python-level chain does.
3. **vicourse's way** (``vicourse.mcmc.hmc.sample_hmc``): C chains at once as a (C, 2) tensor,
   gradients by autograd of the summed log joint, float64.

Effective samples per second are the smallest ESS over the two coordinates
(``vicourse.mcmc.diagnostics.effective_sample_size``, Stan's estimator), divided by the wall-clock
time of sampling. Run from the repository root:

    python bench/hmc_speed.py [--draws 1000] [--chains 10000] [--numpy-draws 5000] [--threads 1]

The NumPy chains run longer (``--numpy-draws``), so that the ESS of a single chain is
estimated well enough; the ratio compares rates, which do not depend on the run length.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vicourse.mcmc.diagnostics import effective_sample_size
from vicourse.mcmc.hmc import sample_hmc
from vicourse.models.banana import Banana

STEP_SIZE, NUM_STEPS = 0.1, 10


def source_style_chain(y: np.ndarray, start: np.ndarray, num_draws: int, seed: int) -> np.ndarray:
    """One chain, written as the source writes it (but recording rejections); (num_draws, 2)."""
    np.random.seed(seed)
    y = y.reshape(len(y), 1)

    def potential(theta):
        return 0.125 * np.sum(np.square(y - theta[0] - theta[1] ** 2)) + 0.5 * (
            theta[0] ** 2 + theta[1] ** 2)

    def kinetic(r):
        return 0.5 * np.dot(r.T, r)

    def grad_potential(theta):
        n_sum = np.sum(y - theta[0] - theta[1] ** 2)
        grad = [-0.25 * n_sum + theta[0], -0.5 * theta[1] * n_sum + theta[1]]
        return np.array(grad).reshape(2, 1)

    def hamiltonian(theta, r):
        return potential(theta) + kinetic(r)

    def accept_prob(theta_new, r_new, theta_old, r_old):
        with np.errstate(over="ignore"):
            return min(1, np.exp(-hamiltonian(theta_new, r_new) + hamiltonian(theta_old, r_old)))

    def leapfrog_step(theta, r, eps):
        r_half = r - 0.5 * eps * grad_potential(theta)
        theta_new = theta + eps * r_half
        return theta_new, r_half - 0.5 * eps * grad_potential(theta_new)

    theta = start.reshape(2, 1).copy()
    draws = np.empty((num_draws, 2))
    for i in range(num_draws):
        theta_init = theta.copy()
        r = np.random.multivariate_normal(mean=np.array([0, 0]), cov=np.eye(2)).reshape(2, 1)
        r_init = r.copy()
        for _ in range(NUM_STEPS):
            theta, r = leapfrog_step(theta, r, STEP_SIZE)
        if not np.random.rand() < accept_prob(theta, r, theta_init, r_init):
            theta = theta_init  # rejected: stay, and record the current state again
        draws[i] = theta[:, 0]
    return draws


def tidy_chain(y_mean: float, n: int, start: np.ndarray, num_draws: int, seed: int) -> np.ndarray:
    """One NumPy chain with the sufficient statistic and plain normal momenta; (num_draws, 2)."""
    rng = np.random.default_rng(seed)
    precision = n / 4.0  # n / sigma_y^2

    def grad_log_p(t):
        residual = precision * (y_mean - t[0] - t[1] ** 2)
        return np.array([residual - t[0], 2 * t[1] * residual - t[1]])

    def log_p(t):
        return -0.5 * precision * (y_mean - t[0] - t[1] ** 2) ** 2 - 0.5 * (t @ t)

    theta = start.copy()
    draws = np.empty((num_draws, 2))
    for i in range(num_draws):
        r = rng.standard_normal(2)
        h_old = -log_p(theta) + 0.5 * (r @ r)
        t, g = theta, grad_log_p(theta)
        r = r + 0.5 * STEP_SIZE * g
        for step in range(NUM_STEPS):
            t = t + STEP_SIZE * r
            g = grad_log_p(t)
            r = r + (STEP_SIZE if step < NUM_STEPS - 1 else 0.5 * STEP_SIZE) * g
        with np.errstate(over="ignore", invalid="ignore"):
            h_new = -log_p(t) + 0.5 * (r @ r)
        if np.log(rng.random()) < h_old - h_new:
            theta = t
        draws[i] = theta
    return draws


def min_ess(draws: np.ndarray | torch.Tensor) -> float:
    """The smallest ESS over the coordinates of draws (N, C, 2)."""
    return effective_sample_size(torch.as_tensor(draws, dtype=torch.float64)).min().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1000, help="draws per vicourse chain")
    parser.add_argument("--chains", type=int, default=10_000, help="vicourse's chains")
    parser.add_argument("--numpy-draws", type=int, default=5000, help="draws of a NumPy chain")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = Banana()
    y = model.y.numpy()
    start = model.sample_posterior(args.chains, torch.Generator().manual_seed(0))

    tic = time.perf_counter()
    source = source_style_chain(y, start[0].numpy(), args.numpy_draws, seed=1)
    source_time = time.perf_counter() - tic
    tic = time.perf_counter()
    tidy = tidy_chain(model.y_mean, model.n, start[0].numpy(), args.numpy_draws, seed=2)
    tidy_time = time.perf_counter() - tic
    tic = time.perf_counter()
    result = sample_hmc(model.log_joint, start, args.draws, STEP_SIZE, NUM_STEPS, seed=3,
                        progress=False)
    vicourse_time = time.perf_counter() - tic

    rows = [("source's way (NumPy, 1 chain)", source[:, None], source_time),
            ("tidy NumPy (1 chain)", tidy[:, None], tidy_time),
            (f"vicourse ({args.chains} chains)", result.draws, vicourse_time)]
    print(f"banana, step size {STEP_SIZE}, {NUM_STEPS} leapfrog steps; {args.numpy_draws} draws "
          f"of a NumPy chain, {args.draws} draws of each vicourse chain; "
          f"{torch.get_num_threads()} torch thread(s)")
    rates = {}
    for name, draws, seconds in rows:
        ess = min_ess(draws)
        rates[name] = ess / seconds
        print(f"  {name:32s} {seconds:7.2f} s  min ESS {ess:10,.0f}  ESS/s {rates[name]:12,.0f}")
    vicourse_rate = rates[rows[2][0]]
    print(f"ratio vicourse / source's way: {vicourse_rate / rates[rows[0][0]]:,.0f}x")
    print(f"ratio vicourse / tidy NumPy:   {vicourse_rate / rates[rows[1][0]]:,.0f}x")


if __name__ == "__main__":
    main()
