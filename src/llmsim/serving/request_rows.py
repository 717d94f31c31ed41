"""The per-request output table of a finished run, derived on demand from the request table.

A run keeps one compact row per request in the :class:`~llmsim.serving.request.RequestTable`
(98 bytes while it runs, 66 after); the output columns (latencies, status names) are computed
from it when asked, a
column or a slice of rows at a time, so writing ``requests.csv`` for millions of requests never
holds a second full copy of the table (``chunks``). The formulas, per request ``i``::

    ttft  = first_token_s - arrival_s          e2e = finish_s - arrival_s
    tpot  = (e2e - ttft) / (output_tokens - 1)  (output_tokens > 1)
    queueing_delay = first_scheduled_s - arrival_s

each NaN unless the request finished (``itl_max_s`` also NaN for a single-token output).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from llmsim.serving.request import RejectReason, RequestStatus, RequestTable

#: the output columns, in file order
COLUMNS = ("request_id", "replica", "status", "reject_reason", "priority", "input_tokens",
           "output_tokens", "cached_tokens", "preemptions", "arrival_s", "first_scheduled_s",
           "first_token_s", "finish_s", "ttft_s", "tpot_s", "e2e_s", "queueing_delay_s",
           "itl_max_s")
#: copied from the table as they are (int columns widened to int64)
_STORED = ("replica", "priority", "input_tokens", "output_tokens", "cached_tokens",
           "preemptions", "arrival_s", "first_scheduled_s", "first_token_s", "finish_s")
_REASON_NAMES = np.array([""] + [r.name.lower() for r in RejectReason][1:], dtype=object)

#: rows per slice when a whole table is written out
CHUNK_ROWS = 32_768


class RequestRows:
    """Output columns of the requests ``[0, n)`` of a finished run's table (NaN where a time
    does not apply). ``output_tokens``: the tokens each request emits, when the table counts
    something else (speculative decoding counts verification steps there); ``warmup``: the
    first ``warmup`` requests are warm-up (a ``warmup`` column is added)."""

    def __init__(self, table: RequestTable, output_tokens: np.ndarray | None = None,
                 warmup: int = 0):
        self.table = table
        self.n = table.n
        self.output_tokens = output_tokens
        self.warmup = warmup
        self.columns = COLUMNS + (("warmup",) if warmup else ())

    def _out(self, lo: int, hi: int) -> np.ndarray:
        if self.output_tokens is not None:
            return np.asarray(self.output_tokens[lo:hi], dtype=np.int64)
        return self.table.column("output_tokens")[lo:hi]

    def __len__(self) -> int:
        return self.n

    def column(self, name: str, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """One output column for the rows ``[lo, hi)`` (a new array)."""
        hi = self.n if hi is None else hi
        col = self.table.column
        if name == "request_id":
            return np.arange(lo, hi)
        if name == "warmup" and self.warmup:
            return np.arange(lo, hi) < self.warmup
        if name == "output_tokens":
            return self._out(lo, hi).astype(np.int64)
        if name in _STORED:
            values = col(name)[lo:hi]
            return values.astype(np.int64) if values.dtype.kind == "i" else values.copy()
        status = col("status")[lo:hi]
        if name == "status":
            done, rejected = status == RequestStatus.FINISHED, status == RequestStatus.REJECTED
            return np.where(done, "finished", np.where(rejected, "rejected", "unfinished"))
        if name == "reject_reason":
            return _REASON_NAMES[col("reject_reason")[lo:hi]]
        done = status == RequestStatus.FINISHED
        arrival = col("arrival_s")[lo:hi]
        if name == "queueing_delay_s":
            return np.where(done, col("first_scheduled_s")[lo:hi] - arrival, np.nan)
        out = self._out(lo, hi)
        if name == "itl_max_s":
            return np.where(done & (out > 1), col("itl_max_s")[lo:hi], np.nan)
        ttft = col("first_token_s")[lo:hi] - arrival
        if name == "ttft_s":
            return np.where(done, ttft, np.nan)
        e2e = col("finish_s")[lo:hi] - arrival
        if name == "e2e_s":
            return np.where(done, e2e, np.nan)
        if name == "tpot_s":
            with np.errstate(invalid="ignore", divide="ignore"):
                tpot = np.where(out > 1, (e2e - ttft) / np.maximum(out - 1, 1), np.nan)
            return np.where(done, tpot, np.nan)
        raise KeyError(f"no request column {name!r}; columns: {', '.join(self.columns)}")

    def frame(self, lo: int = 0, hi: int | None = None) -> pd.DataFrame:
        """The rows ``[lo, hi)`` as a DataFrame (columns :data:`COLUMNS`, and ``warmup``)."""
        return pd.DataFrame({name: self.column(name, lo, hi) for name in self.columns})

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """The whole table as consecutive DataFrames of at most ``rows`` rows (one, possibly
        empty, when the table is small)."""
        yield self.frame(0, min(rows, self.n))
        for lo in range(rows, self.n, rows):
            yield self.frame(lo, min(lo + rows, self.n))
