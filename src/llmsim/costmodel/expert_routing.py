"""Expert routing at scale: load imbalance from skewed expert popularity, redundant experts
(EPLB), and how many ranks / nodes one token's top-k experts reach.

**Popularity.** Expert ``i`` (by popularity rank, ``i = 1..E``) receives a share
``p_i = i^-S / sum_j j^-S`` of the routed token copies (a Zipf law of exponent ``S``,
``--expert-skew``; ``S = 0`` is uniform routing). This is the fluid limit: a batch of ``T``
tokens sends ``T k p_i`` copies to expert ``i`` (no sampling noise; the noise of a small batch
is not modelled).

**Imbalance.** An EP rank holds ``(E + N) / ep`` expert instances; the step waits for the most
loaded one, so every per-rank quantity that scales with routed tokens (expert GEMMs, the bytes
a rank receives in dispatch / combine) is its balanced value times

    imbalance = ep x max over ranks of (sum of the shares of the instances it holds)  (>= 1).

- ``N = 0`` (no EPLB): experts sit on ranks in id order, and ids are unrelated to popularity,
  so the placement is a random permutation: the factor is the mean over 64 seeded permutations
  (numpy ``default_rng(0)``) of the maximum rank share, times ``ep``.
- ``N > 0`` (EPLB, DeepSeek's ``eplb`` package: replicate the heavy experts, then pack):
  ``N`` times, a replica is added to the expert with the highest load per replica (its load
  splits evenly over its replicas); the ``E + N`` instances are then packed greedily, heaviest
  first, onto the least-loaded rank that still has one of its ``ceil((E + N) / ep)`` slots
  free. An EPLB with ``N`` slots can leave slots unused, so the factor is the minimum over
  ``n = 0..N`` (more redundant experts never make it worse).

**Reach of one token** (for the dispatch volume, DeepEP's normal kernels send a token once per
remote node and once per GPU): with its ``k`` experts drawn without replacement from ``E``, a
group of ``E / G`` experts (a rank, or a node) is hit with probability
``1 - C(E - E/G, k) / C(E, k)``, so the expected number of groups hit is ``G`` times that.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

_PERMUTATIONS = 64


def zipf_popularity(num_experts: int, skew: float) -> np.ndarray:
    """Shares ``p_i = i^-skew / sum_j j^-skew`` of the routed copies, most popular first."""
    ranks = np.arange(1, num_experts + 1, dtype=float)
    weights = ranks ** -float(skew)
    return weights / weights.sum()


def _replicate(shares: np.ndarray, redundant: int) -> np.ndarray:
    """Per-instance loads after ``redundant`` greedy replicas of the heaviest expert."""
    replicas = np.ones(shares.size)
    for _ in range(redundant):
        i = int(np.argmax(shares / replicas))
        replicas[i] += 1
    return np.repeat(shares / replicas, replicas.astype(int))


def _pack_max(loads: np.ndarray, ranks: int) -> float:
    """Largest rank load when ``loads`` are packed heaviest-first onto the least-loaded rank
    with a free slot (``ceil(len / ranks)`` slots per rank)."""
    slots = math.ceil(loads.size / ranks)
    rank_load = np.zeros(ranks)
    free = np.full(ranks, slots)
    for load in np.sort(loads)[::-1]:
        open_ranks = np.flatnonzero(free > 0)
        r = open_ranks[int(np.argmin(rank_load[open_ranks]))]
        rank_load[r] += load
        free[r] -= 1
    return float(rank_load.max())


def _random_placement_max(shares: np.ndarray, ranks: int) -> float:
    """Mean over seeded random permutations of the largest rank share (experts in id order,
    ``E / ranks`` per rank)."""
    rng = np.random.default_rng(0)
    per_rank = shares.size // ranks
    total = 0.0
    for _ in range(_PERMUTATIONS):
        perm = rng.permutation(shares)
        total += float(perm[:per_rank * ranks].reshape(ranks, per_rank).sum(axis=1).max())
    return total / _PERMUTATIONS


@lru_cache(maxsize=256)
def load_imbalance(num_experts: int, ep: int, skew: float, redundant: int = 0) -> float:
    """``ep x`` the most loaded rank's share of routed copies (1 = balanced); see the module
    docstring. ``ep = 1`` or ``skew = 0`` with ``E`` divisible by ``ep``: exactly 1."""
    if ep <= 1:
        return 1.0
    shares = zipf_popularity(num_experts, skew)
    if skew == 0 and num_experts % ep == 0:
        return 1.0
    best = _random_placement_max(shares, ep) if num_experts % ep == 0 else math.inf
    for n in range(1, redundant + 1):
        best = min(best, _pack_max(_replicate(shares, n), ep))
    if not math.isfinite(best):  # E not divisible by ep and no redundancy: pack as EPLB would
        best = _pack_max(shares, ep)
    return max(1.0, best * ep)


def expected_groups_hit(num_experts: int, top_k: int, groups: int) -> float:
    """Expected number of ``groups`` equal groups of experts that one token's ``top_k``
    distinct experts fall into: ``G (1 - C(E - E/G, k) / C(E, k))``."""
    if groups <= 1:
        return 1.0
    per = num_experts / groups
    # C(E - per, k) / C(E, k) = prod_{j<k} (E - per - j) / (E - j)  (per may be fractional)
    miss = 1.0
    for j in range(top_k):
        miss *= max(0.0, (num_experts - per - j) / (num_experts - j))
    return groups * (1.0 - miss)
