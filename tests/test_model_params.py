"""Total and active parameter counts against published figures (tests/golden/model_params.yaml,
each entry with its citation).

Tolerance: 1% of the published figure plus half its rounding unit (a figure published as "37B"
only says 36.5B..37.5B). Active counts follow each publisher's convention on the input embedding
(DeepSeek excludes it; Mistral and Qwen include it), recorded per entry.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmsim.catalog import get_model, list_models

GOLDEN = Path(__file__).parent / "golden"
ENTRIES = yaml.safe_load((GOLDEN / "model_params.yaml").read_text())
BY_ALIAS = {e["alias"]: e for e in ENTRIES}


def _tolerance(published: float, unit: float | None) -> float:
    return 0.01 * published + 0.5 * float(unit or 1)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["alias"])
def test_total_params_match_published(entry):
    model = get_model(entry["alias"])
    published = entry["total_params"]
    assert abs(model.num_params - published) <= _tolerance(published, entry.get("rounding_unit")), (
        f"{entry['alias']}: computed {model.num_params:,} vs published {published:,} "
        f"({entry['citation']})"
    )


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.get("active_params")],
                         ids=lambda e: e["alias"])
def test_active_params_match_published(entry):
    model = get_model(entry["alias"])
    active = model.num_active_params
    if not entry.get("active_includes_input_embedding", True):
        active -= model.vocab_size * model.hidden_size
    published = entry["active_params"]
    unit = entry.get("active_rounding_unit") or entry.get("rounding_unit")
    assert abs(active - published) <= _tolerance(published, unit), (
        f"{entry['alias']}: computed active {active:,} vs published {published:,}"
    )


def test_every_catalog_model_has_a_golden_count():
    missing = [e["alias"] for e in list_models() if e["alias"] not in BY_ALIAS]
    assert not missing, f"no published parameter count for {missing}"


def test_required_models_are_shipped():
    required = ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b",
                "llama-3.1-405b", "mistral-7b", "mixtral-8x7b", "mixtral-8x22b", "qwen2.5-7b",
                "qwen2.5-72b", "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b",
                "deepseek-v2-lite", "deepseek-v3", "gpt-j-6b", "opt-6.7b", "opt-30b",
                "opt-175b", "gpt-3-175b", "falcon-180b"]
    for name in required:
        get_model(name)


def test_hf_id_and_alias_resolve_to_the_same_model():
    assert get_model("meta-llama/Llama-2-7b-hf") is get_model("llama-2-7b")
    assert get_model("META-LLAMA/LLAMA-2-7B-HF").name == "llama-2-7b"
    assert get_model("mistralai/Mixtral-8x7B-Instruct-v0.1").name == "mixtral-8x7b"


def test_deepseek_v3_structure():
    m = get_model("deepseek-v3")
    assert [(t.name, t.repeat) for t in m.layers] == [("dense", 3), ("moe", 58)]
    attn = m.attention
    assert attn.kind == "mla" and attn.kv_lora_rank == 512 and attn.qk_rope_head_dim == 64
    assert m.moe.num_shared_experts == 1 and m.moe.num_experts == 256 and m.moe.top_k == 8
    # MLA caches the 512-d latent + the 64-d shared RoPE key per layer
    assert m.kv_cache_elements_per_token() == 61 * (512 + 64)
    assert m.weight_dtype.value == "fp8"
