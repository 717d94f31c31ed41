"""Routers: which data-parallel replica gets an arriving request (one registry).

- ``round-robin``: replicas in turn;
- ``least-outstanding``: fewest requests queued + running + swapped (ties: lowest index);
- ``least-kv``: lowest KV-cache usage (blocks in use, every replica having the same capacity;
  ties: fewest outstanding);
- ``random``: uniformly at random (seeded).

A router sees each replica through :class:`~llmsim.serving.schedulers.view.ReplicaView`
(``outstanding``, ``kv_used_blocks``) and returns the index of the chosen one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from llmsim.registry import Registry
from llmsim.serving.schedulers.view import ReplicaView


class Router(Protocol):
    """``route(rid, replicas) -> index``; built with the run's seeded generator."""

    def __init__(self, rng: np.random.Generator) -> None: ...

    def route(self, rid: int, replicas: Sequence[ReplicaView]) -> int: ...


ROUTERS: Registry[type[Router]] = Registry("router")


@ROUTERS.register("round-robin", "rr", "roundrobin")
class RoundRobin:
    def __init__(self, rng: np.random.Generator):
        self._next = 0

    def route(self, rid: int, replicas: Sequence[ReplicaView]) -> int:
        i = self._next
        self._next = (i + 1) % len(replicas)
        return i


@ROUTERS.register("least-outstanding", "least-requests", "lor", "least-loaded")
class LeastOutstanding:
    def __init__(self, rng: np.random.Generator):
        pass

    def route(self, rid: int, replicas: Sequence[ReplicaView]) -> int:
        best, best_load = 0, None
        for i, r in enumerate(replicas):
            load = r.outstanding
            if best_load is None or load < best_load:
                best, best_load = i, load
        return best


@ROUTERS.register("least-kv", "least-kv-usage", "kv")
class LeastKVUsage:
    def __init__(self, rng: np.random.Generator):
        pass

    def route(self, rid: int, replicas: Sequence[ReplicaView]) -> int:
        return min(range(len(replicas)),
                   key=lambda i: (replicas[i].kv_used_blocks, replicas[i].outstanding, i))


@ROUTERS.register("random")
class Random:
    def __init__(self, rng: np.random.Generator):
        self._rng = rng

    def route(self, rid: int, replicas: Sequence[ReplicaView]) -> int:
        return int(self._rng.integers(len(replicas)))
