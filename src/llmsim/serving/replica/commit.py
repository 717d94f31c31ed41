"""Committing a segment when it ends: its tokens, token gaps, finishes, blocks and counters.

The head step's chunks advance their prompts (a completed prompt yields the first token and
joins the decoding set); each phase of the closed-form run advances every decoder by its steps
at once: the tick and aggregates move, its KV blocks are taken (free blocks first, then
least-recently-used cached ones, in step order -- as step by step), its gaps stream into the
ITL histogram in O(1) (``run.add_gaps``) and onto the stack of suffix maxima, and the decoders
whose finish tick has come leave. Static batching holds finished sequences (*zombies*: their
last token is out, their slot and blocks stay, priced as padding) until the batch is done.
Work features (for MFU / MBU), busy time and the optional chrome trace are summed here.
"""

from __future__ import annotations

from heapq import heappop
from typing import Any

from llmsim.serving.replica.admission import Admission
from llmsim.serving.replica.kvblocks import block_crossings
from llmsim.serving.replica.segment import Segment
from llmsim.serving.replica.state import FINISHED


class Commit(Admission):
    """Applies a finished segment to the replica and the request table."""

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
                    need = block_crossings(res, bs, (rt if rt > tick else tick) + 1, hi,
                                           self.n_live * self.beam)
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
        need = self._blocks_held(c0, t.computed[rid])
        if blocks > need:  # blocks reserved for steps after its finish (a phased run)
            self.kv.release(blocks - need)
            blocks = need
        del self.live[rid]
        self.res[(j0 + 1 - c0) % self.bs] -= self.beam
        self.n_live -= 1
        m = self._stack_max(j0 + 2)
        if m > t.itl_max_s[rid]:
            t.itl_max_s[rid] = m
        t.blocks[rid] = blocks
        t.last_token_s[rid] = now
        self.zombies.append((rid, self.tick, t.computed[rid]))
        t.transition(rid, FINISHED)
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
        t.transition(rid, FINISHED)
        t.finish_s[rid] = now
        self.on_finish(rid, now)
