"""vicourse.model_cache: a second identical training is loaded, anything different trains."""

from __future__ import annotations

import functools

import pytest
import torch

import vicourse.model_cache as model_cache
from vicourse.model_cache import cached_train_vae
from vicourse.models.vae import VAE
from vicourse.objectives.bounds import negative_elbo_loss, negative_iwae_loss
from vicourse.train import train_vae

D = 12


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("VICOURSE_CACHE", str(tmp_path / "models"))
    return tmp_path / "models"


def _images(seed: int = 0) -> torch.Tensor:
    return torch.rand(64, D, generator=torch.Generator().manual_seed(seed))


def _run(train=cached_train_vae, seed: int = 0, images=None, **options):
    """A fresh model from seed, trained (or loaded); returns its weights, history, next draw."""
    torch.manual_seed(seed)
    model = VAE(data_dim=D, hidden=(8,), latent_dim=2)
    options = {"epochs": 2, "batch_size": 16, "lr": 1e-2, "progress": False} | options
    history = train(model, _images() if images is None else images, **options)
    return model.state_dict(), history, torch.rand(3)


def _forbid_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("trained although an identical run was cached")
    monkeypatch.setattr(model_cache, "train_vae", refuse)


def test_cached_run_is_the_trained_run(folder):
    weights, history, after = _run(train=train_vae)
    first = _run()
    assert len(list(folder.glob("*.pt"))) == 1
    for result in (first, _run()):  # trained, then loaded
        assert all(torch.equal(weights[k], result[0][k]) for k in weights)
        assert result[1].train_loss == history.train_loss
        assert torch.equal(result[2], after)  # the random numbers continue as after training


def test_second_identical_run_does_not_train(folder, monkeypatch):
    _run(loss_fn=functools.partial(negative_iwae_loss, num_samples=2))
    _forbid_training(monkeypatch)
    _run(loss_fn=functools.partial(negative_iwae_loss, num_samples=2))


@pytest.mark.parametrize("change", [
    {"seed": 1},  # other initial weights and batches
    {"lr": 2e-2},
    {"epochs": 3},
    {"images": _images(seed=5)},
    {"loss_fn": functools.partial(negative_iwae_loss, num_samples=3)},
])
def test_any_change_trains_again(folder, change):
    _run(loss_fn=functools.partial(negative_iwae_loss, num_samples=2))
    _run(**({"loss_fn": functools.partial(negative_iwae_loss, num_samples=2)} | change))
    assert len(list(folder.glob("*.pt"))) == 2


def test_defaults_passed_or_left_out_are_one_configuration(folder, monkeypatch):
    _run()
    _forbid_training(monkeypatch)
    _run(loss_fn=negative_elbo_loss, binarize="dynamic", final_lr=None, progress=True)


def test_a_loss_defined_outside_the_library_is_never_cached(folder):
    def my_loss(model, x):
        return negative_elbo_loss(model, x)
    _run(loss_fn=my_loss)
    _run(loss_fn=lambda model, x: negative_elbo_loss(model, x))
    _run(loss_fn=functools.partial(negative_iwae_loss, num_samples=torch.tensor(2)))

    class Counting:  # a callable object: its state is not part of its name
        __module__ = "vicourse.objectives.bounds"
        calls = 0

        def __call__(self, model, x):
            self.calls += 1
            return negative_elbo_loss(model, x)
    _run(loss_fn=Counting())
    assert not folder.exists() or not list(folder.glob("*.pt"))


def test_unreadable_file_warns_and_trains_again(folder):
    weights, _, _ = _run()
    (path,) = folder.glob("*.pt")
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable cached model"):
        again, _, _ = _run()
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    torch.load(path, weights_only=True)  # replaced by a good file


def test_file_without_the_expected_entries_is_ignored(folder):
    _run()
    (path,) = folder.glob("*.pt")
    torch.save({"state_dict": {}}, path)
    with pytest.warns(UserWarning, match="unreadable"):
        _run()


def test_off_turns_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("VICOURSE_CACHE", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert model_cache.cache_folder() is None
    _run()
    assert not list(tmp_path.rglob("*.pt"))


def test_default_folder_is_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("VICOURSE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert model_cache.cache_folder() == tmp_path / "vicourse" / "models"


def test_unwritable_folder_warns_and_returns_the_trained_model(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    monkeypatch.setenv("VICOURSE_CACHE", str(blocker / "models"))
    with pytest.warns(UserWarning, match="VICOURSE_CACHE"):
        weights, _, _ = _run()
    expected, _, _ = _run(train=train_vae)
    assert all(torch.equal(weights[k], expected[k]) for k in weights)


def test_not_a_model_is_refused(folder):
    with pytest.raises(TypeError, match="must be a VAE"):
        cached_train_vae(torch.zeros(3), _images(), epochs=1)
