"""The one adapter from HuggingFace ``config.json`` to :class:`ModelSpec`.

Supported families (``model_type``): llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe,
deepseek_v2, deepseek_v3, gpt_oss, minimax_m2, gptj, opt, gpt2 (used for GPT-3), falcon, phi,
bloom. Field names and defaults follow the ``transformers`` configuration classes of each family
(``minimax_m2``: the remote code of MiniMax's checkpoints, as vLLM reads it). A ``layer_types``
list (``sliding_attention`` / ``full_attention`` per layer, as gpt-oss writes it) gives each
layer its own attention window.
"""

from __future__ import annotations

from typing import Any

from llmsim.catalog.blocks import (
    Activation,
    AttentionBlock,
    FFNBlock,
    LayerTemplate,
    MoEBlock,
    NormKind,
)
from llmsim.catalog.model import ModelSpec, PositionKind
from llmsim.dtypes import DType
from llmsim.errors import SpecError, UnknownNameError

SUPPORTED_FAMILIES = (
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
    "deepseek_v2", "deepseek_v3", "gpt_oss", "minimax_m2", "gptj", "opt", "gpt2", "falcon",
    "phi", "bloom",
)


#: config.json keys that hold a count or a width: a whole number >= 1 where given (>= 0 for
#: the ones in _MAY_BE_ZERO; null / absent keys take the family default)
_POSITIVE_INTS = (
    "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "num_hidden_layers",
    "intermediate_size", "vocab_size", "max_position_embeddings", "n_embd", "n_embed", "n_head",
    "n_layer", "n_inner", "n_positions", "ffn_dim", "num_local_experts", "num_experts",
    "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size",
    "n_routed_experts", "moe_layer_freq", "decoder_sparse_step", "kv_lora_rank", "q_lora_rank",
    "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "seq_length", "num_kv_heads",
    "word_embed_proj_dim", "ffn_hidden_size", "sliding_window", "experts_per_token",
)
_MAY_BE_ZERO = ("n_shared_experts", "first_k_dense_replace", "shared_intermediate_size")
#: the per-layer attention kinds of a ``layer_types`` list
_LAYER_TYPES = ("full_attention", "sliding_attention")


def _check_fields(config: dict[str, Any], name: str) -> None:
    """Counts are whole numbers (not strings, booleans or 0) before any arithmetic on them."""
    for key in (*_POSITIVE_INTS, *_MAY_BE_ZERO):
        value = config.get(key)
        if value is None:
            continue
        low = 0 if key in _MAY_BE_ZERO else 1
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not whole or value < low:
            raise SpecError(f"{name}: config.json {key} = {value!r} must be a whole number "
                            f">= {low}")
    types = config.get("layer_types")
    if types is not None and not (isinstance(types, list) and all(
            t in _LAYER_TYPES for t in types)):
        raise SpecError(f"{name}: config.json layer_types = {types!r} must be a list of "
                        + " / ".join(_LAYER_TYPES))
    layers = config.get("mlp_only_layers")
    if layers is not None and not (isinstance(layers, list) and all(
            isinstance(i, int) and not isinstance(i, bool) for i in layers)):
        raise SpecError(f"{name}: config.json mlp_only_layers = {layers!r} must be a list of "
                        "layer indices")


def _head_dim(c: dict[str, Any], h: int, nh: int, name: str = "") -> int:
    """``head_dim`` if the config gives it, else ``hidden_size / num_attention_heads``, which
    must then divide exactly."""
    if c.get("head_dim"):
        return int(c["head_dim"])
    if h % nh:
        raise SpecError(f"{name or 'model'}: config.json hidden_size {h} is not divisible by "
                        f"its {nh} attention heads (and no head_dim is given)")
    return h // nh


def _even_split(c: dict[str, Any], h: int, nh: int) -> int:
    """``hidden_size / heads`` of a family whose config has no ``head_dim`` (must divide)."""
    return _head_dim({}, h, nh, c.get("_name", ""))


def from_hf_config(config: dict[str, Any], name: str, hf_id: str = "",
                   source: str = "") -> ModelSpec:
    """Build a :class:`ModelSpec` from a parsed HF ``config.json``."""
    if not isinstance(config, dict):
        raise SpecError(f"{name}: a config.json holds a mapping (key: value), not "
                        f"{type(config).__name__}")
    _check_fields(config, name)
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


def _act(name: str | None) -> Activation:
    n = (name or "silu").lower()
    if n in ("silu", "swish", "swiglu"):
        return Activation.SILU
    if n.startswith("gelu"):
        return Activation.GELU
    if n == "relu":
        return Activation.RELU
    raise SpecError(f"unsupported activation {name!r}")


def _weight_dtype(c: dict[str, Any]) -> DType:
    q = c.get("quantization_config") or {}
    method = str(q.get("quant_method", "")).lower()
    if method == "fp8":
        return DType.FP8
    if method in ("awq", "gptq") or q.get("bits") == 4:
        return DType.INT4
    if method in ("mxfp4", "nvfp4"):
        return DType.FP4
    td = str(c.get("torch_dtype") or c.get("dtype") or "bfloat16")
    try:
        dt = DType.parse(td)
    except UnknownNameError:
        raise SpecError(f"{c.get('_name', 'model')}: config.json torch_dtype {td!r} is not a "
                        "format llmsim knows (bfloat16, float16, float32, float8_e4m3fn, ...); "
                        "fix it or pass --dtype") from None
    return DType.BF16 if dt == DType.FP32 else dt


def _llama_like(c: dict[str, Any]) -> dict[str, Any]:
    """llama, mistral, mixtral, qwen2(+moe), qwen3(+moe): RMSNorm, RoPE, SwiGLU, GQA."""
    family = c["model_type"]
    h = c["hidden_size"]
    nh = c["num_attention_heads"]
    nkv = c.get("num_key_value_heads") or nh
    head_dim = _head_dim(c, h, nh, c.get("_name", ""))
    qkv_bias = bool(c.get("attention_bias", False)) or family in ("qwen2", "qwen2_moe")
    window = c.get("sliding_window")
    if family.startswith("qwen") and not c.get("use_sliding_window", False):
        window = None
    attn = AttentionBlock(
        hidden_size=h, num_heads=nh, num_kv_heads=nkv, head_dim=head_dim,
        qkv_bias=qkv_bias, o_bias=bool(c.get("attention_bias", False)),
        qk_norm=family in ("qwen3", "qwen3_moe"), sliding_window=window or None,
    )
    act = _act(c.get("hidden_act"))
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
    layers = _group_layers(n_layers, moe_layers, attn, dense, moe)
    return {
        "hidden_size": h,
        "vocab_size": c["vocab_size"],
        "max_position_embeddings": c.get("max_position_embeddings", 4096),
        "layers": layers,
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "weight_dtype": _weight_dtype(c),
    }


def _deepseek(c: dict[str, Any]) -> dict[str, Any]:
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
    act = _act(c.get("hidden_act"))
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
        "layers": _group_layers(n_layers, moe_layers, attn, dense, moe),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "weight_dtype": _weight_dtype(c),
        "mtp_layers": int(c.get("num_nextn_predict_layers") or 0),
    }


def _gptj(c: dict[str, Any]) -> dict[str, Any]:
    """GPT-J: parallel attention + MLP sharing one LayerNorm, partial RoPE, biased MLP/LM head."""
    h = c["n_embd"]
    nh = c["n_head"]
    attn = AttentionBlock(hidden_size=h, num_heads=nh, num_kv_heads=nh,
                          head_dim=_even_split(c, h, nh),
                          norm=NormKind.LAYER, norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=c.get("n_inner") or 4 * h, gated=False,
                   activation=_act(c.get("activation_function", "gelu_new")), bias=True,
                   norm=NormKind.LAYER, has_norm=False)
    layer = LayerTemplate(name="decoder", repeat=c["n_layer"], blocks=(attn, ffn),
                          parallel_residual=True)
    return {
        "hidden_size": h, "vocab_size": c["vocab_size"],
        "max_position_embeddings": c.get("n_positions", 2048), "layers": (layer,),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)), "lm_head_bias": True,
        "final_norm": NormKind.LAYER, "final_norm_bias": True, "weight_dtype": _weight_dtype(c),
    }


def _opt(c: dict[str, Any]) -> dict[str, Any]:
    """OPT: learned positions (+2 offset rows), pre-LayerNorm, biased MHA, ReLU MLP, tied head."""
    h = c["hidden_size"]
    nh = c["num_attention_heads"]
    bias = bool(c.get("enable_bias", True))
    if c.get("word_embed_proj_dim", h) != h:
        raise SpecError("OPT with word_embed_proj_dim != hidden_size (OPT-350m) is not supported")
    attn = AttentionBlock(hidden_size=h, num_heads=nh, num_kv_heads=nh,
                          head_dim=_even_split(c, h, nh),
                          qkv_bias=bias, o_bias=bias, rope=False, norm=NormKind.LAYER,
                          norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=c["ffn_dim"], gated=False,
                   activation=_act(c.get("activation_function", "relu")), bias=bias,
                   norm=NormKind.LAYER, norm_bias=True)
    layer = LayerTemplate(name="decoder", repeat=c["num_hidden_layers"], blocks=(attn, ffn))
    max_pos = c.get("max_position_embeddings", 2048)
    return {
        "hidden_size": h, "vocab_size": c["vocab_size"], "max_position_embeddings": max_pos,
        "position": PositionKind.LEARNED, "learned_position_rows": max_pos + 2,
        "layers": (layer,), "tie_word_embeddings": bool(c.get("tie_word_embeddings", True)),
        "final_norm": NormKind.LAYER, "final_norm_bias": True, "weight_dtype": _weight_dtype(c),
    }


def _gpt2(c: dict[str, Any]) -> dict[str, Any]:
    """GPT-2 / GPT-3 style: learned positions, pre-LayerNorm, biased MHA and GELU MLP, tied."""
    h = c["n_embd"]
    nh = c["n_head"]
    attn = AttentionBlock(hidden_size=h, num_heads=nh, num_kv_heads=nh,
                          head_dim=_even_split(c, h, nh),
                          qkv_bias=True, o_bias=True, rope=False, norm=NormKind.LAYER,
                          norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=c.get("n_inner") or 4 * h, gated=False,
                   activation=_act(c.get("activation_function", "gelu_new")), bias=True,
                   norm=NormKind.LAYER, norm_bias=True)
    layer = LayerTemplate(name="decoder", repeat=c["n_layer"], blocks=(attn, ffn))
    max_pos = c.get("n_positions", 1024)
    return {
        "hidden_size": h, "vocab_size": c["vocab_size"], "max_position_embeddings": max_pos,
        "position": PositionKind.LEARNED, "learned_position_rows": max_pos,
        "layers": (layer,), "tie_word_embeddings": bool(c.get("tie_word_embeddings", True)),
        "final_norm": NormKind.LAYER, "final_norm_bias": True, "weight_dtype": _weight_dtype(c),
    }


def _bloom(c: dict[str, Any]) -> dict[str, Any]:
    """BLOOM: ALiBi positions, a LayerNorm after the embedding, biased MHA and GELU MLP, tied
    head (BigScience, "BLOOM", arXiv:2211.05100, Table 3)."""
    h = c.get("hidden_size") or c["n_embed"]
    nh = c.get("num_attention_heads") or c["n_head"]
    attn = AttentionBlock(hidden_size=h, num_heads=nh, num_kv_heads=nh,
                          head_dim=_even_split(c, h, nh),
                          qkv_bias=True, o_bias=True, rope=False, norm=NormKind.LAYER,
                          norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=4 * h, gated=False,
                   activation=Activation.GELU, bias=True, norm=NormKind.LAYER, norm_bias=True)
    layer = LayerTemplate(name="decoder", repeat=c.get("n_layer") or c["num_hidden_layers"],
                          blocks=(attn, ffn))
    return {
        "hidden_size": h, "vocab_size": c["vocab_size"],
        "max_position_embeddings": c.get("seq_length", 2048), "position": PositionKind.ALIBI,
        "embedding_norm": True, "layers": (layer,),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", True)),
        "final_norm": NormKind.LAYER, "final_norm_bias": True, "weight_dtype": _weight_dtype(c),
    }


def _phi(c: dict[str, Any]) -> dict[str, Any]:
    """Phi-1/2: parallel attention + MLP on one LayerNorm, partial RoPE, biases everywhere."""
    h = c["hidden_size"]
    nh = c["num_attention_heads"]
    attn = AttentionBlock(hidden_size=h, num_heads=nh,
                          num_kv_heads=c.get("num_key_value_heads") or nh,
                          head_dim=_even_split(c, h, nh),
                          qkv_bias=True, o_bias=True, norm=NormKind.LAYER, norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=c["intermediate_size"], gated=False,
                   activation=_act(c.get("hidden_act", "gelu_new")), bias=True,
                   norm=NormKind.LAYER, has_norm=False)
    layer = LayerTemplate(name="decoder", repeat=c["num_hidden_layers"], blocks=(attn, ffn),
                          parallel_residual=True)
    return {
        "hidden_size": h, "vocab_size": c["vocab_size"],
        "max_position_embeddings": c.get("max_position_embeddings", 2048), "layers": (layer,),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)), "lm_head_bias": True,
        "final_norm": NormKind.LAYER, "final_norm_bias": True, "weight_dtype": _weight_dtype(c),
    }


def _falcon(c: dict[str, Any]) -> dict[str, Any]:
    """Falcon: parallel attention/MLP; the new decoder architecture (40B/180B) has GQA-style
    ``num_kv_heads`` groups and separate LayerNorms for attention and MLP."""
    h = c["hidden_size"]
    nh = c.get("num_attention_heads") or c["n_head"]
    new_arch = bool(c.get("new_decoder_architecture", False))
    multi_query_kv = 1 if c.get("multi_query", True) else nh
    nkv = (c.get("num_kv_heads") or nh) if new_arch else multi_query_kv
    bias = bool(c.get("bias", False))
    attn = AttentionBlock(hidden_size=h, num_heads=nh, num_kv_heads=nkv,
                          head_dim=_even_split(c, h, nh),
                          qkv_bias=bias, o_bias=bias, rope=not c.get("alibi", False),
                          norm=NormKind.LAYER, norm_bias=True)
    ffn = FFNBlock(hidden_size=h, intermediate_size=c.get("ffn_hidden_size") or 4 * h,
                   gated=False, activation=Activation.GELU, bias=bias, norm=NormKind.LAYER,
                   norm_bias=True, has_norm=new_arch)
    layer = LayerTemplate(name="decoder", repeat=c.get("num_hidden_layers") or c["n_layer"],
                          blocks=(attn, ffn), parallel_residual=bool(c.get("parallel_attn", True)))
    return {
        "hidden_size": h, "vocab_size": c["vocab_size"],
        "max_position_embeddings": c.get("max_position_embeddings", 2048),
        "position": PositionKind.ALIBI if c.get("alibi") else PositionKind.ROPE,
        "layers": (layer,), "tie_word_embeddings": bool(c.get("tie_word_embeddings", True)),
        "final_norm": NormKind.LAYER, "final_norm_bias": True, "weight_dtype": _weight_dtype(c),
    }


def _group_layers(
    n_layers: int,
    moe_layers: set[int],
    attn: AttentionBlock | list[AttentionBlock],
    dense: FFNBlock | None,
    moe: MoEBlock | None,
) -> tuple[LayerTemplate, ...]:
    """Run-length encode the layer pattern (dense / MoE, and each layer's attention when
    ``attn`` is a per-layer list) into ordered templates."""
    per_layer = attn if isinstance(attn, list) else [attn] * n_layers
    templates: list[LayerTemplate] = []
    run, run_len = None, 0
    for i in range(n_layers + 1):
        key = None if i == n_layers else ("moe" if i in moe_layers else "dense", per_layer[i])
        if key == run:
            run_len += 1
            continue
        if run is not None:
            kind, block = run
            ffn = moe if kind == "moe" else dense
            name = kind if block.sliding_window is None else f"{kind}_sliding"
            templates.append(LayerTemplate(name=name, repeat=run_len, blocks=(block, ffn)))
        run, run_len = key, 1
    return tuple(templates)


def _layer_attention(c: dict[str, Any], attn: AttentionBlock) -> list[AttentionBlock]:
    """Each layer's attention: ``attn`` with the config's ``sliding_window`` on the layers that
    ``layer_types`` marks ``sliding_attention`` and no window on the others."""
    types = c["layer_types"]
    if len(types) != c["num_hidden_layers"]:
        raise SpecError(f"{c.get('_name', 'model')}: config.json layer_types lists "
                        f"{len(types)} layers, num_hidden_layers is {c['num_hidden_layers']}")
    full = attn.model_copy(update={"sliding_window": None})
    window = c.get("sliding_window")
    sliding = attn.model_copy(update={"sliding_window": window}) if window else full
    return [sliding if t == "sliding_attention" else full for t in types]


def _gpt_oss(c: dict[str, Any]) -> dict[str, Any]:
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
                          head_dim=_head_dim(c, h, nh, c.get("_name", "")),
                          qkv_bias=bias, o_bias=bias)
    n_layers = c["num_hidden_layers"]
    per_layer = (_layer_attention(c, attn) if c.get("layer_types") else
                 [attn.model_copy(update={"sliding_window": c.get("sliding_window")})
                  if i % 2 == 0 and c.get("sliding_window") else attn for i in range(n_layers)])
    moe = MoEBlock(hidden_size=h, num_experts=c["num_local_experts"],
                   top_k=c.get("num_experts_per_tok") or c["experts_per_token"],
                   expert_intermediate_size=c["intermediate_size"],
                   activation=_act(c.get("hidden_act")), router_bias=True)
    return _all_moe_fields(c, per_layer, moe, 131072)


def _minimax_m2(c: dict[str, Any]) -> dict[str, Any]:
    """MiniMax-M2 (M2.1, M2.5): GQA with RMS q/k norms and partial RoPE (``rotary_dim``, not
    priced), every layer a top-k MoE of SwiGLU experts (``intermediate_size`` is the expert
    width) with sigmoid scores and a routing bias (``use_routing_bias``); a shared expert when
    ``shared_intermediate_size`` > 0. Its ``num_mtp_modules`` MTP layers are ``mtp_layers``
    when ``use_mtp`` is set."""
    h = c["hidden_size"]
    nh = c["num_attention_heads"]
    attn = AttentionBlock(hidden_size=h, num_heads=nh,
                          num_kv_heads=c.get("num_key_value_heads") or nh,
                          head_dim=_head_dim(c, h, nh, c.get("_name", "")),
                          qkv_bias=bool(c.get("attention_bias", False)),
                          o_bias=bool(c.get("attention_bias", False)),
                          qk_norm=bool(c.get("use_qk_norm", False)))
    shared = c.get("shared_intermediate_size") or None
    moe = MoEBlock(hidden_size=h, num_experts=c["num_local_experts"],
                   top_k=c["num_experts_per_tok"],
                   expert_intermediate_size=c["intermediate_size"],
                   activation=_act(c.get("hidden_act")),
                   num_shared_experts=1 if shared else 0, shared_expert_intermediate_size=shared,
                   router_bias=bool(c.get("use_routing_bias", False)))
    mtp = int(c.get("num_mtp_modules") or 0) * int(c.get("mtp_transformer_layers") or 1)
    return {**_all_moe_fields(c, attn, moe, 4096), "mtp_layers": mtp if c.get("use_mtp") else 0}


def _all_moe_fields(c: dict[str, Any], attn: AttentionBlock | list[AttentionBlock],
                    moe: MoEBlock, max_positions: int) -> dict[str, Any]:
    """The ModelSpec fields of a model whose every layer is attention (``attn``, or one per
    layer) then ``moe``, untied unless the config ties its embeddings."""
    n_layers = c["num_hidden_layers"]
    return {
        "hidden_size": c["hidden_size"],
        "vocab_size": c["vocab_size"],
        "max_position_embeddings": c.get("max_position_embeddings", max_positions),
        "layers": _group_layers(n_layers, set(range(n_layers)), attn, None, moe),
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "weight_dtype": _weight_dtype(c),
    }


_BUILDERS = {
    "llama": _llama_like, "mistral": _llama_like, "mixtral": _llama_like, "qwen2": _llama_like,
    "qwen2_moe": _llama_like, "qwen3": _llama_like, "qwen3_moe": _llama_like,
    "deepseek_v2": _deepseek, "deepseek_v3": _deepseek, "gpt_oss": _gpt_oss,
    "minimax_m2": _minimax_m2, "gptj": _gptj, "opt": _opt,
    "gpt2": _gpt2, "falcon": _falcon, "phi": _phi, "bloom": _bloom,
}
