"""Executor tests need PyTorch (the ``executor`` extra); they are skipped without it."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _few_threads():
    """Tiny models run fastest single-threaded (and steady on a shared 2-core box)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny():
    from llmsim.moe_offload import get_preset

    return get_preset("tiny")
