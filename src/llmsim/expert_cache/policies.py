"""Replacement policies of the per-layer GPU expert cache (a registry; one class each).

A policy keeps per-expert bookkeeping for one MoE layer and picks the victim when an expert must
be admitted into a full cache. Ties break deterministically (older, then lower expert id).

- ``lru``: evict the expert used (or admitted) longest ago.
- ``lfu``: evict the expert used least often over the whole run (perfect LFU: counts survive
  eviction), then the least recent.
- ``static`` (``static-hottest``): the cache holds the ``C`` experts hottest in a profile (the
  routing distribution's popularity, or the counts of a routing trace) and never changes;
  misses are computed from a staging buffer (fetch) or on the CPU, and prefetched experts live
  in staging buffers until their layer runs. This is the placement Fiddler-style hybrid engines
  use; LRU-with-prefetch is the Mixtral-offloading scheme (Eliseev & Mazur, 2023).

Add a policy: one class with ``admits``, ``on_use``, ``on_admit`` and ``victim``, decorated
``@CACHE_POLICIES.register("name")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from llmsim.registry import Registry

CACHE_POLICIES: Registry = Registry("cache policy")


class CachePolicy:
    """Bookkeeping of one layer's cache. ``admits``: whether misses/prefetches enter it."""

    admits: ClassVar[bool] = True

    def __init__(self, num_experts: int):
        self.num_experts = num_experts
        self.last_use = np.full(num_experts, -1, dtype=np.int64)
        self.uses = np.zeros(num_experts, dtype=np.int64)

    def on_use(self, expert: int, clock: int) -> None:
        """The layer computed with ``expert`` (hit or miss) at time ``clock``."""
        self.last_use[expert] = clock
        self.uses[expert] += 1

    def on_admit(self, expert: int, clock: int) -> None:
        """``expert`` entered the cache (fetched or prefetched) at ``clock``."""
        self.last_use[expert] = clock

    def victim(self, candidates: Sequence[int]) -> int:
        """The resident expert to evict, among ``candidates`` (non-empty)."""
        raise NotImplementedError


@CACHE_POLICIES.register("lru")
class LRUPolicy(CachePolicy):
    """Least recently used (admission counts as a use)."""

    def victim(self, candidates: Sequence[int]) -> int:
        return min(candidates, key=lambda e: (self.last_use[e], e))


@CACHE_POLICIES.register("lfu")
class LFUPolicy(CachePolicy):
    """Least frequently used over the run; ties: least recent, then lowest id."""

    def victim(self, candidates: Sequence[int]) -> int:
        return min(candidates, key=lambda e: (self.uses[e], self.last_use[e], e))


@CACHE_POLICIES.register("static", "static-hottest", "hottest")
class StaticPolicy(CachePolicy):
    """The profile's hottest ``C`` experts, pinned for the whole run."""

    admits: ClassVar[bool] = False

    def victim(self, candidates: Sequence[int]) -> int:  # pragma: no cover - never admits
        raise RuntimeError("the static policy never evicts")
