"""Routers: which data-parallel replica gets an arriving request (one registry).

- ``round-robin``: replicas in turn;
- ``least-outstanding``: fewest requests queued + running + swapped (ties: lowest index);
- ``least-kv``: lowest KV-cache usage (used blocks / capacity; ties: fewest outstanding);
- ``random``: uniformly at random (seeded).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmsim.registry import Registry

ROUTERS: Registry[Any] = Registry("router")


@ROUTERS.register("round-robin", "rr", "roundrobin")
class RoundRobin:
    def __init__(self, rng: np.random.Generator):
        self._next = 0

    def route(self, rid: int, replicas: list[Any]) -> int:
        i = self._next
        self._next = (i + 1) % len(replicas)
        return i


@ROUTERS.register("least-outstanding", "least-requests", "lor", "least-loaded")
class LeastOutstanding:
    def __init__(self, rng: np.random.Generator):
        pass

    def route(self, rid: int, replicas: list[Any]) -> int:
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

    def route(self, rid: int, replicas: list[Any]) -> int:
        return min(range(len(replicas)),
                   key=lambda i: (replicas[i].kv.used, replicas[i].outstanding, i))


@ROUTERS.register("random")
class Random:
    def __init__(self, rng: np.random.Generator):
        self._rng = rng

    def route(self, rid: int, replicas: list[Any]) -> int:
        return int(self._rng.integers(len(replicas)))
