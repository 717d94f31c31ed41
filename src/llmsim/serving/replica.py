"""One model replica: waiting queue, running batch, paged KV cache, and the step loop.

The replica executes its scheduler's plans: it prices each step with the ``StepPricer`` (the
``StepTimeModel``), schedules the step's end on the event loop, and commits the step's effects
when it ends. Decoding requests are tracked *lazily* so that a step costs O(1) however many
requests decode in it:

- a decode **tick** counts the replica's decode steps; a request that joins the decoding set at
  tick ``j`` with ``g`` tokens generated and ``c`` tokens cached has, at tick ``T``,
  ``g + T - j`` tokens and ``c + T - j`` cached; only aggregates are updated per step (number
  of decoding sequences ``B``, total context ``C`` = the step's keys read);
- finishes come from a heap of finish ticks; KV block growth from a histogram of each request's
  block-boundary phase (a request needs a new block at step ``s`` iff
  ``s = j + 1 - c (mod block_size)``), so the blocks a run of ``n`` steps needs and the longest
  run that fits the free blocks are O(block_size);
- a *segment* is an optional head step (prefill or mixed, priced by ``step_time``) followed by
  a run of pure decode steps priced in closed form (``pricing.LinearRun`` /
  ``PiecewiseRun``), phase after
  phase across finishes (``PhasedRun``) up to the KV limit or the next arrival; an arrival that
  may join the batch *interrupts* it at the end of the step in progress, exactly as a
  step-by-step simulation would (``closed_form=False`` runs that reference);
- inter-token latencies: all decoding requests share each step's gap except newcomers (their
  first gap is from their own last token); per-request maxima come from a monotone stack of
  (tick, suffix max of gaps).

Speed (DESIGN "Speed is a feature"): the step loop runs a few times per request, so the hot
paths avoid per-step object churn and helper calls where that is cheap to do readably; the
results are those of the plain formulation (``tests/serving``: closed form == step by step).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from heapq import heappop, heappush
from itertools import accumulate
from typing import Any

from llmsim.costmodel.shapes import BatchShape
from llmsim.serving.kvcache import KVCache
from llmsim.serving.metrics import LogHistogram
from llmsim.serving.pricing import StepPricer
from llmsim.serving.request import RequestStatus, RequestTable
from llmsim.serving.schedulers.base import (
    DECODE_RUN,
    Order,
    SchedulerLimits,
    StepPlan,
    make_queue,
)

# plain ints (cheaper to store in the status column than the enum members)
_WAITING = int(RequestStatus.WAITING)
_RUNNING = int(RequestStatus.RUNNING)
_SWAPPED = int(RequestStatus.SWAPPED)
_FINISHED = int(RequestStatus.FINISHED)

PRIO_ARRIVAL, PRIO_STEP, PRIO_KICK, PRIO_SAMPLE = 0, 1, 2, 3
_MAX_PHASES = 4  # finishes one closed-form run may cross
_NEVER = 1 << 62


class Segment:
    """What is in flight: an optional *head* step (a prefill or mixed step, ``head_dur``
    long) followed by an optional closed-form *run* (a :class:`PhasedRun`) of ``n`` pure
    decode steps; ``dur``: the whole segment; ``event``: the id of its end event."""

    __slots__ = ("start", "plan", "feats", "head_dur", "run", "n", "event", "dur")

    def __init__(self, start: float, plan: StepPlan, feats: Any, head_dur: float):
        self.start, self.plan, self.feats, self.head_dur = start, plan, feats, head_dur
        self.run: Any = None
        self.n = 0
        self.event = 0
        self.dur = head_dur

    @property
    def steps(self) -> int:
        return (1 if self.feats is not None else 0) + self.n


def _cross(res: list[int], bs: int, lo: int, hi: int, total: int) -> int:
    """Blocks needed over decode ticks ``lo..hi`` by decoders whose block-boundary phases
    have the histogram ``res`` (``total = sum(res)``): at tick ``s``, ``res[s % bs]`` of
    them start a block, so every ``bs`` consecutive ticks need ``total`` blocks."""
    n = hi - lo + 1
    if n <= 0 or not total:
        return 0
    full, rem = divmod(n, bs)
    s = lo % bs
    e = s + rem
    part = sum(res[s:e]) if e <= bs else sum(res[s:]) + sum(res[:e - bs])
    return full * total + part


def _fitting(res: list[int], bs: int, lo: int, avail: int, cap: int, total: int) -> int:
    """Most decode steps from tick ``lo`` (at most ``cap``) whose new blocks fit ``avail``
    (``res`` and ``total`` as for :func:`_cross`)."""
    if cap <= 0:
        return 0
    if total == 0:
        return cap
    full = avail // total
    steps = full * bs
    if steps >= cap:  # the usual case: blocks to spare
        return cap
    p = list(accumulate(res + res, initial=0))  # prefix sums over two cycles of ticks
    s = lo % bs
    j = bisect_right(p, p[s] + avail - full * total, s, s + bs + 1) - 1 - s
    return min(steps + j, cap)


class PhasedRun:
    """A closed-form run made of decode *phases*: between two finishes the decoding set is
    fixed and the run is a decode run (``LinearRun`` / ``PiecewiseRun``); at a phase end the
    finishing requests leave and the next phase prices the smaller batch. Times are relative
    to the run's start."""

    __slots__ = ("runs", "ns", "t0", "ends", "live", "nfin", "n", "dur")

    def __init__(self, runs: list[Any], ns: list[int], t0: list[float], ends: list[float],
                 live: list[int], nfin: list[int], n: int, dur: float):
        self.runs = runs  # per phase: its decode run (``LinearRun`` / ``PiecewiseRun``)
        self.ns = ns  # its steps
        self.t0 = t0  # its start (``t0[p + 1] = t0[p] + ends[p]``)
        self.ends = ends  # its length, ``runs[p].end(ns[p])``
        self.live = live  # sequences producing tokens in it
        self.nfin = nfin  # requests finishing at its end
        self.n = n  # steps in all
        self.dur = dur

    def _phase_at(self, dt: float) -> int:
        """The phase whose steps are in progress at ``dt`` (the last if after the end)."""
        t0 = self.t0
        if len(t0) == 1:
            return 0
        return max(bisect_left(t0, dt) - 1, 0)

    def cut(self, dt: float) -> bool:
        """Keep only the steps up to the one in progress at ``dt``; False if nothing to cut."""
        t0, ns = self.t0, self.ns
        last = len(t0) - 1
        p = self._phase_at(dt) if last else 0
        run = self.runs[p]
        k = run.step_ending_at_or_after(dt - t0[p])
        if k >= ns[p]:
            if p == last:
                return False
        else:
            run.truncate(k)
            self.nfin[p] = 0  # its finishers now finish after this segment
            ns[p] = k
            self.ends[p] = run.end(k)
        if p < last:
            del self.runs[p + 1:], ns[p + 1:], t0[p + 1:], self.ends[p + 1:]
            del self.live[p + 1:], self.nfin[p + 1:]
        self.n = sum(ns)
        self.dur = t0[p] + self.ends[p]
        return True

    def finished_by(self, dt: float) -> int:
        """Requests of this run that finish at or before ``dt``."""
        done = 0
        for p, run in enumerate(self.runs):
            if self.t0[p] + run.end(self.ns[p]) > dt:
                break
            done += self.nfin[p]
        return done

    def tokens_by(self, dt: float) -> int:
        tokens = 0
        for p, run in enumerate(self.runs):
            rel = dt - self.t0[p]
            if rel <= 0:
                break
            n = self.ns[p]
            k = run.step_ending_at_or_after(rel)
            if run.end(k) > rel:
                k -= 1
            tokens += min(k, n) * self.live[p]
        return tokens


class Replica:
    def __init__(self, index: int, loop: Any, table: RequestTable, workload: Any,
                 scheduler: Any, limits: SchedulerLimits, order: Order, kv: KVCache,
                 pricer: StepPricer, itl_hist: LogHistogram, on_finish: Any,
                 swap: bool = False, trace_steps: list | None = None,
                 trace_limit: int = 200_000, closed_form: bool = True,
                 multi_phase: bool = True, next_arrival: Any = None):
        self.index = index
        self.loop = loop
        self.table = table
        self.workload = workload
        self.scheduler = scheduler
        self.limits = limits
        self.kv = kv
        self.bs = kv.block_size
        self.pricer = pricer
        self.hist = itl_hist
        self.on_finish = on_finish
        self.swap_enabled = swap
        self.trace_steps = trace_steps
        self.trace_limit = trace_limit
        self.closed_form = closed_form
        self.multi_phase = multi_phase and closed_form
        self.next_arrival = next_arrival or (lambda: math.inf)
        self.prefix = kv.prefix_caching and workload.has_prefix_keys
        self.admits_mid_batch = scheduler.admits_mid_batch
        self.hold_finished = scheduler.hold_finished
        self.waiting = make_queue(order, table)
        self.order = order
        self.running: dict[int, None] = {}
        self.prefilling: dict[int, None] = {}
        self.swapped: deque[int] = deque()
        self.pkeys: dict[int, list[int]] = {}  # prompt block keys considered (prefix caching)
        self.kheld: dict[int, int] = {}  # how many of pkeys are referenced
        # decode aggregates
        self.n_dec = 0  # decoding sequences priced (incl. static-batch padding)
        self.n_live = 0  # decoding sequences still producing tokens
        self.dec_ctx = 0  # sum over decoding sequences of (cached tokens + 1)
        self.res = [0] * self.bs  # block-boundary phase histogram of live decoders
        self.fin: list[tuple[int, int, int]] = []  # (finish tick, stint, rid)
        self.live: dict[int, int] = {}  # live decoder -> its stint (validates ``fin``)
        self.joiners: list[int] = []
        self.zombies: list[tuple[int, int, int]] = []  # (rid, tick at finish, cached at finish)
        self.tick = 0
        self.reserved_through = 0
        self.last_decode_end = 0.0
        self._stk_t: list[int] = []
        self._stk_v: list[float] = []
        # in-flight step
        self.seg: Segment | None = None
        self.kick_pending = False
        self.wake_event = 0
        # counters
        self.busy_s = 0.0
        self.num_steps = 0
        self.num_segments = 0
        self.output_tokens = 0
        self.prefill_tokens = 0
        self.preemptions = 0
        self.swapped_out_tokens = 0
        self.hit_tokens = 0
        self.query_tokens = 0
        self.w_steps = self.w_tokens = self.w_logits = 0.0  # work features (see WorkFit)
        self.w_pairs = self.w_pctx = self.w_dctx = 0.0

    # ------------------------------------------------------------------ views for schedulers
    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def work(self) -> list[float]:
        """Summed step features ``[steps, tokens, logits, prefill pairs, prefill keys, decode
        keys]`` (see ``pricing.WorkFit``)."""
        return [self.w_steps, self.w_tokens, self.w_logits, self.w_pairs, self.w_pctx,
                self.w_dctx]

    @property
    def outstanding(self) -> int:
        """Requests queued, running or swapped out now (finishes inside the closed-form run
        in flight count as done once their time has passed)."""
        return (len(self.waiting) + len(self.running) - len(self.zombies) + len(self.swapped)
                - self.finished_in_flight(self.loop.now_s))

    def finished_in_flight(self, time_s: float) -> int:
        """Requests of the run in flight that finished by ``time_s`` (not yet committed)."""
        seg = self.seg
        if seg is None or seg.run is None or len(seg.run.runs) < 2:
            return 0
        return seg.run.finished_by(time_s - seg.start - (
            seg.head_dur if seg.feats is not None else 0.0))

    def arrival_s(self, rid: int) -> float:
        return self.table.arrival_s[rid]

    def known_tokens(self, rid: int) -> int:
        t = self.table
        return t.input_tokens[rid] + t.generated[rid]

    def remaining_prompt(self, rid: int) -> int:
        return self.known_tokens(rid) - self.table.computed[rid]

    def decode_blocks_after_prompt(self, rid: int) -> int:
        """Blocks a request will still need after its prompt (static-batch reservation)."""
        t = self.table
        p, o = t.input_tokens[rid], t.output_tokens[rid]
        return -(-(p + o - 1) // self.bs) - (-(-p // self.bs))

    # ------------------------------------------------------------------ arrivals
    def enqueue(self, rid: int, now: float) -> None:
        t = self.table
        t.transition(rid, _WAITING)
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

    # ------------------------------------------------------------------ KV block phases
    def reserve_decode_step(self) -> bool:
        """Allocate the blocks every live decoder needs for the next step (scheduler helper)."""
        nxt = self.tick + 1
        if self.reserved_through >= nxt:
            return True
        need = self.res[nxt % self.bs]  # decoders starting a block at that tick
        if need:
            kv = self.kv
            if not kv.can_allocate(need):
                return False
            kv.allocate(need)
        self.reserved_through = nxt
        return True

    # ------------------------------------------------------------------ decode set
    def _join(self, rid: int) -> None:
        t = self.table
        c = t.computed[rid]
        g = t.generated[rid]
        tick = self.tick
        t.join_tick[rid] = tick
        stint = t.stint[rid] + 1
        t.stint[rid] = stint
        self.live[rid] = stint
        self.res[(tick + 1 - c) % self.bs] += 1
        self.dec_ctx += c + 1
        self.n_dec += 1
        self.n_live += 1
        heappush(self.fin, (tick + t.output_tokens[rid] - g, stint, rid))
        self.joiners.append(rid)

    def _materialise(self, rid: int) -> tuple[int, int]:
        """Bring a decoder's generated/cached counts up to the current tick; returns
        (cached tokens at join, blocks held)."""
        t = self.table
        j0 = t.join_tick[rid]
        d = self.tick - j0
        c0 = t.computed[rid]
        t.generated[rid] += d
        t.computed[rid] = c0 + d
        slots = c0 + (self.reserved_through - j0) if self.reserved_through > self.tick else c0 + d
        return c0, -(-slots // self.bs)

    def _leave(self, rid: int) -> int:
        """Remove a live decoder from the decode set (its counts brought up to the current
        tick, as ``_materialise``); returns the blocks it holds."""
        t = self.table
        j0 = t.join_tick[rid]
        tick = self.tick
        c0 = t.computed[rid]
        c = c0 + tick - j0
        t.generated[rid] += tick - j0
        t.computed[rid] = c
        rt = self.reserved_through
        slots = c0 + (rt - j0) if rt > tick else c
        del self.live[rid]
        self.res[(j0 + 1 - c0) % self.bs] -= 1
        self.n_live -= 1
        self.dec_ctx -= c + 1
        joiners = self.joiners
        if joiners and rid in joiners:
            joiners.remove(rid)
        else:  # the largest gap it saw since it joined (stack of suffix maxima)
            st = self._stk_t
            i = bisect_left(st, j0 + 2)
            if i < len(st):
                m = self._stk_v[i]
                if m > t.itl_max_s[rid]:
                    t.itl_max_s[rid] = m
        self.n_dec -= 1
        if self.n_dec == 0:
            self._stk_t.clear()
            self._stk_v.clear()
        return -(-slots // self.bs)

    def _stack_max(self, tick: int) -> float:
        i = bisect_left(self._stk_t, tick)
        return self._stk_v[i] if i < len(self._stk_v) else 0.0

    def _free_blocks(self, rid: int, blocks: int) -> None:
        held = 0
        if self.kheld:  # prefix caching: keyed blocks are released by reference
            held = self.kheld.pop(rid, 0)
            if held:
                self.kv.release_keys(self.pkeys[rid][:held])
            self.pkeys.pop(rid, None)
        self.kv.release(blocks - held)
        self.table.blocks[rid] = 0

    # ------------------------------------------------------------------ admission
    def try_admit(self, rid: int, now: float, budget: int, reserve: int, whole: bool,
                  over_budget_ok: bool = False) -> int:
        """Admit the waiting request ``rid`` (the queue head) with a prompt chunk of at most
        ``budget`` tokens (the whole remaining prompt if ``whole``), keeping ``reserve`` blocks
        free. Returns the tokens scheduled, or 0 (nothing changed) if it does not fit."""
        t, bs, kv = self.table, self.bs, self.kv
        known = t.input_tokens[rid] + t.generated[rid]
        keys: list[int] = []
        start = 0
        if self.prefix:
            nk = min(t.input_tokens[rid] // bs, (known - 1) // bs)
            keys = self.workload.prefix_keys(rid, nk, bs) if nk > 0 else []
            start = kv.match(keys) * bs
        remaining = known - start
        if whole:
            if remaining > budget and not over_budget_ok:
                return 0
            chunk = remaining
        else:
            chunk = remaining if remaining < budget else budget
        nblocks = -(-(start + chunk) // bs)
        if keys:
            use = keys[:nblocks]
            need = kv.blocks_to_acquire(use) + nblocks - len(use)
            if not kv.can_allocate(need, reserve):
                return 0
            kv.acquire(use)
            self.pkeys[rid] = keys
            self.kheld[rid] = len(use)
            kv.allocate(nblocks - len(use))
        else:
            if not kv.can_allocate(nblocks, reserve):
                return 0
            kv.allocate(nblocks)
        t.blocks[rid] = nblocks
        t.computed[rid] = start
        if t.first_scheduled_s[rid] != t.first_scheduled_s[rid]:  # NaN: first admission
            t.first_scheduled_s[rid] = now
            t.cached_tokens[rid] = start
            self.query_tokens += known  # hit rate over first admissions (not recomputes)
            self.hit_tokens += start
        popped = self.waiting.pop()
        assert popped == rid, (popped, rid)
        t.transition(rid, _RUNNING)
        self.running[rid] = None
        self.prefilling[rid] = None
        return chunk

    def try_extend(self, rid: int, chunk: int) -> bool:
        """Allocate blocks for the next ``chunk`` prompt tokens of a prefilling request."""
        t, bs, kv = self.table, self.bs, self.kv
        held = t.blocks[rid]
        nblocks = -(-(t.computed[rid] + chunk) // bs)
        if nblocks <= held:
            return True
        keys = self.pkeys.get(rid)
        kh = self.kheld.get(rid, 0)
        use: list[int] = keys[kh:nblocks] if keys and kh == held else []
        need = (kv.blocks_to_acquire(use) if use else 0) + (nblocks - held - len(use))
        if not kv.can_allocate(need):
            return False
        if use:
            kv.acquire(use)
            self.kheld[rid] = kh + len(use)
        kv.allocate(nblocks - held - len(use))
        t.blocks[rid] = nblocks
        return True

    def try_swap_in(self, rid: int, reserve: int) -> int:
        """Bring a swapped request back (FCFS head of ``swapped``); tokens moved, or -1."""
        t = self.table
        blocks = -(-t.computed[rid] // self.bs)
        if not self.kv.can_allocate(blocks, reserve):
            return -1
        self.swapped.popleft()
        self.kv.allocate(blocks)
        self.kv.host_used -= t.blocks[rid]
        t.blocks[rid] = blocks
        t.transition(rid, _RUNNING)
        self.running[rid] = None
        self._join(rid)
        return t.computed[rid]

    # ------------------------------------------------------------------ preemption
    def pick_victim(self) -> int | None:
        """The running request to preempt: FCFS -> latest admitted; priority -> the lowest
        priority (largest value), latest arrival among equals."""
        if not self.running:
            return None
        if self.order == Order.FCFS:
            return next(reversed(self.running))
        t = self.table
        return max(self.running, key=lambda r: (int(t.priority[r]), float(t.arrival_s[r]), r))

    def preempt(self, rid: int, now: float) -> int:
        """Preempt ``rid`` by swap (if enabled and host space allows) or recompute. Returns the
        tokens swapped out (0 for recompute)."""
        t = self.table
        del self.running[rid]
        self.preemptions += 1
        t.preemptions[rid] += 1
        if rid in self.prefilling:
            del self.prefilling[rid]
            blocks = t.blocks[rid]
            decoding = False
        else:
            blocks = self._leave(rid)
            decoding = True
            t.last_token_s[rid] = self.last_decode_end if self.tick > int(
                t.join_tick[rid]) else t.last_token_s[rid]
        if (decoding and self.swap_enabled
                and self.kv.host_used + blocks <= self.kv.host_total):
            self._free_blocks(rid, blocks)
            t.blocks[rid] = blocks
            self.kv.host_used += blocks
            t.transition(rid, _SWAPPED)
            self.swapped.append(rid)
            tokens = t.computed[rid]
            self.swapped_out_tokens += tokens
            return tokens
        self._free_blocks(rid, blocks)
        t.computed[rid] = 0
        t.transition(rid, _WAITING)
        self.waiting.push_front(rid)
        return 0

    # ------------------------------------------------------------------ the step loop
    def _start(self, now: float) -> None:
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

    def _upcoming_finishes(self, ticks: int) -> tuple[list[tuple[int, int, int]], int]:
        """Every live finish at the first ``ticks`` distinct finish ticks, soonest first, as
        (finish tick, cached tokens at join, join tick); and the last tick covered when later
        finishes were left out (else a very large number)."""
        fin, live, t = self.fin, self.live, self.table
        out: list[tuple[int, int, int]] = []
        seen = 0
        last = -1
        computed, join_tick = t.computed, t.join_tick
        for f, stint, rid in sorted(fin):
            if live.get(rid) != stint:
                continue
            if f != last:
                if seen == ticks:
                    return out, last
                seen += 1
                last = f
            out.append((f, computed[rid], join_tick[rid]))
        return out, _NEVER

    def _plan_run(self, seg: Segment, tick0: int, seqs: int, live: int, ctx: int,
                  res: list[int], extra: Any) -> None:
        """Attach a closed-form decode run from decode tick ``tick0``: phase after phase (one
        per finish, up to the next arrival) until the KV blocks run out. ``res``: the
        block-boundary phase histogram of the ``live`` decoders (``sum(res) == live``)."""
        bs = self.bs
        rt = self.reserved_through  # decode ticks through rt have their blocks allocated
        have = _cross(res, bs, tick0 + 1, rt, live) if rt > tick0 else 0
        # a finish may let a blocked waiting request in: then the run must stop there
        max_phases = _MAX_PHASES if self.multi_phase and (self.hold_finished or not (
            self.waiting or self.swapped)) else 1
        horizon = self.next_arrival() - seg.start - seg.dur
        # the first finish only, unless the run may get past it before the next arrival
        pricer = self.pricer
        first = None  # the first phase, priced as a probe
        first_end = 0.0
        fin, lv = self.fin, self.live
        while fin and lv.get(fin[0][2]) != fin[0][1]:
            heappop(fin)  # a stale entry (its request left the decode set)
        if not fin:
            fins: list[tuple[int, int, int]] = []
            cut = _NEVER
        else:
            first_tick, _stint, rid = fin[0]
            t = self.table
            fins = [(first_tick, t.computed[rid], t.join_tick[rid])]
            cut = first_tick - 1  # others may finish at the same tick
            if max_phases > 1:
                for e in extra:
                    if e[0] < first_tick:
                        first_tick = e[0]
                m = first_tick - tick0
                first = pricer.decode_run(seqs, ctx, m if m > 1 else 1)
                first_end = first.end(first.n)
                if first_end < horizon:
                    fins, cut = self._upcoming_finishes(max_phases)
                else:
                    max_phases = 1
        if extra:  # requests joining at the head's end (only where the list is complete)
            for e in extra:
                if e[0] <= cut:
                    fins.append(e)
            fins.sort()
        if not fins:
            return
        # with prefix caching, evicting a cached block can make a blocked waiting request
        # cheaper to admit (fewer hits, smaller first chunk): then the run only uses free blocks
        avail = (self.kv.free if (self.prefix and self.waiting) else self.kv.available) + have
        cap = fins[-1][0] - tick0
        if cap > 0 and live and avail // live * bs >= cap:
            kv_n = cap  # blocks to spare (the usual case of _fitting)
        else:
            kv_n = _fitting(res, bs, tick0 + 1, avail, cap, live)
            if kv_n <= 0:
                return
        # the phases (see PhasedRun): one decode run each, up to the next finish
        runs: list[Any] = []
        ns: list[int] = []
        t0: list[float] = []
        ends: list[float] = []
        lives: list[int] = []
        nfins: list[int] = []
        dur = 0.0
        hold = self.hold_finished
        decode_run = pricer.decode_run
        k = 0  # steps planned
        i = 0  # next entry of fins
        nf_all = len(fins)
        while True:
            ft = fins[i][0] - tick0
            m = (ft if ft < kv_n else kv_n) - k
            if m <= 0:
                break
            if k == 0 and first is not None and first.n == m:
                run = first  # the probe above priced exactly this phase
                e = first_end
            else:
                run = decode_run(seqs, ctx, m)
                e = run.end(m)
            k += m
            end_tick = tick0 + k
            nf = 0
            gone = 0  # context the finishing requests held
            while i < nf_all:
                f = fins[i]
                if f[0] != end_tick:
                    break
                gone += f[1] + (end_tick - f[2]) + 1
                nf += 1
                i += 1
            runs.append(run)
            ns.append(m)
            t0.append(dur)
            ends.append(e)
            lives.append(live)
            nfins.append(nf)
            dur += e
            if (not nf or i >= nf_all or k >= kv_n or len(ns) >= max_phases
                    or dur >= horizon):
                break
            live -= nf
            if live <= 0:
                break
            ctx += seqs * m
            if not hold:
                seqs -= nf
                ctx -= gone
        if not k:
            return
        # the blocks are taken phase by phase when the run is committed (free blocks first,
        # then least-recently-used cached ones, in step order: exactly as step by step); the
        # plan above counted finishing requests' blocks to the end, so they always fit
        seg.run = PhasedRun(runs, ns, t0, ends, lives, nfins, k, dur)
        seg.n = k
        seg.dur += dur

    def _head(self, plan: StepPlan, now: float) -> Segment:
        """Price a prefill / mixed step; if what follows is sure to be a pure decode run
        (every chunk finishes its prompt, nothing waits, nothing finishes), attach the run."""
        t = self.table
        computed, inp, gen = t.computed, t.input_tokens, t.generated
        prefill = plan.prefill
        pre_seqs = len(prefill)
        pre_tokens = 0
        pairs = 0.0
        pctx = 0.0
        completing = 0
        for rid, c in prefill:
            past = computed[rid]
            pre_tokens += c
            pairs += c * past + c * (c + 1) * 0.5
            pctx += past + c
            if past + c >= inp[rid] + gen[rid]:
                completing += 1
        decode = plan.decode
        nd = self.n_dec if decode else 0
        dctx = float(self.dec_ctx) if decode else 0.0
        shape = BatchShape(pre_seqs, pre_tokens, pairs, pctx, nd, dctx, nd + completing)
        dur = self.pricer.step_s(shape, pre_seqs + nd) if pre_tokens + nd else 0.0
        swap = plan.swap_in_tokens + plan.swap_out_tokens
        if swap:
            dur += self.pricer.swap_s(swap)
        seg = Segment(now, plan, (1, pre_tokens + nd, nd + completing, pairs, pctx, dctx), dur)
        if (self.closed_form and completing == pre_seqs and not plan.preempted and not swap
                and (not self.admits_mid_batch or (not self.waiting and not self.swapped))):
            self._speculate(seg, plan)
        return seg

    def _speculate(self, seg: Segment, plan: StepPlan) -> None:
        t, bs = self.table, self.bs
        decode = plan.decode
        tick0 = self.tick + 1 if decode else self.tick
        if self.n_live and decode:
            fin, lv = self.fin, self.live
            while fin and lv.get(fin[0][2]) != fin[0][1]:
                heappop(fin)  # a stale entry (its request left the decode set)
            if not fin or fin[0][0] - self.tick <= 1:
                return  # a decoder finishes at the head step: let the scheduler look again
        seqs = self.n_dec
        live = self.n_live
        ctx = self.dec_ctx + self.n_dec if decode else self.dec_ctx
        inp, gen, out = t.input_tokens, t.generated, t.output_tokens
        res = self.res
        extra = []
        if plan.prefill:
            res = res[:]  # with the requests that join at the head's end
            for rid, _c in plan.prefill:
                g = gen[rid] + 1
                left = out[rid] - g
                if left < 1:
                    return
                c = inp[rid] + g - 1
                extra.append((tick0 + left, c, tick0))
                res[(tick0 + 1 - c) % bs] += 1
                seqs += 1
                live += 1
                ctx += c + 1
        if live <= 0:
            return
        self._plan_run(seg, tick0, seqs, live, ctx, res, extra)

    def _on_step_end(self, now: float, _payload: Any) -> None:
        seg = self.seg
        assert seg is not None
        self.seg = None
        self._commit(seg, now)
        self._start(now)

    def _commit(self, seg: Segment, now: float) -> None:
        self.busy_s += seg.dur
        self.num_segments += 1
        start = seg.start
        f = seg.feats
        trace = self.trace_steps
        if f is not None:  # the head step
            t_h = start + seg.head_dur
            self.w_steps += 1
            self.w_tokens += f[1]
            self.w_logits += f[2]
            self.w_pairs += f[3]
            self.w_pctx += f[4]
            self.w_dctx += f[5]
            self.num_steps += 1
            plan = seg.plan
            if trace is not None and len(trace) < self.trace_limit:
                trace.append((self.index, start, seg.head_dur, len(plan.prefill),
                              f[1] - (self.n_dec if plan.decode else 0),
                              self.n_dec if plan.decode else 0, 1, self.kv.used))
            if plan.decode:
                self._commit_decode(t_h, None, 1, t_h)
            if plan.prefill:
                self._commit_chunks(plan.prefill, t_h)
            start = t_h
        if seg.n:
            runs = seg.run
            ns, t0, ends = runs.ns, runs.t0, runs.ends
            last = len(ns) - 1
            kv, bs, res = self.kv, self.bs, self.res
            # work features summed in locals (same order of additions as one by one)
            w_steps, w_tokens, w_logits, w_dctx = (self.w_steps, self.w_tokens, self.w_logits,
                                                   self.w_dctx)
            steps = 0
            commit_decode = self._commit_decode
            for p, run in enumerate(runs.runs):
                n = ns[p]
                b = self.n_dec
                nb = n * b
                w_steps += n
                w_tokens += nb
                w_logits += nb
                w_dctx += n * self.dec_ctx + b * n * (n - 1) * 0.5
                steps += n
                p_start = start + t0[p]
                p_end = now if p == last else p_start + ends[p]
                tick = self.tick
                hi = tick + n
                rt = self.reserved_through
                if rt < hi:  # blocks of the steps not reserved yet
                    need = _cross(res, bs, (rt if rt > tick else tick) + 1, hi, self.n_live)
                    if need:
                        kv.allocate(need)
                if trace is not None and len(trace) < self.trace_limit:
                    trace.append((self.index, p_start, p_end - p_start, 0, 0, b, n, kv.used))
                commit_decode(p_start + run.first, run, n, p_end)
            self.w_steps, self.w_tokens, self.w_logits, self.w_dctx = (w_steps, w_tokens,
                                                                       w_logits, w_dctx)
            self.num_steps += steps

    def _commit_chunks(self, chunks: tuple[tuple[int, int], ...], now: float) -> None:
        t, hist = self.table, self.hist
        computed, gen = t.computed, t.generated
        for rid, c in chunks:
            comp = computed[rid] + c
            computed[rid] = comp
            self.prefill_tokens += c
            if comp < t.input_tokens[rid] + gen[rid]:
                continue
            del self.prefilling[rid]
            g = gen[rid] + 1
            gen[rid] = g
            self.output_tokens += 1
            if g == 1:
                t.first_token_s[rid] = now
            else:
                gap = now - t.last_token_s[rid]
                hist.add(gap)
                if gap > t.itl_max_s[rid]:
                    t.itl_max_s[rid] = gap
            t.last_token_s[rid] = now
            if g >= t.output_tokens[rid]:
                self._finish(rid, now, t.blocks[rid])
            else:
                self._join(rid)

    def _commit_decode(self, e1: float, run: Any, n: int, now: float) -> None:
        """Every decoding request gained ``n`` tokens: the first step ended at ``e1``, step
        ``k`` at ``start + run.end(k)`` (``run`` is only read if ``n >= 2``), the last at
        ``now``."""
        hist = self.hist
        joiners = self.joiners
        n_live = self.n_live
        old = n_live  # decoders whose previous token came from the previous decode step
        if joiners:  # their previous token came from their prompt's last chunk
            t = self.table
            itl = t.itl_max_s
            last = t.last_token_s
            for rid in joiners:
                gap = e1 - last[rid]
                hist.add(gap)
                if gap > itl[rid]:
                    itl[rid] = gap
            old -= len(joiners)
            self.joiners = []
        tick = self.tick
        # the suffix maxima of the gaps by tick: (tick, largest gap from that tick on)
        st = self._stk_t
        sv = self._stk_v
        if old > 0:
            g = e1 - self.last_decode_end
            hist.add(g, old)
            while sv and sv[-1] <= g:
                sv.pop()
                st.pop()
            st.append(tick + 1)
            sv.append(g)
        if n >= 2:
            g = run.add_gaps(hist, 2, n, n_live)  # returns the largest of those gaps
            while sv and sv[-1] <= g:
                sv.pop()
                st.pop()
            st.append(tick + 2)
            sv.append(g)
        tick += n
        self.tick = tick
        if self.reserved_through < tick:
            self.reserved_through = tick
        self.dec_ctx += n * self.n_dec
        self.output_tokens += n * n_live
        self.last_decode_end = now
        fin = self.fin
        if fin and fin[0][0] <= tick:
            self._finish_decoders(tick, now)

    def _finish_decoders(self, tick: int, now: float) -> None:
        """Retire the live decoders whose last token came at decode tick ``tick`` or before
        (stale finish-heap entries are skipped)."""
        fin, live = self.fin, self.live
        hold = self.hold_finished
        while fin and fin[0][0] <= tick:
            _ftick, stint, rid = heappop(fin)
            if live.get(rid) != stint:
                continue
            if hold:
                self._zombify(rid, now)
            else:
                self._finish(rid, now, self._leave(rid))
        if hold and self.zombies and self.n_live == 0:
            self._release_zombies()

    def _zombify(self, rid: int, now: float) -> None:
        """Static batching: a finished sequence streams its last token but keeps its slot."""
        t = self.table
        j0 = t.join_tick[rid]
        c0, blocks = self._materialise(rid)
        need = -(-t.computed[rid] // self.bs)
        if blocks > need:  # blocks reserved for steps after its finish (a phased run)
            self.kv.release(blocks - need)
            blocks = need
        del self.live[rid]
        self.res[(j0 + 1 - c0) % self.bs] -= 1
        self.n_live -= 1
        m = self._stack_max(j0 + 2)
        if m > t.itl_max_s[rid]:
            t.itl_max_s[rid] = m
        t.blocks[rid] = blocks
        t.last_token_s[rid] = now
        self.zombies.append((rid, self.tick, t.computed[rid]))
        t.transition(rid, _FINISHED)
        t.finish_s[rid] = now
        self.on_finish(rid, now)

    def _release_zombies(self) -> None:
        for rid, ztick, c in self.zombies:
            self.dec_ctx -= c + (self.tick - ztick) + 1
            self.n_dec -= 1
            del self.running[rid]
            self._free_blocks(rid, self.table.blocks[rid])
        self.zombies = []
        self._stk_t.clear()
        self._stk_v.clear()

    def _finish(self, rid: int, now: float, blocks: int) -> None:
        t = self.table
        del self.running[rid]
        self._free_blocks(rid, blocks)
        t.transition(rid, _FINISHED)
        t.finish_s[rid] = now
        self.on_finish(rid, now)

    # ------------------------------------------------------------------ sampling
    def progress_tokens(self, time_s: float) -> int:
        """Output tokens of the decode run in flight already produced by ``time_s``."""
        seg = self.seg
        if seg is None or seg.run is None:
            return 0
        run_start = seg.start + (seg.head_dur if seg.feats is not None else 0.0)
        return seg.run.tokens_by(time_s - run_start) if time_s > run_start else 0

    def check(self) -> None:
        """Consistency checks (tests; O(running)): KV accounting matches the blocks every
        running request holds, aggregates match the decoding set."""
        self.kv.check()
        assert self.kv.used <= self.kv.total
        assert self.n_live >= 0 and self.n_dec >= self.n_live
        assert sum(self.res) == self.n_live, (sum(self.res), self.n_live)
        if self.seg is not None:
            return  # reservations of the segment in flight are not attributed yet
        t, bs = self.table, self.bs
        zombies = {z[0] for z in self.zombies}
        held = 0
        ctx = 0
        for rid in self.running:
            if rid in zombies or rid in self.prefilling:
                held += t.blocks[rid]
                continue
            c = t.computed[rid] + self.tick - t.join_tick[rid]
            slots = c + max(self.reserved_through - self.tick, 0)
            held += -(-slots // bs)
            ctx += c + 1
        shared = sum(self.kheld.values())
        private_keys = len(self.kv._refs) - self.kv.cached  # referenced keyed blocks
        assert held - shared + private_keys == self.kv.used or self.prefix, (held, self.kv.used)
        if not self.zombies:
            assert ctx == self.dec_ctx, (ctx, self.dec_ctx)
