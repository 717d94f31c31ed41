"""What a person should be told about a serving run, beyond its numbers: the pathologies a
summary shows without saying (heavy preemption, a KV cache pinned full, rejected requests, an
offered rate the deployment does not sustain). Each is one sentence with the number that
shows it and what to change; the CLI logs them as warnings after its output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: preemptions per completed request above which the run is preemption-bound
HEAVY_PREEMPTION_PER_REQUEST = 0.1
#: mean KV-cache usage above which the cache is saturated
KV_SATURATED_MEAN_FRAC = 0.9
#: requests still waiting at the last arrival, as a share of all, above which the queue grew
QUEUE_GROWTH_FRAC = 0.05

#: why a request is rejected, for a person (``RejectReason`` names as the summary writes them)
REJECT_WHY = {
    "context_length": "input + output beyond the model's context; raise --max-model-len if the "
                      "engine serves it (rope scaling) or shorten the requests",
    "kv_capacity": "the request's KV cache alone exceeds a replica's; raise "
                   "--memory-utilization, --tp, or use a smaller --kv-dtype",
    "batch_tokens": "the prompt exceeds --max-num-batched-tokens of a non-chunking scheduler; "
                    "raise it or use --scheduler chunked",
}


def diagnose(report: Any) -> list[str]:
    """The warnings of a :class:`SimulationReport` (empty when nothing is wrong)."""
    s = report.summary()
    out: list[str] = []
    n, done = s["num_requests"], s["num_completed"]
    pre = s.get("num_preemptions", 0)
    if pre >= 10 and pre > HEAVY_PREEMPTION_PER_REQUEST * max(done, 1):
        p99 = (s.get("ttft_s") or {}).get("p99")
        tail = f" (p99 TTFT {p99:,.1f} s)" if p99 is not None and p99 == p99 else ""
        out.append(f"heavy preemption: {pre:,} preemptions for {done:,} completed requests"
                   f"{tail}: the KV cache is too small for this load; add --replicas, raise "
                   "--memory-utilization or --tp, or lower the rate")
    mean, peak = s.get("kv_usage_mean_frac", 0.0), s.get("kv_usage_peak_frac", 0.0)
    if mean >= KV_SATURATED_MEAN_FRAC:
        out.append(f"KV cache saturated: usage mean {mean:.0%}, peak {peak:.0%} of "
                   f"{s['kv_capacity_tokens_per_replica']:,} tokens per replica; requests wait "
                   "for blocks (more memory, a smaller --kv-dtype or more replicas)")
    for reason, count in (s.get("rejected_by_reason") or {}).items():
        if count:
            why = REJECT_WHY.get(reason, reason.replace("_", " "))
            extra = (f" (--max-model-len {s['max_model_len']:,})"
                     if reason == "context_length" and s.get("max_model_len") else "")
            out.append(f"{count:,} of {n:,} requests rejected: {reason.replace('_', ' ')}"
                       f"{extra}: {why}")
    growth = _queue_at_last_arrival(report)
    if growth is not None:
        waiting, offered, served = growth
        out.append(f"offered rate not sustained: {offered:,.2f} req/s offered, "
                   f"{served:,.2f} req/s served; {waiting:,} requests were still waiting at "
                   "the last arrival and the queue grew to the end; lower the rate or add "
                   "capacity (--replicas, --tp)")
    return out


def _queue_at_last_arrival(report: Any) -> tuple[int, float, float] | None:
    """(waiting at the last arrival, offered req/s, served req/s) when the queue grew over the
    arrivals of an open-loop run, else None."""
    s = report.summary()
    if (s.get("workload") or {}).get("concurrency"):
        return None  # a closed loop offers what it is served
    ts = report.timeseries
    arrival = report.request_column("arrival_s")  # one column, not the whole request table
    if len(arrival) < 20 or ts is None or len(ts) < 4 or "waiting" not in ts:
        return None
    first, last = float(np.nanmin(arrival)), float(np.nanmax(arrival))
    if last <= first:
        return None  # all at once: a batch, not a rate
    t, waiting = ts["time_s"].to_numpy(), ts["waiting"].to_numpy()
    window = (t >= first) & (t <= last)
    if window.sum() < 4:
        return None
    w = waiting[window]
    at_last = int(w[-1])
    half = len(w) // 2
    grew = (at_last > QUEUE_GROWTH_FRAC * len(arrival)
            and w[half:].mean() > 2 * max(w[:half].mean(), 1))
    if not grew:
        return None
    return at_last, len(arrival) / (last - first), s["requests_per_s"]
