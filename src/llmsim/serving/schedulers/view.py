"""What a scheduler (and the router) may read and call on a replica: the ``ReplicaView``.

A scheduler decides through this surface only (principle 7): it reads the replica's queues and
decode aggregates and changes the replica only through the decision helpers, each of which
either does what it says and reports it, or changes nothing. The replica
(:class:`llmsim.serving.replica.Replica`) satisfies the protocol structurally; nothing here
runs on the hot path (a ``Protocol`` is a type, not an indirection: the scheduler still reads
the replica's plain attributes).

Read-only members are declared as properties so that the replica may implement them as plain
attributes (covariant, e.g. a ``dict`` for a ``Collection``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol, runtime_checkable


class WaitingQueue(Protocol):
    """A replica's waiting queue (FCFS or by priority): ``peek`` / ``pop`` take the head."""

    def __len__(self) -> int: ...

    def peek(self) -> int: ...

    def push(self, rid: int) -> None: ...

    def push_front(self, rid: int) -> None: ...

    def pop(self) -> int: ...


@runtime_checkable
class ReplicaView(Protocol):
    """A replica as its scheduler and the router see it (see the module docstring).

    Token counts are per request (``rid``: its row of the ``RequestTable``); blocks are KV
    blocks of the replica's paged cache; ``now`` is the simulated time in seconds."""

    # ------------------------------------------------------------------ queues and aggregates
    @property
    def waiting(self) -> WaitingQueue:
        """Requests queued (new, or preempted by recompute), in the replica's order."""

    @property
    def running(self) -> Collection[int]:
        """Requests holding KV blocks (prefilling or decoding), in admission order."""

    @property
    def prefilling(self) -> Collection[int]:
        """Running requests whose prompt is not complete yet, in admission order."""

    @property
    def swapped(self) -> Sequence[int]:
        """Requests preempted by swap (KV in host memory), oldest first."""

    @property
    def n_dec(self) -> int:
        """Sequences in the decoding set (with static batching's finished padding)."""

    @property
    def num_running(self) -> int:
        """``len(running)``."""

    # ------------------------------------------------------------------ per-request reads
    def arrival_s(self, rid: int) -> float:
        """When the request arrived (was sent)."""

    def known_tokens(self, rid: int) -> int:
        """Prompt plus the output tokens generated so far."""

    def remaining_prompt(self, rid: int) -> int:
        """Known tokens whose KV is not computed yet (the rest of a prompt / recompute)."""

    def decode_blocks_after_prompt(self, rid: int) -> int:
        """Blocks the request will still need after its prompt (static-batch reservation)."""

    # ------------------------------------------------------------------ decision helpers
    def try_admit(self, rid: int, now: float, budget: int, reserve: int, whole: bool,
                  over_budget_ok: bool = False) -> int:
        """Admit the head of ``waiting`` with a prompt chunk of at most ``budget`` tokens
        (the whole remaining prompt if ``whole``; over the budget if ``over_budget_ok``),
        keeping ``reserve`` blocks free; the tokens scheduled, or 0 (nothing changed)."""

    def try_extend(self, rid: int, chunk: int) -> bool:
        """Allocate the blocks of a prefilling request's next ``chunk`` prompt tokens; False
        (nothing changed) if they do not fit."""

    def try_swap_in(self, rid: int, reserve: int) -> int:
        """Bring the head of ``swapped`` back, keeping ``reserve`` blocks free; the tokens
        moved host -> device, or -1 (nothing changed)."""

    def reserve_decode_step(self) -> bool:
        """Allocate the blocks every decoder needs for one more step; False (nothing
        changed) if they do not fit."""

    def pick_victim(self) -> int | None:
        """The running request to preempt first (None if nothing runs)."""

    def preempt(self, rid: int, now: float) -> int:
        """Preempt a running request (swap if enabled and host space allows, else
        recompute); the tokens swapped out (0 for recompute)."""

    # ------------------------------------------------------------------ read by the router
    @property
    def outstanding(self) -> int:
        """Requests queued, running or swapped out now."""

    @property
    def kv_used_blocks(self) -> int:
        """KV blocks in use (as of the last commit)."""
