"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def seeded_torch(request):
    """Every test draws from torch's global generator with a fixed seed, restored after.

    The seed is the test module's ``TORCH_SEED`` (default 0).
    """
    with torch.random.fork_rng():
        torch.manual_seed(getattr(request.module, "TORCH_SEED", 0))
        yield


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread, restored after: for modules whose tensors are a few
    hundred or thousand numbers, where two threads fight over a busy 2-core CPU (measured 20x
    slower). Use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
