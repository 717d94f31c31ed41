"""Static batching (request-level batching, e.g. FasterTransformer / HF ``generate``).

When the replica is free, up to ``max_num_seqs`` waiting requests whose prompts fit
``max_num_batched_tokens`` and whose *whole* KV cache (prompt + output) fits the free blocks
form a batch: one prefill step for all, then decode steps until the longest is done. Nothing
joins a running batch; a finished sequence streams its last token but keeps its slot (the batch
is priced at its full size: padding) until the whole batch ends.
"""

from __future__ import annotations

from llmsim.serving.schedulers.base import (
    DECODE_RUN,
    IDLE,
    SCHEDULERS,
    SchedulerBase,
    StepPlan,
)
from llmsim.serving.schedulers.view import ReplicaView


@SCHEDULERS.register("static", "static-batching")
class StaticBatching(SchedulerBase):
    admits_mid_batch = False
    hold_finished = True
    chunks_prompts = False

    def schedule(self, replica: ReplicaView, now_s: float) -> StepPlan:
        if replica.num_running:  # the batch decodes until its longest request is done
            if not replica.reserve_decode_step():
                raise RuntimeError("static batch ran out of its reserved KV blocks")
            return DECODE_RUN
        return self.form_batch(replica, now_s)

    def form_batch(self, replica: ReplicaView, now_s: float) -> StepPlan:
        """Admit a whole batch (whole prompts; KV reserved for prompt + output)."""
        limits = self.limits
        chunks: list[tuple[int, int]] = []
        budget = limits.max_num_batched_tokens
        reserved = 0
        waiting = replica.waiting
        while waiting and len(chunks) < limits.max_num_seqs:
            rid = waiting.peek()
            future = replica.decode_blocks_after_prompt(rid)
            n = replica.try_admit(rid, now_s, budget, reserved + future, whole=True,
                                  over_budget_ok=not chunks)
            if n <= 0:
                break
            reserved += future
            chunks.append((rid, n))
            budget -= n
        return StepPlan(prefill=tuple(chunks)) if chunks else IDLE
