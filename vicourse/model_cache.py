"""Trained models kept between chapters: ``train_vae`` once per configuration, then loaded.

Several chapters train the same VAE from the same initial weights. :func:`cached_train_vae`
takes ``train_vae``'s arguments, and on a second call with the same *whole* configuration
loads the trained weights, the history and the random-number state after training instead of
training again, so that everything after it runs exactly as if it had trained. The key is a
hash of the initial weights, the random-number state, the data, every argument, the loss
function, the torch version and the source of the ``vicourse`` library; change any of them and
the model is trained again. Files are read with ``torch.load(..., weights_only=True)``.

The folder is ``$VICOURSE_CACHE`` if set (``VICOURSE_CACHE=off`` turns the cache off), else
``~/.cache/vicourse/models``. A chapter run on its own (in Colab) finds it empty and trains.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from vicourse.train import History, Loss, train_vae

_LIBRARY = Path(__file__).resolve().parent
_SIMPLE = (int, float, str, bool, type(None))
_TRAIN_VAE = inspect.signature(train_vae)


def cache_folder() -> Path | None:
    """The folder the trained models are kept in, or None when ``VICOURSE_CACHE=off``."""
    setting = os.environ.get("VICOURSE_CACHE", "").strip()
    if setting.lower() == "off":
        return None
    if setting:
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vicourse" / "models"


def cached_train_vae(model: torch.nn.Module, train_images: Tensor, test_x: Tensor | None = None,
                     *, loss_fn: Loss | None = None, **options: object) -> History:
    """``train_vae(model, train_images, test_x, ...)``, or its result loaded from the cache.

    Same arguments and result as :func:`vicourse.train.train_vae`; model is trained in place.
    """
    if not (isinstance(model, torch.nn.Module) and hasattr(model, "encode")):
        raise TypeError(f"model must be a VAE (a module with encode and decode), got "
                        f"{type(model).__name__}")
    arguments = _TRAIN_VAE.bind(model, train_images, test_x, **options)
    if loss_fn is not None:
        arguments.arguments["loss_fn"] = loss_fn
    arguments.apply_defaults()  # so that passing a default and leaving it out are one key
    settings = dict(arguments.arguments)
    tensors = [settings.pop(name) for name in ("model", "train_images", "test_x", "train_eval_x")]
    settings.pop("progress")
    folder, loss_name = cache_folder(), _loss_name(settings.pop("loss_fn"))
    if folder is None or loss_name is None:  # off, or a loss whose code cannot be named
        return train_vae(*arguments.args, **arguments.kwargs)
    path = folder / f"{_key(tensors, loss_name, settings)}.pt"
    cached = _load(path)
    if cached is not None:
        model.load_state_dict(cached["state_dict"])
        _set_rng_state(cached["rng"], model)
        return History(**cached["history"])
    history = train_vae(*arguments.args, **arguments.kwargs)
    _save(path, {"state_dict": model.state_dict(), "rng": _rng_state(model),
                 "history": {name: list(values) for name, values in vars(history).items()}})
    return history


def _loss_name(loss_fn: object) -> str | None:
    """A name that fixes what loss_fn computes: a library function, or a partial of one with
    plain arguments; None for anything else (a closure or a lambda is trained every time)."""
    if isinstance(loss_fn, functools.partial):
        inner = _loss_name(loss_fn.func)
        plain = all(isinstance(v, _SIMPLE) for v in (*loss_fn.args, *loss_fn.keywords.values()))
        if inner is None or not plain:
            return None
        return f"{inner}{loss_fn.args!r}{sorted(loss_fn.keywords.items())!r}"
    if not inspect.isfunction(loss_fn):  # a callable object may hold state (a step count)
        return None
    module, name = loss_fn.__module__ or "", loss_fn.__qualname__
    if not module.startswith("vicourse.") or "<" in name:
        return None
    return f"{module}.{name}"


def _key(tensors: list, loss_name: str, settings: dict[str, object]) -> str:
    """A hash of everything the trained model depends on: model, images, loss and settings."""
    model, *data = tensors
    digest = hashlib.blake2b(digest_size=16)
    for tensor in (*model.state_dict().values(), *_rng_state(model), *data):
        digest.update(_tensor_bytes(tensor))
    digest.update(json.dumps([repr(model), loss_name, sorted(settings.items()), torch.__version__],
                             default=repr).encode())
    for source in sorted(_LIBRARY.rglob("*.py")):
        if "course" not in source.relative_to(_LIBRARY).parts:
            digest.update(source.read_bytes())
    return digest.hexdigest()


def _tensor_bytes(tensor: object) -> bytes:
    if not isinstance(tensor, Tensor):
        return repr(tensor).encode()
    flat = tensor.detach().to("cpu").contiguous()
    header = f"{flat.dtype}{tuple(flat.shape)}{tensor.device}".encode()
    return header + flat.view(-1).view(torch.uint8).numpy().tobytes()


def _rng_state(model: torch.nn.Module) -> list[Tensor]:
    """The global random-number states training uses: the CPU's, and the model's GPU's."""
    device = next(model.parameters()).device
    state = [torch.get_rng_state()]
    if device.type == "cuda":
        state.append(torch.cuda.get_rng_state(device))
    return state


def _set_rng_state(state: list[Tensor], model: torch.nn.Module) -> None:
    torch.set_rng_state(state[0])
    device = next(model.parameters()).device
    if device.type == "cuda" and len(state) > 1:
        torch.cuda.set_rng_state(state[1], device)


def _load(path: Path) -> dict | None:
    """The saved result at path, or None if there is none or it cannot be read (then the
    model is trained again and the file replaced)."""
    if not path.is_file():
        return None
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
        if not {"state_dict", "rng", "history"} <= set(cached):
            raise KeyError("state_dict, rng or history missing")
        return cached
    except Exception as error:  # a truncated or foreign file: train again
        warnings.warn(f"ignoring the unreadable cached model {path} ({error}); training again",
                      stacklevel=3)
        return None


def _save(path: Path, result: dict) -> None:
    """Write result to path atomically; a cache that cannot be written only warns."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as file:
            torch.save(result, file)
        os.replace(file.name, path)
    except OSError as error:
        warnings.warn(f"could not keep the trained model in {path.parent} ({error}); set "
                      f"VICOURSE_CACHE to a writable folder, or VICOURSE_CACHE=off",
                      stacklevel=3)
