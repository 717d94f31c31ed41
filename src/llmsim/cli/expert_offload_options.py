"""``simulate``'s expert-offload flags (the ``expert_offload`` config section): a GPU expert
cache per replica, as ``moe-offload simulate`` models for one sequence (docs/serving.md,
"Expert offloading under load"). Each is ``moe-offload``'s flag with ``expert-`` in front."""

from __future__ import annotations

from typing import Annotated

import typer

ExpertCacheExpertsOpt = Annotated[int | None, typer.Option(
    "--expert-cache-experts", min=0,
    help="Expert offload: experts cached on the GPU per MoE layer (the rest in host memory; "
         "moe-offload's --cache-capacity).")]
ExpertCacheGbOpt = Annotated[float | None, typer.Option(
    "--expert-cache-gb", min=0.0,
    help="Expert offload: GPU memory for the expert cache over all MoE layers, GB (instead of "
         "--expert-cache-experts).")]
ExpertPolicyOpt = Annotated[str | None, typer.Option(
    "--expert-policy", help="Expert offload: cache policy lru | lfu | static.")]
ExpertPrefetchOpt = Annotated[int | None, typer.Option(
    "--expert-prefetch", min=0, help="Expert offload: experts prefetched per layer (default: "
                                     "top-k; 0 off).")]
ExpertPrefetchAccuracyOpt = Annotated[float | None, typer.Option(
    "--expert-prefetch-accuracy", min=0.0, max=1.0,
    help="Expert offload: probability that a prefetched expert is used (default 0.8).")]
ExpertMissOpt = Annotated[str | None, typer.Option(
    "--expert-miss", help="Expert offload: fetch (copy over PCIe, compute on the GPU) or cpu "
                          "(compute on the host CPU).")]
ExpertRoutingOpt = Annotated[str | None, typer.Option(
    "--expert-routing", help="Expert offload: uniform | zipf:S | correlated:R (+ ,corr=R) | a "
                             "routing trace file (replayed as a token stream).")]
ExpertHostOpt = Annotated[str | None, typer.Option(
    "--expert-host", help="Expert offload: host CPU/DRAM/PCIe (default: the GPU's, as "
                          "moe-offload).")]
ExpertCpuEfficiencyOpt = Annotated[float | None, typer.Option(
    "--expert-cpu-efficiency", min=0.01, max=1.5,
    help="Expert offload: fraction of the host's CPU peaks CPU experts reach (default 1).")]
