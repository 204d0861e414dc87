"""Variational families q beyond a single Gaussian.

- :mod:`~vicourse.families.flows`: planar, NICE and RealNVP normalizing flows, their ELBO
  and training.

A new family goes here: a module that samples from q and evaluates log q.
"""
