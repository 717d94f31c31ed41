"""What a person should be told about an offloading policy beyond its throughput: an offload
that buys nothing because everything fits on the GPU."""

from __future__ import annotations

from typing import Any

from llmsim import units


def offload_advice(res: Any) -> list[str]:
    """Warnings for a :class:`PlacementResult`: the policy keeps weights, KV cache or
    activations off the GPU although the run's peak on every tier together fits the GPU's
    memory (offloading then only adds copies)."""
    if not res.feasible:
        return []
    p = res.policy
    offloaded = min(p.w_gpu_frac, p.cache_gpu_frac, p.act_gpu_frac) < 1.0
    need = res.peak_gpu_bytes + res.peak_cpu_bytes + res.peak_disk_bytes
    have = res.system.gpu_mem_bytes
    if not offloaded or need > have:
        return []
    return [f"unnecessary offload: everything this run holds ({units.fmt_bytes(need)}) fits "
            f"in the GPU's {units.fmt_bytes(have)}; --percent 100 0 100 0 100 0 keeps it all "
            "on the GPU and moves nothing over PCIe"]
