"""GPU memory of an offloaded MoE model: what stays, what the cache holds, what fits.

``need = weights_without_routed_experts + C x moe_layers x expert_bytes
+ (P + 2) x expert_bytes (staging: P prefetch buffers, 2 streaming buffers for misses)
+ KV cache + activations``, all from :func:`llmsim.memory.analyze_memory` (the one memory
formula) with the routed experts taken out. The largest capacity that fits is
``floor((usable - need_without_cache) / (moe_layers x expert_bytes))``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from llmsim.catalog import ModelSpec, ParallelSpec
from llmsim.catalog.cluster import Cluster
from llmsim.costmodel import Precision
from llmsim.expert_cache.costs import expert_weight_bytes
from llmsim.memory import analyze_memory


@dataclass(frozen=True)
class OffloadFootprint:
    usable_bytes: float
    resident_weight_bytes: float  # everything but the routed experts
    expert_bytes: float  # one routed expert
    cache_bytes: float  # C experts x MoE layers
    staging_bytes: float
    kv_bytes: float
    activation_bytes: float
    need_bytes: float
    fits: bool
    max_capacity: int  # the largest C that fits (capped at the expert count)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def offload_footprint(model: ModelSpec, cluster: Cluster, precision: Precision, capacity: int,
                      prefetch: int, context_tokens: int, max_tokens: int) -> OffloadFootprint:
    """Memory of one GPU holding ``capacity`` experts per MoE layer (see module docstring)."""
    moe = model.moe
    assert moe is not None
    report = analyze_memory(model, cluster, ParallelSpec(), precision, kv_tokens=context_tokens,
                            max_tokens=max_tokens, max_logits=1)
    eb = expert_weight_bytes(moe, precision)
    n_moe = model.num_moe_layers
    all_experts = eb * moe.num_experts * n_moe
    resident = report.weight_bytes - all_experts
    staging = (prefetch + 2) * eb
    base = resident + staging + report.kv_bytes + report.activation_bytes
    cache = capacity * n_moe * eb
    need = base + cache
    room = report.usable_bytes - base
    max_c = int(min(moe.num_experts, max(room // (n_moe * eb), -1))) if room >= 0 else -1
    return OffloadFootprint(report.usable_bytes, resident, eb, cache, staging, report.kv_bytes,
                            report.activation_bytes, need, need <= report.usable_bytes,
                            max(max_c, 0) if room >= 0 else -1)


@dataclass(frozen=True)
class ServingFootprint:
    """GPU memory of a serving replica with an expert cache: what is left for the KV cache."""

    usable_bytes: float
    resident_weight_bytes: float  # everything but the routed experts
    cache_bytes: float
    staging_bytes: float
    activation_bytes: float
    kv_bytes_per_token: float
    max_kv_tokens: int  # <= 0: nothing left for the KV cache

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def serving_footprint(model: ModelSpec, cluster: Cluster, precision: Precision, capacity: int,
                      prefetch: int, max_tokens: int, max_logits: int,
                      memory_utilization: float) -> ServingFootprint:
    """The same terms as :func:`offload_footprint` for a serving step of up to ``max_tokens``
    tokens (``max_logits`` sampled rows) at ``memory_utilization``; the KV cache gets the
    rest: ``max_kv_tokens = floor((usable - resident - cache - staging - activations) /
    kv_bytes_per_token)``."""
    moe = model.moe
    assert moe is not None
    report = analyze_memory(model, cluster, ParallelSpec(), precision, max_tokens=max_tokens,
                            max_logits=max_logits, memory_utilization=memory_utilization)
    eb = expert_weight_bytes(moe, precision)
    resident = report.weight_bytes - eb * moe.num_experts * model.num_moe_layers
    cache = capacity * model.num_moe_layers * eb
    staging = (prefetch + 2) * eb
    room = report.usable_bytes - resident - cache - staging - report.activation_bytes
    per_token = report.kv_bytes_per_token
    kv = int(room // per_token) if per_token > 0 and room > 0 else 0
    return ServingFootprint(report.usable_bytes, resident, cache, staging,
                            report.activation_bytes, per_token, kv)
