"""The models the book does inference in: each gives a log joint density log p(x, z).

- :mod:`~vicourse.models.toy_model`: the conjugate Gaussian model, with exact evidence and
  posterior (the book's ground truth for checking bounds and estimators).
- :mod:`~vicourse.models.vae`: the variational autoencoder (Gaussian encoder, Bernoulli
  decoder) and the reparameterized sample.
- :mod:`~vicourse.models.banana`: the banana-shaped posterior, its exact normalizer and samples.
- :mod:`~vicourse.models.gaussian_mixture`: the Bayesian mixture of unit-variance Gaussians
  (global means, local assignments), its data and log joint.
"""
