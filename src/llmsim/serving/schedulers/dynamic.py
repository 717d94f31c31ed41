"""Dynamic batching with a time window (Triton / TorchServe style request-level batching).

Like static batching, but a free replica waits until either ``max_num_seqs`` requests are
queued or the oldest has waited ``batch_window_s``, then runs them as one static batch.
"""

from __future__ import annotations

from typing import Any

from llmsim.serving.schedulers.base import IDLE, SCHEDULERS, SchedulerLimits, StepPlan
from llmsim.serving.schedulers.static import continue_batch, form_batch


@SCHEDULERS.register("dynamic", "dynamic-batching", "window")
class DynamicBatching:
    admits_mid_batch = False
    hold_finished = True
    chunks_prompts = False

    def __init__(self, limits: SchedulerLimits):
        self.limits = limits

    def schedule(self, replica: Any, now_s: float) -> StepPlan:
        if replica.num_running:
            return continue_batch(replica)
        waiting = replica.waiting
        if not waiting:
            return IDLE
        deadline = replica.arrival_s(waiting.peek()) + self.limits.batch_window_s
        if len(waiting) >= self.limits.max_num_seqs or now_s >= deadline:
            return form_batch(replica, now_s, self.limits)
        return StepPlan(wake_at_s=deadline)
