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
