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
        costs, engine = self.costs, self.engine
        platform = costs.platform
        async_copy, concurrent = platform.async_copy, platform.concurrent_host
        eb = costs.expert_bytes
        is_moe = self.is_moe
        now = self.now_s if start_s is None else start_s
        h2d_free, d2h_free, busy = self.h2d_free_s, self.d2h_free_s, self.transfer_s
        engine.begin_step(step)
        events: list[LayerEvent] = []
        step_start = now
        step_stall = 0.0
        now += base.embedding_s
        ready_next: dict[int, float] = {}
        for i in range(len(is_moe)):
            start = now
            stall = 0.0
            h2d_bytes = d2h_bytes = 0.0
            ready_here, ready_next = ready_next, {}
            target = engine.prefetch_target(i)
            n_prefetch = 0
            if target is not None:
                plan = engine.prefetch(target, np.unique(routed[target]))
                n_prefetch = len(plan.loads)
                for load in plan.loads:
                    xfer = costs.h2d_s(eb)
                    busy += xfer
                    if async_copy:
                        h2d_free = max(h2d_free, start) + xfer
                        ready_next[load.expert] = h2d_free
                    else:
                        now += xfer
                        stall += xfer
                        ready_next[load.expert] = now
                    h2d_bytes += eb
            dense_end = now + base.layer_s[i]
            if not is_moe[i]:
                now = dense_end
                events.append(LayerEvent(step, i, False, start, now, base.layer_s[i], 0.0, 0.0,
                                         stall, h2d_bytes, 0.0, 0, 0, 0, n_prefetch))
                step_stall += stall
                continue
            layer_routed = routed[i]
            counts = np.bincount(layer_routed.ravel(), minlength=engine.num_experts)
            experts = np.nonzero(counts)[0]
            access = engine.access(i, experts, counts[experts])
            gpu_t = dense_end
            jobs = [(ready_here.get(e, 0.0) if e in access.prefetched else 0.0, e)
                    for e in access.hits]
            for load in access.loads:
                xfer = costs.h2d_s(eb)
                busy += xfer
                if async_copy:
                    h2d_free = max(h2d_free, dense_end) + xfer
                    jobs.append((h2d_free, load.expert))
                else:
                    gpu_t += xfer
                    stall += xfer
                    jobs.append((gpu_t, load.expert))
                h2d_bytes += eb
            gpu_expert = cpu_expert = 0.0
            for ready, e in sorted(jobs):
                if ready > gpu_t:
                    stall += ready - gpu_t
                    gpu_t = ready
                dt = costs.gpu_expert_s(int(counts[e]))
                gpu_t += dt
                gpu_expert += dt
            end = gpu_t
            if engine.config.miss == MissMode.CPU and access.misses:
                down_b = costs.activation_bytes(int(np.isin(layer_routed, access.misses)
                                                    .any(axis=1).sum()))
                up_b = costs.activation_bytes(int(sum(counts[e] for e in access.misses)))
                cpu_expert = sum(costs.cpu_expert_s(int(counts[e])) for e in access.misses)
                down, up = costs.d2h_s(down_b), costs.h2d_s(up_b)
                busy += down + up
                if concurrent:
                    d2h_free = max(d2h_free, dense_end) + down
                    cpu_done = d2h_free + cpu_expert
                    h2d_free = max(h2d_free, cpu_done) + up
                    if h2d_free > gpu_t:
                        stall += h2d_free - gpu_t
                    end = max(gpu_t, h2d_free)
                else:
                    stall += down + up
                    end = gpu_t + down + cpu_expert + up
                d2h_bytes += down_b
                h2d_bytes += up_b
            now = end
            step_stall += stall
            events.append(LayerEvent(step, i, True, start, now, base.layer_s[i], gpu_expert,
                                     cpu_expert, stall, h2d_bytes, d2h_bytes, len(experts),
                                     len(access.hits), len(access.misses), n_prefetch))
        now += base.lm_head_s + base.overhead_s
        self.now_s, self.h2d_free_s, self.d2h_free_s, self.transfer_s = \
            now, h2d_free, d2h_free, busy
        return StepOutcome(now - step_start, step_stall, tuple(events))
