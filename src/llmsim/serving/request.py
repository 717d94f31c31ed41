"""Request lifecycle (one status enum with legal transitions) and the per-request table.

Per-request state lives in preallocated flat columns indexed by request id (``RequestTable``),
so memory is a fixed number of bytes per request (98; 80 for a run whose requests stay under
15,000 tokens), whatever the number of tokens. Lifecycle::

    PENDING --arrive--> WAITING --admit--> RUNNING --finish--> FINISHED
       |                  ^  |                |
       +--reject--> REJECTED |             preempt (recompute) -> WAITING
                             +-- swap in --  SWAPPED <- preempt (swap)
"""

from __future__ import annotations

import math
from array import array
from enum import IntEnum
from typing import Any

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


#: array type codes by width, narrowest first (``b`` 1 byte, ``h`` 2, ``i`` 4, ``q`` 8)
_INT_CODES = ("b", "h", "i", "q")


def narrowest_code(lo: int, hi: int, widest: str = "q") -> str:
    """The narrowest signed ``array`` type code holding every value in ``[lo, hi]`` (at most
    ``widest``; the widest is returned when none fits -- its writes then raise)."""
    for code in _INT_CODES:
        info = np.iinfo(np.dtype(code))
        if info.min <= lo and hi <= info.max or code == widest:
            return code
    return widest


def _ints(values: np.ndarray | None, n: int, fill: int = 0, code: str = "q") -> array:
    """A flat int column of type ``code`` (``array`` type code: ``b`` 1 byte, ``h`` 2, ``i`` 4,
    ``q`` 8); values that do not fit raise ``OverflowError`` (never wrap). Copied straight
    into the column (no intermediate copy)."""
    out = array(code, [fill]) * n
    if values is None:
        return out
    values = np.asarray(values)
    dtype = np.dtype(code)
    if len(values) and (values.min() < np.iinfo(dtype).min or values.max() > np.iinfo(dtype).max):
        raise OverflowError(f"a per-request value out of the {dtype} range")
    if n:
        np.frombuffer(out, dtype=dtype)[:] = values
    return out


def _floats(values: np.ndarray | None, n: int, fill: float = math.nan) -> array:
    out = array("d", [fill]) * n
    if values is not None and n:
        np.frombuffer(out, dtype=np.float64)[:] = values
    return out


def return_freed_memory() -> None:
    """Hand memory freed by the C allocator back to the operating system (glibc's
    ``malloc_trim``; a no-op elsewhere): the workload's full-length arrays freed while a table
    is built, and the engine columns freed after a run, would otherwise stay resident in the
    heap's holes until the process ends."""
    global _TRIM
    if _TRIM is None:
        _TRIM = False
        try:
            import ctypes
            import ctypes.util

            name = ctypes.util.find_library("c")
            libc = ctypes.CDLL(name) if name else None
            _TRIM = getattr(libc, "malloc_trim", False) if libc is not None else False
        except (OSError, AttributeError):  # not glibc
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


class RequestTable:
    """Preallocated per-request columns (SI units; NaN = not happened).

    Columns are flat typed buffers (``array.array``: fast scalar access from the event
    handlers), each as narrow as its values allow -- 8-byte times, 4-byte token counts (a
    request holds at most 2**31 - 1 tokens: ``workload.traces.MAX_TRACE_TOKENS``), 1-byte
    status and reject reason: 98 bytes per request in all (``nbytes``); :meth:`column` gives
    a zero-copy numpy view for vectorised reporting.

    Narrower when the run's bounds are known (:meth:`from_setup`, what the simulator uses):
    ``token_bound`` (an upper bound on any request's tokens; the token, KV-block and cached
    columns get the narrowest code holding ``2 x token_bound + 1024``, the slack covering
    lookahead and block rounding), ``replicas`` (the replica column) and the priorities'
    own range: 80 bytes per request for a trace whose requests stay under 15,000 tokens
    (2-byte counts) on fewer than 128 replicas, 54 after the run.
    """

    FLOAT_COLUMNS = ("arrival_s", "first_scheduled_s", "first_token_s", "finish_s",
                     "last_token_s", "itl_max_s")
    INT_COLUMNS = ("input_tokens", "output_tokens", "priority", "status", "reject_reason",
                   "preemptions", "cached_tokens", "replica", "generated", "computed",
                   "join_tick", "stint", "blocks")
    #: array type code of each int column (the rest: ``i``, 4 bytes); ticks can pass 2**31
    INT_CODES = {"status": "b", "reject_reason": "b", "join_tick": "q"}
    #: columns whose values are token counts (or fewer: KV blocks), narrowed by ``token_bound``
    TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cached_tokens", "generated", "computed",
                     "blocks")

    def __init__(self, input_tokens: np.ndarray, output_tokens: np.ndarray,
                 arrival_s: np.ndarray, priority: np.ndarray | None = None, *,
                 token_bound: int | None = None, replicas: int | None = None,
                 reject_reason: np.ndarray | None = None):
        self._codes(len(input_tokens), token_bound, replicas, priority)
        self.input_tokens = self._int("input_tokens", input_tokens)
        self.output_tokens = self._int("output_tokens", output_tokens)
        self.arrival_s = _floats(arrival_s, self.n)  # a copy: closed loops rewrite send times
        self.priority = self._int("priority", priority)
        self._allocate_rest(reject_reason)

    @classmethod
    def from_setup(cls, setup: Any, replicas: int = 1) -> RequestTable:
        """The table of a run, built from a ``ServingSetup`` (its ``workload``,
        ``output_tokens`` -- the tokens each request emits --, ``beam`` and
        ``reject_reasons()``) with the narrowest columns its bounds allow. The workload's
        token counts, send times and priorities are moved in: the workload's arrays become
        views of the table's columns (as does ``setup.output_tokens`` when it is the
        workload's), each original freed as soon as it is copied, so that the run never
        holds two full copies (memory: issue 9)."""
        wl = setup.workload
        if getattr(wl, "moved_into_table", False):
            raise RuntimeError("this ServingSetup has run: its workload moved into that run's "
                               "request table; build a new ServingSetup for another run")
        n = len(wl)
        reasons = np.asarray(setup.reject_reasons(), dtype=np.int8)
        bound = 0
        if n:
            longest_out = max(int(np.max(setup.output_tokens)), int(wl.output_tokens.max()))
            bound = int(wl.input_tokens.max()) + max(int(getattr(setup, "beam", 1)), 1) * (
                longest_out)
        t = cls.__new__(cls)
        t._codes(n, bound, replicas, wl.priority)
        t.input_tokens = t._int("input_tokens", wl.input_tokens)
        wl.input_tokens = t.column("input_tokens")
        same = setup.output_tokens is wl.output_tokens
        t.output_tokens = t._int("output_tokens", wl.output_tokens)
        wl.output_tokens = t.column("output_tokens")
        if same:
            setup.output_tokens = wl.output_tokens
        t.arrival_s = _floats(wl.arrival_s, n)  # a copy: closed loops rewrite send times
        wl.arrival_s = t.column("arrival_s")
        t.priority = t._int("priority", wl.priority)
        if wl.priority is not None:
            wl.priority = t.column("priority")
        t._allocate_rest(reasons)
        del reasons
        wl.moved_into_table = True
        return_freed_memory()
        return t

    def _codes(self, n: int, token_bound: int | None, replicas: int | None,
               priority: np.ndarray | None) -> None:
        self.n = n
        codes = dict.fromkeys(self.INT_COLUMNS, "i")
        codes.update(self.INT_CODES)
        if token_bound is not None:
            code = narrowest_code(0, 2 * int(token_bound) + 1024, "i")
            codes.update(dict.fromkeys(self.TOKEN_COLUMNS, code))
        if replicas is not None:
            codes["replica"] = narrowest_code(-1, int(replicas) - 1, "i")
        if token_bound is not None:  # priorities: their own range
            lo, hi = ((int(np.min(priority)), int(np.max(priority)))
                      if priority is not None and len(priority) else (0, 0))
            codes["priority"] = narrowest_code(lo, hi, "i")
        self.codes = codes

    def _int(self, name: str, values: np.ndarray | None = None, fill: int = 0) -> array:
        return _ints(values, self.n, fill, code=self.codes[name])

    def _allocate_rest(self, reject_reason: np.ndarray | None) -> None:
        n, i = self.n, self._int
        self.status = i("status")
        self.reject_reason = i("reject_reason", reject_reason)
        self.first_scheduled_s = _floats(None, n)
        self.first_token_s = _floats(None, n)
        self.finish_s = _floats(None, n)
        self.last_token_s = _floats(None, n)
        self.itl_max_s = _floats(None, n, 0.0)
        self.preemptions = i("preemptions")
        self.cached_tokens = i("cached_tokens")
        self.replica = i("replica", fill=-1)
        # engine state (read per join/leave, never per token)
        self.generated = i("generated")  # output tokens so far
        self.computed = i("computed")  # tokens with KV cached
        self.join_tick = i("join_tick")  # decode tick at join
        self.stint = i("stint")  # +1 per join (heap validity)
        self.blocks = i("blocks")  # KV blocks held

    #: columns only the running engine reads (freed by :meth:`release_engine_state`)
    ENGINE_COLUMNS = ("last_token_s", "generated", "computed", "join_tick", "stint", "blocks")

    def release_engine_state(self) -> None:
        """Free the engine-only columns once the run is over (32 of the 98 bytes per request,
        26 of the 80 of a narrow table): the report reads the others."""
        for name in self.ENGINE_COLUMNS:
            setattr(self, name, array(getattr(self, name).typecode))
        return_freed_memory()

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
