"""``ReplicaConfig``: the fixed settings of one replica, resolved once by the simulation.

Frozen: nothing in it changes during a run. The replica copies each field into a plain
attribute when it is built, so the step loop reads ``self.closed_form``, never
``self.config.closed_form`` (no indirection on the hot path).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.serving.schedulers.base import Order, SchedulerLimits


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """One replica's settings.

    ``index``: the replica's number (0-based; the request table's ``replica`` column);
    ``limits``: what its scheduler plans under; ``order``: of its waiting queue (also which
    request a preemption picks); ``swap_enabled``: preempt by swapping KV to host memory while
    host space allows (else recompute); ``reserve_full_kv``: admission reserves each request's
    whole KV, prompt + output (``preemption: none``, :mod:`.admission`); ``closed_form``:
    advance runs of decode steps in closed form (False prices every step one by one: the
    reference the tests compare with);
    ``multi_phase``: a closed-form run may cross finishes (off with closed-loop clients, whose
    finishes send the next request; implies nothing without ``closed_form``);
    ``trace_limit``: the most chrome-trace rows kept (all replicas together); ``beam``: beams
    per request (beam search: each decoding request is ``beam`` sequences sharing its prompt's
    KV blocks, each with blocks of its own for the tokens it generates)."""

    index: int
    limits: SchedulerLimits
    order: Order = Order.FCFS
    swap_enabled: bool = False
    reserve_full_kv: bool = False
    closed_form: bool = True
    multi_phase: bool = True
    trace_limit: int = 200_000
    beam: int = 1
