"""Prefill first, decodes mixed into the prefill step or stalled (SGLang's scheduler).

When requests wait (or a chunked prompt is part-way), the step is a prefill batch: the
prompt in progress continues with its next chunk, then waiting requests are admitted in queue
order with their whole prompt while the batch's new tokens fit ``max_num_batched_tokens``
(SGLang ``max_prefill_tokens``; the first prompt always goes in) and the requests
``max_num_seqs``; a prompt longer than ``chunk_size_tokens`` (``chunked_prefill_size``; 0:
the budget) is cut to that chunk and the batch closes. With ``mix_decodes``
(``--enable-mixed-chunk``) every decoding request also advances in that step (the budget less
one token per decode); without it the decodes wait for the prefill step to end. With nothing
to prefill, every running request decodes. KV blocks that do not fit preempt the latest
admitted request (recompute).

Source: SGLang ``sglang/srt/managers/scheduler.py`` (``get_next_batch_to_run``,
``get_new_batch_prefill``) and ``schedule_policy.py`` (``PrefillAdder``), 0.5.x.
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


@SCHEDULERS.register("prefill-first", "sglang", "mixed-chunk")
class PrefillFirst(SchedulerBase):
    admits_mid_batch = True
    hold_finished = False
    chunks_prompts = True

    def schedule(self, replica: ReplicaView, now_s: float) -> StepPlan:
        if (replica.n_dec and not replica.waiting and not replica.prefilling
                and not replica.swapped and replica.reserve_decode_step()):
            return DECODE_RUN  # fast path: the decoding batch simply continues
        lim = self.limits
        swap_in = swap_in_all(replica, lim) if replica.swapped else 0
        mix = lim.mix_decodes
        preempted: list[int] = []
        swap_out = 0
        reserved = False
        chunks: dict[int, int] = {}
        if replica.prefilling or (replica.waiting and not replica.swapped):
            budget = lim.max_num_batched_tokens
            if mix and replica.n_dec:  # the decodes join the prefill step
                if not replica.reserve_decode_step():
                    swap_out = reserve_decode(replica, now_s, preempted)
                reserved = True
                budget -= replica.n_dec
            if not preempted:
                self._prefill_batch(replica, now_s, budget, chunks)
            if chunks:
                decode = mix and replica.n_dec > 0
                return StepPlan(tuple(chunks.items()), decode, False,
                                tuple(preempted) if preempted else (), swap_in, swap_out)
        if replica.n_dec == 0:
            return IDLE if not swap_in else StepPlan(swap_in_tokens=swap_in)
        if not reserved and not replica.reserve_decode_step():
            swap_out += reserve_decode(replica, now_s, preempted)
        if replica.n_dec == 0:
            return IDLE
        return StepPlan(decode=True, repeatable=not preempted and not swap_in,
                        preempted=tuple(preempted) if preempted else (),
                        swap_in_tokens=swap_in, swap_out_tokens=swap_out)

    def _prefill_batch(self, replica: ReplicaView, now_s: float, budget: int,
                       chunks: dict[int, int]) -> None:
        """Fill ``chunks`` with the prefill batch (SGLang's ``PrefillAdder``): the prompt in
        progress, then whole waiting prompts under the budget, the last one cut to the chunk
        size left."""
        cap = min(self.limits.chunk_size_tokens or budget, budget)
        for rid in list(replica.prefilling):  # a chunked prompt in progress
            if cap <= 0:
                return
            n = min(replica.remaining_prompt(rid), cap)
            if not replica.try_extend(rid, n):
                return
            chunks[rid] = n
            budget -= n
            cap -= n
        waiting = replica.waiting
        while waiting and budget > 0 and cap > 0 and \
                replica.num_running < self.limits.max_num_seqs:
            rid = waiting.peek()
            if replica.remaining_prompt(rid) > cap:  # longer than the chunk left: cut, close
                n = replica.try_admit(rid, now_s, cap, 0, False)
                if n > 0:
                    chunks[rid] = n
                return
            n = replica.try_admit(rid, now_s, budget, 0, True, not chunks)
            if n <= 0:
                return
            chunks[rid] = n
            budget -= n
            cap -= n
