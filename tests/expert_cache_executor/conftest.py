"""Executor tests need PyTorch (the ``executor`` extra); modules that use it skip without it."""

from __future__ import annotations

import importlib.util

import pytest

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest single-threaded (and steadiest on a shared 2-core box)."""
    if not HAS_TORCH:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny():
    from llmsim.expert_cache import get_preset

    return get_preset("tiny")
