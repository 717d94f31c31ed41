"""Opt-in per-token inter-token latencies (``metrics.save_itls``, ``--save-itls``).

The replica never touches one token at a time (decoders are kept lazily, decode runs are
closed-form), so a request's token times are not stored by default. When asked for, an
:class:`ItlReplica` logs just enough to rebuild them at the end, in O(1) per event plus one
float per decode step:

* the end time of every decode step (tick) of each replica (all decoders share a step's end);
* per request, the *pieces* of its token stream in time order: a token produced by a prompt
  chunk (its first token, or the next one after a recompute) at a time, and a decode stint
  (the ticks from joining the decoding set to leaving it: finish, preemption, static padding).

:meth:`ItlLog.frame` expands the pieces into token times and takes the gaps: one row per gap,
``request_id, token_index, itl_s`` (``token_index`` ``i`` is the gap between token ``i - 1``
and token ``i``, counted from 0). Memory: the frame has one row per output token after the
first of every request, about 24 bytes each.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np
import pandas as pd

from llmsim.serving.replica.engine import Replica

ITL_COLUMNS = ("request_id", "token_index", "itl_s")


class ItlLog:
    """Token-stream pieces of every request and the decode-step end times of each replica."""

    def __init__(self, num_replicas: int):
        self.rid = array("q")
        self.lo = array("q")  # a stint: ticks lo+1..hi of the request's replica; -1: one token
        self.hi = array("q")
        self.time_s = array("d")  # the token's time (single tokens)
        self.tick_end_s = [array("d", [0.0]) for _ in range(num_replicas)]  # index: the tick

    def token(self, rid: int, time_s: float) -> None:
        self.rid.append(rid)
        self.lo.append(-1)
        self.hi.append(-1)
        self.time_s.append(time_s)

    def stint(self, rid: int, lo: int, hi: int) -> None:
        self.rid.append(rid)
        self.lo.append(lo)
        self.hi.append(hi)
        self.time_s.append(math.nan)

    def frame(self, replica_of: np.ndarray) -> pd.DataFrame:
        """The gaps as a DataFrame (``ITL_COLUMNS``); ``replica_of[rid]``: request's replica."""
        rid = np.frombuffer(self.rid, dtype=np.int64)
        order = np.argsort(rid, kind="stable")  # a request's pieces stay in time order
        rid = rid[order]
        lo = np.frombuffer(self.lo, dtype=np.int64)[order]
        hi = np.frombuffer(self.hi, dtype=np.int64)[order]
        single = lo < 0
        counts = np.where(single, 1, hi - lo)
        first = np.cumsum(counts) - counts  # each piece's first token, in the token arrays
        total = int(counts.sum())
        # each token's time: its own (single tokens) or its decode tick's end on its replica
        ends = [np.frombuffer(e, dtype=np.float64) for e in self.tick_end_s]
        base = np.cumsum([0] + [len(e) for e in ends[:-1]])
        rep = np.asarray(replica_of, dtype=np.int64)[rid]
        piece_at = np.where(single, 0, base[rep] + lo + 1 - first)  # + token position
        piece = np.repeat(np.arange(len(rid)), counts)
        pos = np.arange(total)
        times = np.concatenate(ends)[np.where(single[piece], 0, piece_at[piece] + pos)]
        times[single[piece]] = np.frombuffer(self.time_s, dtype=np.float64)[order][single]
        # token index within its request: position - the request's first token position
        new_req = np.ones(len(rid), dtype=bool)
        new_req[1:] = rid[1:] != rid[:-1]
        req_first = np.maximum.accumulate(np.where(new_req, first, 0))
        index = pos - req_first[piece]
        gap = index > 0
        itl = np.empty(total)
        itl[0:1] = 0.0
        np.subtract(times[1:], times[:-1], out=itl[1:])
        return pd.DataFrame({"request_id": rid[piece[gap]], "token_index": index[gap],
                             "itl_s": itl[gap]})


class ItlReplica(Replica):
    """A :class:`Replica` that also logs its token stream into an :class:`ItlLog` (per-token
    work only here: the plain replica stays O(1) per step)."""

    def __init__(self, *args: Any, itl_log: ItlLog, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.itl_log = itl_log
        self.tick_end_s = itl_log.tick_end_s[self.index]

    def _commit_chunks(self, chunks: tuple[tuple[int, int], ...], now: float) -> None:
        gen = self.table.generated
        before = [gen[rid] for rid, _c in chunks]
        super()._commit_chunks(chunks, now)
        for (rid, _c), g in zip(chunks, before, strict=True):
            if gen[rid] > g:
                self.itl_log.token(rid, now)

    def _commit_decode(self, e1: float, run: Any, n: int, now: float) -> None:
        ends = self.tick_end_s
        assert len(ends) == self.tick + 1, "decode ticks must be logged in order"
        ends.append(e1)
        if n >= 3:
            inner = run.ends(2, n - 1) + (e1 - run.first)
            ends.frombytes(np.ascontiguousarray(inner, dtype=np.float64).tobytes())
        if n >= 2:
            ends.append(now)
        super()._commit_decode(e1, run, n, now)

    def _leave(self, rid: int) -> int:
        j0, tick = self.table.join_tick[rid], self.tick
        blocks = super()._leave(rid)
        if tick > j0:
            self.itl_log.stint(rid, j0, tick)
        return blocks

    def _zombify(self, rid: int, now: float) -> None:
        j0, tick = self.table.join_tick[rid], self.tick
        super()._zombify(rid, now)
        if tick > j0:
            self.itl_log.stint(rid, j0, tick)
