"""Planning a segment: price the head step, then plan the closed-form decode run after it.

A *segment* is an optional head step (prefill or mixed, priced by ``StepPricer.step_s``)
followed by a run of pure decode steps priced in closed form, phase after phase across finishes
(:class:`~.segment.PhasedRun`) up to the KV limit or the next arrival:

* a run stops at a finish only where the finish could let a blocked request in (requests
  waiting or swapped out) or, with closed-loop clients, where the finish sends the next
  request (``multi_phase`` off: one phase);
* a head step is followed by a run only when what follows is sure to be a pure decode run
  (every chunk completes its prompt, nothing waits, nothing finishes at the head);
* the blocks a run needs come from the phase histogram (:mod:`.blocks`); they are taken when
  the run is committed (:mod:`.commit`); with prefix caching and requests waiting the run uses
  free blocks only (evicting a cached block could make a blocked request cheaper to admit).

Nothing here changes the replica's state except the finish heap's stale entries it drops.
"""

from __future__ import annotations

from heapq import heappop
from typing import Any

from llmsim.costmodel.shapes import BatchShape
from llmsim.serving.replica.kvblocks import block_crossings, steps_that_fit
from llmsim.serving.replica.segment import PhasedRun, Segment
from llmsim.serving.replica.state import ReplicaState
from llmsim.serving.schedulers.base import StepPlan

MAX_PHASES = 4  # finishes one closed-form run may cross
NEVER = 1 << 62  # a decode tick no run reaches


class RunPlanner(ReplicaState):
    """Builds the segment a plan starts: ``_head`` for a prefill / mixed step, ``_plan_run``
    for the closed-form decode run (after a head, or alone for a repeatable decode step)."""

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
        dur = self.pricer.step_s(shape, pre_seqs + nd, fill=nd == 0) if pre_tokens + nd else 0.0
        swap = plan.swap_in_tokens + plan.swap_out_tokens
        if swap:
            dur += self.pricer.swap_s(swap)
        seg = Segment(now, plan, (1, pre_tokens + nd, nd + completing, pairs, pctx, dctx), dur)
        if (self.closed_form and completing == pre_seqs and not plan.preempted and not swap
                and (not self.admits_mid_batch or (not self.waiting and not self.swapped))):
            self._speculate(seg, plan)
        return seg

    def _speculate(self, seg: Segment, plan: StepPlan) -> None:
        """Attach the run after a head step: the decoding set as it will be at the head's end
        (with the requests whose prompts complete), planned from there by ``_plan_run``; no
        run if a decoder finishes at the head step (the scheduler must look again)."""
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
                res[(tick0 + 1 - c) % bs] += self.beam
                seqs += 1
                live += 1
                ctx += c + 1
        if live <= 0:
            return
        self._plan_run(seg, tick0, seqs, live, ctx, res, extra)

    def _plan_run(self, seg: Segment, tick0: int, seqs: int, live: int, ctx: int,
                  res: list[int], extra: Any) -> None:
        """Attach a closed-form decode run from decode tick ``tick0``: phase after phase (one
        per finish, up to the next arrival) until the KV blocks run out. ``res``: the
        block-boundary phase histogram of the ``live`` decoders (``sum(res) == live``)."""
        bs = self.bs
        rt = self.reserved_through  # decode ticks through rt have their blocks allocated
        seqs_kv = live * self.beam  # sum(res): sequences taking blocks (beams)
        have = block_crossings(res, bs, tick0 + 1, rt, seqs_kv) if rt > tick0 else 0
        # a finish may let a blocked waiting request in: then the run must stop there
        max_phases = MAX_PHASES if self.multi_phase and (self.hold_finished or not (
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
            cut = NEVER
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
        if cap > 0 and live and avail // seqs_kv * bs >= cap:
            kv_n = cap  # blocks to spare (the usual case of steps_that_fit)
        else:
            kv_n = steps_that_fit(res, bs, tick0 + 1, avail, cap, seqs_kv)
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
        return out, NEVER
