"""The ``llmsim-moe`` model format: a Llama-like MoE decoder as the PyTorch executor builds it.

A JSON or YAML file with ``format: llmsim-moe`` and the fields of :class:`MoEModelConfig`
(hidden size, layers, heads, KV heads, head dim, RoPE theta, experts, top-k, expert
intermediate size, vocabulary). :func:`llmsim.catalog.get_model` reads such files (a loader
hook beside the HF ``config.json`` adapter), so every command takes them; the cost model prices
exactly what the executor runs through :meth:`MoEModelConfig.to_model_spec`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from llmsim.catalog._base import Spec, validate_spec
from llmsim.catalog.blocks import AttentionBlock, LayerTemplate, MoEBlock
from llmsim.catalog.model import ModelSpec
from llmsim.dtypes import DType
from llmsim.errors import ConfigError

FORMAT_TAG = "llmsim-moe"


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


def model_from_moe_file(path: Path, data: dict[str, Any]) -> ModelSpec | None:
    """The catalog loader hook: the model of a parsed file in this format, else None."""
    if data.get("format") != FORMAT_TAG:
        return None
    return validate_spec(MoEModelConfig, data, str(path)).to_model_spec()  # type: ignore[union-attr]
