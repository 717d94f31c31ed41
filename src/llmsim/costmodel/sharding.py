"""How a weight matrix is split across devices: the one place both GEMM shapes and weight bytes
come from.

- COLUMN: output features / tp; a K/V projection with fewer KV heads than tp keeps one head per
  device (KV heads are replicated ``tp / num_kv_heads`` times, as vLLM does).
- ROW: input features / tp.  VOCAB: rows / tp.  REPLICATED: whole.
- Routed experts: ``(copies + redundant_experts) / ep`` experts per device, each split
  ``moe_tp`` ways (COLUMN or ROW).
"""

from __future__ import annotations

from llmsim.catalog.blocks import Shard, Weight
from llmsim.catalog.parallel import ParallelSpec


def device_matrix(w: Weight, plan: ParallelSpec) -> tuple[float, float, float]:
    """``(in_features, out_features, copies)`` of ``w`` held by one device."""
    tp = plan.moe_tp if w.expert else plan.tp
    n, k = float(w.out_features), float(w.in_features)
    if w.shard == Shard.COLUMN:
        per_head = w.out_features / w.kv_heads if w.kv_heads else 0.0
        n = max(1.0, w.kv_heads / tp) * per_head if w.kv_heads else n / tp
    elif w.shard == Shard.ROW:
        k = k / tp
    elif w.shard == Shard.VOCAB:
        n = n / tp
    # redundant expert instances (EPLB) are extra copies of routed experts on the EP ranks
    copies = (w.copies + plan.redundant_experts) / plan.ep if w.expert else float(w.copies)
    return k, n, copies


def device_params(w: Weight, plan: ParallelSpec) -> float:
    """Parameters of ``w`` on one device (bias follows the output split; ROW biases are whole)."""
    k, n, copies = device_matrix(w, plan)
    bias = n if w.bias else 0.0
    return (k * n + bias) * copies
