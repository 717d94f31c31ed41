"""The shared cache/prefetch engine: policies on hand-made sequences, prefetch accuracy, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.errors import ConfigError, UnknownNameError
from llmsim.expert_cache import CACHE_POLICIES, ExpertCacheEngine, MissMode, OffloadConfig
from llmsim.expert_cache.cache import STAGING


def engine(policy: str, capacity: int = 2, experts: int = 4, prefetch: int = 0,
           miss: MissMode = MissMode.FETCH, prior=None, accuracy: float = 0.8,
           layers: tuple[int, ...] = (0,), seed: int = 0) -> ExpertCacheEngine:
    cfg = OffloadConfig(capacity=capacity, policy=policy, prefetch=prefetch,
                        prefetch_accuracy=accuracy, miss=miss, seed=seed)
    if prior is None:
        prior = np.tile(np.arange(experts, 0, -1, dtype=float), (len(layers), 1))
    return ExpertCacheEngine(cfg, experts, layers, max(layers) + 1, np.asarray(prior))


def run(eng: ExpertCacheEngine, sequence: list[int]) -> list[bool]:
    """Decode one top-1 token per step through layer 0; return hit per step."""
    out = []
    for s, e in enumerate(sequence, start=1):
        eng.begin_step(s)
        plan = eng.access(0, [e], [1])
        out.append(bool(plan.hits))
    return out


def test_registry_names():
    assert {"lru", "lfu", "static"} <= set(CACHE_POLICIES.names())
    assert "static-hottest" in CACHE_POLICIES
    with pytest.raises(UnknownNameError, match="Did you mean"):
        OffloadConfig(policy="lruu")


def test_initial_fill_is_the_hottest():
    eng = engine("lru", capacity=2, prior=[[1.0, 9.0, 5.0, 0.0]])
    assert sorted(eng.slots(0)) == [1, 2]


def test_lru_evicts_least_recent():
    eng = engine("lru")  # starts with {0, 1}
    assert run(eng, [2, 0, 2, 1]) == [False, False, True, False]
    # 2 evicts 0 (tie on age -> lower id), 0 evicts 1, 2 hits, 1 evicts 0 (older than 2)
    assert sorted(eng.slots(0)) == [1, 2]


def test_lfu_keeps_the_frequent_expert_lru_does_not():
    seq = [0, 0, 0, 2, 3, 2]
    lfu, lru = engine("lfu"), engine("lru")
    assert run(lfu, seq) == [True, True, True, False, False, False]
    assert sorted(lfu.slots(0)) == [0, 2]  # 0 (used 3x) survives
    run(lru, seq)
    assert 0 not in lru.slots(0)


def test_static_never_changes_and_cpu_misses_do_not_admit():
    for policy, miss in (("static", MissMode.FETCH), ("lru", MissMode.CPU)):
        eng = engine(policy, miss=miss)
        hits = run(eng, [2, 3, 2, 0, 1, 3])
        assert hits == [False, False, False, True, True, False]
        assert sorted(eng.slots(0)) == [0, 1]
    eng = engine("static")
    eng.begin_step(1)
    plan = eng.access(0, [2], [1])
    assert plan.loads[0].slot == STAGING  # fetched into a staging buffer, not cached


def test_capacity_zero_and_full():
    none = engine("lru", capacity=0)
    assert run(none, [0, 1, 2, 3]) == [False] * 4
    full = engine("lru", capacity=4)
    assert run(full, [0, 1, 2, 3, 2]) == [True] * 5
    with pytest.raises(ConfigError, match="exceeds"):
        engine("lru", capacity=5)


def test_prefill_wider_than_the_cache_streams_through_it():
    eng = engine("lru", capacity=2, experts=8)
    eng.begin_step(0)
    plan = eng.access(0, list(range(8)), [3] * 8)
    assert plan.hits == (0, 1) and len(plan.misses) == 6
    assert [ld.expert for ld in plan.loads] == list(range(2, 8))
    assert sorted(eng.slots(0)) == [6, 7]  # the last two misses stay
    assert eng.stats["prefill"].hit_rate == pytest.approx(0.25)
    assert eng.stats["prefill"].token_hit_rate == pytest.approx(0.25)


@pytest.mark.parametrize("accuracy", [0.0, 0.3, 0.8, 1.0])
def test_prefetch_accuracy_is_honoured(accuracy):
    rng = np.random.default_rng(0)
    eng = engine("lru", capacity=4, experts=16, prefetch=2, accuracy=accuracy, layers=(0, 1))
    for s in range(1, 1501):
        eng.begin_step(s)
        used = np.sort(rng.choice(16, 2, replace=False))
        eng.prefetch(1, used)
        eng.access(1, used, [1, 1])
    acc = eng.stats["decode"].prefetch_accuracy
    assert acc == pytest.approx(accuracy, abs=0.03)
    assert eng.stats["decode"].prefetch_guesses == 3000


def test_prefetch_turns_misses_into_hits_and_pins():
    eng = engine("lru", capacity=2, experts=8, prefetch=2, accuracy=1.0, layers=(0, 1))
    eng.begin_step(1)
    pf = eng.prefetch(1, [5, 6])
    assert pf.guesses == (5, 6) and pf.correct == 2
    assert {ld.expert for ld in pf.loads} == {5, 6}
    plan = eng.access(1, [5, 6], [1, 1])
    assert plan.hits == (5, 6) and plan.prefetched == (5, 6) and not plan.misses
    # static: prefetched experts are staged, used as hits, then dropped
    st = engine("static", capacity=2, experts=8, prefetch=2, accuracy=1.0, layers=(0, 1))
    st.begin_step(1)
    pf = st.prefetch(1, [5, 6])
    assert all(ld.slot == STAGING for ld in pf.loads)
    assert st.access(1, [5, 6], [1, 1]).hits == (5, 6)
    assert sorted(st.slots(1)) == [0, 1]
    assert st.resident(1) == {0, 1}


def test_prefetch_schedule_skips_first_layer():
    eng = engine("lru", capacity=2, experts=8, prefetch=2, layers=(0, 1, 2))
    assert [eng.prefetch_target(i) for i in range(3)] == [1, 2, None]
    off = engine("lru", capacity=2, experts=8, prefetch=0, layers=(0, 1, 2))
    assert off.prefetch_target(0) is None


def test_same_seed_same_guesses_and_reset():
    a = engine("lfu", capacity=2, experts=8, prefetch=3, layers=(0, 1), seed=5)
    b = engine("lfu", capacity=2, experts=8, prefetch=3, layers=(0, 1), seed=5)
    ga = [a.prefetch(1, [1, 2, 3]).guesses for _ in range(20)]
    gb = [b.prefetch(1, [1, 2, 3]).guesses for _ in range(20)]
    assert ga == gb
    a.reset()
    assert [a.prefetch(1, [1, 2, 3]).guesses for _ in range(20)] == ga
