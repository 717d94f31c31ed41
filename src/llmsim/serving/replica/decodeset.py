"""The decoding set, kept lazily: a decode step costs O(1) however many requests decode.

A decode **tick** counts the replica's decode steps. A request that joins the decoding set at
tick ``j`` with ``g`` tokens generated and ``c`` tokens cached has, at tick ``T``,
``g + T - j`` tokens and ``c + T - j`` cached: its table columns are brought up to date only
when it leaves (finishes, is preempted). Per step only the aggregates change: ``n_dec``
sequences priced (with static batching's padding), ``n_live`` producing tokens, ``dec_ctx``
keys read. Finishes come from a heap of finish ticks (``fin``; an entry is valid while its
``stint`` matches ``live``); KV block growth from the phase histogram ``res``
(:mod:`.blocks`).

Inter-token latencies: all decoders share each step's gap except newcomers (``joiners``:
their first gap runs from their own last token). A leaver's largest gap comes from a monotone
stack of (tick, largest gap from that tick on), so no per-request maximum is kept per step.
"""

from __future__ import annotations

from bisect import bisect_left
from heapq import heappush

from llmsim.serving.replica.state import ReplicaState


class DecodeSet(ReplicaState):
    """Join / leave the decoding set and reserve the blocks of its next step."""

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

    def _join(self, rid: int) -> None:
        """Add a request whose prompt is complete (or that is swapped back in) to the decoding
        set at the current tick."""
        t = self.table
        c = t.computed[rid]
        g = t.generated[rid]
        tick = self.tick
        t.join_tick[rid] = tick
        stint = t.stint[rid] + 1
        t.stint[rid] = stint
        self.live[rid] = stint
        self.res[(tick + 1 - c) % self.bs] += self.beam
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
        return c0, self._blocks_held(c0, slots)

    def _blocks_held(self, c0: int, slots: int) -> int:
        """Blocks of a decoder that joined with ``c0`` tokens cached and has ``slots`` token
        slots per sequence now: ``ceil(slots / bs)``; with ``beam`` beams the blocks of the
        ``c0`` tokens are shared and each beam holds its own blocks after them,
        ``ceil(c0 / bs) + beam x (ceil(slots / bs) - ceil(c0 / bs))`` (vLLM's beam search
        forks the sequence after the prompt; the copy of a partly filled last block is not
        counted)."""
        bs = self.bs
        if self.beam == 1:
            return -(-slots // bs)
        shared = -(-c0 // bs)
        return shared + self.beam * (-(-slots // bs) - shared)

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
        self.res[(j0 + 1 - c0) % self.bs] -= self.beam
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
        return self._blocks_held(c0, slots)

    def _stack_max(self, tick: int) -> float:
        i = bisect_left(self._stk_t, tick)
        return self._stk_v[i] if i < len(self._stk_v) else 0.0
