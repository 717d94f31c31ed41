"""The offload simulation: a prefill and ``D`` decode steps of one sequence, layer by layer.

Per step the clock runs through the embedding, each decoder layer ``i`` and the LM head. Two
resources besides the GPU are tracked: the H2D copy engine and the D2H copy engine (FIFO, one
copy at a time each), and the CPU. For decoder layer ``i`` starting at ``t_i``:

1. Prefetch for MoE layer ``i+1`` (see :mod:`~llmsim.expert_cache.cache`) queues its copies on
   the H2D engine at ``t_i``; copy ``x`` ends at ``max(h2d_free, t_i) + lat + bytes / B_h2d``.
2. The layer's non-expert work (attention, norms, router, routing) runs until
   ``r_i = t_i + dense_i``; the routing is then known.
3. ``fetch`` misses queue their copies at ``r_i`` (behind any prefetch still in flight).
   ``cpu`` misses: the hidden states of the tokens routed to them go down (D2H) at ``r_i``, the
   CPU computes those experts one after another, their outputs (one row per token and CPU
   expert) come back (H2D) and join the GPU experts' in the combine.
4. The GPU computes its experts in order of readiness (resident experts at once, copied ones
   when their copy ends): ``g <- max(g, ready_e) + gpu_expert(tokens_e)``; the waits sum to the
   stall. The layer ends at ``max(g, CPU results back)``; routing and the weighted combine
   are priced with the layer's non-expert work.

Without a copy engine (``Platform.async_copy`` False, e.g. the CPU-only executor) every copy
runs on the critical path when issued, and without concurrent host compute the CPU experts
follow the GPU ones. Step time = end - start; decode time per token = mean over decode steps;
``tokens_per_s = 1 / decode_s_per_token``.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from llmsim.catalog import ModelSpec, default_host, get_hardware, get_host
from llmsim.costmodel import BatchShape, Precision, Profile
from llmsim.errors import ConfigError, DoesNotFitError
from llmsim.expert_cache.cache import ExpertCacheEngine
from llmsim.expert_cache.config import MissMode, OffloadConfig, load_moe_model
from llmsim.expert_cache.costs import OffloadCosts, Platform
from llmsim.expert_cache.gpu_memory import OffloadFootprint, offload_footprint
from llmsim.expert_cache.result import LayerEvent, OffloadResult
from llmsim.expert_cache.routing import RoutingSource, RoutingTrace, resolve_routing
from llmsim.units import fmt_bytes

log = logging.getLogger(__name__)

DEFAULT_HARDWARE = "rtx-4090"


def make_platform(hardware: str | object = DEFAULT_HARDWARE, host: str | object | None = None,
                  cpu_efficiency: float = 1.0) -> Platform:
    """A GPU + host platform from catalog names (copy engines, concurrent CPU). ``host`` None:
    the GPU's default host (:func:`~llmsim.catalog.default_host`, the rule
    ``offload`` uses too)."""
    hw = get_hardware(hardware)  # type: ignore[arg-type]
    if host is None:
        host = default_host(hw)
        log.info("no host given: using %s for %s", host, hw.name)
    hs = get_host(host)  # type: ignore[arg-type]
    return Platform(hw, hs, async_copy=True, concurrent_host=True,
                    cpu_efficiency=cpu_efficiency, description=f"{hw.name} + {hs.name}")


def footprint(model: ModelSpec, costs: OffloadCosts, config: OffloadConfig, prompt: int,
              steps: int) -> OffloadFootprint:
    return offload_footprint(model, costs.cluster, costs.precision, config.capacity,
                             config.prefetch, prompt + steps, prompt)


def check_context(model: ModelSpec, prompt_tokens: int, decode_steps: int,
                  max_model_len: int | None = None, flag: bool | None = None) -> None:
    """The prompt plus the decode steps must fit the context served: the model's, or
    ``max_model_len`` (as in ``offload``); ``flag``: the message names ``--max-model-len``
    (default: when it was given)."""
    from llmsim import checks

    checks.context(prompt_tokens + decode_steps, model.name, model.max_position_embeddings,
                   max_model_len, "prompt + decode steps", "--input-len or --output-len",
                   flag=max_model_len is not None if flag is None else flag)


def auto_capacity(model: str | ModelSpec, platform: Platform, prefetch: int, prompt_tokens: int,
                  decode_steps: int, dtype: str | None = None,
                  max_model_len: int | None = None) -> int:
    """The largest per-layer cache capacity that fits the GPU (``--cache-capacity auto``).

    ``prefetch`` and the context are checked first, so a bad value gets its own message rather
    than a does-not-fit."""
    spec = load_moe_model(model)
    assert spec.moe is not None
    OffloadConfig.build(capacity=0, prefetch=prefetch).for_model(spec.moe.num_experts)
    check_context(spec, prompt_tokens, decode_steps, max_model_len)
    precision = Precision.resolve(spec.weight_dtype, dtype=dtype,
                                  supported=platform.hardware.supported_dtypes)
    costs = OffloadCosts(spec, platform, precision, Profile.empty())
    fp = offload_footprint(spec, costs.cluster, precision, 0, prefetch,
                           prompt_tokens + decode_steps, prompt_tokens)
    if fp.max_capacity < 0:
        raise DoesNotFitError(
            f"{spec.name} does not fit {platform.hardware.name} even with no expert cached: "
            f"the rest of the model, KV cache and staging need {fmt_bytes(fp.need_bytes)} of "
            f"{fmt_bytes(fp.usable_bytes)} usable; try --dtype fp8 or a larger GPU",
            fp.need_bytes, fp.usable_bytes)
    return fp.max_capacity


def simulate(model: str | ModelSpec, hardware: str | object = DEFAULT_HARDWARE,
             host: str | object | None = None, config: OffloadConfig | None = None,
             routing: str | RoutingSource | RoutingTrace = "uniform",
             prompt_tokens: int | None = None, decode_steps: int | None = None,
             dtype: str | None = None, profile: Profile | None = None,
             efficiency: float | None = None, platform: Platform | None = None,
             cpu_efficiency: float = 1.0, allow_overflow: bool = False,
             max_model_len: int | None = None, estimator: str = "calibrated",
             estimator_model: str | None = None) -> OffloadResult:
    """Simulate one sequence (prefill + decode) with an offloaded expert cache.

    ``routing``: a distribution spec (``uniform``, ``zipf:1.2``, ...), a trace path (optionally
    ``trace:PATH``), or a resolved source / trace. ``platform`` overrides ``hardware``/``host``
    (e.g. a measured machine; ``host`` None: the GPU's default host). ``profile``/``efficiency``
    pick the GPU calibration (default: shipped profile), ``estimator`` / ``estimator_model`` the
    step model's estimator for the non-expert GPU work (``costmodel/estimators``);
    ``max_model_len``: the context served when beyond the model's. Deterministic in
    ``config.seed``.
    Metrics of an empty phase (``decode_steps=0``: decode time, tokens/s, decode hit rate) are
    NaN.
    """
    spec = load_moe_model(model)
    moe = spec.moe
    assert moe is not None
    config = (config or OffloadConfig()).for_model(moe.num_experts)
    platform = platform or make_platform(hardware, host, cpu_efficiency)
    precision = Precision.resolve(spec.weight_dtype, dtype=dtype,
                                  supported=platform.hardware.supported_dtypes)
    costs = OffloadCosts(spec, platform, precision, profile, efficiency, estimator,
                         estimator_model)
    source = _routing_source(routing, spec, prompt_tokens, decode_steps, config.seed)
    trace = source.trace
    prompt, steps = trace.prompt_tokens, trace.decode_steps
    check_context(spec, prompt, steps, max_model_len)
    fp = footprint(spec, costs, config, prompt, steps)
    if not fp.fits and not allow_overflow:
        hint = (f"use --cache-capacity {fp.max_capacity} or less" if fp.max_capacity >= 0
                else "even an empty cache does not fit; try --dtype fp8 or a larger GPU")
        raise DoesNotFitError(
            f"{spec.name} with {config.capacity} experts cached per layer needs "
            f"{fmt_bytes(fp.need_bytes)} on {platform.hardware.name} but "
            f"{fmt_bytes(fp.usable_bytes)} is usable; {hint} (or --allow-overflow)",
            fp.need_bytes, fp.usable_bytes)
    engine = ExpertCacheEngine(config, moe.num_experts, trace.moe_layers, spec.num_layers,
                               source.prior_counts)
    events, step_times, transfer_s = _run(spec, costs, config, engine, trace)
    return _result(spec, platform, precision, config, source, engine, costs, fp, events,
                   step_times, transfer_s)


def _routing_source(routing: str | RoutingSource | RoutingTrace, spec: ModelSpec,
                    prompt: int | None, steps: int | None, seed: int) -> RoutingSource:
    if isinstance(routing, RoutingSource):
        return routing
    if isinstance(routing, RoutingTrace):
        routing.validate()
        if routing.moe_layers != tuple(_moe_layers(spec)) or \
                routing.num_experts != spec.moe.num_experts:  # type: ignore[union-attr]
            raise ConfigError("the routing trace does not match the model's MoE layers")
        trace = routing.truncated(steps) if steps is not None else routing
        return RoutingSource("trace", trace, trace.expert_counts())
    return resolve_routing(routing, spec, prompt, steps, seed)


def _moe_layers(spec: ModelSpec) -> list[int]:
    from llmsim.expert_cache.routing import moe_layer_indices

    return moe_layer_indices(spec)


def _run(spec: ModelSpec, costs: OffloadCosts, config: OffloadConfig,
         engine: ExpertCacheEngine, trace: RoutingTrace
         ) -> tuple[list[LayerEvent], list[float], float]:
    """Walk the steps and layers on the clock (see the module docstring)."""
    platform = costs.platform
    async_copy, concurrent = platform.async_copy, platform.concurrent_host
    eb = costs.expert_bytes
    is_moe = costs.layer_kinds()
    prompt = trace.prompt_tokens
    now = h2d_free = d2h_free = busy = 0.0
    events: list[LayerEvent] = []
    step_times: list[float] = []
    for s in range(len(trace.steps)):
        engine.begin_step(s)
        shape = BatchShape.prefill(1, prompt) if s == 0 else BatchShape.decode(1, prompt + s)
        base = costs.step_base(shape)
        step_start = now
        now += base.embedding_s
        ready_next: dict[int, float] = {}
        for i in range(spec.num_layers):
            start = now
            stall = 0.0
            h2d_bytes = d2h_bytes = 0.0
            ready_here, ready_next = ready_next, {}
            target = engine.prefetch_target(i)
            n_prefetch = 0
            if target is not None:
                plan = engine.prefetch(target, trace.experts(s, target))
                n_prefetch = len(plan.loads)
                for load in plan.loads:
                    xfer = costs.h2d_s(eb)
                    busy += xfer
                    if async_copy:
                        h2d_free = max(h2d_free, start) + xfer
                        ready_next[load.expert] = h2d_free
                    else:
                        now += xfer
                        stall += xfer
                        ready_next[load.expert] = now
                    h2d_bytes += eb
            dense_end = now + base.layer_s[i]
            if not is_moe[i]:
                now = dense_end
                events.append(LayerEvent(s, i, False, start, now, base.layer_s[i], 0.0, 0.0,
                                         stall, h2d_bytes, 0.0, 0, 0, 0, n_prefetch))
                continue
            routed = trace.steps[s][i]
            counts = np.bincount(routed.ravel(), minlength=engine.num_experts)
            experts = np.nonzero(counts)[0]
            access = engine.access(i, experts, counts[experts])
            gpu_t = dense_end
            jobs = [(ready_here.get(e, 0.0) if e in access.prefetched else 0.0, e)
                    for e in access.hits]
            for load in access.loads:
                xfer = costs.h2d_s(eb)
                busy += xfer
                if async_copy:
                    h2d_free = max(h2d_free, dense_end) + xfer
                    jobs.append((h2d_free, load.expert))
                else:
                    gpu_t += xfer
                    stall += xfer
                    jobs.append((gpu_t, load.expert))
                h2d_bytes += eb
            gpu_expert = cpu_expert = 0.0
            for ready, e in sorted(jobs):
                if ready > gpu_t:
                    stall += ready - gpu_t
                    gpu_t = ready
                dt = costs.gpu_expert_s(int(counts[e]))
                gpu_t += dt
                gpu_expert += dt
            end = gpu_t
            if config.miss == MissMode.CPU and access.misses:
                down_b = costs.activation_bytes(int(np.isin(routed, access.misses)
                                                    .any(axis=1).sum()))
                up_b = costs.activation_bytes(int(sum(counts[e] for e in access.misses)))
                cpu_expert = sum(costs.cpu_expert_s(int(counts[e])) for e in access.misses)
                down, up = costs.d2h_s(down_b), costs.h2d_s(up_b)
                busy += down + up
                if concurrent:
                    d2h_free = max(d2h_free, dense_end) + down
                    cpu_done = d2h_free + cpu_expert
                    h2d_free = max(h2d_free, cpu_done) + up
                    if h2d_free > gpu_t:
                        stall += h2d_free - gpu_t
                    end = max(gpu_t, h2d_free)
                else:
                    stall += down + up
                    end = gpu_t + down + cpu_expert + up
                d2h_bytes += down_b
                h2d_bytes += up_b
            now = end
            events.append(LayerEvent(s, i, True, start, now, base.layer_s[i], gpu_expert,
                                     cpu_expert, stall, h2d_bytes, d2h_bytes, len(experts),
                                     len(access.hits), len(access.misses), n_prefetch))
        now += base.lm_head_s + base.overhead_s
        step_times.append(now - step_start)
    return events, step_times, busy


def _result(spec: ModelSpec, platform: Platform, precision: Precision, config: OffloadConfig,
            source: RoutingSource, engine: ExpertCacheEngine, costs: OffloadCosts,
            fp: OffloadFootprint, events: list[LayerEvent], step_times: list[float],
            transfer_s: float) -> OffloadResult:
    prefill_s = step_times[0]
    decode = step_times[1:]
    decode_s = float(np.mean(decode)) if decode else math.nan
    total = engine.total
    h2d = sum(e.h2d_bytes for e in events)
    d2h = sum(e.d2h_bytes for e in events)
    prompt = source.trace.prompt_tokens
    return OffloadResult(
        model=spec.name, hardware=platform.hardware.name, host=platform.host.name,
        platform=platform.description or f"{platform.hardware.name} + {platform.host.name}",
        precision=precision.describe(), policy=config.policy, miss=config.miss.value,
        capacity=config.capacity, prefetch=config.prefetch,
        prefetch_accuracy=config.prefetch_accuracy, routing=source.description,
        seed=config.seed, prompt_tokens=prompt, decode_steps=len(decode),
        prefill_s=prefill_s, decode_s_per_token=decode_s, decode_step_s=tuple(decode),
        tokens_per_s=1.0 / decode_s if decode_s > 0 else math.nan,
        prefill_tokens_per_s=prompt / prefill_s if prefill_s > 0 else 0.0,
        e2e_s=sum(step_times), hit_rate=total.hit_rate,
        prefill_hit_rate=engine.stats["prefill"].hit_rate,
        decode_hit_rate=engine.stats["decode"].hit_rate, token_hit_rate=total.token_hit_rate,
        measured_prefetch_accuracy=total.prefetch_accuracy, pcie_bytes=h2d + d2h,
        h2d_bytes=h2d, d2h_bytes=d2h, transfer_s=transfer_s,
        stall_s=sum(e.stall_s for e in events), dense_s=sum(e.dense_s for e in events),
        gpu_expert_s=sum(e.gpu_expert_s for e in events),
        cpu_expert_s=sum(e.cpu_expert_s for e in events), expert_bytes=costs.expert_bytes,
        gpu_memory_bytes=fp.need_bytes, gpu_usable_bytes=fp.usable_bytes, fits=fp.fits,
        stats={"prefill": engine.stats["prefill"].as_dict(),
               "decode": engine.stats["decode"].as_dict(), "total": total.as_dict()},
        timeline=tuple(events),
    )
