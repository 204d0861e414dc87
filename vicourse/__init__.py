"""vicourse: the code taught by the executable textbook on variational inference.

The taught library, by what a piece of code is for:

- :mod:`vicourse.models`: the models (conjugate Gaussian, VAE, banana posterior).
- :mod:`vicourse.families`: variational families beyond one Gaussian (normalizing flows).
- :mod:`vicourse.objectives`: divergences, bounds (ELBO, IWAE) and their gradient estimators.
- :mod:`vicourse.mcmc`: samplers (HMC, Metropolis), their diagnostics, finite-state chains.
- :mod:`vicourse.data`, :mod:`vicourse.train`, :mod:`vicourse.device`: MNIST as tensors,
  the VAE training loop, the choice of CUDA, MPS or CPU.

The course tooling lives apart in :mod:`vicourse.course` (showing code in chapters, Colab
notebooks, exercises, student versions and grading); the library never imports it.
"""

__version__ = "0.1.0"
