"""The offload simulation: a prefill and ``D`` decode steps of one sequence (or of ``batch``
sequences decoded together), layer by layer.

Each step runs on one :class:`~llmsim.expert_cache.timeline.StepTimeline` (the clock, the H2D
and D2H copy engines and the CPU; the formula is there, shared with the serving simulator's
expert offload): step 0 prefills ``batch`` prompts, step ``s`` decodes one token of each of the
``batch`` sequences at context ``prompt + s``. The union of the experts the step's tokens pick
is what each MoE layer looks up in its cache.

Step time = end - start; decode time per token = mean over decode steps (one step yields a
token of every sequence of the batch); ``tokens_per_s = batch / decode_s_per_token``.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from llmsim.catalog import ModelSpec, default_host, get_hardware, get_host
from llmsim.costmodel import BatchShape, Precision, Profile
from llmsim.errors import ConfigError, DoesNotFitError
from llmsim.expert_cache.cache import ExpertCacheEngine
from llmsim.expert_cache.config import OffloadConfig, load_moe_model
from llmsim.expert_cache.costs import OffloadCosts, Platform
from llmsim.expert_cache.gpu_memory import OffloadFootprint, offload_footprint
from llmsim.expert_cache.result import LayerEvent, OffloadResult
from llmsim.expert_cache.routing import RoutingSource, RoutingTrace, resolve_routing
from llmsim.expert_cache.timeline import StepTimeline
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
              steps: int, batch: int = 1) -> OffloadFootprint:
    return offload_footprint(model, costs.cluster, costs.precision, config.capacity,
                             config.prefetch, batch * (prompt + steps), batch * prompt)


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
                  decode_steps: int, dtype: str | None = None, batch: int = 1,
                  max_model_len: int | None = None) -> int:
    """The largest per-layer cache capacity that fits the GPU (``--cache-capacity auto``), with
    the KV cache and activations of ``batch`` sequences.

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
                           batch * (prompt_tokens + decode_steps), batch * prompt_tokens)
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
             batch: int = 1, max_model_len: int | None = None, estimator: str = "calibrated",
             estimator_model: str | None = None) -> OffloadResult:
    """Simulate one sequence (prefill + decode) with an offloaded expert cache, or ``batch``
    sequences of the same length decoded together (one prefill step of all the prompts, then
    steps of one token each; the serving simulator's steps for ``batch`` requests that arrive
    together).

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
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    source = _routing_source(routing, spec, prompt_tokens, decode_steps, config.seed, batch)
    trace = source.trace
    prompt, steps = trace.prompt_tokens // trace.batch, trace.decode_steps
    check_context(spec, prompt, steps, max_model_len)
    fp = footprint(spec, costs, config, prompt, steps, trace.batch)
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
                    prompt: int | None, steps: int | None, seed: int,
                    batch: int = 1) -> RoutingSource:
    if isinstance(routing, RoutingSource):
        _check_batch(routing.trace, batch)
        return routing
    if isinstance(routing, RoutingTrace):
        _check_batch(routing, batch)
        routing.validate()
        if routing.moe_layers != tuple(_moe_layers(spec)) or \
                routing.num_experts != spec.moe.num_experts:  # type: ignore[union-attr]
            raise ConfigError("the routing trace does not match the model's MoE layers")
        trace = routing.truncated(steps) if steps is not None else routing
        return RoutingSource("trace", trace, trace.expert_counts())
    return resolve_routing(routing, spec, prompt, steps, seed, batch)


def _check_batch(trace: RoutingTrace, batch: int) -> None:
    if trace.batch != batch:
        raise ConfigError(f"the routing trace is of a batch of {trace.batch}, not {batch}")


def _moe_layers(spec: ModelSpec) -> list[int]:
    from llmsim.expert_cache.routing import moe_layer_indices

    return moe_layer_indices(spec)


def _run(spec: ModelSpec, costs: OffloadCosts, config: OffloadConfig,
         engine: ExpertCacheEngine, trace: RoutingTrace
         ) -> tuple[list[LayerEvent], list[float], float]:
    """Walk the steps on one :class:`StepTimeline` (see :mod:`~llmsim.expert_cache.timeline`):
    the prefill of ``batch`` prompts, then decode steps of ``batch`` tokens."""
    timeline = StepTimeline(costs, engine)
    batch = trace.batch
    prompt = trace.prompt_tokens // batch
    events: list[LayerEvent] = []
    step_times: list[float] = []
    for s in range(len(trace.steps)):
        shape = (BatchShape.prefill(batch, prompt) if s == 0
                 else BatchShape.decode(batch, prompt + s))
        outcome = timeline.run_step(s, costs.step_base(shape), trace.steps[s])
        events += outcome.events
        step_times.append(outcome.time_s)
    return events, step_times, timeline.transfer_s


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
    batch = source.trace.batch
    prompt = source.trace.prompt_tokens // batch
    return OffloadResult(
        model=spec.name, hardware=platform.hardware.name, host=platform.host.name,
        platform=platform.description or f"{platform.hardware.name} + {platform.host.name}",
        precision=precision.describe(), policy=config.policy, miss=config.miss.value,
        capacity=config.capacity, prefetch=config.prefetch,
        prefetch_accuracy=config.prefetch_accuracy, routing=source.description,
        seed=config.seed, prompt_tokens=prompt, decode_steps=len(decode),
        prefill_s=prefill_s, decode_s_per_token=decode_s, decode_step_s=tuple(decode),
        tokens_per_s=batch / decode_s if decode_s > 0 else math.nan,
        prefill_tokens_per_s=batch * prompt / prefill_s if prefill_s > 0 else 0.0,
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
        timeline=tuple(events), batch=batch,
    )
