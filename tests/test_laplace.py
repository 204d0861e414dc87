"""The Laplace approximation is exact for a Gaussian posterior (the linear-Gaussian model)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vicourse.families.laplace import laplace_approximation
from vicourse.models.toy_model import LinearGaussian

F64 = torch.float64


@settings(max_examples=20, deadline=None)
@given(weights=st.lists(st.floats(-3, 3), min_size=1, max_size=4),
       x=st.floats(-5, 5), noise=st.floats(0.2, 3))
def test_laplace_is_the_exact_posterior_of_a_gaussian_model(weights, x, noise):
    model = LinearGaussian(tuple(weights), noise)
    x = torch.tensor(x, dtype=F64)
    laplace = laplace_approximation(lambda z: model.log_joint(x, z), torch.zeros(len(weights),
                                                                              dtype=F64))
    posterior = model.posterior(x)
    torch.testing.assert_close(laplace.mode, posterior.mean, atol=1e-7, rtol=1e-7)
    torch.testing.assert_close(laplace.covariance, posterior.covariance_matrix, atol=1e-8,
                               rtol=1e-7)
    torch.testing.assert_close(laplace.scale_tril @ laplace.scale_tril.T,
                               posterior.covariance_matrix, atol=1e-8, rtol=1e-7)


def test_not_concave_raises():
    with pytest.raises(ValueError, match="not positive definite"):
        laplace_approximation(lambda z: z.square().sum(), torch.ones(2, dtype=F64))


def test_non_scalar_log_joint_raises():
    with pytest.raises(ValueError, match="scalar"):
        laplace_approximation(lambda z: -z.square(), torch.ones(2, dtype=F64))
