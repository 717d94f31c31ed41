"""The one adapter from HuggingFace ``config.json`` to :class:`ModelSpec`.

Supported families (``model_type``): llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe,
deepseek_v2, deepseek_v3, gpt_oss, minimax_m2, gptj, opt, gpt2 (used for GPT-3), falcon, phi,
bloom. Field names and defaults follow the ``transformers`` configuration classes of each family
(``minimax_m2``: the remote code of MiniMax's checkpoints, as vLLM reads it). A ``layer_types``
list (``sliding_attention`` / ``full_attention`` per layer, as gpt-oss writes it) gives each
layer its own attention window. This module holds the entry point and the llama builder (llama,
mistral, Mixtral, Qwen2/3 and their MoE); :mod:`~llmsim.catalog.hf_moe` the MoE families with
layouts of their own, :mod:`~llmsim.catalog.hf_dense` the older dense ones,
:mod:`~llmsim.catalog.hf_fields` what they share (field checks, weight format, layer pattern).
"""

from __future__ import annotations

from typing import Any

from llmsim.catalog import hf_dense, hf_moe
from llmsim.catalog.blocks import AttentionBlock, FFNBlock, MoEBlock
from llmsim.catalog.hf_fields import (
    activation,
    check_fields,
    group_layers,
    head_width,
    weight_dtype,
)
from llmsim.catalog.model import ModelSpec
from llmsim.errors import SpecError

SUPPORTED_FAMILIES = (
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
    "deepseek_v2", "deepseek_v3", "gpt_oss", "minimax_m2", "gptj", "opt", "gpt2", "falcon",
    "phi", "bloom",
)


def from_hf_config(config: dict[str, Any], name: str, hf_id: str = "",
                   source: str = "") -> ModelSpec:
    """Build a :class:`ModelSpec` from a parsed HF ``config.json``."""
    if not isinstance(config, dict):
        raise SpecError(f"{name}: a config.json holds a mapping (key: value), not "
                        f"{type(config).__name__}")
    check_fields(config, name)
    family = str(config.get("model_type", "")).lower()
    builder = _BUILDERS.get(family)
    if builder is None:
        raise SpecError(
            f"{name}: model_type {family!r} is not supported; supported: "
            + ", ".join(SUPPORTED_FAMILIES)
        )
    try:
        fields = builder({**config, "_name": name})
    except KeyError as exc:
        raise SpecError(f"{name}: config.json lacks {exc.args[0]!r} for a {family} model") from None
    except SpecError as exc:  # a block's own check (heads vs KV heads, ...): name the file
        if str(exc).startswith(f"{name}:"):
            raise
        raise SpecError(f"{name}: config.json: {exc}") from None
    return ModelSpec(name=name, hf_id=hf_id, family=family, source=source, **fields)


def _llama_like(c: dict[str, Any]) -> dict[str, Any]:
    """llama, mistral, mixtral, qwen2(+moe), qwen3(+moe): RMSNorm, RoPE, SwiGLU, GQA."""
    family = c["model_type"]
    h = c["hidden_size"]
    nh = c["num_attention_heads"]
    nkv = c.get("num_key_value_heads") or nh
    head_dim = head_width(c, h, nh, c.get("_name", ""))
    qkv_bias = bool(c.get("attention_bias", False)) or family in ("qwen2", "qwen2_moe")
    window = c.get("sliding_window")
    if family.startswith("qwen") and not c.get("use_sliding_window", False):
        window = None
    attn = AttentionBlock(
        hidden_size=h, num_heads=nh, num_kv_heads=nkv, head_dim=head_dim,
        qkv_bias=qkv_bias, o_bias=bool(c.get("attention_bias", False)),
        qk_norm=family in ("qwen3", "qwen3_moe"), sliding_window=window or None,
    )
    act = activation(c.get("hidden_act"))
    n_layers = c["num_hidden_layers"]
    dense = FFNBlock(hidden_size=h, intermediate_size=c["intermediate_size"], activation=act,
                     bias=bool(c.get("mlp_bias", False)))
    moe: MoEBlock | None = None
    moe_layers: set[int] = set()
    if family == "mixtral":
        moe = MoEBlock(hidden_size=h, num_experts=c["num_local_experts"],
                       top_k=c["num_experts_per_tok"],
                       expert_intermediate_size=c["intermediate_size"], activation=act)
        moe_layers = set(range(n_layers))
    elif family in ("qwen3_moe", "qwen2_moe"):
        shared = c.get("shared_expert_intermediate_size") or None
        moe = MoEBlock(hidden_size=h, num_experts=c["num_experts"],
                       top_k=c["num_experts_per_tok"],
                       expert_intermediate_size=c["moe_intermediate_size"], activation=act,
                       num_shared_experts=1 if shared else 0,
                       shared_expert_intermediate_size=shared)
        step = c.get("decoder_sparse_step", 1) or 1
        only_dense = set(c.get("mlp_only_layers") or [])
        moe_layers = {i for i in range(n_layers) if (i + 1) % step == 0 and i not in only_dense}
    layers = group_layers(n_layers, moe_layers, attn, dense, moe)
    return {
        "hidden_size": h,
        "vocab_size": c["vocab_size"],
        "max_position_embeddings": c.get("max_position_embeddings", 4096),
        "layers": layers,
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "weight_dtype": weight_dtype(c),
    }


_BUILDERS = {
    "llama": _llama_like, "mistral": _llama_like, "mixtral": _llama_like, "qwen2": _llama_like,
    "qwen2_moe": _llama_like, "qwen3": _llama_like, "qwen3_moe": _llama_like,
    "deepseek_v2": hf_moe.deepseek, "deepseek_v3": hf_moe.deepseek, "gpt_oss": hf_moe.gpt_oss,
    "minimax_m2": hf_moe.minimax_m2, "gptj": hf_dense.gptj, "opt": hf_dense.opt,
    "gpt2": hf_dense.gpt2, "falcon": hf_dense.falcon, "phi": hf_dense.phi, "bloom": hf_dense.bloom,
}
