"""Memory of a speculative proposer on the target's devices: its weights and its KV cache.

A draft model holds all its weights (``weight_bytes_per_device`` of its own plan); MTP layers
share the target's embedding and LM head, so only their decoder layers count; an n-gram
proposer holds nothing. Either keeps KV for every cached token (its own layers'
``kv_bytes_per_token_per_device``), and while a sequence verifies it holds ``k`` draft slots
beyond its context (rolled back when rejected).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.layers import Layout
from llmsim.costmodel.profile import Profile
from llmsim.costmodel.speculative import SpecMethod, Speculation, draft_deployment
from llmsim.memory.footprint import (
    MemoryReport,
    kv_bytes_per_token_per_device,
    stage_weight_params,
    weight_bytes_per_device,
)


@dataclass(frozen=True)
class DraftMemory:
    """Per device: the proposer's weights and its KV bytes per cached token."""

    weight_bytes: float
    kv_bytes_per_token: float

    def kv_tokens_left(self, budget_bytes: float, target_kv_bytes_per_token: float) -> int:
        """Tokens of KV a ``budget_bytes`` KV budget holds once the proposer's weights are
        taken out of it and every token also holds the proposer's KV."""
        per_token = target_kv_bytes_per_token + self.kv_bytes_per_token
        room = budget_bytes - self.weight_bytes
        return int(room // per_token) if per_token > 0 and room > 0 else 0


def draft_memory(target: Deployment, spec: Speculation) -> DraftMemory:
    """The proposer's memory on one of ``target``'s devices (see the module docstring)."""
    dep = draft_deployment(target, spec)
    if dep is None:
        return DraftMemory(0.0, 0.0)
    model, plan, precision = dep.model, dep.plan, dep.precision
    if spec.method == SpecMethod.MTP:  # embedding and LM head are the target's
        linear, plain = stage_weight_params(model, plan, plan.stage_layers(model)[0], False,
                                            False)
        weights = linear * precision.weight.bytes_with_scales + plain * precision.unquantized.bytes
    else:
        weights = weight_bytes_per_device(model, plan, precision)
    layout = Layout(model, dep.cluster, plan, precision,
                    Profile.empty().for_hardware(dep.cluster.hardware))
    return DraftMemory(weights, kv_bytes_per_token_per_device(layout))


def speculative_kv_tokens(target: Deployment, spec: Speculation, memory: MemoryReport,
                          max_num_seqs: int) -> int:
    """KV tokens left for the target's cache once the proposer is resident: its weights come
    out of the KV budget, every token also holds the proposer's KV, and ``max_num_seqs``
    sequences each keep ``k`` draft slots (``memory``: the target's report)."""
    dmem = draft_memory(target, spec)
    left = dmem.kv_tokens_left(memory.kv_budget_bytes, memory.kv_bytes_per_token)
    return max(left - max_num_seqs * spec.num_tokens, 0)
