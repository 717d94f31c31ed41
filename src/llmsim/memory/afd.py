"""Memory of an attention-FFN disaggregated unit (``costmodel/afd.py``): the attention
instances hold the KV cache, the FFN instances their share of the FFN / expert weights.

KV capacity of the unit = ``attention x`` one attention instance's ``max_kv_tokens``
(``analyze_memory`` on the attention side's model: attention weights, embedding, LM head, and
the activations of its share ``ceil(max_tokens / attention)`` of a step); the FFN side's
weights must fit one FFN instance (``check_weights_fit``, one-line ``DoesNotFitError``).
"""

from __future__ import annotations

from llmsim.costmodel.afd import side_deployments
from llmsim.costmodel.deployment import Deployment
from llmsim.memory.footprint import analyze_memory, check_weights_fit


def afd_kv_capacity_tokens(dep: Deployment, memory_utilization: float, max_tokens: int,
                           max_logits: int) -> tuple[int, dict[str, float]]:
    """``(KV tokens the unit holds, memory info per GPU)`` of the AFD deployment ``dep``."""
    assert dep.afd is not None
    a, f = side_deployments(dep)
    n = dep.afd.attention
    check_weights_fit(f.model, f.cluster, f.plan, f.precision, memory_utilization)
    check_weights_fit(a.model, a.cluster, a.plan, a.precision, memory_utilization)
    mem = analyze_memory(a.model, a.cluster, a.plan, a.precision,
                         max_tokens=-(-max_tokens // n), max_logits=-(-max_logits // n),
                         memory_utilization=memory_utilization)
    ffn = analyze_memory(f.model, f.cluster, f.plan, f.precision,
                         memory_utilization=memory_utilization)
    info = {"attention_weight_bytes_per_gpu": mem.weight_bytes,
            "ffn_weight_bytes_per_gpu": ffn.weight_bytes,
            "kv_bytes_per_token_per_gpu": mem.kv_bytes_per_token,
            "max_kv_tokens": n * mem.max_kv_tokens}
    return n * int(mem.max_kv_tokens), info
