"""Chunked prefill with a token budget (Sarathi-Serve; vLLM v1's unified scheduler).

Every step has a budget of ``max_num_batched_tokens`` new tokens. Running requests come first:
every decoding request gets its one token (decode-first, so decodes never stall behind long
prompts), then requests part-way through their prompt get chunks in admission order; then, if
nobody was preempted this step, waiting requests are admitted in queue order with a chunk of
whatever budget is left, while sequence slots (``max_num_seqs``) and KV blocks allow. KV blocks
are allocated per chunk; when a running request's tokens do not fit, the lowest-priority
(FCFS: latest admitted) running requests are preempted.

Sources: Agrawal et al., "Taming Throughput-Latency Tradeoff in LLM Inference with
Sarathi-Serve", OSDI 2024; vLLM v1 ``v1/core/sched/scheduler.py``.
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


@SCHEDULERS.register("chunked", "chunked-prefill", "sarathi", "vllm-v1")
class ChunkedPrefill(SchedulerBase):
    admits_mid_batch = True
    hold_finished = False
    chunks_prompts = True

    def schedule(self, replica: ReplicaView, now_s: float) -> StepPlan:
        if (replica.n_dec and not replica.waiting and not replica.prefilling
                and not replica.swapped and replica.reserve_decode_step()):
            return DECODE_RUN  # fast path: the decoding batch simply continues
        lim = self.limits
        swap_in = swap_in_all(replica, lim) if replica.swapped else 0
        preempted: list[int] = []
        swap_out = 0
        if replica.n_dec and not replica.reserve_decode_step():
            swap_out = reserve_decode(replica, now_s, preempted)  # preempt until it fits
        budget = lim.max_num_batched_tokens - replica.n_dec
        chunks: dict[int, int] = {}
        for rid in list(replica.prefilling) if replica.prefilling else ():
            if budget <= 0:
                break
            if rid not in replica.prefilling:  # preempted while making room for another
                continue
            n = min(replica.remaining_prompt(rid), budget)
            while not replica.try_extend(rid, n):
                victim = replica.pick_victim()
                if victim is None:
                    raise RuntimeError("no preemption victim but a prefill chunk does not fit")
                swap_out += replica.preempt(victim, now_s)
                preempted.append(victim)
                if victim in chunks:
                    budget += chunks.pop(victim)
                if victim == rid:
                    n = 0
                    break
            if n > 0:
                chunks[rid] = n
                budget -= n
        if not preempted:
            waiting = replica.waiting
            while waiting and budget > 0 and replica.num_running < lim.max_num_seqs:
                rid = waiting.peek()
                n = replica.try_admit(rid, now_s, budget, 0, False)  # a chunk of the budget
                if n <= 0:
                    break
                chunks[rid] = n
                budget -= n
        decode = replica.n_dec > 0
        if not chunks and not decode:
            return IDLE if not swap_in else StepPlan(swap_in_tokens=swap_in)
        return StepPlan(tuple(chunks.items()), decode,
                        decode and not chunks and not preempted and not swap_in,
                        tuple(preempted) if preempted else (), swap_in, swap_out)
