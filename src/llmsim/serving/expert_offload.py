"""Expert offloading under load: a per-replica GPU expert cache as a stateful add-on to pricing.

With an ``expert_offload`` section (:class:`~.expert_offload_config.ExpertOffloadSection`)
every replica holds, per MoE layer, a GPU cache of ``C`` experts (the rest in host memory):
one :class:`~llmsim.expert_cache.ExpertCacheEngine` (LRU / LFU / static, prefetch of the next
layer's experts with accuracy ``a``) and one :class:`~llmsim.expert_cache.timeline.
StepTimeline` (the clock and copy engines), shared formula for formula with ``moe-offload
simulate``. Each engine step the scheduler plans is priced by :class:`ExpertOffloadPricer`:

1. routing: each of the step's ``T`` tokens (prefill chunk tokens plus one per decoding
   sequence) picks its top-k per MoE layer from the routing model (:class:`RoutingSampler`
   for a distribution, drawn step by step with the replica's seeded stream; a trace file is
   replayed as a stream of routed tokens, ``T`` rows per step, wrapping around);
2. per MoE layer the union of the experts those tokens touch is looked up in that layer's
   cache (hits, misses; the union grows with the batch and shrinks with routing skew), the
   next layer's experts are prefetched while the layer computes;
3. the step's time is the timeline's: the step model's ``price(shape)`` for everything but
   the routed experts (:meth:`OffloadCosts.step_base`: attention, norms, router, LM head,
   the step overhead), the experts the step really touches each priced by ``costs.py``, and
   the stall (miss copies over the host link, ``costmodel.host`` copies, or CPU expert
   compute, not hidden by compute). The step model's own balanced-routing ``experts`` op
   (every expert resident) is what the timeline replaces.

Steps are priced one by one (the closed-form decode runs assume a stateless price). A
replica's timeline starts each step at the event loop's time, so copies still in flight
from the last step (wrong prefetch guesses) delay the next one only if it starts before they
end. Same seed, same run. With one request in flight the steps are ``moe-offload simulate``'s
steps of that request, drawn from the same streams: the same times and hit counts
(``tests/serving/test_expert_offload_serving.py``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmsim.costmodel.shapes import BatchShape
from llmsim.errors import ConfigError
from llmsim.expert_cache import (
    ExpertCacheEngine,
    MissMode,
    OffloadConfig,
    OffloadCosts,
    RoutingTrace,
    make_platform,
)
from llmsim.expert_cache.gpu_memory import ServingFootprint, serving_footprint
from llmsim.expert_cache.routing import (
    RoutingSampler,
    moe_layer_indices,
    parse_distribution,
    read_trace,
    trace_path,
)
from llmsim.expert_cache.timeline import StepTimeline
from llmsim.serving.expert_offload_config import ExpertOffloadSection
from llmsim.serving.pricing import StepPricer

log = logging.getLogger(__name__)


class TraceStream:
    """A routing trace replayed as a stream of routed tokens: each step takes the next ``T``
    token rows (the same rows in every MoE layer), wrapping around at the end. One request
    whose prompt is the trace's prefill consumes it step for step."""

    def __init__(self, trace: RoutingTrace):
        self.rows = {layer: np.concatenate([s[layer] for s in trace.steps])
                     for layer in trace.moe_layers}
        self.size = len(next(iter(self.rows.values())))
        self.pos = 0

    def step(self, tokens: int) -> dict[int, np.ndarray]:
        idx = (self.pos + np.arange(tokens)) % self.size
        self.pos = (self.pos + tokens) % self.size
        return {layer: rows[idx] for layer, rows in self.rows.items()}


@dataclass
class OffloadCounters:
    """One replica's expert-offload counters over the steps it priced.

    Summary rates (:meth:`ExpertOffload.summary`): ``hit_rate`` = hits / (hits + misses) over
    (step, MoE layer, expert used) lookups, ``moe-offload``'s definition; under a batch it
    falls toward ``C / E`` as the union of the batch's experts grows past what the cache and
    the prefetch hold. ``amortized_hit_rate`` = ``1 - misses / (tokens x top_k)`` over
    (step, MoE layer, token, choice) routings: a miss is one copy shared by every token of the
    step routed to that expert, so this rises with the batch (more of each token's experts are
    already on the GPU, resident or brought in for another token of the step)."""

    steps: int = 0
    step_s: float = 0.0
    stall_s: float = 0.0
    h2d_bytes: float = 0.0
    d2h_bytes: float = 0.0
    experts_touched: int = 0  # (step, MoE layer) unions, summed
    routings: int = 0  # (token, expert) choices: tokens x top_k x MoE layers, summed

    def add(self, other: OffloadCounters) -> OffloadCounters:
        return OffloadCounters(**{k: getattr(self, k) + getattr(other, k)
                                  for k in self.__dataclass_fields__})


class ExpertOffload:
    """The run's expert offload: the cache settings resolved against the model and the GPU,
    the shared costs, and one :class:`ExpertOffloadPricer` per replica (:meth:`pricer`)."""

    def __init__(self, section: ExpertOffloadSection, step_model: Any, seed: int,
                 tp: int, pp: int, beam: int, speculation: Any):
        dep = step_model.deployment
        if dep is None:
            raise ConfigError("expert offload needs a step model with a deployment (a model "
                              "and a GPU)")
        if tp * pp != 1:
            raise ConfigError(f"expert offload serves from one GPU per replica (the cache "
                              f"and its host link are one GPU's); got tp {tp} x pp {pp}: use "
                              "--replicas for more GPUs")
        if beam > 1 or speculation is not None:
            raise ConfigError("expert offload with --beam or --spec-method is not modelled; "
                              "drop one")
        if getattr(dep, "afd", None) is not None:
            raise ConfigError("expert offload with --afd is not modelled (the FFN instances "
                              "hold the experts); drop one")
        spec = dep.model
        moe = spec.moe
        if moe is None:
            raise ConfigError(f"{spec.name} is a dense model; expert offloading needs a MoE "
                              "model (mixtral-8x7b, deepseek-v2-lite, qwen3-30b-a3b, ...)")
        self.section = section
        self.model = spec
        self.deployment = dep
        self.seed = seed if section.seed is None else section.seed
        self.platform = make_platform(dep.hardware, section.host, section.cpu_efficiency)
        self.costs = OffloadCosts(spec, self.platform, dep.precision, dep.profile,
                                  dep.efficiency, base_model=step_model)
        self.expert_bytes = self.costs.expert_bytes
        capacity = section.cache_experts
        if capacity is None:
            assert section.cache_gb is not None
            capacity = min(int(section.cache_gb * 1e9 // (spec.num_moe_layers
                                                        * self.expert_bytes)),
                           moe.num_experts)
        prefetch = moe.top_k if section.prefetch is None else section.prefetch
        self.config = OffloadConfig.build(
            capacity=capacity, policy=section.policy, prefetch=prefetch,
            prefetch_accuracy=section.prefetch_accuracy, miss=MissMode(section.miss),
            seed=self.seed).for_model(moe.num_experts)
        self.moe_layers = tuple(moe_layer_indices(spec))
        path = trace_path(section.routing)
        self.trace: RoutingTrace | None = None
        if path is not None:
            self.trace = read_trace(path, spec)
            self.prior = self.trace.expert_counts().astype(float)
            self.routing_text = f"trace {path}"
            self.dist = None
        else:
            self.dist = parse_distribution(section.routing)
            RoutingSampler.check_batchable(self.dist)
            self.prior = self.dist.popularity(len(self.moe_layers), moe.num_experts, self.seed)
            self.routing_text = self.dist.describe()

    def footprint(self, max_tokens: int, max_logits: int,
                  memory_utilization: float) -> ServingFootprint:
        """GPU memory of one replica: the cache, staging, non-expert weights, activations;
        the KV cache gets the rest."""
        c = self.config
        return serving_footprint(self.model, self.deployment.cluster, self.deployment.precision,
                                 c.capacity, c.prefetch, max_tokens, max_logits,
                                 memory_utilization)

    def pricer(self, base: StepPricer, replica: int,
               now_s: Callable[[], float]) -> ExpertOffloadPricer:
        """Replica ``replica``'s pricer (its own caches, timeline and routing stream; replica
        0 draws with the run's seed, replica ``r`` with ``seed + r``)."""
        seed = (self.seed + replica) % (2**63)
        engine = ExpertCacheEngine(self.config.replace(seed=seed), self.model.moe.num_experts,
                                   self.moe_layers, self.model.num_layers, self.prior)
        routing = TraceStream(self.trace) if self.trace is not None else \
            RoutingSampler(self.dist, self.model, seed)
        return ExpertOffloadPricer(base, self.costs, engine, routing, now_s)

    # ------------------------------------------------------------------ report
    def summary(self, pricers: list[ExpertOffloadPricer]) -> dict[str, Any]:
        """The run's expert-offload figures, summed over its replicas' ``pricers``."""
        c = self.config
        tot = OffloadCounters()
        hits = misses = token_hits = token_misses = 0
        phase: dict[str, list[int]] = {"prefill": [0, 0], "decode": [0, 0]}
        guesses = correct = 0
        for p in pricers:
            tot = tot.add(p.counters)
            st = p.engine.total
            hits, misses = hits + st.hits, misses + st.misses
            token_hits += st.token_hits
            token_misses += st.token_misses
            guesses += st.prefetch_guesses
            correct += st.prefetch_correct
            for name in phase:
                phase[name][0] += p.engine.stats[name].hits
                phase[name][1] += p.engine.stats[name].misses

        def rate(a: int, b: int) -> float:
            return a / (a + b) if a + b else math.nan

        return {
            "capacity_experts": c.capacity, "policy": c.policy, "prefetch": c.prefetch,
            "prefetch_accuracy": c.prefetch_accuracy, "miss": c.miss.value,
            "routing": self.routing_text, "seed": self.seed, "host": self.platform.host.name,
            "expert_bytes": self.expert_bytes,
            "cache_bytes": c.capacity * len(self.moe_layers) * self.expert_bytes,
            "hit_rate": rate(hits, misses),
            "prefill_hit_rate": rate(*phase["prefill"]),
            "decode_hit_rate": rate(*phase["decode"]),
            "token_hit_rate": rate(token_hits, token_misses),
            "amortized_hit_rate": 1.0 - misses / tot.routings if tot.routings else math.nan,
            "measured_prefetch_accuracy": correct / guesses if guesses else math.nan,
            "num_steps": tot.steps,
            "misses_per_step": misses / tot.steps if tot.steps else math.nan,
            "experts_per_step": tot.experts_touched / tot.steps if tot.steps else math.nan,
            "routings_per_step": tot.routings / tot.steps if tot.steps else math.nan,
            "stall_s": tot.stall_s,
            "stall_frac": tot.stall_s / tot.step_s if tot.step_s > 0 else math.nan,
            "h2d_bytes": tot.h2d_bytes, "d2h_bytes": tot.d2h_bytes,
            "bytes_fetched": tot.h2d_bytes + tot.d2h_bytes,
        }


class ExpertOffloadPricer(StepPricer):
    """A replica's :class:`StepPricer` with its expert caches: :meth:`step_s` runs the step on
    the replica's :class:`StepTimeline` (module docstring); swaps are priced as before."""

    def __init__(self, base: StepPricer, costs: OffloadCosts, engine: ExpertCacheEngine,
                 routing: RoutingSampler | TraceStream, now_s: Callable[[], float]):
        super().__init__(base.model, base.max_context, base.micro, base.kv_bytes_per_token,
                         base.host_bw, base.host_latency_s)
        self.costs = costs
        self.engine = engine
        self.routing = routing
        self.timeline = StepTimeline(costs, engine)
        self.now_s = now_s
        self.counters = OffloadCounters()
        self.top_k = costs.moe.top_k
        self.num_moe_layers = len(engine.moe_layers)

    def step_s(self, shape: BatchShape, num_seqs: int, fill: bool = False) -> float:
        """The step of ``shape`` through the expert caches, starting now."""
        self.num_priced += 1
        routed = self.routing.step(shape.num_tokens)
        phase = 0 if shape.prefill_tokens else 1  # prefill or decode counters
        out = self.timeline.run_step(phase, self.costs.step_base(shape), routed,
                                     start_s=self.now_s())
        c = self.counters
        c.steps += 1
        c.step_s += out.time_s
        c.stall_s += out.stall_s
        c.h2d_bytes += out.h2d_bytes
        c.d2h_bytes += out.d2h_bytes
        c.experts_touched += sum(e.experts for e in out.events)
        c.routings += shape.num_tokens * self.top_k * self.num_moe_layers
        return out.time_s

    def decode_run(self, seqs: int, ctx_total: float, max_steps: int) -> Any:
        raise RuntimeError("expert offload prices steps one by one (closed_form is off)")
