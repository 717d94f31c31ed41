"""Fixtures for the serving tests: fixed step-time models, packaged sample traces."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from serving_helpers import sample_trace  # noqa: E402
from stepmodels import FixedStepModel  # noqa: E402


@pytest.fixture
def fixed_model() -> FixedStepModel:
    return FixedStepModel(prefill_s=0.05, decode_s=0.01)


@pytest.fixture
def azure_sample() -> str:
    return sample_trace("azure_conv_2023_sample.csv")


@pytest.fixture
def mooncake_sample() -> str:
    return sample_trace("mooncake_conversation_sample.jsonl")
