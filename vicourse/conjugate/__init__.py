"""Variational inference in closed form for conditionally conjugate models: CAVI and SVI.

Here the optimal factor of each latent variable is in the family of its complete conditional,
so every update is a formula, not a gradient step. The book's example is the Bayesian mixture
of Gaussians (:mod:`vicourse.models.gaussian_mixture`), with q(mu_k) = N(m_k, s_k^2 I) and
q(c_i) = Categorical(phi_i).

- :mod:`~vicourse.conjugate.mixture_cavi`: the two CAVI updates, for the assignments and the
  means.
- :mod:`~vicourse.conjugate.mixture_elbo`: the mixture's ELBO in closed form, and the ELBO
  with the assignments at their optimum.
- :mod:`~vicourse.conjugate.natural_params`: the natural parameters of q(mu_k) and their
  log-normalizer (its gradient gives the mean parameters, its Hessian the Fisher matrix).
- :mod:`~vicourse.conjugate.svi`: stochastic VI: the minibatch estimate of the CAVI target,
  the natural-gradient step and the Robbins-Monro step sizes.

A closed-form update or bound for another conditionally conjugate model goes here.
"""
