"""vicourse: the code taught by the executable textbook on variational inference.

Modules hold one idea each:

- :mod:`vicourse.gaussian_kl`: KL divergence between Gaussians (diagonal and full covariance).
- :mod:`vicourse.toy_model`: the conjugate Gaussian model with exact evidence and posterior.
- :mod:`vicourse.elbo`: Monte Carlo estimates of the evidence lower bound.
- :mod:`vicourse.data`: MNIST as whole-dataset tensors, binarization, minibatches.
- :mod:`vicourse.device`: choosing CUDA, MPS or the CPU.
- :mod:`vicourse.vae`: the VAE (Gaussian encoder, Bernoulli decoder) and the
  reparameterized sample.
- :mod:`vicourse.bounds`: the VAE's ELBO, the importance weighted bound and the
  importance-sampled log-likelihood estimate.
- :mod:`vicourse.toy_bounds`: the importance weighted bound on the conjugate Gaussian model,
  and the chi-square divergence that sets its rate.
- :mod:`vicourse.train`: training a VAE from whole-dataset tensors.
- :mod:`vicourse.gradients`: score-function, reparameterization and sticking-the-landing
  estimators of the ELBO's gradient, per draw.
- :mod:`vicourse.banana`: the banana posterior, its exact normalizer and exact samples.
- :mod:`vicourse.flows`: planar, NICE and RealNVP flows, their ELBO and training.
- :mod:`vicourse.knn_kl`: the k-nearest-neighbour estimator of a KL divergence.
- :mod:`vicourse.hmc`: Hamiltonian Monte Carlo, leapfrog and sampler, vectorized over chains.
- :mod:`vicourse.diagnostics`: effective sample size and split R-hat (Stan's estimators).
- :mod:`vicourse.markov_chains`: finite-state Markov kernels, exact evolution and exact KL.
- :mod:`vicourse.metropolis`: random-walk Metropolis, vectorized over many chains.
- :mod:`vicourse.exercise_checks`, :mod:`vicourse.exercises`, :mod:`vicourse.instructor`:
  exercise checks with helpful messages, student versions and grading.
"""

__version__ = "0.1.0"
