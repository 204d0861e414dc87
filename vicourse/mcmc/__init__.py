"""Markov chain Monte Carlo: samplers, their diagnostics, and exact finite-state chains.

- :mod:`~vicourse.mcmc.hmc`: Hamiltonian Monte Carlo (leapfrog, sampler vectorized over chains).
- :mod:`~vicourse.mcmc.metropolis`: random-walk Metropolis, vectorized over chains.
- :mod:`~vicourse.mcmc.diagnostics`: effective sample size and R-hat (Stan's estimators).
- :mod:`~vicourse.mcmc.markov_chains`: finite-state kernels, exact evolution and exact KL.

A new sampler goes here.
"""
