"""The frozen result of :func:`llmsim.placement.solve` / :func:`llmsim.placement.evaluate`."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmsim.placement.lp_costs import StageCost
from llmsim.placement.policy import OffloadPolicy
from llmsim.placement.system import OffloadSystem


@dataclass(frozen=True)
class OffloadResult:
    """Throughput, placement, peak memory per tier and the time breakdown of one policy.

    Times in seconds, sizes in bytes. ``throughput_tokens_per_s`` is FlexGen's generation
    throughput: ``block_size x gen_len / (prefill + (gen_len - 1) decode steps)``. It is
    reported for infeasible policies too (what the policy would do if it fit); check
    ``feasible`` and ``reason``.
    """

    model: str
    hardware: str
    host: str
    prompt_len: int
    gen_len: int
    moe_experts: str
    policy: OffloadPolicy
    feasible: bool
    reason: str
    throughput_tokens_per_s: float
    total_time_s: float
    prefill_time_s: float
    decode_time_s: float
    decode_step_time_s: float
    peak_gpu_bytes: float
    peak_cpu_bytes: float
    peak_disk_bytes: float
    peak_bytes: dict[str, dict[str, float]]
    limit_bytes: dict[str, float]
    weight_bytes: float
    kv_cache_bytes: float
    weight_moved_bytes_per_step: dict[str, float]
    prefill: StageCost = field(repr=False)
    decode: StageCost = field(repr=False)
    system: OffloadSystem = field(repr=False)
    candidates_evaluated: int = 0
    runtime: str = "flexgen"
    #: the shares of the weight bytes the runtime puts on each tier (FlexLLMGen: whole tensors,
    #: so not the policy's fractions exactly; see ``OffloadRun.placed_weight_fractions``)
    weight_placement: dict[str, float] = field(default_factory=dict)

    @property
    def block_size(self) -> int:
        return self.policy.block_size

    @property
    def bound(self) -> dict[str, str]:
        """The stream that bounds most of each stage's time."""
        return {"prefill": self.prefill.bound, "decode": self.decode.bound}

    def as_dict(self, layers: bool = True) -> dict[str, object]:
        """JSON-able dict (``layers``: per-unit stream detail)."""
        def stage(sc: StageCost) -> dict[str, object]:
            out: dict[str, object] = {
                "time_s": sc.time_s, "bound": sc.bound, "streams_s": sc.streams_s,
                "bound_time_s": sc.bound_s, "step_overhead_s": sc.overhead_s,
            }
            if layers:
                out["layers"] = list(sc.layers)
            return out

        p = self.policy
        return {
            "model": self.model, "hardware": self.hardware, "host": self.host,
            "runtime": self.runtime,
            "prompt_len": self.prompt_len, "gen_len": self.gen_len,
            "moe_experts": self.moe_experts,
            "feasible": self.feasible, "reason": self.reason,
            "throughput_tokens_per_s": self.throughput_tokens_per_s,
            "block_size": p.block_size,
            "policy": {
                "gpu_batch_size": p.gpu_batch_size, "num_gpu_batches": p.num_gpu_batches,
                "w_gpu_frac": p.w_gpu_frac, "w_cpu_frac": p.w_cpu_frac,
                "w_disk_frac": p.w_disk_frac,
                "cache_gpu_frac": p.cache_gpu_frac, "cache_cpu_frac": p.cache_cpu_frac,
                "cache_disk_frac": p.cache_disk_frac,
                "act_gpu_frac": p.act_gpu_frac, "act_cpu_frac": p.act_cpu_frac,
                "act_disk_frac": p.act_disk_frac,
                "compress_weight": p.compress_weight, "compress_cache": p.compress_cache,
                "cpu_cache_compute": p.cpu_cache_compute, "overlap": p.overlap,
                "pin_weight": p.pin_weight,
                "percent": [round(v, 4) for v in p.percent],
            },
            "weight_placement": self.weight_placement,
            "total_time_s": self.total_time_s, "prefill_time_s": self.prefill_time_s,
            "decode_time_s": self.decode_time_s, "decode_step_time_s": self.decode_step_time_s,
            "peak_gpu_bytes": self.peak_gpu_bytes, "peak_cpu_bytes": self.peak_cpu_bytes,
            "peak_disk_bytes": self.peak_disk_bytes, "peak_bytes": self.peak_bytes,
            "limit_bytes": self.limit_bytes, "weight_bytes": self.weight_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "weight_moved_bytes_per_step": self.weight_moved_bytes_per_step,
            "stages": {"prefill": stage(self.prefill), "decode": stage(self.decode)},
            "system": self.system.as_dict(),
            "candidates_evaluated": self.candidates_evaluated,
        }
