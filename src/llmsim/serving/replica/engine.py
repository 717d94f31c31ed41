"""The replica's step loop on the event loop: arrivals, kicks, segment start and end, cuts.

Each time the replica is free it asks its scheduler for a plan (``_start``), has the segment
planned and priced (:mod:`.planner`), and schedules the segment's end; at the end the segment
is committed (:mod:`.commit`) and the next one starts. An arrival that may join the batch
*interrupts* the segment in flight at the end of the step in progress (``interrupt``), exactly
as a step-by-step simulation would let it in (``closed_form=False`` runs that reference).
The router and the sampler read the segment in flight without committing it
(``outstanding``, ``kv_used_blocks``, ``sample``); the report reads ``stats()`` at the end.
"""

from __future__ import annotations

from typing import Any

from llmsim.serving.metrics import ReplicaSample
from llmsim.serving.replica.commit import Commit
from llmsim.serving.replica.planner import RunPlanner
from llmsim.serving.replica.segment import Segment
from llmsim.serving.replica.state import WAITING
from llmsim.serving.schedulers.base import DECODE_RUN

# event priorities at equal times: arrivals, then step ends, then "start a step", then sampling
PRIO_ARRIVAL, PRIO_STEP, PRIO_KICK, PRIO_SAMPLE = 0, 1, 2, 3


class Replica(Commit, RunPlanner):
    """One model replica: waiting queue, running batch, paged KV cache and the step loop.

    It executes its scheduler's plans: prices each step with the ``StepPricer`` (the
    ``StepTimeModel``), schedules the step's end on the event loop and commits the step's
    effects when it ends. Its scheduler and the router see it as a
    :class:`~llmsim.serving.schedulers.view.ReplicaView`. Constructor arguments: see
    :class:`~.state.ReplicaState`."""

    # ------------------------------------------------------------------ arrivals
    def enqueue(self, rid: int, now: float) -> None:
        """Queue an arriving request (the router chose this replica); start a step if idle,
        else, where arrivals may join a running batch, cut a multi-step segment at the step in
        progress."""
        t = self.table
        t.transition(rid, WAITING)
        t.replica[rid] = self.index
        self.waiting.push(rid)
        seg = self.seg
        if seg is None:
            self.kick(now)
        elif self.admits_mid_batch and seg.n and (seg.n > 1 or seg.feats is not None):
            self.interrupt(now)  # the segment has more than one step: the arrival may join

    def kick(self, now: float) -> None:
        """Start a step at ``now`` after every same-time arrival is queued."""
        if self.seg is None and not self.kick_pending:
            self.kick_pending = True
            self.loop.schedule(now, PRIO_KICK, self._on_kick)

    def _on_kick(self, now: float, _payload: Any) -> None:
        self.kick_pending = False
        if self.seg is None:
            self._start(now)

    def _on_wake(self, now: float, _payload: Any) -> None:
        self.wake_event = 0
        if self.seg is None:
            self._start(now)

    def interrupt(self, now: float) -> None:
        """Cut the segment in flight at the end of the step in progress at ``now``."""
        seg = self.seg
        assert seg is not None
        run = seg.run
        if run is None or not seg.n:
            return
        if seg.feats is not None:  # a head step, then the run
            head = seg.head_dur
            run_start = seg.start + head
            if now <= run_start:
                seg.run, seg.n = None, 0
                seg.dur = head
            elif run.cut(now - run_start):
                seg.n = run.n
                seg.dur = head + run.dur
            else:
                return
        elif run.cut(now - seg.start):
            seg.n = run.n
            seg.dur = run.dur
        else:
            return
        loop = self.loop
        loop.cancel(seg.event)
        seg.event = loop.schedule(seg.start + seg.dur, PRIO_STEP, self._on_step_end)

    # ------------------------------------------------------------------ the step loop
    def _start(self, now: float) -> None:
        """Ask the scheduler for a plan and start its segment (or sleep / go idle)."""
        plan = self.scheduler.schedule(self, now)
        if plan is DECODE_RUN and self.closed_form:  # the decoding batch continues: a run
            seg = Segment(now, plan, None, 0.0)
            self._plan_run(seg, self.tick, self.n_dec, self.n_live, self.dec_ctx, self.res, ())
        else:
            if plan.wake_at_s is not None:
                if self.wake_event:
                    self.loop.cancel(self.wake_event)
                self.wake_event = self.loop.schedule(plan.wake_at_s, PRIO_KICK, self._on_wake)
                return
            if not plan.prefill and not plan.decode and not plan.swap_in_tokens:
                if self.running:
                    raise RuntimeError(f"replica {self.index}: scheduler idle with running "
                                       "requests")
                return
            if plan.repeatable and self.closed_form and not plan.prefill and not (
                    plan.swap_in_tokens or plan.swap_out_tokens):
                seg = Segment(now, plan, None, 0.0)
                self._plan_run(seg, self.tick, self.n_dec, self.n_live, self.dec_ctx,
                               self.res, ())
            else:
                seg = self._head(plan, now)
        self.seg = seg
        seg.event = self.loop.schedule(now + seg.dur, PRIO_STEP, self._on_step_end)

    def _on_step_end(self, now: float, _payload: Any) -> None:
        seg = self.seg
        assert seg is not None
        self.seg = None
        self._commit(seg, now)
        self._start(now)

    # ------------------------------------------------------------------ views for router, sampler
    @property
    def outstanding(self) -> int:
        """Requests queued, running or swapped out now (finishes inside the closed-form run
        in flight count as done once their time has passed)."""
        return (len(self.waiting) + len(self.running) - len(self.zombies) + len(self.swapped)
                - self.finished_in_flight(self.loop.now_s))

    @property
    def kv_used_blocks(self) -> int:
        """KV blocks in use as of the last commit (the run in flight takes its blocks when it
        is committed)."""
        return self.kv.used

    def sample(self, now_s: float) -> ReplicaSample:
        """This replica at ``now_s`` for the time series (see ``metrics.ReplicaSample``)."""
        kv = self.kv
        return ReplicaSample(len(self.waiting), len(self.running) - len(self.zombies),
                             len(self.swapped), self.finished_in_flight(now_s), kv.used,
                             kv.total, self.output_tokens + self.progress_tokens(now_s),
                             self.prefill_tokens, self.busy_s)

    def finished_in_flight(self, time_s: float) -> int:
        """Requests of the run in flight that finished by ``time_s`` (not yet committed)."""
        seg = self.seg
        if seg is None or seg.run is None or len(seg.run.runs) < 2:
            return 0
        return seg.run.finished_by(time_s - seg.start - (
            seg.head_dur if seg.feats is not None else 0.0))

    def progress_tokens(self, time_s: float) -> int:
        """Output tokens of the decode run in flight already produced by ``time_s``."""
        seg = self.seg
        if seg is None or seg.run is None:
            return 0
        run_start = seg.start + (seg.head_dur if seg.feats is not None else 0.0)
        return seg.run.tokens_by(time_s - run_start) if time_s > run_start else 0

    # ------------------------------------------------------------------ consistency (tests)
    def check(self) -> None:
        """Consistency checks (tests; O(running)): KV accounting matches the blocks every
        running request holds, aggregates match the decoding set."""
        self.kv.check()
        assert self.kv.used <= self.kv.total
        assert self.n_live >= 0 and self.n_dec >= self.n_live
        assert sum(self.res) == self.n_live * self.beam, (sum(self.res), self.n_live)
        if self.reserve_full:  # preemption none: the running requests' whole KV fits
            assert self.reserved_blocks == sum(self.reserved.values())
            assert set(self.reserved) <= set(self.running)
            assert self.reserved_blocks <= self.kv.total or self.prefix, (
                self.reserved_blocks, self.kv.total)
        if self.seg is not None:
            return  # reservations of the segment in flight are not attributed yet
        t = self.table
        zombies = {z[0] for z in self.zombies}
        held = 0
        ctx = 0
        for rid in self.running:
            if rid in zombies or rid in self.prefilling:
                held += t.blocks[rid]
                continue
            c = t.computed[rid] + self.tick - t.join_tick[rid]
            slots = c + max(self.reserved_through - self.tick, 0)
            held += self._blocks_held(t.computed[rid], slots)
            ctx += c + 1
        shared = sum(self.kheld.values())
        private_keys = len(self.kv._refs) - self.kv.cached  # referenced keyed blocks
        assert held - shared + private_keys == self.kv.used or self.prefix, (held, self.kv.used)
        if not self.zombies:
            assert ctx == self.dec_ctx, (ctx, self.dec_ctx)
