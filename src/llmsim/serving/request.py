"""Request lifecycle (one status enum with legal transitions) and the per-request table.

Per-request state lives in preallocated flat columns indexed by request id (``RequestTable``),
so memory is a fixed number of bytes per request, whatever the number of tokens. Lifecycle::

    PENDING --arrive--> WAITING --admit--> RUNNING --finish--> FINISHED
       |                  ^  |                |
       +--reject--> REJECTED |             preempt (recompute) -> WAITING
                             +-- swap in --  SWAPPED <- preempt (swap)
"""

from __future__ import annotations

import math
from array import array
from enum import IntEnum

import numpy as np


class RequestStatus(IntEnum):
    PENDING = 0  # not arrived yet
    WAITING = 1  # queued at a replica (new, or preempted by recompute)
    RUNNING = 2  # holds KV blocks; prefilling or decoding
    SWAPPED = 3  # preempted; KV moved to host memory
    FINISHED = 4
    REJECTED = 5  # refused at arrival (longer than the model context or the KV capacity)


# legal (old, new) pairs, coded ``old * 8 + new`` (one int: a cheap set lookup per transition)
_LEGAL: frozenset[int] = frozenset(int(a) * 8 + int(b) for a, b in (
    (RequestStatus.PENDING, RequestStatus.WAITING),
    (RequestStatus.PENDING, RequestStatus.REJECTED),
    (RequestStatus.WAITING, RequestStatus.RUNNING),
    (RequestStatus.RUNNING, RequestStatus.WAITING),
    (RequestStatus.RUNNING, RequestStatus.SWAPPED),
    (RequestStatus.RUNNING, RequestStatus.FINISHED),
    (RequestStatus.SWAPPED, RequestStatus.RUNNING),
))


class RejectReason(IntEnum):
    NONE = 0
    CONTEXT_LENGTH = 1  # input + output tokens exceed the model's context window
    KV_CAPACITY = 2  # the request's KV cache alone exceeds a replica's KV capacity
    BATCH_TOKENS = 3  # a non-chunking scheduler cannot fit the prompt in max_num_batched_tokens


class IllegalTransition(RuntimeError):
    """Internal error: the simulator tried an illegal lifecycle transition (a bug)."""


def _ints(values: np.ndarray | None, n: int, fill: int = 0) -> array:
    if values is None:
        return array("q", [fill]) * n
    out = array("q")
    out.frombytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())
    return out


def _floats(values: np.ndarray | None, n: int, fill: float = math.nan) -> array:
    if values is None:
        return array("d", [fill]) * n
    out = array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out


class RequestTable:
    """Preallocated per-request columns (SI units; NaN = not happened).

    Columns are flat typed buffers (``array.array``: 8 bytes per value, fast scalar access
    from the event handlers); :meth:`column` gives a zero-copy numpy view for vectorised
    reporting.
    """

    FLOAT_COLUMNS = ("arrival_s", "first_scheduled_s", "first_token_s", "finish_s",
                     "last_token_s", "itl_max_s")
    INT_COLUMNS = ("input_tokens", "output_tokens", "priority", "status", "reject_reason",
                   "preemptions", "cached_tokens", "replica", "generated", "computed",
                   "join_tick", "stint", "blocks")

    def __init__(self, input_tokens: np.ndarray, output_tokens: np.ndarray,
                 arrival_s: np.ndarray, priority: np.ndarray | None = None):
        n = len(input_tokens)
        self.n = n
        self.input_tokens = _ints(input_tokens, n)
        self.output_tokens = _ints(output_tokens, n)
        self.arrival_s = _floats(arrival_s, n)  # a copy: closed loops rewrite send times
        self.priority = _ints(priority, n)
        self.status = _ints(None, n)
        self.reject_reason = _ints(None, n)
        self.first_scheduled_s = _floats(None, n)
        self.first_token_s = _floats(None, n)
        self.finish_s = _floats(None, n)
        self.last_token_s = _floats(None, n)
        self.itl_max_s = _floats(None, n, 0.0)
        self.preemptions = _ints(None, n)
        self.cached_tokens = _ints(None, n)
        self.replica = _ints(None, n, -1)
        # engine state (read per join/leave, never per token)
        self.generated = _ints(None, n)  # output tokens produced so far
        self.computed = _ints(None, n)  # tokens whose KV is in the cache
        self.join_tick = _ints(None, n)  # replica decode tick when it joined decoding
        self.stint = _ints(None, n)  # incremented at each join (finish-heap validity)
        self.blocks = _ints(None, n)  # KV blocks held (private + shared)

    def column(self, name: str) -> np.ndarray:
        """Zero-copy numpy view of a column."""
        dtype = np.float64 if name in self.FLOAT_COLUMNS else np.int64
        return np.frombuffer(getattr(self, name), dtype=dtype)

    def transition(self, rid: int, new: int) -> None:
        """Move request ``rid`` to status ``new`` (a ``RequestStatus``); illegal moves raise."""
        old = self.status[rid]
        if old * 8 + new not in _LEGAL:
            raise IllegalTransition(
                f"request {rid}: {RequestStatus(old).name} -> {RequestStatus(new).name}")
        self.status[rid] = new

    def nbytes(self) -> int:
        return 8 * self.n * (len(self.FLOAT_COLUMNS) + len(self.INT_COLUMNS))
