"""Fixtures for the MoE offload tests: a tiny one-layer model and a routing-trace writer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from llmsim.expert_cache import MoEModelConfig


@pytest.fixture
def tiny_config() -> MoEModelConfig:
    """One MoE layer, 4 experts, top-1 (hand-made traces are easy to read)."""
    return MoEModelConfig(name="t1", hidden_size=64, num_layers=1, num_heads=4, num_kv_heads=2,
                          head_dim=16, num_experts=4, top_k=1, expert_intermediate_size=32,
                          vocab_size=128, weight_dtype="fp32")


@pytest.fixture
def tiny_model_file(tmp_path: Path, tiny_config: MoEModelConfig) -> Path:
    p = tmp_path / "tiny.json"
    p.write_text(tiny_config.model_dump_json())
    return p


@pytest.fixture
def write_trace(tmp_path: Path) -> Callable[..., Path]:
    """``write_trace(steps, name)``: JSONL from ``steps[s][layer] = [[experts], ...]``."""

    def write(steps: list[dict[int, list[list[int]]]], name: str = "trace.jsonl",
              experts: int = 4, top_k: int = 1) -> Path:
        lines = [json.dumps({"format": "llmsim-routing", "num_experts": experts,
                             "top_k": top_k})]
        for s, step in enumerate(steps):
            for layer, rows in step.items():
                for t, row in enumerate(rows):
                    lines.append(json.dumps({"step": s, "layer": layer, "token": t,
                                             "experts": row}))
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
