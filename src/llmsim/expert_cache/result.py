"""Frozen results of an offload simulation: summary, counters and the per-layer timeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LayerEvent:
    """One decoder layer in one step. Times are on the run's clock (prefill starts at 0).

    ``dense_s``: the layer's non-expert GPU work; ``gpu_expert_s`` / ``cpu_expert_s``: routed
    experts computed there; ``stall_s``: time the GPU waited for copies or CPU results (the part
    of the transfers that overlap did not hide); ``h2d_bytes`` includes the prefetch this layer
    issued for the next one.
    """

    step: int
    layer: int
    moe: bool
    start_s: float
    end_s: float
    dense_s: float
    gpu_expert_s: float
    cpu_expert_s: float
    stall_s: float
    h2d_bytes: float
    d2h_bytes: float
    experts: int
    hits: int
    misses: int
    prefetch_loads: int

    @property
    def time_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class OffloadResult:
    """Predicted performance of a MoE model with an offloaded expert cache: one sequence, or
    ``batch`` sequences decoded together (``prompt_tokens`` each; ``tokens_per_s`` counts the
    tokens of every sequence)."""

    model: str
    hardware: str
    host: str
    platform: str
    precision: str
    policy: str
    miss: str
    capacity: int
    prefetch: int
    prefetch_accuracy: float
    routing: str
    seed: int
    prompt_tokens: int
    decode_steps: int
    prefill_s: float
    decode_s_per_token: float
    decode_step_s: tuple[float, ...]
    tokens_per_s: float
    prefill_tokens_per_s: float
    e2e_s: float
    hit_rate: float
    prefill_hit_rate: float
    decode_hit_rate: float
    token_hit_rate: float
    measured_prefetch_accuracy: float
    pcie_bytes: float
    h2d_bytes: float
    d2h_bytes: float
    transfer_s: float
    stall_s: float
    dense_s: float
    gpu_expert_s: float
    cpu_expert_s: float
    expert_bytes: float
    gpu_memory_bytes: float
    gpu_usable_bytes: float
    fits: bool
    stats: dict[str, dict[str, float]]
    timeline: tuple[LayerEvent, ...]
    batch: int = 1

    def per_layer(self, phase: str) -> list[dict[str, float]]:
        """Per decoder layer: mean time and totals over the steps of ``phase``
        (``prefill`` or ``decode``)."""
        events = [e for e in self.timeline if (e.step == 0) == (phase == "prefill")]
        steps = max(len({e.step for e in events}), 1)
        layers: dict[int, list[LayerEvent]] = {}
        for e in events:
            layers.setdefault(e.layer, []).append(e)
        out = []
        for layer in sorted(layers):
            evs = layers[layer]
            hits = sum(e.hits for e in evs)
            used = sum(e.experts for e in evs)
            out.append({
                "layer": layer, "moe": evs[0].moe,
                "time_s": sum(e.time_s for e in evs) / steps,
                "dense_s": sum(e.dense_s for e in evs) / steps,
                "gpu_expert_s": sum(e.gpu_expert_s for e in evs) / steps,
                "cpu_expert_s": sum(e.cpu_expert_s for e in evs) / steps,
                "stall_s": sum(e.stall_s for e in evs) / steps,
                "h2d_bytes": sum(e.h2d_bytes for e in evs) / steps,
                "hit_rate": hits / used if used else 0.0,
            })
        return out

    def as_dict(self, timeline: bool = True) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "timeline"}
        if self.batch == 1:  # batch-1 results read as before batches existed
            out.pop("batch")
        out["decode_step_s"] = list(self.decode_step_s)
        out["per_layer"] = {"prefill": self.per_layer("prefill"),
                            "decode": self.per_layer("decode")}
        if timeline:
            out["timeline"] = [asdict(e) for e in self.timeline]
        return out
