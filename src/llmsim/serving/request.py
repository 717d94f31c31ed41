"""Request lifecycle (one status enum with legal transitions) and the per-request table.

Per-request state lives in preallocated flat columns indexed by request id (``RequestTable``),
so memory is a fixed number of bytes per request (98), whatever the number of tokens. Lifecycle::

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


def _ints(values: np.ndarray | None, n: int, fill: int = 0, code: str = "q") -> array:
    """A flat int column of type ``code`` (``array`` type code: ``b`` 1 byte, ``i`` 4, ``q``
    8); values that do not fit raise ``OverflowError`` (never wrap)."""
    if values is None:
        return array(code, [fill]) * n
    values = np.asarray(values)
    dtype = np.dtype(code)
    if len(values) and (values.min() < np.iinfo(dtype).min or values.max() > np.iinfo(dtype).max):
        raise OverflowError(f"a per-request value out of the {dtype} range")
    out = array(code)
    out.frombytes(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return out


def _floats(values: np.ndarray | None, n: int, fill: float = math.nan) -> array:
    if values is None:
        return array("d", [fill]) * n
    out = array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out


class RequestTable:
    """Preallocated per-request columns (SI units; NaN = not happened).

    Columns are flat typed buffers (``array.array``: fast scalar access from the event
    handlers), each as narrow as its values allow -- 8-byte times, 4-byte token counts (a
    request holds at most 2**31 - 1 tokens: ``workload.traces.MAX_TRACE_TOKENS``), 1-byte
    status and reject reason: 98 bytes per request in all (``nbytes``); :meth:`column` gives
    a zero-copy numpy view for vectorised reporting.
    """

    FLOAT_COLUMNS = ("arrival_s", "first_scheduled_s", "first_token_s", "finish_s",
                     "last_token_s", "itl_max_s")
    INT_COLUMNS = ("input_tokens", "output_tokens", "priority", "status", "reject_reason",
                   "preemptions", "cached_tokens", "replica", "generated", "computed",
                   "join_tick", "stint", "blocks")
    #: array type code of each int column (the rest: ``i``, 4 bytes); ticks can pass 2**31
    INT_CODES = {"status": "b", "reject_reason": "b", "join_tick": "q"}

    def __init__(self, input_tokens: np.ndarray, output_tokens: np.ndarray,
                 arrival_s: np.ndarray, priority: np.ndarray | None = None):
        n = len(input_tokens)
        self.n = n
        code = self.INT_CODES.get
        self.input_tokens = _ints(input_tokens, n, code=code("input_tokens", "i"))
        self.output_tokens = _ints(output_tokens, n, code=code("output_tokens", "i"))
        self.arrival_s = _floats(arrival_s, n)  # a copy: closed loops rewrite send times
        self.priority = _ints(priority, n, code=code("priority", "i"))
        self.status = _ints(None, n, code=code("status", "i"))
        self.reject_reason = _ints(None, n, code=code("reject_reason", "i"))
        self.first_scheduled_s = _floats(None, n)
        self.first_token_s = _floats(None, n)
        self.finish_s = _floats(None, n)
        self.last_token_s = _floats(None, n)
        self.itl_max_s = _floats(None, n, 0.0)
        self.preemptions = _ints(None, n, code=code("preemptions", "i"))
        self.cached_tokens = _ints(None, n, code=code("cached_tokens", "i"))
        self.replica = _ints(None, n, -1, code=code("replica", "i"))
        # engine state (read per join/leave, never per token)
        self.generated = _ints(None, n, code=code("generated", "i"))  # output tokens so far
        self.computed = _ints(None, n, code=code("computed", "i"))  # tokens with KV cached
        self.join_tick = _ints(None, n, code=code("join_tick", "i"))  # decode tick at join
        self.stint = _ints(None, n, code=code("stint", "i"))  # +1 per join (heap validity)
        self.blocks = _ints(None, n, code=code("blocks", "i"))  # KV blocks held

    #: columns only the running engine reads (freed by :meth:`release_engine_state`)
    ENGINE_COLUMNS = ("last_token_s", "generated", "computed", "join_tick", "stint", "blocks")

    def release_engine_state(self) -> None:
        """Free the engine-only columns once the run is over (32 of the 98 bytes per request):
        the report reads the others."""
        for name in self.ENGINE_COLUMNS:
            setattr(self, name, array(getattr(self, name).typecode))

    def column(self, name: str) -> np.ndarray:
        """Zero-copy numpy view of a column (its own dtype: float64, int64, int32 or int8)."""
        buf = getattr(self, name)
        return np.frombuffer(buf, dtype=np.dtype(buf.typecode))

    def transition(self, rid: int, new: int) -> None:
        """Move request ``rid`` to status ``new`` (a ``RequestStatus``); illegal moves raise."""
        old = self.status[rid]
        if old * 8 + new not in _LEGAL:
            raise IllegalTransition(
                f"request {rid}: {RequestStatus(old).name} -> {RequestStatus(new).name}")
        self.status[rid] = new

    def nbytes(self) -> int:
        return sum(len(buf) * buf.itemsize for buf in
                   (getattr(self, c) for c in self.FLOAT_COLUMNS + self.INT_COLUMNS))
