"""ModelSpec: embedding, ordered layer templates, final norm and LM head.

The one way HuggingFace ``config.json`` files come in is :func:`llmsim.catalog.hf.from_hf_config`;
scenario files build the same object from hand-written layer templates.
"""

from __future__ import annotations

from enum import Enum
from functools import cached_property

from pydantic import Field

from llmsim.catalog._base import Spec
from llmsim.catalog.blocks import AttentionBlock, LayerTemplate, MoEBlock, NormKind
from llmsim.dtypes import DType


class PositionKind(str, Enum):
    ROPE = "rope"
    LEARNED = "learned"
    ALIBI = "alibi"


class ModelSpec(Spec):
    """A decoder-only transformer as the cost model sees it."""

    name: str
    hf_id: str = ""
    family: str = Field(description="HF model_type, e.g. llama, mixtral, deepseek_v3")
    hidden_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    max_position_embeddings: int = Field(default=4096, gt=0)
    position: PositionKind = PositionKind.ROPE
    learned_position_rows: int = Field(default=0, ge=0)
    layers: tuple[LayerTemplate, ...]
    embedding_norm: bool = False  # a LayerNorm right after the embedding (BLOOM)
    tie_word_embeddings: bool = False
    lm_head_bias: bool = False
    final_norm: NormKind = NormKind.RMS
    final_norm_bias: bool = False
    weight_dtype: DType = DType.BF16
    #: multi-token-prediction layers after the main stack (DeepSeek-V3's
    #: ``num_nextn_predict_layers``): not in ``layers``, used by ``--spec-method mtp``
    mtp_layers: int = Field(default=0, ge=0)
    source: str = ""

    def __hash__(self) -> int:  # frozen pydantic models with tuples hash fine; keep it cheap
        return hash((self.name, self.hf_id, self.hidden_size, len(self.layers)))

    @property
    def num_layers(self) -> int:
        return sum(t.repeat for t in self.layers)

    @cached_property
    def attention(self) -> AttentionBlock:
        """The attention block of the first layer (models here share one attention shape)."""
        for t in self.layers:
            if t.attention is not None:
                return t.attention
        raise ValueError(f"model {self.name} has no attention layer")

    @property
    def is_moe(self) -> bool:
        return any(t.moe is not None for t in self.layers)

    @property
    def moe(self) -> MoEBlock | None:
        return next((t.moe for t in self.layers if t.moe is not None), None)

    @property
    def num_moe_layers(self) -> int:
        return sum(t.repeat for t in self.layers if t.moe is not None)

    @property
    def embedding_params(self) -> int:
        rows = self.vocab_size + self.learned_position_rows
        return rows * self.hidden_size + (2 * self.hidden_size if self.embedding_norm else 0)

    @property
    def lm_head_params(self) -> int:
        """LM head matrix (0 when tied to the embedding) plus its bias."""
        head = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size
        return head + (self.vocab_size if self.lm_head_bias else 0)

    @property
    def final_norm_params(self) -> int:
        return self.hidden_size * (2 if self.final_norm_bias else 1)

    @cached_property
    def num_params(self) -> int:
        """Total parameters (embeddings included, tied LM head counted once)."""
        layers = sum(t.num_params() * t.repeat for t in self.layers)
        return self.embedding_params + layers + self.final_norm_params + self.lm_head_params

    @cached_property
    def num_active_params(self) -> int:
        """Parameters one token touches (MoE: top-k routed + shared experts + router).

        Counts embeddings and LM head, as MoE model cards do (Mixtral 12.9B, DeepSeek-V3 37B).
        """
        layers = sum(t.num_params(active=True) * t.repeat for t in self.layers)
        return self.embedding_params + layers + self.final_norm_params + self.lm_head_params

    def kv_cache_elements_per_token(self) -> int:
        """KV elements per token over all layers (no TP split): see AttentionBlock."""
        return sum(
            t.attention.kv_cache_elements_per_token * t.repeat
            for t in self.layers
            if t.attention is not None
        )

    def summary(self) -> dict[str, object]:
        """A JSON-able description (for ``catalog show``)."""
        attn = self.attention
        out: dict[str, object] = {
            "name": self.name,
            "hf_id": self.hf_id,
            "family": self.family,
            "num_params": self.num_params,
            "num_active_params": self.num_active_params,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "vocab_size": self.vocab_size,
            "attention": attn.kind,
            "num_heads": attn.num_heads,
            "num_kv_heads": attn.num_kv_heads,
            "head_dim": attn.head_dim,
            "kv_cache_elements_per_token": self.kv_cache_elements_per_token(),
            "max_position_embeddings": self.max_position_embeddings,
            "weight_dtype": self.weight_dtype.value,
            "layers": [
                {"name": t.name, "repeat": t.repeat, "blocks": [b.type for b in t.blocks]}
                for t in self.layers
            ],
            "source": self.source,
        }
        if self.moe is not None:
            moe = self.moe
            out["moe"] = {
                "num_experts": moe.num_experts,
                "top_k": moe.top_k,
                "expert_intermediate_size": moe.expert_intermediate_size,
                "num_shared_experts": moe.num_shared_experts,
                "num_moe_layers": self.num_moe_layers,
            }
        return out
