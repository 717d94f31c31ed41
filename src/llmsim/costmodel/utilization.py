"""Model FLOPs utilisation (MFU) and memory-bandwidth utilisation (MBU) of a deployment.

``StepCost`` sums per-device FLOPs and bytes over every layer of every pipeline stage (one TP
rank's share of the whole model), so over a time ``t`` in which that work ran

    MFU = flops / (t x peak_flops_per_s x pp)        MBU = bytes / (t x bandwidth x pp)

with the part's dense peak in the compute format the weights and activations run in
(``dtypes.compute_dtype``; W4A16 runs 16-bit math) and its datasheet memory bandwidth
(Chowdhery et al., "PaLM", 2022, appendix B, for MFU; MBU as Databricks' LLM inference
guide defines it).
"""

from __future__ import annotations

from llmsim.costmodel.deployment import Deployment
from llmsim.dtypes import compute_dtype


def peak_flops_per_s(deployment: Deployment) -> float:
    """Dense peak of one device in the compute format of the deployment's GEMMs."""
    hw, p = deployment.hardware, deployment.precision
    return hw.peak_flops(compute_dtype(p.weight, p.activation, hw.supported_dtypes))


def mfu(flops: float, time_s: float, deployment: Deployment, replicas: int = 1) -> float:
    """FLOPs utilisation of ``flops`` (per device, summed over stages) done in ``time_s`` by
    each of ``replicas`` replicas (0 when no time passed)."""
    denom = time_s * peak_flops_per_s(deployment) * deployment.plan.pp * replicas
    return flops / denom if denom > 0 else 0.0


def mbu(nbytes: float, time_s: float, deployment: Deployment, replicas: int = 1) -> float:
    """Bandwidth utilisation of ``nbytes`` moved in ``time_s`` (as :func:`mfu`)."""
    denom = (time_s * deployment.hardware.memory_bandwidth_bytes_per_s * deployment.plan.pp
             * replicas)
    return nbytes / denom if denom > 0 else 0.0
