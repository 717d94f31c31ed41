"""HuggingFace builders of the older dense families: GPT-J, OPT, GPT-2 (GPT-3), BLOOM, Phi,
Falcon (field names and defaults of each ``transformers`` configuration class)."""

from __future__ import annotations

from typing import Any

from llmsim.catalog.blocks import Activation, AttentionBlock, FFNBlock, LayerTemplate, NormKind
from llmsim.catalog.hf_fields import activation, even_split, weight_dtype
from llmsim.catalog.model import PositionKind
from llmsim.errors import SpecError


def _spec(c: dict[str, Any], h: int, layer: LayerTemplate, max_pos: int, tied: bool,
          **extra: Any) -> dict[str, Any]:
    """The fields every builder here returns: one decoder template, a final LayerNorm with
    bias, the embedding tie (``tie_word_embeddings``, defaulting to ``tied``) and the weight
    format; ``extra`` adds a family's own (positions, LM-head bias, embedding norm)."""
    return {
        "hidden_size": h, "vocab_size": c["vocab_size"], "max_position_embeddings": max_pos,
        "layers": (layer,), "tie_word_embeddings": bool(c.get("tie_word_embeddings", tied)),
        "final_norm": NormKind.LAYER, "final_norm_bias": True, "weight_dtype": weight_dtype(c),
        **extra,
    }


def gptj(c: dict[str, Any]) -> dict[str, Any]:
    """GPT-J: parallel attention + MLP sharing one LayerNorm, partial RoPE, biased MLP/LM head."""
    h = c["n_embd"]
    nh = c["n_head"]
    attn = AttentionBlock(hidden_size=h, num_heads=nh, num_kv_heads=nh,
                          head_dim=even_split(c, h, nh),
                          norm=NormKind.LAYER, norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=c.get("n_inner") or 4 * h, gated=False,
                   activation=activation(c.get("activation_function", "gelu_new")), bias=True,
                   norm=NormKind.LAYER, has_norm=False)
    layer = LayerTemplate(name="decoder", repeat=c["n_layer"], blocks=(attn, ffn),
                          parallel_residual=True)
    return _spec(c, h, layer, c.get("n_positions", 2048), tied=False, lm_head_bias=True)


def opt(c: dict[str, Any]) -> dict[str, Any]:
    """OPT: learned positions (+2 offset rows), pre-LayerNorm, biased MHA, ReLU MLP, tied head."""
    h = c["hidden_size"]
    nh = c["num_attention_heads"]
    bias = bool(c.get("enable_bias", True))
    if c.get("word_embed_proj_dim", h) != h:
        raise SpecError("OPT with word_embed_proj_dim != hidden_size (OPT-350m) is not supported")
    attn = AttentionBlock(hidden_size=h, num_heads=nh, num_kv_heads=nh,
                          head_dim=even_split(c, h, nh),
                          qkv_bias=bias, o_bias=bias, rope=False, norm=NormKind.LAYER,
                          norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=c["ffn_dim"], gated=False,
                   activation=activation(c.get("activation_function", "relu")), bias=bias,
                   norm=NormKind.LAYER, norm_bias=True)
    layer = LayerTemplate(name="decoder", repeat=c["num_hidden_layers"], blocks=(attn, ffn))
    max_pos = c.get("max_position_embeddings", 2048)
    return _spec(c, h, layer, max_pos, tied=True, position=PositionKind.LEARNED,
                 learned_position_rows=max_pos + 2)


def gpt2(c: dict[str, Any]) -> dict[str, Any]:
    """GPT-2 / GPT-3 style: learned positions, pre-LayerNorm, biased MHA and GELU MLP, tied."""
    h = c["n_embd"]
    nh = c["n_head"]
    attn = AttentionBlock(hidden_size=h, num_heads=nh, num_kv_heads=nh,
                          head_dim=even_split(c, h, nh),
                          qkv_bias=True, o_bias=True, rope=False, norm=NormKind.LAYER,
                          norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=c.get("n_inner") or 4 * h, gated=False,
                   activation=activation(c.get("activation_function", "gelu_new")), bias=True,
                   norm=NormKind.LAYER, norm_bias=True)
    layer = LayerTemplate(name="decoder", repeat=c["n_layer"], blocks=(attn, ffn))
    max_pos = c.get("n_positions", 1024)
    return _spec(c, h, layer, max_pos, tied=True, position=PositionKind.LEARNED,
                 learned_position_rows=max_pos)


def bloom(c: dict[str, Any]) -> dict[str, Any]:
    """BLOOM: ALiBi positions, a LayerNorm after the embedding, biased MHA and GELU MLP, tied
    head (BigScience, "BLOOM", arXiv:2211.05100, Table 3)."""
    h = c.get("hidden_size") or c["n_embed"]
    nh = c.get("num_attention_heads") or c["n_head"]
    attn = AttentionBlock(hidden_size=h, num_heads=nh, num_kv_heads=nh,
                          head_dim=even_split(c, h, nh),
                          qkv_bias=True, o_bias=True, rope=False, norm=NormKind.LAYER,
                          norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=4 * h, gated=False,
                   activation=Activation.GELU, bias=True, norm=NormKind.LAYER, norm_bias=True)
    layer = LayerTemplate(name="decoder", repeat=c.get("n_layer") or c["num_hidden_layers"],
                          blocks=(attn, ffn))
    return _spec(c, h, layer, c.get("seq_length", 2048), tied=True,
                 position=PositionKind.ALIBI, embedding_norm=True)


def phi(c: dict[str, Any]) -> dict[str, Any]:
    """Phi-1/2: parallel attention + MLP on one LayerNorm, partial RoPE, biases everywhere."""
    h = c["hidden_size"]
    nh = c["num_attention_heads"]
    attn = AttentionBlock(hidden_size=h, num_heads=nh,
                          num_kv_heads=c.get("num_key_value_heads") or nh,
                          head_dim=even_split(c, h, nh),
                          qkv_bias=True, o_bias=True, norm=NormKind.LAYER, norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=c["intermediate_size"], gated=False,
                   activation=activation(c.get("hidden_act", "gelu_new")), bias=True,
                   norm=NormKind.LAYER, has_norm=False)
    layer = LayerTemplate(name="decoder", repeat=c["num_hidden_layers"], blocks=(attn, ffn),
                          parallel_residual=True)
    return _spec(c, h, layer, c.get("max_position_embeddings", 2048), tied=False,
                 lm_head_bias=True)


def falcon(c: dict[str, Any]) -> dict[str, Any]:
    """Falcon: parallel attention/MLP; the new decoder architecture (40B/180B) has GQA-style
    ``num_kv_heads`` groups and separate LayerNorms for attention and MLP."""
    h = c["hidden_size"]
    nh = c.get("num_attention_heads") or c["n_head"]
    new_arch = bool(c.get("new_decoder_architecture", False))
    multi_query_kv = 1 if c.get("multi_query", True) else nh
    nkv = (c.get("num_kv_heads") or nh) if new_arch else multi_query_kv
    bias = bool(c.get("bias", False))
    attn = AttentionBlock(hidden_size=h, num_heads=nh, num_kv_heads=nkv,
                          head_dim=even_split(c, h, nh),
                          qkv_bias=bias, o_bias=bias, rope=not c.get("alibi", False),
                          norm=NormKind.LAYER, norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=c.get("ffn_hidden_size") or 4 * h,
                   gated=False, activation=Activation.GELU, bias=bias, norm=NormKind.LAYER,
                   norm_bias=True, has_norm=new_arch)
    layer = LayerTemplate(name="decoder", repeat=c.get("num_hidden_layers") or c["n_layer"],
                          blocks=(attn, ffn), parallel_residual=bool(c.get("parallel_attn", True)))
    return _spec(c, h, layer, c.get("max_position_embeddings", 2048), tied=True,
                 position=PositionKind.ALIBI if c.get("alibi") else PositionKind.ROPE)
