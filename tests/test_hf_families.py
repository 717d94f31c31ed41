"""The HF adapter's gpt_oss and minimax_m2 builders: per-layer attention windows from
``layer_types``, fp4 / fp8 checkpoints, MoE routing fields, and clear errors on bad fields."""

from __future__ import annotations

import pytest

from llmsim.catalog import get_model
from llmsim.catalog.hf import from_hf_config
from llmsim.dtypes import DType
from llmsim.errors import SpecError
from llmsim.estimates import estimate


def _gpt_oss(**over):
    c = {"model_type": "gpt_oss", "hidden_size": 256, "num_hidden_layers": 4,
         "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 32,
         "num_local_experts": 8, "num_experts_per_tok": 2, "intermediate_size": 256,
         "sliding_window": 16, "vocab_size": 1000, "attention_bias": True,
         "layer_types": ["sliding_attention", "full_attention"] * 2,
         "quantization_config": {"quant_method": "mxfp4"}}
    c.update(over)
    return c


def test_layer_types_give_each_layer_its_window():
    m = from_hf_config(_gpt_oss(), "tiny-oss")
    windows = [t.attention.sliding_window for t in m.layers for _ in range(t.repeat)]
    assert windows == [16, None, 16, None]
    assert m.weight_dtype == DType.FP4 and all(t.moe.router_bias for t in m.layers)
    assert m.attention.qkv_bias and m.attention.o_bias


def test_a_sliding_layer_reads_fewer_keys_than_a_full_one():
    """Decode attention at a long context: the all-sliding model reads a window per layer, the
    all-full one the whole context, so its step takes longer."""
    slide = from_hf_config(_gpt_oss(layer_types=["sliding_attention"] * 4), "slide")
    full = from_hf_config(_gpt_oss(layer_types=["full_attention"] * 4), "full")
    kw = {"hardware": "h100-sxm", "batch": 64, "prompt": 16000, "output": 64}
    assert estimate(full, **kw).tpot_s > estimate(slide, **kw).tpot_s


@pytest.mark.parametrize("bad, match", [
    ({"layer_types": ["sliding_attention", "linear_attention"] * 2}, "layer_types"),
    ({"layer_types": ["full_attention"] * 3}, "lists 3 layers"),
    ({"num_local_experts": "8"}, "num_local_experts"),
])
def test_bad_fields_are_one_line_errors(bad, match):
    with pytest.raises(SpecError, match=match):
        from_hf_config(_gpt_oss(**bad), "tiny-oss")


def test_minimax_m2_fields():
    c = {"model_type": "minimax_m2", "hidden_size": 256, "num_hidden_layers": 3,
         "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 32,
         "num_local_experts": 16, "num_experts_per_tok": 4, "intermediate_size": 64,
         "vocab_size": 1000, "use_qk_norm": True, "use_routing_bias": True,
         "shared_intermediate_size": 0, "use_mtp": True, "num_mtp_modules": 3,
         "mtp_transformer_layers": 1, "quantization_config": {"quant_method": "fp8"}}
    m = from_hf_config(c, "tiny-mm")
    assert m.num_layers == 3 and len(m.layers) == 1
    assert m.moe.expert_intermediate_size == 64 and m.moe.num_shared_experts == 0
    assert m.moe.router_bias and m.attention.qk_norm and m.weight_dtype == DType.FP8
    assert m.mtp_layers == 3
    assert from_hf_config({**c, "use_mtp": False}, "tiny-mm").mtp_layers == 0


@pytest.mark.parametrize("alias, dtype", [("gpt-oss-120b", DType.FP4),
                                          ("minimax-m2.5", DType.FP8)])
def test_shipped_configs_load(alias, dtype):
    m = get_model(alias)
    assert m.weight_dtype == dtype and m.is_moe
