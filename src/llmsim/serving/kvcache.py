"""Paged KV cache of one replica: fixed-size blocks, admission, prefix caching, host swap space.

Capacity: ``total_blocks = max_kv_tokens // block_size`` where ``max_kv_tokens`` comes from the
memory analysis (``llmsim.memory.analyze_memory``: usable memory minus weights and the
activation peak of a ``max_num_batched_tokens`` forward pass, divided by the KV bytes per token
per device). Every device of a replica holds its shard of every token, so the per-device token
capacity is the replica's.

A block is in one of three states: free, in use (referenced by at least one request), or cached
(prefix caching only: content still valid, reference count 0, evictable in LRU order; vLLM's
"free block queue" with cached hashes). ``total = free + used + cached`` always holds.

Prefix caching (vLLM automatic prefix caching): a full prompt block has a key identifying its
content *and everything before it* (Mooncake's ``hash_ids`` are such prefix hashes); a new
request reuses the leading blocks whose keys are present (in use by another request or cached)
and computes only the rest. Usage reported as ``used / total`` (vLLM's ``gpu_cache_usage``).
"""

from __future__ import annotations

from collections import OrderedDict


class KVCache:
    __slots__ = ("total", "block_size", "free", "used", "prefix_caching", "_refs", "_lru",
                 "host_total", "host_used", "evictions", "peak_used")

    def __init__(self, total_blocks: int, block_size: int, prefix_caching: bool = False,
                 host_blocks: int = 0):
        self.total = int(total_blocks)
        self.block_size = int(block_size)
        self.free = self.total
        self.used = 0
        self.peak_used = 0
        self.prefix_caching = prefix_caching
        self._refs: dict[int, int] = {}
        self._lru: OrderedDict[int, None] = OrderedDict()
        self.host_total = int(host_blocks)
        self.host_used = 0
        self.evictions = 0

    # ------------------------------------------------------------------ plain blocks
    @property
    def available(self) -> int:
        """Blocks that an allocation may take: free plus evictable cached blocks."""
        return self.free + len(self._lru)

    @property
    def cached(self) -> int:
        return len(self._lru)

    def usage_frac(self) -> float:
        return self.used / self.total if self.total else 0.0

    def can_allocate(self, n: int, reserve: int = 0) -> bool:
        return n + reserve <= self.free + len(self._lru)

    def allocate(self, n: int) -> None:
        """Take ``n`` blocks (free first, then evict least-recently-used cached blocks)."""
        if n <= 0:
            return
        free = self.free
        if n <= free:
            self.free = free - n
        else:
            evict = n - free
            if evict > len(self._lru):
                raise RuntimeError(f"KV cache over-allocated: need {n}, have {self.available}")
            self.free = 0
            lru, refs = self._lru, self._refs
            for _ in range(evict):
                key, _ = lru.popitem(last=False)
                del refs[key]
            self.evictions += evict
        used = self.used + n
        self.used = used
        if used > self.peak_used:
            self.peak_used = used

    def release(self, n: int) -> None:
        """Return ``n`` private (un-keyed) blocks to the free pool."""
        if n <= 0:
            return
        self.used -= n
        self.free += n

    # ------------------------------------------------------------------ prefix caching
    def match(self, keys: list[int]) -> int:
        """How many leading ``keys`` are present (in use or cached)."""
        refs = self._refs
        n = 0
        for k in keys:
            if k not in refs:
                break
            n += 1
        return n

    def blocks_to_acquire(self, keys: list[int]) -> int:
        """Blocks that :meth:`acquire` of ``keys`` would take from the available pool: missing
        keys plus cached hits (a cached block leaves the evictable pool when pinned)."""
        refs = self._refs
        return sum(1 for k in keys if refs.get(k, 0) == 0)

    def acquire(self, keys: list[int]) -> int:
        """Reference the blocks of ``keys``, allocating the missing ones (the caller checked
        :meth:`blocks_to_acquire`). Returns how many were already present."""
        refs, lru = self._refs, self._lru
        hits = 0
        missing: list[int] = []
        for k in keys:  # pin hits first so the allocation below cannot evict them
            r = refs.get(k)
            if r is None:
                missing.append(k)
                continue
            hits += 1
            if r == 0:
                del lru[k]
                self.used += 1
            refs[k] = r + 1
        if missing:
            self.allocate(len(missing))
            for k in missing:
                refs[k] = 1
        if self.used > self.peak_used:
            self.peak_used = self.used
        return hits

    def release_keys(self, keys: list[int]) -> None:
        """Drop one reference from each key; unreferenced blocks stay cached (evictable)."""
        refs, lru = self._refs, self._lru
        for k in keys:
            r = refs[k] - 1
            refs[k] = r
            if r == 0:
                lru[k] = None
                self.used -= 1

    def check(self) -> None:
        """Invariant (tests): every block is free, used or cached; nothing above capacity."""
        assert self.free >= 0 and self.used >= 0, (self.free, self.used)
        assert self.free + self.used + len(self._lru) == self.total, (
            self.free, self.used, len(self._lru), self.total)
        assert 0 <= self.host_used <= self.host_total
