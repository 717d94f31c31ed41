"""In-flight batching of whole prompts beside the running decodes (TensorRT-LLM's batch
manager without chunked context).

Every step: swapped requests come back first; every decoding request gets its token (when its
KV blocks do not fit, the latest admitted requests are preempted); then waiting requests are
admitted in queue order with their *whole* prompt while the step's tokens (decodes plus
prompts) fit ``max_num_batched_tokens`` (TensorRT-LLM ``max_num_tokens``) and the requests
``max_num_seqs`` (``max_batch_size``); head-of-line: admission stops at the first prompt that
does not fit. A prompt is never split; one longer than the budget is refused at arrival. No
preemption for admission (a new request waits for blocks).

Source: TensorRT-LLM docs, "Tuning Max Batch Size and Max Num Tokens" (1.0): the scheduler
"schedules requests in both context and generation phases" in one iteration under the two
limits; ``enable_chunked_prefill`` off by default.
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


@SCHEDULERS.register("inflight", "in-flight", "trtllm")
class InflightBatching(SchedulerBase):
    admits_mid_batch = True
    hold_finished = False
    chunks_prompts = False

    def schedule(self, replica: ReplicaView, now_s: float) -> StepPlan:
        if (replica.n_dec and not replica.waiting and not replica.swapped
                and replica.reserve_decode_step()):
            return DECODE_RUN  # fast path: the decoding batch simply continues
        lim = self.limits
        swap_in = swap_in_all(replica, lim) if replica.swapped else 0
        preempted: list[int] = []
        swap_out = 0
        if replica.n_dec and not replica.reserve_decode_step():
            swap_out = reserve_decode(replica, now_s, preempted)
        chunks: list[tuple[int, int]] = []
        if not preempted and not replica.swapped:
            budget = lim.max_num_batched_tokens - replica.n_dec
            waiting = replica.waiting
            while waiting and budget > 0 and replica.num_running < lim.max_num_seqs:
                rid = waiting.peek()
                n = replica.try_admit(rid, now_s, budget, 0, True)  # whole prompts only
                if n <= 0:
                    break
                chunks.append((rid, n))
                budget -= n
        decode = replica.n_dec > 0
        if not chunks and not decode:
            return IDLE if not swap_in else StepPlan(swap_in_tokens=swap_in)
        return StepPlan(tuple(chunks), decode,
                        decode and not chunks and not preempted and not swap_in,
                        tuple(preempted) if preempted else (), swap_in, swap_out)
