"""Variational families q.

- :mod:`~vicourse.families.gaussian`: the diagonal Gaussian (``mean``, ``log_std``): its log
  density and its sticking-the-landing log density.
- :mod:`~vicourse.families.flows`: planar, NICE and RealNVP normalizing flows, their ELBO
  and training (sticking the landing through a frozen copy of the flow).

A new family goes here: a module that samples from q and evaluates log q.
"""
