"""Continuous batching with prefill priority (Orca iteration-level scheduling; vLLM v0's default
scheduler without chunked prefill).

Each step is either a prefill step or a decode step:

1. preempted-and-swapped requests come back first (while KV blocks allow);
2. if nothing is swapped out, admit waiting requests in queue order while their *whole* prompt
   fits the token budget ``max_num_batched_tokens``, the sequence limit ``max_num_seqs`` and
   the free KV blocks minus a watermark (``uses_watermark``: ``watermark_frac`` of the blocks,
   default 1 %, kept free so that running requests can grow; head-of-line blocking: stop at
   the first that does not fit); if any were admitted, the step prefills them (decodes wait:
   "prefill priority");
3. otherwise every running request decodes one token; when its KV blocks do not fit, the
   lowest-priority (FCFS: latest admitted) requests are preempted (recompute or swap).

Source: Yu et al., "Orca", OSDI 2022; vLLM v0 ``core/scheduler.py`` (``_schedule_default``).
"""

from __future__ import annotations

from llmsim.serving.schedulers.base import (
    DECODE_RUN,
    IDLE,
    SCHEDULERS,
    SchedulerBase,
    StepPlan,
    reserve_decode,
    swap_in_all,
)
from llmsim.serving.schedulers.view import ReplicaView


@SCHEDULERS.register("continuous", "orca", "vllm-v0", "prefill-priority")
class ContinuousBatching(SchedulerBase):
    admits_mid_batch = True
    hold_finished = False
    chunks_prompts = False
    uses_watermark = True

    def schedule(self, replica: ReplicaView, now_s: float) -> StepPlan:
        if (replica.n_dec and not replica.waiting and not replica.swapped
                and replica.reserve_decode_step()):
            return DECODE_RUN  # fast path: the decoding batch simply continues
        lim = self.limits
        swap_in = swap_in_all(replica, lim) if replica.swapped else 0
        if not replica.swapped and not swap_in:
            chunks: list[tuple[int, int]] = []
            budget = lim.max_num_batched_tokens
            waiting = replica.waiting
            while waiting and replica.num_running < lim.max_num_seqs:
                rid = waiting.peek()
                # whole prompts; the first may exceed the budget (positional: hot path)
                n = replica.try_admit(rid, now_s, budget, lim.watermark_blocks, True,
                                      not chunks)
                if n <= 0:
                    break
                chunks.append((rid, n))
                budget -= n
            if chunks:
                return StepPlan(tuple(chunks))
        if replica.n_dec == 0:
            return IDLE if not swap_in else StepPlan(swap_in_tokens=swap_in)
        preempted: list[int] = []
        swap_out = reserve_decode(replica, now_s, preempted)
        if replica.n_dec == 0:
            return IDLE
        return StepPlan(decode=True, repeatable=not preempted and not swap_in,
                        preempted=tuple(preempted), swap_in_tokens=swap_in,
                        swap_out_tokens=swap_out)
