"""Fixtures for the serving tests: fixed step-time models, packaged sample traces."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from stepmodels import FixedStepModel  # noqa: E402


@pytest.fixture
def fixed_model() -> FixedStepModel:
    return FixedStepModel(prefill_s=0.05, decode_s=0.01)


def sample_trace(name: str) -> str:
    return str(resources.files("llmsim.data").joinpath("traces", name))


@pytest.fixture
def azure_sample() -> str:
    return sample_trace("azure_conv_2023_sample.csv")


@pytest.fixture
def mooncake_sample() -> str:
    return sample_trace("mooncake_conversation_sample.jsonl")


def base_config(**sections) -> dict:
    """A config for a fixed step model (KV capacity given explicitly)."""
    cfg = {"model": "fixed", "hardware": "h100-sxm",
           "scheduler": {"kv_capacity_tokens": 100_000},
           "workload": {"rate": 5.0, "num_requests": 200, "prompt": "fixed:100",
                        "output": "fixed:10"}}
    for key, value in sections.items():
        cfg.setdefault(key, {})
        if isinstance(value, dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg
