"""A decode instance of a disaggregated run (``DecodeReplica``): a replica whose requests
arrive with their prompt's KV in blocks reserved for them before the transfer
(``serving/disagg_sim.py`` reserves, moves and hands them over)."""

from __future__ import annotations

from collections import deque
from typing import Any

from llmsim.serving.replica import Replica
from llmsim.serving.replica.state import RUNNING, WAITING


class DecodeReplica(Replica):
    """A decode instance: requests arrive with their prompt's KV in blocks reserved for them
    (``kv_in``: request -> blocks); ``pending``: requests routed here waiting for room to
    reserve; ``incoming``: routed here, KV not arrived yet (the router counts them);
    ``on_room(replica, now)`` is called between steps (when blocks are freed and none are
    promised to a run in flight) while ``pending`` is not empty."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.kv_in: dict[int, int] = {}
        self.pending: deque[int] = deque()
        self.incoming = 0
        self.n_ready = 0  # the waiting queue's head: requests whose KV arrived, in order
        self.link_free_s = 0.0
        self.on_room: Any = None

    @property
    def outstanding(self) -> int:
        return super().outstanding + self.incoming

    @property
    def recomputes_waiting(self) -> bool:
        """A preempted request waits for blocks (new reservations wait behind it)."""
        return len(self.waiting) > self.n_ready or bool(self.swapped)

    def enqueue(self, rid: int, now: float) -> None:
        """A request whose KV arrived queues behind the others that did and ahead of
        recomputes: it needs no new blocks, so admitting it first never stalls the queue
        (recomputes behind reserved blocks could wait for ever)."""
        if rid not in self.kv_in:
            super().enqueue(rid, now)
            return
        t = self.table
        t.transition(rid, WAITING)
        t.replica[rid] = self.index
        self.waiting.insert(self.n_ready, rid)
        self.n_ready += 1
        seg = self.seg
        if seg is None:
            self.kick(now)
        elif self.admits_mid_batch and seg.n and (seg.n > 1 or seg.feats is not None):
            self.interrupt(now)

    def preempt(self, rid: int, now: float) -> int:
        """As usual; a recompute goes behind the requests whose KV arrived."""
        tokens = super().preempt(rid, now)
        if self.n_ready and self.table.status[rid] == WAITING:
            self.waiting.popleft()
            self.waiting.insert(self.n_ready, rid)
        return tokens

    def try_admit(self, rid: int, now: float, budget: int, reserve: int, whole: bool,
                  over_budget_ok: bool = False) -> int:
        """A request whose KV arrived takes its reserved blocks (never refused: they were
        reserved before the transfer) and schedules the one token whose KV it lacks (the
        first output token); anything else (a recompute after a preemption) as usual."""
        blocks = self.kv_in.pop(rid, 0)
        if not blocks:
            return super().try_admit(rid, now, budget, reserve, whole, over_budget_ok)
        t = self.table
        t.blocks[rid] = blocks
        if self.reserve_full:  # preemption none: its whole KV counts from now on
            self.reserve_whole_kv(rid)
        self.n_ready -= 1
        if t.first_scheduled_s[rid] != t.first_scheduled_s[rid]:  # NaN: first admission
            t.first_scheduled_s[rid] = now
            t.cached_tokens[rid] = t.computed[rid]
        popped = self.waiting.pop()
        assert popped == rid, (popped, rid)
        t.transition(rid, RUNNING)
        self.running[rid] = None
        self.prefilling[rid] = None
        return t.input_tokens[rid] + t.generated[rid] - t.computed[rid]

    def _on_step_end(self, now: float, _payload: Any) -> None:
        """Commit the step, reserve for the pending requests while nothing is in flight (a
        planned run takes its blocks when it is committed), then plan the next step."""
        seg = self.seg
        assert seg is not None
        self.seg = None
        self._commit(seg, now)
        if self.pending and self.on_room is not None:
            self.on_room(self, now)
        self._start(now)

    def want_room(self, now: float) -> None:
        """A request is pending: reserve now if idle, else end the run in flight at the step
        in progress (as an arrival does) so that the reservation comes at its end."""
        if self.seg is None:
            if self.on_room is not None:
                self.on_room(self, now)
        elif self.admits_mid_batch and self.seg.n and (self.seg.n > 1
                                                       or self.seg.feats is not None):
            self.interrupt(now)
