"""Scheduler protocol, the frozen step plan, waiting-queue orders and the registry.

A scheduler *decides* (principle 7): each time its replica is free it picks what the next step
does -- which waiting requests to admit, how many prompt tokens each prefilling request gets,
whether the decoding requests advance, which requests to preempt -- through the replica's
decision helpers (``try_admit``, ``reserve_decode_step``, ``preempt``...: the
:class:`~.view.ReplicaView`), and returns a frozen :class:`StepPlan`. It never computes time:
the replica prices the plan with the ``StepTimeModel``.

Class attributes describe the policy to the rest of the simulator: whether arrivals may join a
running batch, finished sequences hold their slot, prompts may be chunked, a dynamic-batching
window applies, and whether admission keeps a KV watermark free (``uses_watermark``: the setup
then sizes ``SchedulerLimits.watermark_blocks = watermark_frac x blocks``, vLLM v0's
``watermark``; 0 otherwise).
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, NamedTuple, Protocol

from llmsim.registry import Registry
from llmsim.serving.request import RequestTable
from llmsim.serving.schedulers.view import ReplicaView


class Order(str, Enum):
    """Queue order: first come first served, or by request priority (lower value first,
    then arrival)."""

    FCFS = "fcfs"
    PRIORITY = "priority"


class StepPlan(NamedTuple):
    """What one step does (immutable). ``prefill``: (request id, prompt tokens this step)
    chunks; ``decode``: every decoding request adds one token; ``repeatable``: a pure decode
    step the replica may repeat until the batch changes (closed-form run); ``wake_at_s``:
    nothing to run now, ask again at that time (dynamic batching's window)."""

    prefill: tuple[tuple[int, int], ...] = ()
    decode: bool = False
    repeatable: bool = False
    preempted: tuple[int, ...] = ()
    swap_in_tokens: int = 0
    swap_out_tokens: int = 0
    wake_at_s: float | None = None

    @property
    def empty(self) -> bool:
        return not self.prefill and not self.decode


IDLE = StepPlan()
DECODE_RUN = StepPlan(decode=True, repeatable=True)


@dataclass(frozen=True, slots=True)
class SchedulerLimits:
    """The limits a scheduler plans under: sequences and new tokens per step, KV blocks kept
    free at admission (``watermark_blocks``, schedulers with ``uses_watermark``), the
    dynamic-batching window (``batch_window_s``, schedulers with ``uses_batch_window``), the
    largest prompt chunk (``chunk_size_tokens``, 0: the token budget; ``prefill-first``) and
    whether decodes run inside prefill steps (``mix_decodes``; ``prefill-first``)."""

    max_num_seqs: int
    max_num_batched_tokens: int
    watermark_blocks: int = 0
    batch_window_s: float = 0.0
    chunk_size_tokens: int = 0
    mix_decodes: bool = True


class Scheduler(Protocol):
    """``schedule(replica, now_s) -> StepPlan``; class attributes describe the policy."""

    admits_mid_batch: ClassVar[bool]  # arrivals may join a running batch (iteration-level)
    hold_finished: ClassVar[bool]  # finished sequences keep their batch slot until it ends
    chunks_prompts: ClassVar[bool]  # prompts may be split over steps (else whole prompts)
    uses_batch_window: ClassVar[bool]  # waits up to ``batch_window_s`` (dynamic batching)
    uses_watermark: ClassVar[bool]  # admission keeps ``watermark_blocks`` free (vLLM v0)

    def __init__(self, limits: SchedulerLimits) -> None: ...

    def schedule(self, replica: ReplicaView, now_s: float) -> StepPlan: ...


SCHEDULERS: Registry[type[Scheduler]] = Registry("scheduler")


class SchedulerBase:
    """What the built-in schedulers share: the policy flags of :class:`Scheduler` (each
    subclass sets the first three; the others default to off) and the limits they schedule
    under."""

    admits_mid_batch: ClassVar[bool]
    hold_finished: ClassVar[bool]
    chunks_prompts: ClassVar[bool]
    uses_batch_window: ClassVar[bool] = False
    uses_watermark: ClassVar[bool] = False

    def __init__(self, limits: SchedulerLimits):
        self.limits = limits


class FCFSQueue(deque):
    """Waiting queue in arrival order; preempted requests go back to the front (vLLM).

    A ``deque`` (``len`` and truth tests run in C: the schedulers test the queue every step);
    ``pop`` takes the *head*."""

    __slots__ = ()

    def __init__(self, table: RequestTable | None = None):
        super().__init__()

    push = deque.append
    push_front = deque.appendleft
    pop = deque.popleft  # type: ignore[assignment]

    def peek(self) -> int:
        return self[0]


class PriorityQueue(list):
    """Waiting queue by (priority, arrival time, id): lower priority value is served first.
    A heap in a ``list`` (``len`` and truth tests run in C)."""

    __slots__ = ("_table",)

    def __init__(self, table: RequestTable):
        super().__init__()
        self._table = table

    def _key(self, rid: int) -> tuple[int, float, int]:
        return (int(self._table.priority[rid]), float(self._table.arrival_s[rid]), rid)

    def push(self, rid: int) -> None:
        heapq.heappush(self, self._key(rid))

    push_front = push

    def peek(self) -> int:
        return self[0][2]

    def pop(self) -> int:  # type: ignore[override]
        return heapq.heappop(self)[2]


def make_queue(order: Order, table: RequestTable) -> FCFSQueue | PriorityQueue:
    return PriorityQueue(table) if order == Order.PRIORITY else FCFSQueue(table)


def swap_in_all(replica: ReplicaView, limits: SchedulerLimits) -> int:
    """Swap preempted requests back in (FCFS) while blocks and sequence slots allow; returns
    the tokens moved host -> device."""
    tokens = 0
    while replica.swapped and replica.num_running < limits.max_num_seqs:
        moved = replica.try_swap_in(replica.swapped[0], limits.watermark_blocks)
        if moved < 0:
            break
        tokens += moved
    return tokens


def reserve_decode(replica: ReplicaView, now_s: float, preempted: list[int]) -> int:
    """Make room for one more decode step of every decoding request, preempting victims
    (lowest priority / latest admitted first) until it fits; returns swapped-out tokens."""
    swapped = 0
    while not replica.reserve_decode_step():
        victim = replica.pick_victim()
        if victim is None:
            raise RuntimeError("no preemption victim but the decode step does not fit")
        swapped += replica.preempt(victim, now_s)
        preempted.append(victim)
    return swapped
