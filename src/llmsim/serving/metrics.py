"""Streaming metrics: an ITL histogram sketch, a fixed-grid time series, and the per-replica
records the summary is made of.

Definitions (vLLM ``benchmark_serving`` conventions; all in seconds):

- TTFT = first_token - arrival;  E2E = finish - arrival;
- TPOT = (E2E - TTFT) / (output_tokens - 1), undefined (excluded) for 1-token outputs;
- ITL = each gap between consecutive tokens of one request (including stalls while it was
  preempted or while a prefill-only step ran); a request's mean ITL equals its TPOT;
- queueing delay = first_scheduled - arrival (time until its first step started);
- goodput = completed requests with TTFT <= slo_ttft and TPOT <= slo_tpot, per second.

Memory stays flat in the number of tokens: per-request values live in preallocated arrays
(one row per request); ITLs are not stored one by one but streamed into a log-spaced histogram
(400 bins per decade from 0.1 us to 10 000 s: percentiles within 0.3 %, mean and max exact) and
a per-request maximum; the time series keeps at most ``max_points`` rows, doubling its interval
when full.

Per replica (:func:`replica_summary`, from each replica's :class:`ReplicaStats` at the end of a
run): busy fraction = summed step time / (duration x replicas), capped at 1; prefix-cache hit
rate = prompt tokens found cached / known tokens, both at first admission (recomputes after a
preemption do not count); KV peak = the largest of the replicas' peak blocks in use / capacity
(exact, not sampled); mean tokens per step = new tokens / steps; the summed work features
(:func:`work_sums`) give FLOPs and bytes through ``pricing.WorkFit`` for MFU / MBU
(``costmodel.utilization``). Every sum runs over the replicas in index order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

PERCENTILES = (50, 90, 95, 99)
_log = math.log


class LogHistogram:
    """Weighted values in log-spaced bins; exact count, sum and max."""

    __slots__ = ("lo_log", "per_decade", "bins", "counts", "count", "total", "vmax", "vmin",
                 "_scale", "_offset", "_top")

    def __init__(self, lo: float = 1e-7, decades: int = 11, per_decade: int = 400):
        self.lo_log = math.log10(lo)
        self.per_decade = per_decade
        self.bins = decades * per_decade
        self.counts = [0.0] * self.bins
        self.count = 0.0
        self.total = 0.0
        self.vmax = 0.0
        self.vmin = math.inf
        # bin index = floor(ln(v) * scale - offset)
        self._scale = per_decade / math.log(10.0)
        self._offset = self.lo_log * per_decade
        self._top = self.bins - 1

    def _index(self, v: float) -> int:
        if v <= 0:
            return 0
        i = int(_log(v) * self._scale - self._offset)
        return 0 if i < 0 else (self.bins - 1 if i >= self.bins else i)

    def _edge(self, i: int) -> float:
        return 10.0 ** (self.lo_log + i / self.per_decade)

    def add(self, v: float, weight: float = 1.0) -> None:
        if weight <= 0:
            return
        if v > 0:
            i = int(_log(v) * self._scale - self._offset)
            if i < 0:
                i = 0
            elif i > self._top:
                i = self._top
        else:
            i = 0
        self.counts[i] += weight
        self.count += weight
        self.total += v * weight
        if v > self.vmax:
            self.vmax = v
        if v < self.vmin:
            self.vmin = v

    def add_linear(self, g1: float, g2: float, cnt: int, weight: float) -> None:
        """Add ``cnt`` evenly spaced values from ``g1`` to ``g2``, each ``weight`` times."""
        if cnt <= 0 or weight <= 0:
            return
        lo, hi = (g1, g2) if g1 <= g2 else (g2, g1)
        self.count += cnt * weight
        self.total += (g1 + g2) * 0.5 * cnt * weight
        if hi > self.vmax:
            self.vmax = hi
        if lo < self.vmin:
            self.vmin = lo
        # bin indices as _index (inlined: this runs for every closed-form decode phase)
        scale, offset, top = self._scale, self._offset, self.bins - 1
        i1 = int(_log(lo) * scale - offset) if lo > 0 else 0
        i1 = 0 if i1 < 0 else (top if i1 > top else i1)
        counts = self.counts
        if cnt == 1:
            counts[i1] += weight
            return
        if hi == lo:
            i2 = i1
        else:
            i2 = int(_log(hi) * scale - offset) if hi > 0 else 0
            i2 = 0 if i2 < 0 else (top if i2 > top else i2)
        if i1 == i2:
            counts[i1] += cnt * weight
            return
        step = (hi - lo) / (cnt - 1)
        below = 0  # values already placed
        for i in range(i1, i2):
            upper = self._edge(i + 1)
            n_lt = min(cnt, int(math.ceil((upper - lo) / step))) if upper > lo else 0
            counts[i] += (n_lt - below) * weight
            below = n_lt
        counts[i2] += (cnt - below) * weight

    def add_array(self, values: np.ndarray, weight: float) -> None:
        if len(values) == 0 or weight <= 0:
            return
        v = np.asarray(values, dtype=np.float64)
        idx = np.clip(((np.log10(np.maximum(v, 1e-300)) - self.lo_log) * self.per_decade)
                      .astype(np.int64), 0, self.bins - 1)
        for i, c in zip(*np.unique(idx, return_counts=True), strict=True):
            self.counts[int(i)] += float(c) * weight
        self.count += len(v) * weight
        self.total += float(v.sum()) * weight
        self.vmax = max(self.vmax, float(v.max()))
        self.vmin = min(self.vmin, float(v.min()))

    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def percentile(self, q: float) -> float:
        if not self.count:
            return math.nan
        cum = np.cumsum(self.counts)
        rank = q / 100.0 * self.count
        i = int(np.searchsorted(cum, rank, side="left"))
        i = min(i, self.bins - 1)
        prev = cum[i - 1] if i > 0 else 0.0
        inbin = cum[i] - prev
        frac = (rank - prev) / inbin if inbin > 0 else 0.5
        lo, hi = self._edge(i), self._edge(i + 1)
        v = lo * (hi / lo) ** min(max(frac, 0.0), 1.0)
        return float(min(max(v, self.vmin), self.vmax))

    def stats(self) -> dict[str, float]:
        out = {"mean": self.mean()}
        for q in PERCENTILES:
            out[f"p{q}"] = self.percentile(q)
        out["max"] = self.vmax if self.count else math.nan
        return out


def dist_stats(values: np.ndarray, overwrite: bool = False) -> dict[str, float]:
    """mean, p50, p90, p95, p99, max of the finite values (NaN when none); exact (numpy's
    linear-interpolation percentiles). ``overwrite``: ``values`` may be reordered (the
    percentiles partition it in place instead of a copy: same results, no second array)."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if not finite.all():
        v, overwrite = v[finite], True
    del finite
    if len(v) == 0:
        return {"mean": math.nan, **{f"p{q}": math.nan for q in PERCENTILES}, "max": math.nan}
    mean, vmax = float(v.mean()), float(v.max())  # before any reordering
    pct = np.percentile(v, PERCENTILES, overwrite_input=overwrite)
    out = {"mean": mean}
    out.update({f"p{q}": float(p) for q, p in zip(PERCENTILES, pct, strict=True)})
    out["max"] = vmax
    return out


TIMESERIES_COLUMNS = ("waiting", "running", "swapped", "in_system", "kv_usage_frac",
                      "completed", "output_tokens", "prefill_tokens", "busy_s")


class TimeSeries:
    """Rows sampled every ``interval_s`` (``time_s = k * interval_s``); at most ``max_points``
    rows: when full, every other row is dropped and the interval doubles."""

    def __init__(self, interval_s: float, max_points: int = 4000):
        self.interval_s = float(interval_s)
        self.max_points = max(int(max_points), 16)
        self.time_s: list[float] = []
        self.rows: list[tuple[float, ...]] = []

    def next_time(self) -> float:
        k = len(self.time_s)
        return k * self.interval_s

    def append(self, time_s: float, row: tuple[float, ...]) -> None:
        self.time_s.append(time_s)
        self.rows.append(row)
        if len(self.time_s) >= self.max_points:
            self.time_s = self.time_s[::2]
            self.rows = self.rows[::2]
            self.interval_s *= 2.0

    def frame(self) -> Any:
        import pandas as pd

        df = pd.DataFrame(self.rows, columns=list(TIMESERIES_COLUMNS))
        df.insert(0, "time_s", self.time_s)
        dt = df["time_s"].diff()
        df["output_tokens_per_s"] = df["output_tokens"].diff() / dt
        df["prefill_tokens_per_s"] = df["prefill_tokens"].diff() / dt
        df["completed_per_s"] = df["completed"].diff() / dt
        return df


class ReplicaSample(NamedTuple):
    """One replica at a sampling time (``Replica.sample``): requests ``waiting``, ``running``
    (static batching's finished padding excluded; finishes of the closed-form run in flight
    still counted) and ``swapped`` out; ``finished_in_flight``: those finishes already past;
    KV blocks in use and in all; output tokens so far (the run in flight's included); prompt
    tokens computed and busy time, as of the last commit."""

    waiting: int
    running: int
    swapped: int
    finished_in_flight: int
    kv_used_blocks: int
    kv_total_blocks: int
    output_tokens: int
    prefill_tokens: int
    busy_s: float


@dataclass(frozen=True, slots=True)
class ReplicaStats:
    """What one replica counted over a run (``Replica.stats()``).

    ``busy_s``: summed step time; ``num_steps``: engine steps (a closed-form run counts each
    of its steps), ``num_segments``: scheduled segments (a head step and / or a run);
    ``output_tokens``, ``prefill_tokens`` (prompt and recompute tokens computed);
    ``preemptions``, ``swapped_out_tokens``; ``prefix_hit_tokens`` / ``prefix_query_tokens``:
    prompt tokens found in the prefix cache / known tokens, at first admissions; the summed
    step features ``work_*`` (``pricing.WorkFit.features`` order, see :attr:`work`); KV
    ``kv_total_blocks``, ``kv_peak_used_blocks`` (exact peak) and ``kv_evictions`` (cached
    blocks evicted)."""

    index: int
    busy_s: float
    num_steps: int
    num_segments: int
    output_tokens: int
    prefill_tokens: int
    preemptions: int
    swapped_out_tokens: int
    prefix_hit_tokens: int
    prefix_query_tokens: int
    work_steps: float
    work_tokens: float
    work_logits: float
    work_prefill_pairs: float
    work_prefill_ctx_tokens: float
    work_decode_ctx_tokens: float
    kv_total_blocks: int
    kv_peak_used_blocks: int
    kv_evictions: int

    @property
    def work(self) -> list[float]:
        """Summed step features ``[steps, tokens, logits, prefill attention pairs, prefill
        keys read, decode keys read]`` (the order of ``pricing.WorkFit.features``)."""
        return [self.work_steps, self.work_tokens, self.work_logits, self.work_prefill_pairs,
                self.work_prefill_ctx_tokens, self.work_decode_ctx_tokens]

    @property
    def kv_peak_used_frac(self) -> float:
        """Peak KV blocks in use / capacity."""
        total = self.kv_total_blocks
        return self.kv_peak_used_blocks / total if total else 0.0


def work_sums(stats: Sequence[ReplicaStats]) -> np.ndarray:
    """The work features summed over the replicas (:attr:`ReplicaStats.work` order)."""
    return np.sum([s.work for s in stats], axis=0) if stats else np.zeros(6)


def replica_summary(stats: Sequence[ReplicaStats], duration_s: float) -> dict[str, Any]:
    """The summary fields made of the replicas' records (formulas: the module docstring):
    ``num_preemptions``, ``busy_frac``, ``prefix_cache_hit_rate``, ``kv_usage_peak_frac``,
    ``mean_tokens_per_step``, ``num_steps``."""
    busy = sum(s.busy_s for s in stats)
    hits = sum(s.prefix_hit_tokens for s in stats)
    queries = sum(s.prefix_query_tokens for s in stats)
    feats = work_sums(stats)
    return {
        "num_preemptions": int(sum(s.preemptions for s in stats)),
        "busy_frac": min(busy / (duration_s * max(len(stats), 1)), 1.0),
        "prefix_cache_hit_rate": hits / queries if queries else 0.0,
        "kv_usage_peak_frac": max((s.kv_peak_used_frac for s in stats), default=0.0),
        "mean_tokens_per_step": float(feats[1] / feats[0]) if feats[0] else 0.0,
        "num_steps": int(sum(s.num_steps for s in stats)),
    }
