"""Tests of the training loop (vicourse.train) on small synthetic binary data."""

from __future__ import annotations

import pytest
import torch

from vicourse.models.vae import VAE
from vicourse.objectives.bounds import elbo, negative_elbo_loss
from vicourse.train import evaluate_elbo, train_vae


def two_prototypes(n: int = 512, d: int = 16) -> torch.Tensor:
    """Grey-level images: noisy copies of two prototypes (half bright left, half right)."""
    left = torch.cat([torch.full((d // 2,), 0.95), torch.full((d - d // 2,), 0.05)])
    which = torch.rand(n) < 0.5
    return torch.where(which[:, None], left, left.flip(0)).expand(n, d).clone()


def test_training_raises_the_test_elbo_and_records_every_epoch():
    train, test = two_prototypes(), (two_prototypes(256) > 0.5).float()
    model = VAE(data_dim=16, hidden=(32,), latent_dim=2)
    before = evaluate_elbo(model, test)
    history = train_vae(model, train, test, epochs=15, batch_size=32, lr=3e-3,
                        train_eval_x=(train[:100] > 0.5).float(), progress=False)
    assert len(history.train_loss) == len(history.test_elbo) == len(history.seconds) == 15
    assert len(history.train_elbo) == 15
    assert history.test_elbo[-1] > before + 5
    assert history.test_elbo[-1] > history.test_elbo[0]
    assert all(s > 0 for s in history.seconds)


def test_without_test_images_only_the_loss_is_recorded():
    model = VAE(data_dim=16, hidden=(8,), latent_dim=2)
    history = train_vae(model, two_prototypes(64), epochs=2, batch_size=16, progress=False)
    assert history.test_elbo == history.train_elbo == [] and len(history.train_loss) == 2


def test_evaluating_during_training_does_not_change_the_training():
    train, test = two_prototypes(128), (two_prototypes(64) > 0.5).float()
    results = []
    for evaluate in (False, True):
        torch.manual_seed(0)
        model = VAE(data_dim=16, hidden=(8,), latent_dim=2)
        train_vae(model, train, test if evaluate else None, epochs=3, batch_size=16,
                  train_eval_x=test if evaluate else None, progress=False)
        results.append((model.state_dict(), torch.rand(2)))
    (weights, after), (weights_evaluated, after_evaluated) = results
    assert all(torch.equal(weights[k], weights_evaluated[k]) for k in weights)
    assert torch.equal(after, after_evaluated)


@pytest.mark.parametrize("binarize", ["dynamic", "static", "none"])
def test_each_binarization_feeds_the_loss_what_it_promises(binarize):
    grey = two_prototypes(64)
    seen = []

    def spy(model, batch):
        seen.append(batch.clone())
        return negative_elbo_loss(model, (batch > 0.5).float())

    model = VAE(data_dim=16, hidden=(8,), latent_dim=2)
    train_vae(model, grey, epochs=2, batch_size=16, binarize=binarize, loss_fn=spy,
              progress=False)
    batches = torch.cat(seen)
    assert len(batches) == 2 * 64
    binary = bool(((batches == 0) | (batches == 1)).all())
    if binarize == "none":
        assert not binary
        assert batches.unique().tolist() == pytest.approx([0.05, 0.95])
    else:
        assert binary
    if binarize == "static":  # the same thresholded image every epoch: only two patterns
        assert len(batches.unique(dim=0)) == 2
    if binarize == "dynamic":  # fresh Bernoulli pixels: flips of the bright/dark pixels
        assert len(batches.unique(dim=0)) > 10
        assert abs(float(batches.mean()) - float(grey.mean())) < 0.05


def test_every_image_is_used_once_per_epoch():
    grey = torch.eye(10).repeat(1, 2)[:, :16] * 0.0 + torch.arange(10.0)[:, None] / 10
    seen = []

    def spy(model, batch):
        seen.append(batch[:, 0].clone())
        return model.decode(torch.zeros(1, 2)).sum() * 0

    model = VAE(data_dim=16, hidden=(4,), latent_dim=2)
    train_vae(model, grey, epochs=1, batch_size=3, binarize="none", loss_fn=spy,
              progress=False)
    assert sorted(torch.cat(seen).tolist()) == pytest.approx(sorted(grey[:, 0].tolist()))


def test_final_lr_decays_geometrically():
    model = VAE(data_dim=16, hidden=(4,), latent_dim=2)
    rates = []

    def spy(model, batch):
        return negative_elbo_loss(model, (batch > 0.5).float())

    original = torch.optim.Adam.step

    def record(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.optim.Adam, "step", record)
        train_vae(model, two_prototypes(16), epochs=3, batch_size=16, lr=1e-2, final_lr=1e-4,
                  loss_fn=spy, progress=False)
    assert rates == pytest.approx([1e-2, 1e-3, 1e-4])


def test_evaluate_elbo_is_the_mean_per_image_elbo():
    model = VAE(data_dim=16, hidden=(8,), latent_dim=2).double()
    x = (two_prototypes(300) > 0.5).double()
    torch.manual_seed(1)
    value = evaluate_elbo(model, x, batch_size=300)
    torch.manual_seed(1)
    with torch.no_grad():
        expected = float(elbo(model, x).mean())
    assert value == pytest.approx(expected, rel=1e-12)
    assert model.training  # evaluation leaves the mode as it was


def test_bad_arguments_say_what_to_pass():
    model = VAE(data_dim=16, hidden=(4,), latent_dim=2)
    grey = two_prototypes(8)
    with pytest.raises(ValueError, match="binarize must be one of"):
        train_vae(model, grey, epochs=1, binarize="otsu")
    with pytest.raises(ValueError, match=r"shape \(N, 16\).*reshape"):
        train_vae(model, grey.reshape(8, 4, 4), epochs=1)
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        train_vae(model, grey, epochs=0)
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        train_vae(model, grey, epochs=1, lr=-1.0)
    with pytest.raises(ValueError, match="grey levels in"):
        train_vae(model, grey * 3, epochs=1, binarize="static")
