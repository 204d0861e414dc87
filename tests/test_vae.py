"""Tests of vicourse.models.vae: the reparameterized sample, shapes, input checks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vicourse.models.vae import VAE, active_units, mlp, reparameterized_sample


def test_mlp_puts_the_activation_between_linear_layers_only():
    net = mlp([5, 4, 3, 2])
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "ELU", "Linear", "ELU", "Linear"]
    assert [type(m).__name__ for m in mlp([5, 4, 2], torch.nn.ReLU)] == ["Linear", "ReLU", "Linear"]
    assert [m.out_features for m in net if isinstance(m, torch.nn.Linear)] == [4, 3, 2]


def test_reparameterized_sample_has_the_requested_mean_and_variance():
    mu = torch.tensor([[1.0, -2.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, 1.0, -3.0]], dtype=torch.float64)
    z = reparameterized_sample(mu, logvar, num_samples=200_000)
    assert z.shape == (200_000, 1, 3)
    se_mean = torch.exp(0.5 * logvar) / 200_000**0.5
    assert torch.all((z.mean(0) - mu).abs() < 5 * se_mean)
    var = torch.exp(logvar)
    se_var = var * (2 / 200_000) ** 0.5
    assert torch.all((z.var(0) - var).abs() < 5 * se_var)


def test_reparameterized_sample_gradients_are_the_pathwise_ones():
    """dz/dmu = 1 and dz/dlogvar = sigma * eps / 2 = (z - mu) / 2, element by element."""
    mu = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    z = reparameterized_sample(mu, logvar)
    z.sum().backward()
    assert torch.equal(mu.grad, torch.ones_like(mu))
    assert torch.allclose(logvar.grad, (z - mu).detach() / 2)


def test_reparameterized_sample_shapes_and_errors():
    mu, logvar = torch.zeros(5, 2), torch.zeros(5, 2)
    assert reparameterized_sample(mu, logvar).shape == (5, 2)
    assert reparameterized_sample(mu, logvar, 3).shape == (3, 5, 2)
    with pytest.raises(ValueError, match="same shape"):
        reparameterized_sample(mu, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        reparameterized_sample(mu, logvar, 0)


def test_vae_shapes():
    model = VAE(data_dim=12, hidden=(7, 5), latent_dim=3)
    mu, logvar = model.encode(torch.rand(4, 12))
    assert mu.shape == logvar.shape == (4, 3)
    assert model.decode(torch.randn(6, 4, 3)).shape == (6, 4, 12)
    images = model.sample(9)
    assert images.shape == (9, 12)
    assert bool(((images >= 0) & (images <= 1)).all())


def test_vae_layer_sizes_mirror_the_encoder():
    model = VAE(data_dim=784, hidden=(200, 100), latent_dim=20)
    sizes = [(m.in_features, m.out_features) for m in model.decoder
             if isinstance(m, torch.nn.Linear)]
    assert sizes == [(20, 100), (100, 200), (200, 784)]


def test_vae_rejects_unflattened_images_and_says_how_to_fix():
    model = VAE()
    with pytest.raises(ValueError, match=r"shape \(batch, 784\).*reshape"):
        model.encode(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"shape \(batch, 784\)"):
        model.encode(torch.rand(784))


def test_vae_rejects_a_latent_code_of_the_wrong_size():
    model = VAE(latent_dim=20)
    with pytest.raises(ValueError, match="latent_dim=20"):
        model.decode(torch.randn(3, 2))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_vae_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="positive integer"):
        VAE(latent_dim=bad)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4))
def test_decoder_of_the_encoder_mean_has_the_input_shape(batch, latent):
    model = VAE(data_dim=6, hidden=(4,), latent_dim=latent)
    x = torch.rand(batch, 6)
    mu, _ = model.encode(x)
    assert model.decode(mu).shape == x.shape


def test_active_units_counts_latent_means_that_vary_across_images():
    model = VAE(data_dim=6, hidden=(4,), latent_dim=5)
    x = (torch.rand(300, 6) < 0.5).float()
    with torch.no_grad():
        head = model.encoder[-1]
        head.weight.zero_()
        head.bias.zero_()
        head.weight[0].fill_(3.0)  # mu_0 moves with the image a lot, mu_1 a little
        head.weight[1].fill_(1e-3)
        mu = model.encode(x)[0]
    assert mu[:, 0].var() > 0.01 > mu[:, 1].var()
    assert active_units(model, x) == 1
    assert active_units(model, x, threshold=0.0) == 2  # the others are exactly constant


def test_active_units_needs_several_images():
    model = VAE(data_dim=6, hidden=(4,), latent_dim=5)
    with pytest.raises(ValueError, match="at least 2 images"):
        active_units(model, torch.zeros(1, 6))
