"""The expert cache and prefetcher: one implementation, driven by the simulator and the executor.

Both call, for every step (the prefill, then each decode token) and every decoder layer ``i`` in
order::

    engine.begin_step(step)
    target = engine.prefetch_target(i)        # MoE layer i+1, or None
    if target is not None: engine.prefetch(target, true_experts_of_target)   # as layer i starts
    ... layer i's attention and router ...
    if layer i is MoE: engine.access(i, experts, tokens_per_expert)

and get back plans naming which experts to copy into which cache slot and which experts hit, so
hit accounting is identical by construction (``tests/executor`` checks it on a shared trace).

Model (per MoE layer, capacity ``C`` slots):

- Start: the ``C`` experts hottest in the prior (routing popularity or trace counts; ties to the
  lower id) fill the slots, for every policy.
- Prefetch for MoE layer ``l`` is issued when decoder layer ``l-1`` starts (it overlaps that
  layer's compute; the first layer gets none). It guesses ``P`` experts: ``c ~ Binomial(P, a)``
  of them drawn without replacement from the experts ``l`` will really use (at most all of them)
  and the rest from the unused ones, so ``E[c] / P = a`` whenever ``l`` uses at least ``P``
  experts. Guesses already resident cost nothing; the others are copied and admitted (the policy
  picks the victim among residents not pinned by this prefetch) or, for a non-admitting policy
  or a cache full of pinned experts, held in a staging buffer until layer ``l`` runs.
- Access: the used experts present (slots or staging) are hits, the rest misses. A hit whose copy
  was issued by this step's prefetch may still be in flight: the timeline turns that into a
  stall. Miss ``fetch``: copy, admit (victim chosen among all residents) or stage, compute on the
  GPU. Miss ``cpu``: compute on the CPU; the cache does not change. Hits are computed before
  misses; misses in ascending expert id.
- ``hit_rate`` = hits / (hits + misses) over (step, layer, used expert) triples; the token-level
  rate weights each expert by the tokens routed to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from llmsim.errors import ConfigError
from llmsim.expert_cache.config import MissMode, OffloadConfig
from llmsim.expert_cache.policies import CACHE_POLICIES, CachePolicy
from llmsim.expert_cache.routing import PREFETCH_STREAM

STAGING = -1  # slot index of an expert held in a staging buffer (not in the cache)


@dataclass(frozen=True)
class Load:
    """One host->device expert copy: into cache ``slot`` (evicting ``evicted``, -1 if the slot
    was free) or into a staging buffer (``slot == STAGING``)."""

    expert: int
    slot: int
    evicted: int = -1


@dataclass(frozen=True)
class PrefetchPlan:
    layer: int
    guesses: tuple[int, ...]
    correct: int
    loads: tuple[Load, ...]


@dataclass(frozen=True)
class AccessPlan:
    """What one MoE layer does in one step. ``experts``/``tokens``: used experts (ascending)
    and the tokens routed to each; ``prefetched``: hits whose copy this step's prefetch issued;
    ``hit_slots``: where each hit sits when the layer starts (cache slot or STAGING);
    ``loads``: the fetch-mode copies of the misses (in order)."""

    layer: int
    experts: tuple[int, ...]
    tokens: tuple[int, ...]
    hits: tuple[int, ...]
    hit_slots: tuple[int, ...]
    prefetched: tuple[int, ...]
    misses: tuple[int, ...]
    loads: tuple[Load, ...]

    def tokens_of(self, expert: int) -> int:
        return self.tokens[self.experts.index(expert)]


@dataclass
class PhaseStats:
    """Counters of one phase (prefill or decode)."""

    hits: int = 0
    misses: int = 0
    token_hits: int = 0
    token_misses: int = 0
    prefetch_guesses: int = 0
    prefetch_correct: int = 0
    prefetch_loads: int = 0
    prefetch_useful: int = 0
    fetch_loads: int = 0

    # rates of an empty phase (no decode step, no prefetch guess) are undefined: NaN
    # (``null`` in JSON, ``n/a`` in tables), never a misleading 0
    @property
    def hit_rate(self) -> float:
        n = self.hits + self.misses
        return self.hits / n if n else math.nan

    @property
    def token_hit_rate(self) -> float:
        n = self.token_hits + self.token_misses
        return self.token_hits / n if n else math.nan

    @property
    def prefetch_accuracy(self) -> float:
        return self.prefetch_correct / self.prefetch_guesses if self.prefetch_guesses else \
            math.nan

    def add(self, other: PhaseStats) -> PhaseStats:
        return PhaseStats(**{k: getattr(self, k) + getattr(other, k)
                             for k in self.__dataclass_fields__})

    def as_dict(self) -> dict[str, float]:
        out: dict[str, float] = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out.update(hit_rate=self.hit_rate, token_hit_rate=self.token_hit_rate,
                   prefetch_accuracy=self.prefetch_accuracy)
        return out


@dataclass
class _LayerState:
    slots: list[int]  # expert per slot, -1 = free
    policy: CachePolicy
    staged: set[int] = field(default_factory=set)  # prefetched into staging, until access
    pinned: set[int] = field(default_factory=set)  # prefetched guesses, until access
    loaded: set[int] = field(default_factory=set)  # copies issued by this step's prefetch

    def resident(self) -> set[int]:
        return {e for e in self.slots if e >= 0}


class ExpertCacheEngine:
    """Per-layer expert caches plus the prefetcher (see the module docstring).

    ``moe_layers``: decoder indices of MoE layers; ``num_layers``: decoder layers in all;
    ``prior_counts[j, e]``: popularity of expert ``e`` in the ``j``-th MoE layer (initial fill
    and the static policy's choice).
    """

    def __init__(self, config: OffloadConfig, num_experts: int, moe_layers: Sequence[int],
                 num_layers: int, prior_counts: np.ndarray):
        config.for_model(num_experts)
        prior = np.asarray(prior_counts, dtype=float)
        if prior.shape != (len(moe_layers), num_experts):
            raise ConfigError(f"prior counts must be [{len(moe_layers)}, {num_experts}], got "
                              f"{list(prior.shape)}")
        self.config = config
        self.num_experts = num_experts
        self.moe_layers = tuple(moe_layers)
        self.num_layers = num_layers
        self.prior = prior
        self._pos = {layer: j for j, layer in enumerate(self.moe_layers)}
        self._policy_cls = CACHE_POLICIES.get(config.policy)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Initial fill, fresh policies, counters and prefetch RNG (same seed, same guesses)."""
        c = self.config.capacity
        self._layers: dict[int, _LayerState] = {}
        for j, layer in enumerate(self.moe_layers):
            order = sorted(range(self.num_experts), key=lambda e, j=j: (-self.prior[j, e], e))
            self._layers[layer] = _LayerState(sorted(order[:c]), self._policy_cls(
                self.num_experts))
        self._rng = np.random.default_rng([self.config.seed, PREFETCH_STREAM])
        self._clock = 0
        self.phase = "prefill"
        self.stats = {"prefill": PhaseStats(), "decode": PhaseStats()}
        self.layer_stats = {layer: PhaseStats() for layer in self.moe_layers}

    def begin_step(self, step: int) -> None:
        """Step 0 is the prefill; later steps are decode tokens."""
        self.phase = "prefill" if step == 0 else "decode"

    @property
    def total(self) -> PhaseStats:
        return self.stats["prefill"].add(self.stats["decode"])

    def slots(self, layer: int) -> tuple[int, ...]:
        """Expert id in each cache slot of ``layer`` (-1: free)."""
        return tuple(self._layers[layer].slots)

    def resident(self, layer: int) -> set[int]:
        """Experts on the GPU for ``layer``: cache slots plus staged prefetches."""
        st = self._layers[layer]
        return st.resident() | st.staged

    def slot_of(self, layer: int, expert: int) -> int:
        """Cache slot holding ``expert``, or STAGING when it sits in a staging buffer."""
        st = self._layers[layer]
        if expert in st.slots:
            return st.slots.index(expert)
        if expert in st.staged:
            return STAGING
        raise KeyError(f"expert {expert} is not on the GPU for layer {layer}")

    def prefetch_target(self, decoder_layer: int) -> int | None:
        """The MoE layer whose prefetch is issued when ``decoder_layer`` starts, if any."""
        nxt = decoder_layer + 1
        if self.config.prefetch > 0 and nxt in self._pos and nxt < self.num_layers:
            return nxt
        return None

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _admit(self, st: _LayerState, expert: int, protect: set[int]) -> Load:
        """Put ``expert`` into a free or evicted slot (policy's victim outside ``protect``),
        or into staging when the policy does not admit or every resident is protected."""
        if not st.policy.admits or not st.slots:
            return Load(expert, STAGING)
        clock = self._tick()
        if -1 in st.slots:
            slot = st.slots.index(-1)
            st.slots[slot] = expert
            st.policy.on_admit(expert, clock)
            return Load(expert, slot)
        candidates = [e for e in st.slots if e not in protect]
        if not candidates:
            return Load(expert, STAGING)
        victim = st.policy.victim(candidates)
        slot = st.slots.index(victim)
        st.slots[slot] = expert
        st.policy.on_admit(expert, clock)
        return Load(expert, slot, victim)

    # ------------------------------------------------------------------ prefetch
    def prefetch(self, layer: int, true_experts: Sequence[int]) -> PrefetchPlan:
        """Guess ``P`` experts for ``layer`` (see the module docstring) and load the missing."""
        st = self._layers[layer]
        p, a = self.config.prefetch, self.config.prefetch_accuracy
        used = np.unique(np.asarray(true_experts, dtype=np.int64))
        unused = np.setdiff1d(np.arange(self.num_experts), used)
        correct = min(int(self._rng.binomial(p, a)), used.size)
        wrong = min(p - correct, unused.size)
        good = self._rng.choice(used, size=correct, replace=False) if correct else []
        bad = self._rng.choice(unused, size=wrong, replace=False) if wrong else []
        guesses = tuple(sorted(int(e) for e in (*good, *bad)))
        stats = self.stats[self.phase]
        stats.prefetch_guesses += len(guesses)
        stats.prefetch_correct += correct
        self.layer_stats[layer].prefetch_guesses += len(guesses)
        self.layer_stats[layer].prefetch_correct += correct
        loads = []
        st.pinned = set(guesses)
        for e in guesses:
            if e in st.slots or e in st.staged:
                continue
            load = self._admit(st, e, protect=st.pinned)
            if load.slot == STAGING:
                st.staged.add(e)
            st.loaded.add(e)
            loads.append(load)
        stats.prefetch_loads += len(loads)
        self.layer_stats[layer].prefetch_loads += len(loads)
        return PrefetchPlan(layer, guesses, correct, tuple(loads))

    # ------------------------------------------------------------------ access
    def access(self, layer: int, experts: Sequence[int], tokens: Sequence[int]) -> AccessPlan:
        """Serve ``layer``'s used ``experts`` (ascending, ``tokens`` routed to each)."""
        st = self._layers[layer]
        experts = tuple(int(e) for e in experts)
        tokens = tuple(int(t) for t in tokens)
        on_gpu = st.resident() | st.staged
        hits = tuple(e for e in experts if e in on_gpu)
        misses = tuple(e for e in experts if e not in on_gpu)
        prefetched = tuple(e for e in hits if e in st.loaded)
        hit_slots = tuple(st.slots.index(e) if e in st.slots else STAGING for e in hits)
        clock = self._tick()
        for e in hits:
            st.policy.on_use(e, clock)
        st.pinned = set()
        loads = []
        for e in misses:
            st.policy.on_use(e, self._tick())
            if self.config.miss == MissMode.FETCH:
                loads.append(self._admit(st, e, protect=set()))
        count = dict(zip(experts, tokens, strict=True))
        for stats in (self.stats[self.phase], self.layer_stats[layer]):
            stats.hits += len(hits)
            stats.misses += len(misses)
            stats.token_hits += sum(count[e] for e in hits)
            stats.token_misses += sum(count[e] for e in misses)
            stats.prefetch_useful += len(set(prefetched))
            stats.fetch_loads += len(loads)
        st.staged = set()
        st.loaded = set()
        return AccessPlan(layer, experts, tokens, hits, hit_slots, prefetched, misses,
                          tuple(loads))
