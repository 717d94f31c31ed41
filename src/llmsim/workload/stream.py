"""The request stream: lengths, intended send times, priorities and prefix-block keys.

A workload is either synthetic (an arrival process from ``arrivals.py`` and length
distributions from ``lengths.py``) or a replayed trace (``traces.py``), optionally with
synthetic arrivals over the trace's lengths. Every random draw comes from its own stream of one
seeded ``numpy.random.Generator`` family (``SeedSequence(seed).spawn``), so changing one knob
does not reshuffle the others.

Closed-loop clients (``concurrency = C``): at most C requests are in flight; a request is sent
at ``max(its intended time, the time a client slot frees)`` (vLLM's benchmark with
``--max-concurrency``). With no arrival process the intended times are all 0: C clients each
sending the next request as soon as the previous one finished (plus ``think_time_s``).

Trace tiling: asking for more requests than a trace holds repeats it; tile ``k`` is shifted by
``k * (span + mean gap)`` and its prefix-block ids are made distinct from the other tiles'.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsim.errors import ConfigError
from llmsim.workload.arrivals import make_arrivals
from llmsim.workload.lengths import make_length_dist
from llmsim.workload.spec import DEFAULT_OUTPUT, DEFAULT_PROMPT
from llmsim.workload.traces import Trace, load_trace

_KEY_STRIDE = 1_000_003  # > any block index: keys (block id, position) stay distinct

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Workload:
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    arrival_s: np.ndarray  # intended send times (sorted)
    priority: np.ndarray | None = None
    concurrency: int | None = None
    think_time_s: float = 0.0
    hash_offsets: np.ndarray | None = None
    hash_values: np.ndarray | None = None
    hash_block_tokens: int = 512
    shared_prefix_tokens: int = 0
    prefix_groups: int = 1
    warmup_requests: int = 0
    jitter_s: np.ndarray | None = None  # per-request send delay (client timing noise)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_tokens)

    @property
    def has_prefix_keys(self) -> bool:
        return self.hash_offsets is not None or self.shared_prefix_tokens > 0

    def prefix_keys(self, rid: int, num_blocks: int, block_size: int) -> list[int]:
        """Cache keys of the first ``num_blocks`` full KV blocks of request ``rid``'s prompt
        (fewer when only a shared prefix has keys). Equal keys = identical prefix content."""
        if self.hash_offsets is not None and self.hash_values is not None:
            lo, hi = int(self.hash_offsets[rid]), int(self.hash_offsets[rid + 1])
            j = np.arange(num_blocks, dtype=np.int64)
            idx = ((j + 1) * block_size - 1) // self.hash_block_tokens
            j = j[idx < hi - lo]
            idx = idx[: len(j)]
            return (self.hash_values[lo + idx] * _KEY_STRIDE + j).tolist()
        if self.shared_prefix_tokens > 0:
            n = min(num_blocks, self.shared_prefix_tokens // block_size)
            group = rid % max(self.prefix_groups, 1)
            base = -(group + 1) * _KEY_STRIDE
            return [base - j for j in range(n)]
        return []


def _tile(trace: Trace, n: int) -> tuple[np.ndarray, ...]:
    m = len(trace)
    reps = -(-n // m)
    idx = np.tile(np.arange(m), reps)[:n]
    tile = np.repeat(np.arange(reps), m)[:n]
    inputs = trace.input_tokens[idx]
    outputs = trace.output_tokens[idx]
    arrival = None
    if trace.arrival_s is not None:
        gap = trace.span_s / max(m - 1, 1) if m > 1 else 1.0
        arrival = trace.arrival_s[idx] + tile * (trace.span_s + gap)
    priority = trace.priority[idx] if trace.priority is not None else None
    offsets = values = None
    if trace.hash_offsets is not None and trace.hash_values is not None:
        lens = np.diff(trace.hash_offsets)[idx]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        id_span = int(trace.hash_values.max()) + 1 if len(trace.hash_values) else 1
        # vectorised (no per-request Python objects): output element j of request r is trace
        # value hash_offsets[idx[r]] + (j - offsets[r]), shifted by r's tile x id_span
        src = np.repeat(trace.hash_offsets[:-1][idx] - offsets[:-1], lens)
        src += np.arange(len(src), dtype=np.int64)
        values = trace.hash_values[src].astype(np.int64, copy=False)
        del src
        values += np.repeat(tile.astype(np.int64) * id_span, lens)
    return inputs, outputs, arrival, priority, offsets, values, reps


def build_workload(cfg: Any) -> Workload:
    """Build the request stream from a :class:`~llmsim.workload.spec.WorkloadSection`."""
    seeds = np.random.SeedSequence(cfg.seed).spawn(5)
    rng_arrival, rng_in, rng_out, rng_prio, rng_jitter = (np.random.default_rng(s)
                                                          for s in seeds)
    info: dict[str, Any] = {"seed": cfg.seed}
    arrival_name = cfg.arrival
    if cfg.trace:
        trace = load_trace(cfg.trace, cfg.trace_format)
        n = cfg.num_requests or len(trace)
        inputs, outputs, arrival, priority, offsets, values, reps = _tile(trace, n)
        info.update(trace=trace.path, trace_format=trace.format, trace_rows=len(trace),
                    tiles=reps)
        if arrival_name is None and arrival is not None and cfg.rate is None:
            info["arrival"] = "trace timestamps"
        else:  # --arrival / --rate replace the trace's timestamps (its lengths are kept)
            arrival = None
    else:
        n = cfg.num_requests or 1000
        in_dist = make_length_dist(DEFAULT_PROMPT if cfg.prompt is None else cfg.prompt, "input")
        out_dist = make_length_dist(DEFAULT_OUTPUT if cfg.output is None else cfg.output,
                                    "output")
        inputs = in_dist.sample(n, rng_in)
        outputs = out_dist.sample(n, rng_out)
        info.update(prompt=in_dist.describe(), output=out_dist.describe())
        arrival = priority = offsets = values = None
    if arrival is None:
        if arrival_name is None:
            if cfg.burstiness is not None:
                arrival_name = "gamma"
            elif cfg.rate is not None:
                arrival_name = "poisson"
            elif cfg.concurrency:
                arrival_name = "batch"
            else:
                raise ConfigError("the workload needs an arrival process: give --rate R "
                                  "(Poisson), --arrival NAME, --concurrency C, or a trace with "
                                  "timestamps")
        cv = cfg.cv if cfg.burstiness is None else 1.0 / float(np.sqrt(cfg.burstiness))
        if cfg.burstiness is not None and arrival_name.partition(":")[0] in (
                "poisson", "exponential"):
            arrival_name = "gamma"
        process = make_arrivals(arrival_name, cfg.rate, cv)
        arrival = process.times(n, rng_arrival)
        info["arrival"] = process.describe()
    if cfg.rate_scale != 1.0:
        arrival = arrival / cfg.rate_scale
        info["rate_scale"] = cfg.rate_scale
    if cfg.think_time_s and not cfg.concurrency:
        raise ConfigError("--think-time applies to closed-loop clients only; add "
                          "--concurrency C")
    if cfg.shared_prefix_tokens and int(np.max(inputs)) <= cfg.shared_prefix_tokens:
        raise ConfigError(f"--shared-prefix {cfg.shared_prefix_tokens} is not shorter than any "
                          f"prompt (the longest has {int(np.max(inputs))} tokens); lower it")
    if cfg.shared_prefix_tokens and int(np.min(inputs)) < cfg.shared_prefix_tokens:
        log.warning("--shared-prefix %d is longer than some prompts (shortest %d tokens): those "
                    "share only their whole blocks", cfg.shared_prefix_tokens,
                    int(np.min(inputs)))
    if priority is None and cfg.priority_levels > 1:
        priority = rng_prio.integers(0, cfg.priority_levels, size=n)
    if cfg.concurrency:
        info["concurrency"] = cfg.concurrency
    if cfg.warmup_requests:
        if cfg.warmup_requests >= n:
            raise ConfigError(f"--warmup-requests {cfg.warmup_requests} leaves none of the "
                              f"{n} requests to measure; lower it or add requests")
        info["warmup_requests"] = cfg.warmup_requests
    jitter = None
    jitter_s = getattr(cfg, "jitter_s", None)
    if jitter_s:
        jitter = rng_jitter.uniform(0.0, float(jitter_s), size=n)
        info["jitter_s"] = float(jitter_s)
    return Workload(
        input_tokens=np.ascontiguousarray(inputs, dtype=np.int64),
        output_tokens=np.ascontiguousarray(outputs, dtype=np.int64),
        arrival_s=np.ascontiguousarray(arrival, dtype=np.float64),
        priority=priority, concurrency=cfg.concurrency, think_time_s=cfg.think_time_s,
        hash_offsets=offsets, hash_values=values,
        shared_prefix_tokens=cfg.shared_prefix_tokens, prefix_groups=cfg.prefix_groups,
        warmup_requests=cfg.warmup_requests, jitter_s=jitter, info=info,
    )
