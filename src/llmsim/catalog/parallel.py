"""Parallel plans: TP, PP, EP, DP / attention-DP, with the divisibility rules serving engines use.

GPUs = tp x pp x dp. Attention and dense layers run tensor-parallel over ``tp`` ranks; ``dp``
ranks hold replicas of them (for a dense model, independent replicas). A MoE layer spans the
tp x dp ranks of a pipeline stage: its experts are split ``ep`` ways and each expert's weights
``moe_tp = tp x dp / ep`` ways (the vLLM / TensorRT-LLM layout: moe_tp x moe_ep = tp x dp).
"""

from __future__ import annotations

from enum import Enum

from pydantic import Field

from llmsim.catalog._base import Spec
from llmsim.catalog.model import ModelSpec
from llmsim.errors import ConfigError


class EPKernel(str, Enum):
    """How MoE dispatch / combine run over an attention-DP expert-parallel group: DeepEP's
    ``normal`` kernels (NVLink forwarding, prefill) or ``low_latency`` ones (pure RDMA,
    decode); None in a plan: the generic all-to-all collective."""

    NORMAL = "normal"
    LOW_LATENCY = "low_latency"


class ParallelSpec(Spec):
    """A parallel plan. ``micro_batches`` (PP only): 0 = as many as pipeline stages.

    Large expert parallelism (opt-in; defaults change nothing): ``expert_skew`` is the Zipf
    exponent of expert popularity (0 = balanced routing), ``redundant_experts`` the extra
    expert instances per MoE layer an EPLB places on hot experts, ``ep_kernel`` the DeepEP
    kernel family of dispatch / combine, ``two_batch_overlap`` runs each step as two
    micro-batches whose EP communication hides behind the other's compute
    (``costmodel/expert_routing.py``, ``costmodel/ep_comm.py``).
    """

    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    ep: int = Field(default=1, gt=0)
    dp: int = Field(default=1, gt=0)
    micro_batches: int = Field(default=0, ge=0)
    expert_skew: float = Field(default=0.0, ge=0.0, le=8.0)
    redundant_experts: int = Field(default=0, ge=0)
    ep_kernel: EPKernel | None = None
    two_batch_overlap: bool = False

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def moe_tp(self) -> int:
        """Tensor-parallel ways of each expert's weights (``validate_for`` checks ep | tp x dp)."""
        return max(1, self.tp * self.dp // self.ep)

    def validate_for(self, model: ModelSpec) -> None:
        """Raise :class:`ConfigError` when the plan cannot split ``model``.

        Rules (as vLLM enforces them): tp divides the attention heads; tp divides the KV heads or
        the KV heads divide tp (then each KV head is replicated tp / kv times); pp <= layers; ep
        divides the number of routed experts; moe_tp divides the expert intermediate size.
        """
        if (self.tp * self.dp) % self.ep:
            raise ConfigError(
                f"ep {self.ep} must divide tp x dp = {self.tp * self.dp} (expert parallelism "
                "spans the tensor- and data-parallel ranks of a stage); change --ep"
            )
        for t in model.layers:
            attn = t.attention
            if attn is not None:
                if attn.num_heads % self.tp:
                    divisors = [d for d in (1, 2, 4, 8, 16, 32, 64) if attn.num_heads % d == 0]
                    raise ConfigError(
                        f"tp {self.tp} does not divide {model.name}'s {attn.num_heads} attention "
                        f"heads; use --tp in {divisors}"
                    )
                kv = attn.num_kv_heads
                if not attn.is_mla and kv % self.tp and self.tp % kv:
                    raise ConfigError(
                        f"tp {self.tp} and {model.name}'s {kv} KV heads: one must divide the "
                        "other; change --tp"
                    )
            moe = t.moe
            if moe is not None:
                instances = moe.num_experts + self.redundant_experts
                if instances % self.ep:
                    extra = (f" + {self.redundant_experts} redundant" if self.redundant_experts
                             else "")
                    raise ConfigError(
                        f"ep {self.ep} does not divide {model.name}'s {moe.num_experts}{extra} "
                        "experts; change --ep" + (" or --redundant-experts"
                                                  if self.redundant_experts else "")
                    )
                if moe.expert_intermediate_size % self.moe_tp:
                    raise ConfigError(
                        f"expert width {moe.expert_intermediate_size} is not divisible by the "
                        f"expert TP {self.moe_tp} (= tp x dp / ep); raise --ep"
                    )
        large = {"--expert-skew": self.expert_skew > 0,
                 "--redundant-experts": self.redundant_experts > 0,
                 "--ep-kernel": self.ep_kernel is not None,
                 "--two-batch-overlap": self.two_batch_overlap}
        given = [flag for flag, on in large.items() if on]
        if given and self.ep == 1:
            raise ConfigError(f"{given[0]} needs expert parallelism; give --ep > 1")
        if self.ep_kernel is not None and self.dp == 1:
            raise ConfigError("--ep-kernel prices DeepEP dispatch / combine between "
                              "attention-DP ranks; give --dp > 1 (with --ep)")
        if self.ep > 1 and not model.is_moe:
            raise ConfigError(f"--ep {self.ep} given but {model.name} has no MoE layers; drop --ep")
        if self.micro_batches > 1 and self.pp == 1:
            raise ConfigError(
                f"--micro-batches {self.micro_batches} needs pipeline stages to overlap; "
                "give --pp > 1 or drop --micro-batches"
            )
        if self.pp > model.num_layers:
            raise ConfigError(
                f"pp {self.pp} exceeds {model.name}'s {model.num_layers} layers; lower --pp"
            )

    def stage_layers(self, model: ModelSpec) -> list[list[tuple[int, int]]]:
        """Split the model's layers into ``pp`` contiguous stages as evenly as possible.

        Returns per stage a list of ``(template_index, layer_count)``.
        """
        total = model.num_layers
        base, extra = divmod(total, self.pp)
        sizes = [base + (1 if s < extra else 0) for s in range(self.pp)]
        stages: list[list[tuple[int, int]]] = []
        flat = [i for i, t in enumerate(model.layers) for _ in range(t.repeat)]
        pos = 0
        for size in sizes:
            chunk = flat[pos:pos + size]
            pos += size
            counts: list[tuple[int, int]] = []
            for idx in chunk:
                if counts and counts[-1][0] == idx:
                    counts[-1] = (idx, counts[-1][1] + 1)
                else:
                    counts.append((idx, 1))
            stages.append(counts)
        return stages
