"""Request-level estimate for a static batch: TTFT, TPOT, E2E, throughput, MFU/MBU, memory.

A batch of ``batch`` requests, each with ``prompt`` input and ``output`` generated tokens
(``beam`` beams each), runs as one prefill step and ``output - 1`` decode steps over a growing
context (the first token comes out of the prefill). Conventions, as Splitwise's measurements
and vLLM's benchmark define them:

    TTFT = prefill latency;  TPOT = mean decode-step latency over the ``output - 1`` steps;
    E2E = TTFT + (output - 1) * TPOT;  output tokens/s = batch * output / E2E.

With ``intervals`` every time and throughput figure also gets an interval at a nominal level
(``intervals.ttft_s == [lo, hi]``, ``interval_level``): the figure re-derived under draws of
per-family error factors from the estimator's validation residuals (``estimates/intervals.py``).

With ``dp`` replicas the batch is split across them; with ``pp`` stages the batch runs as ``m``
micro-batches. The prefill fills and drains the pipeline once:
``TTFT = step(micro) + (m - 1) * slowest_stage(micro)``; decode runs in steady state, every
micro-batch advancing one token per round: ``TPOT = max(step(micro), m * slowest_stage(micro))``
(the serving simulator prices a pipelined round the same way).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from llmsim import checks, units
from llmsim.catalog import ModelSpec
from llmsim.catalog.cluster import Cluster
from llmsim.costmodel import (
    BatchShape,
    Deployment,
    Profile,
    StepCost,
    StepTimeModel,
    build_step_model,
    check_plan_args,
    pipeline,
    utilization,
)
from llmsim.costmodel.speculative import Speculation, speculative_step_model
from llmsim.errors import ConfigError, DoesNotFitError
from llmsim.estimates import intervals as iv
from llmsim.estimates.speculative import speculative_decode
from llmsim.memory import MemoryReport, analyze_memory, check_weights_fit
from llmsim.memory.draft import draft_memory
from llmsim.memory.footprint import DEFAULT_MEMORY_UTILIZATION, batch_fix, max_sequences

# Decode steps beyond this many are priced on an evenly spaced sample of contexts (the step time
# is piecewise-affine in the context, so the mean over a dense sample is exact to rounding).
_MAX_PRICED_DECODE_STEPS = 4096

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EstimateResult:
    """Result of :func:`estimate`. Times in seconds, sizes in bytes per device."""

    model: str
    hardware: str
    cluster: str
    num_gpus: int
    tp: int
    pp: int
    ep: int
    dp: int
    micro_batches: int
    precision: str
    batch: int
    prompt: int
    output: int
    beam: int
    ttft_s: float
    tpot_s: float
    e2e_s: float
    prefill_s: float
    decode_s: float
    output_tokens_per_s: float
    output_tokens_per_s_per_gpu: float
    input_tokens_per_s: float
    prefill_mfu: float
    decode_mbu: float
    decode_mfu: float
    weight_bytes_per_device: float
    kv_bytes_per_device: float
    activation_bytes_per_device: float
    peak_bytes_per_device: float
    usable_bytes_per_device: float
    max_kv_tokens_per_device: int
    fits: bool
    profile: str
    prefill_step: StepCost = field(repr=False)
    decode_step: StepCost = field(repr=False)
    memory: MemoryReport = field(repr=False)
    #: ``{figure: [lo, hi]}`` at ``interval_level`` (None unless asked for: ``intervals=``)
    intervals: dict[str, list[float]] | None = None
    interval_level: float | None = None
    #: what each family's factors were drawn from (own / transfer residuals, engine term)
    interval_basis: dict[str, str] | None = field(default=None, repr=False)
    #: the engine model whose fixed costs are included (``estimate --engine``), else None
    engine: dict[str, object] | None = field(default=None, repr=False)
    #: speculative decoding (None unless asked for: ``speculative=``): the proposer, its
    #: acceptance, tokens per step, the verification-step ITL, the speed-up, its memory
    speculative: dict[str, object] | None = None
    #: the step-time estimator that priced it (``costmodel/estimators``)
    estimator: str = "calibrated"

    def as_dict(self, layers: bool = True, ops: bool = False) -> dict[str, object]:
        """JSON-able dict; ``layers`` adds the per-layer breakdown (``ops``: with op detail).
        ``intervals``, ``interval_level`` and ``interval_basis`` appear when computed;
        ``op_sources`` (each source tag's share of the prefill and decode step time: ``table``,
        ``calibrated``, ...) when the estimator tags its ops (``table``, ``learned``)."""
        skip = ("prefill_step", "decode_step", "memory", "intervals", "interval_level",
                "interval_basis", "engine", "speculative")
        out: dict[str, object] = {
            k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip
        }
        if self.engine is not None:
            out["engine"] = self.engine
        if self.intervals is not None:
            out["intervals"] = self.intervals
            out["interval_level"] = self.interval_level
            out["interval_basis"] = self.interval_basis
        if self.speculative is not None:
            out["speculative"] = self.speculative
        out["bottleneck_layer"] = {
            "prefill": self.prefill_step.bottleneck.name,
            "decode": self.decode_step.bottleneck.name,
        }
        sources = self.op_sources()
        if sources:
            out["op_sources"] = sources
        out["time_by_op_kind_s"] = {
            "prefill": self.prefill_step.ops_by_kind(),
            "decode": self.decode_step.ops_by_kind(),
        }
        if layers:
            out["layers"] = {
                "prefill": [r.as_dict(with_ops=ops) for r in self.prefill_step.layers],
                "decode": [r.as_dict(with_ops=ops) for r in self.decode_step.layers],
            }
        return out

    def op_sources(self) -> dict[str, dict[str, float]]:
        """``{"prefill": {tag: share}, "decode": {...}}``: where each step's op time came from
        (AIConfigurator's ``[silicon]`` / ``[empirical]``); empty when no op is tagged (the
        roofline estimators)."""
        from llmsim.costmodel.estimators.repriced import source_shares

        steps = {"prefill": self.prefill_step, "decode": self.decode_step}
        if not any(o.source for s in steps.values() for layer in s.layers for o in layer.ops):
            return {}
        return {k: source_shares(s) for k, s in steps.items()}

    def summary_row(self) -> dict[str, object]:
        """Flat scalar fields (for tables and CSV)."""
        return {k: v for k, v in self.as_dict(layers=False).items() if not isinstance(v, dict)}


def _split(total: int, parts: int) -> int:
    return max(1, math.ceil(total / parts))


def estimate(model: str | ModelSpec, hardware: str | None = None, *, batch: int = 1,
             prompt: int = 512, output: int = 128, beam: int = 1,
             cluster: str | Cluster | None = None, num_gpus: int | None = None, tp: int = 1,
             pp: int = 1, ep: int = 1, dp: int = 1, micro_batches: int = 0,
             dtype: str | None = None, weight_dtype: str | None = None,
             act_dtype: str | None = None, kv_dtype: str | None = None,
             profile: Profile | str | None = None, efficiency: float | None = None,
             memory_utilization: float = DEFAULT_MEMORY_UTILIZATION,
             allow_overflow: bool = False,
             step_model: StepTimeModel | None = None, estimator: str = "calibrated",
             estimator_model: str | None = None,
             intervals: bool | iv.IntervalOptions = False,
             engine: str | None = None, expert_skew: float = 0.0,
             redundant_experts: int = 0, ep_kernel: str | None = None,
             two_batch_overlap: bool = False,
             speculative: Speculation | None = None,
             max_model_len: int | None = None) -> EstimateResult:
    """Estimate a static batch (see module docstring). Raises :class:`DoesNotFitError` when the
    batch does not fit, unless ``allow_overflow`` (then ``fits`` is False). ``estimator`` /
    ``estimator_model``: the step-time estimator (``costmodel/estimators``); ``intervals``:
    True (or :class:`~llmsim.estimates.intervals.IntervalOptions`) adds error bars.
    ``engine`` (``"vllm"``, ``"trtllm@1.0"``...): include that engine's fitted fixed costs
    (``llmsim.engines.profile``): every step gains ``step_overhead_s`` and the TTFT the
    per-request ``request_overhead_s`` (HTTP frontend, tokenisation, first token back).
    ``expert_skew``, ``redundant_experts``, ``ep_kernel``, ``two_batch_overlap``: large expert
    parallelism (``Deployment.resolve``); ``speculative``: decode steps speculate
    (``estimates/speculative.py``); ``max_model_len``: the context served, when beyond the
    model's trained one (the prompt + output must fit it; the KV cache and attention are priced
    at the lengths asked)."""
    batch, prompt, output, beam = (checks.whole(v, n) for n, v in (
        ("batch", batch), ("prompt", prompt), ("output", output), ("beam", beam)))
    memory_utilization = checks.number(memory_utilization, "memory_utilization", 0.05, 1.0)
    checks.flag(allow_overflow, "allow_overflow")
    if step_model is None:
        tp, pp, ep, dp, micro_batches, num_gpus = check_plan_args(
            model, tp, pp, ep, dp, micro_batches, num_gpus)
    unused = checks.unused_gpus(num_gpus, tp, pp, dp) if step_model is None else None
    if unused:  # the cluster is sized (node layout) by num_gpus; the plan uses fewer
        log.warning("%s", unused)
    sm = step_model or build_step_model(Deployment.resolve(
        model, hardware, cluster, num_gpus, tp, pp, ep, dp, micro_batches, dtype, weight_dtype,
        act_dtype, kv_dtype, profile, efficiency, estimator, estimator_model, expert_skew,
        redundant_experts, ep_kernel, two_batch_overlap))
    eng = None
    if engine is not None:
        from llmsim.engines import EngineStepModel, resolve_engine

        eng = resolve_engine(engine)
        sm = EngineStepModel(sm, eng.profile, eng.label)
    dep = sm.deployment
    if dep is None:
        raise ConfigError("estimate needs a step model of a deployment (a memory analysis)")
    spec, plan, cl, precision = dep.model, dep.plan, dep.cluster, dep.precision
    checks.context(prompt + output, spec.name, spec.max_position_embeddings, max_model_len,
                   "prompt + output", "--input-len or --output-len")
    check_weights_fit(spec, cl, plan, precision, memory_utilization)

    per_replica = _split(batch, plan.dp)
    if plan.micro_batches > per_replica:
        raise ConfigError(
            f"--micro-batches {plan.micro_batches} exceeds the {per_replica} sequences per "
            f"replica (batch {batch}, dp {plan.dp}); use at most --micro-batches {per_replica}")
    micro = plan.micro_batches or (min(plan.pp, per_replica) if plan.pp > 1 else 1)
    micro = max(1, min(micro, per_replica))
    per_micro = _split(per_replica, micro)
    seqs = per_micro * beam
    spec_model = None
    if speculative is not None:
        if beam > 1 or micro > 1 or intervals:
            raise ConfigError("speculative decoding is estimated without --beam, pipeline "
                              "micro-batches (--pp) or intervals; drop one or the other")
        spec_model = speculative_step_model(sm, speculative)

    # memory: every replica holds its sequences' KV (beams share the prompt's blocks)
    kv_tokens = per_replica * (prompt + beam * output)
    if speculative is not None:  # the k draft slots each sequence holds while it verifies
        kv_tokens += per_replica * speculative.num_tokens
    mem = analyze_memory(spec, cl, plan, precision, kv_tokens=kv_tokens,
                         max_tokens=per_micro * prompt, max_logits=per_micro * beam,
                         memory_utilization=memory_utilization)
    spec_info: dict[str, object] | None = None
    if speculative is not None:
        dmem = draft_memory(dep, speculative)
        extra = dmem.weight_bytes + kv_tokens * dmem.kv_bytes_per_token
        fits = mem.fits and mem.peak_bytes + extra <= mem.usable_bytes
        spec_info = {**speculative.describe(),
                     "draft_weight_bytes_per_device": dmem.weight_bytes,
                     "draft_kv_bytes_per_device": kv_tokens * dmem.kv_bytes_per_token,
                     "fits_with_draft": fits}
        if not fits and mem.fits and not allow_overflow:
            raise DoesNotFitError(
                f"the batch fits but the proposer's weights and KV "
                f"({units.fmt_bytes(extra)}) do not: {units.fmt_bytes(mem.peak_bytes + extra)} "
                f"of {units.fmt_bytes(mem.usable_bytes)} usable per GPU; lower --batch or "
                "raise --tp", need_bytes=mem.peak_bytes + extra, have_bytes=mem.usable_bytes)
    if not mem.fits and not allow_overflow:
        max_batch = plan.dp * max_sequences(spec, cl, plan, precision, prompt + beam * output,
                                            memory_utilization=memory_utilization,
                                            prefill_tokens=prompt, logits_per_seq=beam)
        hint = batch_fix(max_batch, spec, cl, plan, precision, mem.peak_bytes)
        alt = "" if precision.kv.bits <= 8 else " or --kv-dtype fp8"
        raise DoesNotFitError(
            f"batch {batch} x {prompt}+{output} tokens needs {units.fmt_bytes(mem.peak_bytes)} per "
            f"GPU (weights {units.fmt_bytes(mem.weight_bytes)}, KV {units.fmt_bytes(mem.kv_bytes)},"
            f" activations {units.fmt_bytes(mem.activation_bytes)} for the whole batch's prefill)"
            f" but one {cl.hardware.name} gives {units.fmt_bytes(mem.usable_bytes)} usable; "
            f"try {hint}{alt}",
            need_bytes=mem.peak_bytes, have_bytes=mem.usable_bytes,
        )

    prefill_shape = BatchShape.prefill(per_micro, prompt)
    prefill_step = sm.price(prefill_shape)
    ttft = pipeline.fill_s(sm.step_time(prefill_shape), sm.stage_time(prefill_shape), micro) \
        if micro > 1 else sm.step_time(prefill_shape)
    if spec_model is not None:  # the proposer prefills the prompt too
        prefill_step = spec_model.price(prefill_shape)
        ttft = spec_model.step_time(prefill_shape)
    if eng is not None:
        ttft += eng.profile.request_overhead_s

    steps = output - 1
    decode_shape = iv.decode_shape(seqs, prompt, steps)
    decode_step = sm.price(decode_shape)
    ctx = iv.decode_contexts(prompt, steps, _MAX_PRICED_DECODE_STEPS)
    if steps > 0:
        lat = sm.decode_step_times(seqs, ctx)
        if micro > 1:  # steady state: each micro-batch advances one token per round
            lat = pipeline.round_s(lat, sm.decode_stage_times(seqs, ctx).max(axis=0), micro)
        tpot = float(np.mean(lat))
    else:
        tpot = float("nan")  # one output token: no decode step (vLLM leaves TPOT undefined)
    if spec_model is not None and steps > 0 and spec_info is not None:
        sd = speculative_decode(sm, spec_model, seqs, prompt, steps, ctx)
        tpot = sd.tpot_s
        decode_shape = sd.verify_shape
        decode_step = spec_model.price(decode_shape)
        spec_info.update({"verification_steps": sd.steps, "itl_s": sd.itl_s,
                          "baseline_tpot_s": sd.baseline_tpot_s, "speedup": sd.speedup})
    decode_total = steps * tpot if steps > 0 else 0.0
    e2e = ttft + decode_total

    hw = cl.hardware
    gpus = plan.num_gpus
    prefill_mfu = utilization.mfu(prefill_step.flops * micro, ttft, dep)
    dec_time = (spec_model or sm).step_time(decode_shape)
    decode_mbu = utilization.mbu(decode_step.bytes, dec_time, dep)
    decode_mfu = utilization.mfu(decode_step.flops, dec_time, dep)
    out_tps = batch * output / e2e
    bounds, level, basis = None, None, None
    if intervals:
        opts = intervals if isinstance(intervals, iv.IntervalOptions) else iv.IntervalOptions()
        run = iv.StaticRun(prefill_step, micro, seqs, ctx, decode_step, steps, batch, prompt,
                           output, gpus, **({} if eng is None else {
                               "engine": eng.label,
                               "engine_step_s": float(eng.profile.step_overhead_s),
                               "engine_request_s": float(eng.profile.request_overhead_s)}))
        points = {"ttft_s": ttft, "_mid_s": dec_time, "prefill_mfu": prefill_mfu,
                  "decode_mbu": decode_mbu, "decode_mfu": decode_mfu}
        bounds, basis = iv.intervals(sm, run, points, opts)
        level = opts.level
    return EstimateResult(
        model=spec.name, hardware=hw.name, cluster=cl.name, num_gpus=gpus, tp=plan.tp,
        pp=plan.pp, ep=plan.ep, dp=plan.dp, micro_batches=micro,
        precision=precision.describe(), batch=batch,
        prompt=prompt, output=output, beam=beam, ttft_s=ttft, tpot_s=tpot, e2e_s=e2e,
        prefill_s=ttft, decode_s=decode_total, output_tokens_per_s=out_tps,
        output_tokens_per_s_per_gpu=out_tps / gpus, input_tokens_per_s=batch * prompt / ttft,
        prefill_mfu=prefill_mfu, decode_mbu=decode_mbu, decode_mfu=decode_mfu,
        weight_bytes_per_device=mem.weight_bytes, kv_bytes_per_device=mem.kv_bytes,
        activation_bytes_per_device=mem.activation_bytes,
        peak_bytes_per_device=mem.peak_bytes, usable_bytes_per_device=mem.usable_bytes,
        max_kv_tokens_per_device=mem.max_kv_tokens, fits=mem.fits,
        profile=dep.hardware_profile.describe(), prefill_step=prefill_step,
        decode_step=decode_step,
        memory=mem, intervals=bounds, interval_level=level, interval_basis=basis,
        engine=eng.describe() if eng is not None else None,
        speculative=spec_info,
        estimator=dep.estimator,
    )
