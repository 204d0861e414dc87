"""vicourse: the code taught by the executable textbook on variational inference.

Modules hold one idea each:

- :mod:`vicourse.gaussian_kl`: KL divergence between Gaussians (diagonal and full covariance).
- :mod:`vicourse.toy_model`: the conjugate Gaussian model with exact evidence and posterior.
- :mod:`vicourse.elbo`: Monte Carlo estimates of the evidence lower bound.
- :mod:`vicourse.data`: MNIST as whole-dataset tensors, binarization, minibatches.
- :mod:`vicourse.device`: choosing CUDA, MPS or the CPU.
"""

__version__ = "0.1.0"
