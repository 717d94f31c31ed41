"""Offload settings and the small MoE model format shared with the executor.

Two things live here:

- :class:`OffloadConfig`: the knobs of the expert cache (capacity ``C`` experts per MoE layer,
  replacement policy, ``P`` prefetched experts per layer with accuracy ``a``, miss handling,
  seed). The simulator and the PyTorch executor take the same object.
- :class:`MoEModelConfig`: the executor's preset format (hidden size, layers, heads, KV heads,
  head dim, RoPE theta, experts, top-k, expert intermediate size, vocabulary). It converts to a
  :class:`~llmsim.catalog.ModelSpec` through the catalog blocks (:meth:`to_model_spec`), so the
  cost model prices exactly what the executor runs. HF ``config.json`` files still come in
  through the one catalog adapter (:func:`llmsim.catalog.get_model`); :func:`load_moe_model`
  tries this format first and falls back to it.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator, model_validator

from llmsim.catalog import AttentionBlock, LayerTemplate, ModelSpec, MoEBlock, get_model
from llmsim.catalog._base import Spec, validate_spec
from llmsim.dtypes import DType
from llmsim.errors import ConfigError, SpecError
from llmsim.seeds import check_seed

FORMAT_TAG = "llmsim-moe"

class MissMode(str, Enum):
    """What happens to a routed expert that is not on the GPU.

    FETCH: copy its weights host->device over PCIe, then compute on the GPU.
    CPU: compute it on the CPU from host memory; the tokens' activations go down (D2H) and the
    results come back (H2D).
    """

    FETCH = "fetch"
    CPU = "cpu"


class OffloadConfig(Spec):
    """Expert-cache settings, identical for the simulator and the executor.

    ``capacity``: experts held on the GPU per MoE layer (``C``). ``prefetch``: experts per layer
    guessed and copied ahead (``P``) while the previous layer computes; each guess is right with
    probability ``prefetch_accuracy`` (``a``). ``policy``: a name in
    :data:`llmsim.moe_offload.policies.CACHE_POLICIES` (``lru``, ``lfu``, ``static``).
    """

    capacity: int = Field(default=8, ge=0)
    policy: str = "lru"
    prefetch: int = Field(default=4, ge=0)
    prefetch_accuracy: float = Field(default=0.8, ge=0.0, le=1.0)
    miss: MissMode = MissMode.FETCH
    seed: int = 0

    @field_validator("seed", mode="before")
    @classmethod
    def _check_seed(cls, value: Any) -> int:
        return check_seed(value)  # a ValueError: pydantic reports it (build() raises it bare)

    @model_validator(mode="after")
    def _check_policy(self) -> OffloadConfig:
        from llmsim.moe_offload.policies import CACHE_POLICIES

        CACHE_POLICIES.get(self.policy)  # UnknownNameError with a did-you-mean
        return self

    @classmethod
    def build(cls, **values: Any) -> OffloadConfig:
        """Validate ``values`` with one-line SpecErrors (for CLI input)."""
        if "seed" in values:
            check_seed(values["seed"])
        return validate_spec(cls, values, "offload settings")  # type: ignore[return-value]

    def replace(self, **changes: Any) -> OffloadConfig:
        """A validated copy with ``changes`` applied."""
        return type(self).build(**{**self.model_dump(), **changes})

    def for_model(self, num_experts: int) -> OffloadConfig:
        """Validate against a model: capacity and prefetch cannot exceed the expert count."""
        if self.capacity > num_experts:
            raise ConfigError(
                f"cache capacity {self.capacity} exceeds the {num_experts} experts per layer; "
                f"use --cache-capacity {num_experts} or less"
            )
        if self.prefetch > num_experts:
            raise ConfigError(
                f"prefetch {self.prefetch} exceeds the {num_experts} experts per layer"
            )
        return self


class MoEModelConfig(Spec):
    """A Llama-like MoE decoder as the executor builds it (every layer: attention + MoE).

    RMSNorm pre-norm, RoPE, GQA attention, a top-k softmax router and SwiGLU experts
    (gate/up fused, ``expert_intermediate_size`` wide each).
    """

    format: str = FORMAT_TAG
    name: str = "moe"
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    rope_theta: float = Field(default=10000.0, gt=0)
    num_experts: int = Field(gt=0)
    top_k: int = Field(gt=0)
    expert_intermediate_size: int = Field(gt=0)
    vocab_size: int = Field(default=32000, gt=0)
    rms_norm_eps: float = Field(default=1e-6, gt=0)
    max_position_embeddings: int = Field(default=4096, gt=0)
    weight_dtype: DType = DType.BF16

    @model_validator(mode="after")
    def _check(self) -> MoEModelConfig:
        if self.format != FORMAT_TAG:
            raise ValueError(f"format must be {FORMAT_TAG!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads "
                             f"{self.num_kv_heads}")
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k {self.top_k} exceeds num_experts {self.num_experts}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even (RoPE rotates pairs)")
        return self

    def replace(self, **changes: Any) -> MoEModelConfig:
        """A validated copy with ``changes`` applied."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def to_model_spec(self) -> ModelSpec:
        """The same model as catalog blocks (one template of ``num_layers`` attention+MoE)."""
        attn = AttentionBlock(hidden_size=self.hidden_size, num_heads=self.num_heads,
                              num_kv_heads=self.num_kv_heads, head_dim=self.head_dim)
        moe = MoEBlock(hidden_size=self.hidden_size, num_experts=self.num_experts,
                       top_k=self.top_k, expert_intermediate_size=self.expert_intermediate_size)
        layer = LayerTemplate(name="moe", repeat=self.num_layers, blocks=(attn, moe))
        return ModelSpec(name=self.name, family="llmsim-moe", hidden_size=self.hidden_size,
                         vocab_size=self.vocab_size,
                         max_position_embeddings=self.max_position_embeddings,
                         layers=(layer,), weight_dtype=self.weight_dtype,
                         source="llmsim executor preset")

    @classmethod
    def from_model_spec(cls, spec: ModelSpec) -> MoEModelConfig:
        """The executor's form of a catalog model, when it has one: GQA/MHA attention without
        q/k norms, and every layer a MoE layer without shared experts (e.g. Mixtral)."""
        problems = []
        if any(t.moe is None for t in spec.layers):
            problems.append("dense (non-MoE) layers")
        attn = spec.attention
        moe = spec.moe
        if attn.is_mla:
            problems.append("MLA attention")
        if attn.qk_norm or attn.qkv_bias or attn.o_bias or attn.sliding_window:
            problems.append("q/k norms, attention biases or a sliding window")
        if moe is not None and (moe.num_shared_experts or not moe.gated or moe.router_bias):
            problems.append("shared experts, a router bias or ungated experts")
        if moe is None or problems:
            raise ConfigError(f"the executor cannot build {spec.name}: it has "
                              + (", ".join(problems) or "no MoE layer")
                              + "; write an executor config (see examples/moe-cpu-small.json)")
        return cls(name=spec.name, hidden_size=spec.hidden_size, num_layers=spec.num_layers,
                   num_heads=attn.num_heads, num_kv_heads=attn.num_kv_heads,
                   head_dim=attn.head_dim, num_experts=moe.num_experts, top_k=moe.top_k,
                   expert_intermediate_size=moe.expert_intermediate_size,
                   vocab_size=spec.vocab_size,
                   max_position_embeddings=spec.max_position_embeddings,
                   weight_dtype=spec.weight_dtype)

    def expert_params(self) -> int:
        """Parameters of one routed expert (gate, up and down projections)."""
        return 3 * self.hidden_size * self.expert_intermediate_size


class Preset(Spec):
    """A named executor workload: model config, offload settings and the run shape."""

    name: str
    description: str
    model: MoEModelConfig
    offload: OffloadConfig
    prompt_tokens: int = Field(gt=0)
    decode_steps: int = Field(ge=0)


# The big default (hidden 4096, 10 layers, 64 experts, top-4, cache 8, prefetch accuracy
# 0.8, 256-token prefill, 10 decode steps). Heads/KV heads/head dim follow Llama/Mixtral
# (32 x 128, 8 KV heads); the expert width is DeepSeek-V2-Lite's 1408, which keeps the 640
# experts at 22 GB in fp16 host memory.
_GPU_MODEL = MoEModelConfig(name="moe-4096x10", hidden_size=4096, num_layers=10, num_heads=32,
                            num_kv_heads=8, head_dim=128, num_experts=64, top_k=4,
                            expert_intermediate_size=1408, vocab_size=32000,
                            weight_dtype=DType.FP16)
# Scaled down so that a 2-core CPU runs prefill + decode in about a second (fp32).
_CPU_MODEL = MoEModelConfig(name="moe-512x4", hidden_size=512, num_layers=4, num_heads=8,
                            num_kv_heads=2, head_dim=64, num_experts=16, top_k=2,
                            expert_intermediate_size=768, vocab_size=4096,
                            weight_dtype=DType.FP32)
_TINY_MODEL = MoEModelConfig(name="moe-tiny", hidden_size=64, num_layers=2, num_heads=4,
                             num_kv_heads=2, head_dim=16, num_experts=8, top_k=2,
                             expert_intermediate_size=96, vocab_size=128,
                             weight_dtype=DType.FP32)

PRESETS: dict[str, Preset] = {
    "gpu-default": Preset(
        name="gpu-default", description="the issue's default: 4096 hidden, 10 layers, 64x top-4",
        model=_GPU_MODEL, offload=OffloadConfig(capacity=8, prefetch=4, prefetch_accuracy=0.8),
        prompt_tokens=256, decode_steps=10),
    "cpu-small": Preset(
        name="cpu-small", description="scaled down for a CPU: 512 hidden, 4 layers, 16x top-2",
        model=_CPU_MODEL, offload=OffloadConfig(capacity=4, prefetch=2, prefetch_accuracy=0.8),
        prompt_tokens=128, decode_steps=16),
    "tiny": Preset(
        name="tiny", description="a toy for tests: 64 hidden, 2 layers, 8x top-2",
        model=_TINY_MODEL, offload=OffloadConfig(capacity=3, prefetch=2, prefetch_accuracy=0.8),
        prompt_tokens=16, decode_steps=4),
}


def get_preset(name: str) -> Preset:
    from llmsim.errors import UnknownNameError

    preset = PRESETS.get(name.strip().lower())
    if preset is None:
        raise UnknownNameError("executor preset", name, PRESETS)
    return preset


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a JSON or YAML file into a dict (one-line SpecError on bad syntax)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read ({exc.strerror})") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{p}: invalid {'JSON' if p.suffix == '.json' else 'YAML'} ({exc})") \
            from None
    if not isinstance(data, dict):
        raise SpecError(f"{p}: expected a mapping at the top level")
    return data


def load_moe_config(source: str | Path | MoEModelConfig) -> MoEModelConfig:
    """An executor model config from a preset name, a JSON/YAML file in the ``llmsim-moe``
    format, or any catalog model / HF config the executor can build (via ``get_model``)."""
    if isinstance(source, MoEModelConfig):
        return source
    key = str(source).strip()
    if key.lower() in PRESETS:
        return PRESETS[key.lower()].model
    path = Path(key).expanduser()
    if path.is_file() and path.suffix in (".json", ".yaml", ".yml"):
        data = read_config_file(path)
        if data.get("format") == FORMAT_TAG:
            return validate_spec(MoEModelConfig, data, str(path))  # type: ignore[return-value]
    return MoEModelConfig.from_model_spec(get_model(key))


def load_model_spec(source: str | Path | ModelSpec | MoEModelConfig) -> ModelSpec:
    """A :class:`ModelSpec` from a catalog name, HF id or ``config.json``, an executor preset
    name or an ``llmsim-moe`` config file (the executor's format, as catalog blocks). The one
    loader for every command that takes these (``moe-offload``, ``offload``)."""
    if isinstance(source, ModelSpec):
        return source
    if isinstance(source, MoEModelConfig):
        return source.to_model_spec()
    key = str(source).strip()
    path = Path(key).expanduser()
    if key.lower() in PRESETS:
        return PRESETS[key.lower()].model.to_model_spec()
    if path.is_file() and path.suffix in (".json", ".yaml", ".yml") and \
            read_config_file(path).get("format") == FORMAT_TAG:
        return load_moe_config(path).to_model_spec()
    return get_model(key)


def load_moe_model(source: str | Path | ModelSpec | MoEModelConfig) -> ModelSpec:
    """A MoE :class:`ModelSpec` (see :func:`load_model_spec`). Raises ConfigError for dense
    models."""
    spec = load_model_spec(source)
    if not spec.is_moe:
        raise ConfigError(f"{spec.name} is a dense model; expert offloading needs a MoE model "
                          "(mixtral-8x7b, deepseek-v2-lite, qwen3-30b-a3b, deepseek-v3, ...)")
    return spec
