"""Paged KV cache: allocation, prefix caching (hits, pinning, LRU eviction), invariants."""

from __future__ import annotations

import pytest

from llmsim.serving.kvcache import KVCache


def test_plain_allocation():
    kv = KVCache(10, 16)
    assert kv.can_allocate(10) and not kv.can_allocate(11)
    assert not kv.can_allocate(9, reserve=2)
    kv.allocate(7)
    assert (kv.used, kv.free, kv.usage_frac()) == (7, 3, 0.7)
    kv.release(7)
    kv.check()
    with pytest.raises(RuntimeError):
        kv.allocate(11)


def test_prefix_hits_pin_and_evict_lru():
    kv = KVCache(4, 16, prefix_caching=True)
    assert kv.acquire([1, 2]) == 0
    assert kv.match([1, 2, 3]) == 2
    assert kv.acquire([1, 2, 3]) == 2  # two shared, one new
    assert kv.used == 3
    kv.release_keys([1, 2])
    kv.release_keys([1, 2, 3])
    assert kv.used == 0 and kv.cached == 3 and kv.available == 4
    kv.check()
    # blocks_to_acquire counts cached hits (they leave the evictable pool) and misses
    assert kv.blocks_to_acquire([1, 9]) == 2
    kv.allocate(2)  # free block + evicts the least recently released key (1)
    assert kv.match([1]) == 0 and kv.match([2]) == 1 and kv.evictions == 1
    kv.check()


def test_acquire_never_evicts_its_own_hits():
    kv = KVCache(2, 16, prefix_caching=True)
    kv.acquire([5])
    kv.release_keys([5])
    kv.allocate(1)  # only cached block 5 and nothing free remain
    assert kv.free == 0 and kv.cached == 1
    assert kv.acquire([5]) == 1  # a hit: pinned, not evicted
    assert kv.used == 2
    kv.check()
