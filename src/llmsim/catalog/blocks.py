"""Layer templates: the ordered blocks a model is made of (attention / FFN / MoE / comm).

A model is ``embedding -> [layer template x repeat]... -> final norm -> LM head``. A layer
template is a named list of blocks; the HF adapter builds them from ``config.json`` and a scenario
file can write them by hand (DeepSeek style: 3 dense MLA layers, then 58 MoE MLA layers).

Each block lists its weight matrices once (:meth:`weights`): the cost model turns them into GEMMs
and the memory analysis into bytes, so a parameter is counted in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from llmsim.catalog._base import Spec


class Shard(str, Enum):
    """How a weight matrix is split across the devices of its parallel group.

    COLUMN: output features split by TP (QKV, gate/up). ROW: input features split by TP (O, down).
    REPLICATED: every device holds all of it (router, norms, MLA down-projections).
    VOCAB: the embedding / LM head rows split by TP (vocab-parallel).
    Expert weights are split across EP ranks by expert, then COLUMN/ROW within the MoE-TP group.
    """

    COLUMN = "column"
    ROW = "row"
    REPLICATED = "replicated"
    VOCAB = "vocab"


class NormKind(str, Enum):
    RMS = "rms"
    LAYER = "layer"


class Activation(str, Enum):
    SILU = "silu"
    GELU = "gelu"
    RELU = "relu"


@dataclass(frozen=True)
class Weight:
    """One weight matrix ``[in_features -> out_features]`` (x ``copies``, e.g. experts).

    ``kv``: the matrix produces K/V heads, which are replicated when TP exceeds the KV heads.
    ``expert``: one of a MoE block's routed experts (split across EP ranks).
    """

    name: str
    in_features: int
    out_features: int
    shard: Shard
    copies: int = 1
    bias: bool = False
    kv_heads: int = 0  # >0: output is kv_heads heads (replicated when tp > kv_heads)
    expert: bool = False

    @property
    def num_params(self) -> int:
        per = self.in_features * self.out_features + (self.out_features if self.bias else 0)
        return per * self.copies


class AttentionBlock(Spec):
    """Self-attention: MHA/GQA/MQA (``num_kv_heads``) or MLA (``kv_lora_rank`` set).

    MLA (DeepSeek-V2/V3): queries through an optional low-rank ``q_lora_rank`` bottleneck,
    keys/values from a shared latent of ``kv_lora_rank`` plus a decoupled RoPE key of
    ``qk_rope_head_dim``; the KV cache holds only the latent and the RoPE key.
    """

    type: Literal["attention"] = "attention"
    hidden_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: bool = False
    rope: bool = True
    sliding_window: int | None = Field(default=None, gt=0)
    norm: NormKind = NormKind.RMS
    norm_bias: bool = False
    # MLA
    q_lora_rank: int | None = Field(default=None, gt=0)
    kv_lora_rank: int | None = Field(default=None, gt=0)
    qk_nope_head_dim: int | None = Field(default=None, gt=0)
    qk_rope_head_dim: int | None = Field(default=None, gt=0)
    v_head_dim: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> AttentionBlock:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}"
            )
        if self.is_mla and None in (self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim):
            raise ValueError("MLA needs qk_nope_head_dim, qk_rope_head_dim and v_head_dim")
        return self

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def kind(self) -> str:
        if self.is_mla:
            return "mla"
        if self.num_kv_heads == self.num_heads:
            return "mha"
        return "mqa" if self.num_kv_heads == 1 else "gqa"

    @property
    def qk_head_dim(self) -> int:
        """Per-head query/key width (MLA: nope + rope part)."""
        if self.is_mla:
            return self.qk_nope_head_dim + self.qk_rope_head_dim  # type: ignore[operator]
        return self.head_dim

    @property
    def value_head_dim(self) -> int:
        return self.v_head_dim if self.v_head_dim else self.head_dim

    @property
    def kv_cache_elements_per_token(self) -> int:
        """Elements cached per token for this layer (all KV heads, whole model, no TP).

        MHA/GQA: 2 (K and V) x num_kv_heads x head_dim. MLA: kv_lora_rank + qk_rope_head_dim
        (the compressed latent and the shared RoPE key; DeepSeek-V2 paper, eq. 9-10).
        """
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim  # type: ignore[operator]
        return self.num_kv_heads * (self.head_dim + self.value_head_dim)

    def weights(self) -> list[Weight]:
        h, nh = self.hidden_size, self.num_heads
        if self.is_mla:
            qk = self.qk_head_dim
            out: list[Weight] = []
            if self.q_lora_rank:
                out.append(Weight("q_a_proj", h, self.q_lora_rank, Shard.REPLICATED))
                out.append(Weight("q_b_proj", self.q_lora_rank, nh * qk, Shard.COLUMN))
            else:
                out.append(Weight("q_proj", h, nh * qk, Shard.COLUMN))
            out.append(
                Weight(
                    "kv_a_proj",
                    h,
                    self.kv_lora_rank + self.qk_rope_head_dim,  # type: ignore[operator]
                    Shard.REPLICATED,
                )
            )
            out.append(
                Weight(
                    "kv_b_proj",
                    self.kv_lora_rank,  # type: ignore[arg-type]
                    nh * (self.qk_nope_head_dim + self.value_head_dim),  # type: ignore[operator]
                    Shard.COLUMN,
                )
            )
            out.append(Weight("o_proj", nh * self.value_head_dim, h, Shard.ROW, bias=self.o_bias))
            return out
        q = Weight("q_proj", h, nh * self.head_dim, Shard.COLUMN, bias=self.qkv_bias)
        kv = Weight(
            "kv_proj",
            h,
            self.num_kv_heads * (self.head_dim + self.value_head_dim),
            Shard.COLUMN,
            bias=self.qkv_bias,
            kv_heads=self.num_kv_heads,
        )
        o = Weight("o_proj", nh * self.value_head_dim, h, Shard.ROW, bias=self.o_bias)
        return [q, kv, o]

    def vector_params(self) -> int:
        """Parameters outside matrices: the pre-norm, q/k norms, MLA latent norms."""
        n = self.hidden_size * (2 if self.norm_bias else 1)
        if self.qk_norm:
            n += 2 * self.qk_head_dim
        if self.is_mla:
            n += self.kv_lora_rank + (self.q_lora_rank or 0)  # type: ignore[operator]
        return n


class FFNBlock(Spec):
    """Dense MLP: gated (SwiGLU: gate, up, down) or plain (fc1, act, fc2)."""

    type: Literal["ffn"] = "ffn"
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    gated: bool = True
    activation: Activation = Activation.SILU
    bias: bool = False
    norm: NormKind = NormKind.RMS
    norm_bias: bool = False
    has_norm: bool = True  # False when it shares the attention's norm (parallel residual)

    def weights(self) -> list[Weight]:
        h, i = self.hidden_size, self.intermediate_size
        up = Weight("gate_up_proj" if self.gated else "up_proj", h, i * (2 if self.gated else 1),
                    Shard.COLUMN, bias=self.bias)
        down = Weight("down_proj", i, h, Shard.ROW, bias=self.bias)
        return [up, down]

    def vector_params(self) -> int:
        return self.hidden_size * (2 if self.norm_bias else 1) if self.has_norm else 0


class MoEBlock(Spec):
    """Mixture of experts: a router, ``num_experts`` routed experts (top-k) and shared experts."""

    type: Literal["moe"] = "moe"
    hidden_size: int = Field(gt=0)
    num_experts: int = Field(gt=0)
    top_k: int = Field(gt=0)
    expert_intermediate_size: int = Field(gt=0)
    num_shared_experts: int = Field(default=0, ge=0)
    shared_expert_intermediate_size: int | None = Field(default=None, gt=0)
    gated: bool = True
    activation: Activation = Activation.SILU
    router_bias: bool = False
    norm: NormKind = NormKind.RMS

    @model_validator(mode="after")
    def _check(self) -> MoEBlock:
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k {self.top_k} exceeds num_experts {self.num_experts}")
        return self

    @property
    def shared_intermediate(self) -> int:
        """Total intermediate width of the shared experts (they run as one dense MLP)."""
        if not self.num_shared_experts:
            return 0
        per = self.shared_expert_intermediate_size or self.expert_intermediate_size
        return per * (self.num_shared_experts if self.shared_expert_intermediate_size is None
                      else 1)

    def weights(self) -> list[Weight]:
        h, i, e = self.hidden_size, self.expert_intermediate_size, self.num_experts
        g = 2 if self.gated else 1
        out = [
            Weight("router", h, e, Shard.REPLICATED, bias=self.router_bias),
            Weight("experts_gate_up", h, i * g, Shard.COLUMN, copies=e, expert=True),
            Weight("experts_down", i, h, Shard.ROW, copies=e, expert=True),
        ]
        if self.num_shared_experts:
            s = self.shared_intermediate
            out.append(Weight("shared_gate_up", h, s * g, Shard.COLUMN))
            out.append(Weight("shared_down", s, h, Shard.ROW))
        return out

    def vector_params(self) -> int:
        return self.hidden_size

    def active_weights(self) -> list[Weight]:
        """Weights one token touches: router, top_k experts, shared experts."""
        out = []
        for w in self.weights():
            if w.expert:
                out.append(Weight(w.name, w.in_features, w.out_features, w.shard,
                                  copies=self.top_k, bias=w.bias, expert=True))
            else:
                out.append(w)
        return out


class CollectiveKind(str, Enum):
    """The collectives llmsim prices: the one vocabulary (``costmodel.ops.OpKind`` takes its
    communication kinds from here). Parsed case-insensitively with ``_`` or ``-``
    (``all_reduce`` in a scenario file, ``all-reduce`` on the command line)."""

    ALL_REDUCE = "all-reduce"
    ALL_GATHER = "all-gather"
    REDUCE_SCATTER = "reduce-scatter"
    ALL_TO_ALL = "all-to-all"
    P2P = "p2p"

    @classmethod
    def _missing_(cls, value: object) -> CollectiveKind | None:
        key = str(value).strip().lower().replace("_", "-")
        return next((c for c in cls if c.value == key), None)


class CommGroup(str, Enum):
    TP = "tp"
    EP = "ep"
    DP = "dp"
    PP = "pp"
    WORLD = "world"


class CommBlock(Spec):
    """An explicit collective in a scenario file: ``bytes_per_token`` x tokens over a group."""

    type: Literal["comm"] = "comm"
    collective: CollectiveKind
    group: CommGroup = CommGroup.TP
    bytes_per_token: float = Field(gt=0)

    def weights(self) -> list[Weight]:
        return []

    def vector_params(self) -> int:
        return 0


Block = Annotated[AttentionBlock | FFNBlock | MoEBlock | CommBlock, Field(discriminator="type")]


class LayerTemplate(Spec):
    """``repeat`` identical decoder layers made of ``blocks`` in order.

    ``parallel_residual``: attention and MLP read the same input and their outputs are summed
    once (GPT-J, Falcon); under TP one all-reduce serves both.
    """

    name: str
    repeat: int = Field(gt=0)
    blocks: tuple[Block, ...]
    parallel_residual: bool = False

    @property
    def attention(self) -> AttentionBlock | None:
        return next((b for b in self.blocks if isinstance(b, AttentionBlock)), None)

    @property
    def moe(self) -> MoEBlock | None:
        return next((b for b in self.blocks if isinstance(b, MoEBlock)), None)

    def num_params(self, active: bool = False) -> int:
        """Parameters of one layer (``active``: those one token uses)."""
        total = 0
        for b in self.blocks:
            ws = b.active_weights() if (active and isinstance(b, MoEBlock)) else b.weights()
            total += sum(w.num_params for w in ws) + b.vector_params()
        return total
