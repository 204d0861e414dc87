"""Tests of vicourse.device.best_device: the CUDA > MPS > CPU order and the overrides.

Availability is simulated by patching ``torch.cuda.is_available``,
``torch.cuda.device_count`` and ``torch.backends.mps.is_available``, so the tests mean the
same thing on a laptop, a GPU machine and CI.
"""

from __future__ import annotations

import pytest
import torch

from vicourse.device import best_device


def simulate(monkeypatch, cuda: int = 0, mps: bool = False) -> None:
    """Pretend this machine has ``cuda`` CUDA devices and (or not) Apple's MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.fixture(autouse=True)
def no_device_override(monkeypatch):
    """Each test starts without VICOURSE_DEVICE, whatever the shell running pytest sets."""
    monkeypatch.delenv("VICOURSE_DEVICE", raising=False)


def test_best_device_matches_what_this_machine_has():
    if torch.cuda.is_available():
        expected = "cuda"
    elif torch.backends.mps.is_available():
        expected = "mps"
    else:
        expected = "cpu"
    assert best_device() == torch.device(expected)


def test_best_device_is_the_cpu_without_accelerators(monkeypatch):
    simulate(monkeypatch)
    assert best_device() == torch.device("cpu")


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(1, True, "cuda"), (2, False, "cuda"), (0, True, "mps"), (0, False, "cpu")],
)
def test_best_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    simulate(monkeypatch, cuda=cuda, mps=mps)
    assert best_device() == torch.device(expected)


@pytest.mark.parametrize("name", ["cpu", "mps", "cuda", "cuda:1"])
def test_environment_variable_forces_an_available_device(monkeypatch, name):
    simulate(monkeypatch, cuda=2, mps=True)
    monkeypatch.setenv("VICOURSE_DEVICE", name)
    assert best_device() == torch.device(name)


def test_cpu_can_be_forced_on_a_machine_with_a_gpu(monkeypatch):
    simulate(monkeypatch, cuda=1, mps=False)
    monkeypatch.setenv("VICOURSE_DEVICE", "cpu")
    assert best_device() == torch.device("cpu")


def test_argument_beats_the_environment_variable(monkeypatch):
    simulate(monkeypatch, cuda=1)
    monkeypatch.setenv("VICOURSE_DEVICE", "cuda")
    assert best_device(prefer="cpu") == torch.device("cpu")
    monkeypatch.setenv("VICOURSE_DEVICE", "tpu")  # ignored when prefer is given
    assert best_device(prefer="cuda") == torch.device("cuda")


def test_empty_environment_variable_means_automatic_choice(monkeypatch):
    simulate(monkeypatch, cuda=0, mps=True)
    monkeypatch.setenv("VICOURSE_DEVICE", "")
    assert best_device() == torch.device("mps")


@pytest.mark.parametrize("name", ["tpu", "gpu", "CUDA", "", "cuda ", "xla:0"])
def test_unknown_device_names_are_rejected(name):
    with pytest.raises(ValueError, match=rf"unknown device {name!r}: use one of cpu, cuda, mps"):
        best_device(prefer=name)


def test_unknown_device_names_in_the_environment_are_rejected(monkeypatch):
    monkeypatch.setenv("VICOURSE_DEVICE", "gpu")
    with pytest.raises(ValueError, match=r"unknown device 'gpu'.*set VICOURSE_DEVICE"):
        best_device()


@pytest.mark.parametrize("name", ["cuda:abc", "cuda:-1", "cpu:x"])
def test_malformed_device_names_are_rejected(monkeypatch, name):
    simulate(monkeypatch, cuda=1)
    with pytest.raises(ValueError, match=rf"cannot read device {name!r}: write 'cpu'"):
        best_device(prefer=name)


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_unavailable_cuda_is_a_clear_error(monkeypatch, name):
    simulate(monkeypatch, cuda=0, mps=True)
    with pytest.raises(RuntimeError, match=rf"device {name!r} was requested but is not available"):
        best_device(prefer=name)
    monkeypatch.setenv("VICOURSE_DEVICE", name)
    with pytest.raises(RuntimeError, match=r"unset VICOURSE_DEVICE or pass prefer='cpu'"):
        best_device()


def test_unavailable_mps_is_a_clear_error(monkeypatch):
    simulate(monkeypatch, cuda=1, mps=False)
    with pytest.raises(RuntimeError, match=r"device 'mps' was requested but is not available"):
        best_device(prefer="mps")


def test_cuda_index_beyond_the_devices_present_is_a_clear_error(monkeypatch):
    simulate(monkeypatch, cuda=2)
    assert best_device(prefer="cuda:1") == torch.device("cuda", 1)
    with pytest.raises(RuntimeError, match=r"'cuda:2' was requested but this machine has 2 CUDA"):
        best_device(prefer="cuda:2")
