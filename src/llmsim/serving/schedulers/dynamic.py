"""Dynamic batching with a time window (Triton / TorchServe style request-level batching).

Like static batching, but a free replica waits until either ``max_num_seqs`` requests are
queued or the oldest has waited ``batch_window_s``, then runs them as one static batch.
"""

from __future__ import annotations

from llmsim.serving.schedulers.base import SCHEDULERS, StepPlan
from llmsim.serving.schedulers.static import StaticBatching
from llmsim.serving.schedulers.view import ReplicaView


@SCHEDULERS.register("dynamic", "dynamic-batching", "window")
class DynamicBatching(StaticBatching):
    uses_batch_window = True

    def schedule(self, replica: ReplicaView, now_s: float) -> StepPlan:
        waiting = replica.waiting
        if waiting and not replica.num_running:  # a free replica: batch full or window over?
            lim = self.limits
            deadline = replica.arrival_s(waiting.peek()) + lim.batch_window_s
            if len(waiting) < lim.max_num_seqs and now_s < deadline:
                return StepPlan(wake_at_s=deadline)  # wait for more requests
        return super().schedule(replica, now_s)
