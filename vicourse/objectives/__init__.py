"""What variational inference optimizes and measures: divergences, bounds and their gradients.

- :mod:`~vicourse.objectives.gaussian_kl`: KL divergence between Gaussians, in closed form.
- :mod:`~vicourse.objectives.elbo`: Monte Carlo estimates of the ELBO of a generic model.
- :mod:`~vicourse.objectives.bounds`: the VAE's ELBO, the importance weighted bound and the
  importance-sampled log-likelihood estimate.
- :mod:`~vicourse.objectives.toy_bounds`: the importance weighted bound on the conjugate
  model, and the chi-square divergence that sets its rate.
- :mod:`~vicourse.objectives.gradients`: score-function, reparameterization and
  sticking-the-landing estimators of the ELBO's gradient.
- :mod:`~vicourse.objectives.dreg`: the doubly reparameterized gradient of the importance
  weighted bound, for the VAE and on the conjugate model.
- :mod:`~vicourse.objectives.snr`: the signal-to-noise ratio of gradient draws.
- :mod:`~vicourse.objectives.knn_kl`: the k-nearest-neighbour estimator of a KL divergence.

A new bound or a new gradient estimator goes here.
"""
