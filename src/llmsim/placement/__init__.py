"""FlexGen-style offloading: place weights, KV cache and activations over GPU, CPU and disk.

``solve`` finds the policy (batching + placement fractions) with the highest generation
throughput under per-tier memory limits (an LP per candidate, scipy HiGHS); ``evaluate`` prices a
given policy. Every size and GPU time comes from the core catalog, memory and cost-model
functions; see ``costmodel.py`` for the formulas and ``docs/offload.md``.

    from llmsim.placement import solve, evaluate, OffloadPolicy
    r = solve("opt-30b", 512, 32, hardware="t4", host="gcp-t4-flexgen")
    r.throughput_tokens_per_s, r.policy, r.peak_gpu_bytes
"""

from llmsim.placement.policy import (
    FLEXGEN_4BIT,
    GroupQuantization,
    MoEExpertTraffic,
    OffloadPolicy,
)
from llmsim.placement.result import OffloadResult
from llmsim.placement.runtime import FLEXGEN, FUSED, Runtime
from llmsim.placement.solver import evaluate, solve
from llmsim.placement.system import OffloadSystem, build_system, cpu_op_time_s

__all__ = ["FLEXGEN", "FLEXGEN_4BIT", "FUSED", "GroupQuantization", "MoEExpertTraffic",
           "OffloadPolicy", "OffloadResult", "OffloadSystem", "Runtime", "build_system",
           "cpu_op_time_s", "evaluate", "solve"]
