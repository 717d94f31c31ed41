"""The config.json reading shared by the HuggingFace family builders (:mod:`llmsim.catalog.hf`):
field checks, head width, activation, weight format, and the run-length layer pattern."""

from __future__ import annotations

from typing import Any

from llmsim.catalog.blocks import Activation, AttentionBlock, FFNBlock, LayerTemplate, MoEBlock
from llmsim.dtypes import DType
from llmsim.errors import SpecError, UnknownNameError

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


def check_fields(config: dict[str, Any], name: str) -> None:
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


def head_width(c: dict[str, Any], h: int, nh: int, name: str = "") -> int:
    """``head_dim`` if the config gives it, else ``hidden_size / num_attention_heads``, which
    must then divide exactly."""
    if c.get("head_dim"):
        return int(c["head_dim"])
    if h % nh:
        raise SpecError(f"{name or 'model'}: config.json hidden_size {h} is not divisible by "
                        f"its {nh} attention heads (and no head_dim is given)")
    return h // nh


def even_split(c: dict[str, Any], h: int, nh: int) -> int:
    """``hidden_size / heads`` of a family whose config has no ``head_dim`` (must divide)."""
    return head_width({}, h, nh, c.get("_name", ""))


def activation(name: str | None) -> Activation:
    n = (name or "silu").lower()
    if n in ("silu", "swish", "swiglu"):
        return Activation.SILU
    if n.startswith("gelu"):
        return Activation.GELU
    if n == "relu":
        return Activation.RELU
    raise SpecError(f"unsupported activation {name!r}")


def weight_dtype(c: dict[str, Any]) -> DType:
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


def group_layers(
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


def layer_attention(c: dict[str, Any], attn: AttentionBlock) -> list[AttentionBlock]:
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
