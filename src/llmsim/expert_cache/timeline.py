"""One step of an offloaded MoE model on the clock: the layer-by-layer timeline.

:class:`StepTimeline` holds what carries over from step to step -- the clock, the H2D and D2H
copy engines (FIFO, one copy at a time each) and the copy time spent -- and
:meth:`StepTimeline.run_step` walks one step's decoder layers. ``moe-offload simulate``
(:mod:`~llmsim.expert_cache.simulate`) calls it once per step of its sequence (or batch); the
serving simulator's expert-offload pricer (``serving/expert_offload.py``) once per engine
step of a replica, with the step's tokens: the one formula of an expert-cache step, in one
place. For decoder layer ``i`` starting at ``t_i``:

1. Prefetch for MoE layer ``i+1`` (see :mod:`~llmsim.expert_cache.cache`) queues its copies on
   the H2D engine at ``t_i``; copy ``x`` ends at ``max(h2d_free, t_i) + lat + bytes / B_h2d``.
2. The layer's non-expert work (attention, norms, router, routing) runs until
   ``r_i = t_i + dense_i``; the routing is then known.
3. ``fetch`` misses queue their copies at ``r_i`` (behind any prefetch still in flight).
   ``cpu`` misses: the hidden states of the tokens routed to them go down (D2H) at ``r_i``, the
   CPU computes those experts one after another, their outputs (one row per token and CPU
   expert) come back (H2D) and join the GPU experts' in the combine.
4. The GPU computes its experts in order of readiness (resident experts at once, copied ones
   when their copy ends): ``g <- max(g, ready_e) + gpu_expert(tokens_e)``; the waits sum to the
   stall. The layer ends at ``max(g, CPU results back)``; routing and the weighted combine
   are priced with the layer's non-expert work.

Without a copy engine (``Platform.async_copy`` False, e.g. the CPU-only executor) every copy
runs on the critical path when issued, and without concurrent host compute the CPU experts
follow the GPU ones. Step time = end - start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from llmsim.expert_cache.cache import ExpertCacheEngine
from llmsim.expert_cache.config import MissMode
from llmsim.expert_cache.costs import OffloadCosts, StepBase
from llmsim.expert_cache.result import LayerEvent


@dataclass(frozen=True)
class StepOutcome:
    """One step: its time, the GPU's waits on copies / CPU results, and its layer events."""

    time_s: float
    stall_s: float
    events: tuple[LayerEvent, ...]

    @property
    def h2d_bytes(self) -> float:
        return sum(e.h2d_bytes for e in self.events)

    @property
    def d2h_bytes(self) -> float:
        return sum(e.d2h_bytes for e in self.events)

    @property
    def misses(self) -> int:
        return sum(e.misses for e in self.events)

    @property
    def hits(self) -> int:
        return sum(e.hits for e in self.events)


class StepTimeline:
    """The clock and copy engines of one GPU running an expert cache (module docstring)."""

    def __init__(self, costs: OffloadCosts, engine: ExpertCacheEngine):
        self.costs = costs
        self.engine = engine
        self.is_moe = costs.layer_kinds()
        self.now_s = 0.0
        self.h2d_free_s = 0.0
        self.d2h_free_s = 0.0
        self.transfer_s = 0.0  # copy time issued (hidden or not)

    def run_step(self, step: int, base: StepBase, routed: Mapping[int, np.ndarray],
                 start_s: float | None = None) -> StepOutcome:
        """Walk one step from ``start_s`` (default: where the last step ended).

        ``step``: the engine's step index (0 = prefill phase, later = decode phase);
        ``base``: the step's non-expert GPU times (:meth:`OffloadCosts.step_base`);
        ``routed[layer]``: int array ``[tokens, top_k]`` of the step's expert choices per MoE
        layer (the prefetcher's oracle too)."""
        now = self.now_s if start_s is None else start_s
        self.engine.begin_step(step)
        events: list[LayerEvent] = []
        step_start = now
        now += base.embedding_s
        ready_next: dict[int, float] = {}
        for i, moe in enumerate(self.is_moe):
            start = now
            ready_here = ready_next
            now, stall, n_prefetch, ready_next = self._prefetch(i, start, routed)
            h2d_bytes = n_prefetch * self.costs.expert_bytes
            if moe:
                event = self._moe_layer(step, i, start, now + base.layer_s[i], ready_here,
                                        routed[i], base.layer_s[i], stall, h2d_bytes,
                                        n_prefetch)
            else:
                event = LayerEvent(step, i, False, start, now + base.layer_s[i],
                                   base.layer_s[i], 0.0, 0.0, stall, h2d_bytes, 0.0, 0, 0, 0,
                                   n_prefetch)
            events.append(event)
            now = event.end_s
        now += base.lm_head_s + base.overhead_s
        self.now_s = now
        return StepOutcome(now - step_start, sum(e.stall_s for e in events), tuple(events))

    def _copy_in(self, issue_s: float, clock_s: float) -> tuple[float, float, float]:
        """One expert copied host -> GPU, issued at ``issue_s``: ``(ready_s, clock_s,
        waited_s)``. With a copy engine it queues there (FIFO) and the clock goes on; without
        one it runs on the critical path: the clock moves past it and the GPU waits for it."""
        xfer = self.costs.h2d_s(self.costs.expert_bytes)
        self.transfer_s += xfer
        if self.costs.platform.async_copy:
            self.h2d_free_s = max(self.h2d_free_s, issue_s) + xfer
            return self.h2d_free_s, clock_s, 0.0
        return clock_s + xfer, clock_s + xfer, xfer

    def _prefetch(self, i: int, start_s: float, routed: Mapping[int, np.ndarray]
                  ) -> tuple[float, float, int, dict[int, float]]:
        """Layer ``i``'s prefetch for the layer the engine targets, its copies issued at the
        layer's start: ``(clock, stall, copies, {expert: ready time})``."""
        now, stall, ready = start_s, 0.0, {}
        target = self.engine.prefetch_target(i)
        loads = () if target is None else self.engine.prefetch(
            target, np.unique(routed[target])).loads
        for load in loads:
            ready[load.expert], now, waited = self._copy_in(start_s, now)
            stall += waited
        return now, stall, len(loads), ready

    def _moe_layer(self, step: int, i: int, start_s: float, dense_end_s: float,
                   ready_here: Mapping[int, float], layer_routed: np.ndarray, dense_s: float,
                   stall: float, h2d_bytes: float, n_prefetch: int) -> LayerEvent:
        """MoE layer ``i`` after its non-expert work (module docstring, steps 3-4): misses
        fetched or sent to the CPU, the GPU's experts in order of readiness."""
        costs, engine = self.costs, self.engine
        counts = np.bincount(layer_routed.ravel(), minlength=engine.num_experts)
        experts = np.nonzero(counts)[0]
        access = engine.access(i, experts, counts[experts])
        gpu_t = dense_end_s
        jobs = [(ready_here.get(e, 0.0) if e in access.prefetched else 0.0, e)
                for e in access.hits]
        for load in access.loads:
            ready, gpu_t, waited = self._copy_in(dense_end_s, gpu_t)
            stall += waited
            jobs.append((ready, load.expert))
            h2d_bytes += costs.expert_bytes
        gpu_expert = 0.0
        for ready, e in sorted(jobs):
            if ready > gpu_t:
                stall += ready - gpu_t
                gpu_t = ready
            dt = costs.gpu_expert_s(int(counts[e]))
            gpu_t += dt
            gpu_expert += dt
        end, cpu_expert, d2h_bytes = gpu_t, 0.0, 0.0
        if engine.config.miss == MissMode.CPU and access.misses:
            end, cpu_expert, d2h_bytes, up_b, cpu_stall = self._cpu_misses(
                layer_routed, counts, access.misses, dense_end_s, gpu_t)
            stall += cpu_stall
            h2d_bytes += up_b
        return LayerEvent(step, i, True, start_s, end, dense_s, gpu_expert, cpu_expert, stall,
                          h2d_bytes, d2h_bytes, len(experts), len(access.hits),
                          len(access.misses), n_prefetch)

    def _cpu_misses(self, layer_routed: np.ndarray, counts: np.ndarray, misses,
                    dense_end_s: float, gpu_t: float
                    ) -> tuple[float, float, float, float, float]:
        """``cpu`` misses: the routed tokens' hidden states down, the CPU's experts, their
        outputs up. ``(layer end, CPU expert time, bytes down, bytes up, GPU stall)``."""
        costs = self.costs
        down_b = costs.activation_bytes(int(np.isin(layer_routed, misses).any(axis=1).sum()))
        up_b = costs.activation_bytes(int(sum(counts[e] for e in misses)))
        cpu_expert = sum(costs.cpu_expert_s(int(counts[e])) for e in misses)
        down, up = costs.d2h_s(down_b), costs.h2d_s(up_b)
        self.transfer_s += down + up
        if costs.platform.concurrent_host:
            self.d2h_free_s = max(self.d2h_free_s, dense_end_s) + down
            cpu_done = self.d2h_free_s + cpu_expert
            self.h2d_free_s = max(self.h2d_free_s, cpu_done) + up
            stall = max(self.h2d_free_s - gpu_t, 0.0)
            return max(gpu_t, self.h2d_free_s), cpu_expert, down_b, up_b, stall
        return gpu_t + down + cpu_expert + up, cpu_expert, down_b, up_b, down + up
