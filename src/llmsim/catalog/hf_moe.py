"""HuggingFace builders of the MoE families with their own layouts: DeepSeek-V2/V3 (MLA),
gpt-oss (alternating sliding / full attention) and MiniMax-M2 (Mixtral and Qwen MoE share
the llama builder of :mod:`llmsim.catalog.hf`)."""

from __future__ import annotations

from typing import Any

from llmsim.catalog.blocks import AttentionBlock, FFNBlock, MoEBlock
from llmsim.catalog.hf_fields import (
    activation,
    group_layers,
    head_width,
    layer_attention,
    weight_dtype,
)


def deepseek(c: dict[str, Any]) -> dict[str, Any]:
    """DeepSeek-V2/V3: MLA attention, first_k_dense_replace dense layers, then MoE layers
    with shared experts (the MTP module, ``num_nextn_predict_layers``, is not counted in the
    layers: it is ``mtp_layers``, for ``--spec-method mtp``)."""
    h = c["hidden_size"]
    nh = c["num_attention_heads"]
    attn = AttentionBlock(
        hidden_size=h, num_heads=nh, num_kv_heads=nh, head_dim=c["v_head_dim"],
        q_lora_rank=c.get("q_lora_rank") or None, kv_lora_rank=c["kv_lora_rank"],
        qk_nope_head_dim=c["qk_nope_head_dim"], qk_rope_head_dim=c["qk_rope_head_dim"],
        v_head_dim=c["v_head_dim"], o_bias=bool(c.get("attention_bias", False)),
        qkv_bias=bool(c.get("attention_bias", False)),
    )
    act = activation(c.get("hidden_act"))
    n_layers = c["num_hidden_layers"]
    dense = FFNBlock(hidden_size=h, intermediate_size=c["intermediate_size"], activation=act)
    moe = MoEBlock(
        hidden_size=h, num_experts=c["n_routed_experts"], top_k=c["num_experts_per_tok"],
        expert_intermediate_size=c["moe_intermediate_size"],
        num_shared_experts=c.get("n_shared_experts") or 0, activation=act,
        router_bias=c.get("topk_method") == "noaux_tc",
    )
    first_dense = c.get("first_k_dense_replace", 0)
    freq = c.get("moe_layer_freq", 1) or 1
    moe_layers = {i for i in range(n_layers) if i >= first_dense and i % freq == 0}
    return {
        "hidden_size": h,
        "vocab_size": c["vocab_size"],
        "max_position_embeddings": c.get("max_position_embeddings", 4096),
        "layers": group_layers(n_layers, moe_layers, attn, dense, moe),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "weight_dtype": weight_dtype(c),
        "mtp_layers": int(c.get("num_nextn_predict_layers") or 0),
    }


def gpt_oss(c: dict[str, Any]) -> dict[str, Any]:
    """gpt-oss (OpenAI, "gpt-oss-120b & gpt-oss-20b model card", 2025): GQA with biases and
    per-head attention sinks, layers alternating a banded (``sliding_window``) and a full
    attention (``layer_types``), every layer a top-k MoE of SwiGLU experts with a biased router.
    Not priced: the sinks (one logit per head) and the experts' own biases (about 0.03% of the
    parameters). An ``mxfp4`` checkpoint quantises the experts only; llmsim's one weight format
    runs the attention projections at fp4 too (under 1% of the weight bytes)."""
    h = c["hidden_size"]
    nh = c["num_attention_heads"]
    bias = bool(c.get("attention_bias", True))
    attn = AttentionBlock(hidden_size=h, num_heads=nh,
                          num_kv_heads=c.get("num_key_value_heads") or nh,
                          head_dim=head_width(c, h, nh, c.get("_name", "")),
                          qkv_bias=bias, o_bias=bias)
    n_layers = c["num_hidden_layers"]
    per_layer = (layer_attention(c, attn) if c.get("layer_types") else
                 [attn.model_copy(update={"sliding_window": c.get("sliding_window")})
                  if i % 2 == 0 and c.get("sliding_window") else attn for i in range(n_layers)])
    moe = MoEBlock(hidden_size=h, num_experts=c["num_local_experts"],
                   top_k=c.get("num_experts_per_tok") or c["experts_per_token"],
                   expert_intermediate_size=c["intermediate_size"],
                   activation=activation(c.get("hidden_act")), router_bias=True)
    return all_moe_fields(c, per_layer, moe, 131072)


def minimax_m2(c: dict[str, Any]) -> dict[str, Any]:
    """MiniMax-M2 (M2.1, M2.5): GQA with RMS q/k norms and partial RoPE (``rotary_dim``, not
    priced), every layer a top-k MoE of SwiGLU experts (``intermediate_size`` is the expert
    width) with sigmoid scores and a routing bias (``use_routing_bias``); a shared expert when
    ``shared_intermediate_size`` > 0. Its ``num_mtp_modules`` MTP layers are ``mtp_layers``
    when ``use_mtp`` is set."""
    h = c["hidden_size"]
    nh = c["num_attention_heads"]
    attn = AttentionBlock(hidden_size=h, num_heads=nh,
                          num_kv_heads=c.get("num_key_value_heads") or nh,
                          head_dim=head_width(c, h, nh, c.get("_name", "")),
                          qkv_bias=bool(c.get("attention_bias", False)),
                          o_bias=bool(c.get("attention_bias", False)),
                          qk_norm=bool(c.get("use_qk_norm", False)))
    shared = c.get("shared_intermediate_size") or None
    moe = MoEBlock(hidden_size=h, num_experts=c["num_local_experts"],
                   top_k=c["num_experts_per_tok"],
                   expert_intermediate_size=c["intermediate_size"],
                   activation=activation(c.get("hidden_act")),
                   num_shared_experts=1 if shared else 0, shared_expert_intermediate_size=shared,
                   router_bias=bool(c.get("use_routing_bias", False)))
    mtp = int(c.get("num_mtp_modules") or 0) * int(c.get("mtp_transformer_layers") or 1)
    return {**all_moe_fields(c, attn, moe, 4096), "mtp_layers": mtp if c.get("use_mtp") else 0}


def all_moe_fields(c: dict[str, Any], attn: AttentionBlock | list[AttentionBlock],
                    moe: MoEBlock, max_positions: int) -> dict[str, Any]:
    """The ModelSpec fields of a model whose every layer is attention (``attn``, or one per
    layer) then ``moe``, untied unless the config ties its embeddings."""
    n_layers = c["num_hidden_layers"]
    return {
        "hidden_size": c["hidden_size"],
        "vocab_size": c["vocab_size"],
        "max_position_embeddings": c.get("max_position_embeddings", max_positions),
        "layers": group_layers(n_layers, set(range(n_layers)), attn, None, moe),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "weight_dtype": weight_dtype(c),
    }
