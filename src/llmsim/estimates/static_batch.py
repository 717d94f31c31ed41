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
from dataclasses import dataclass, field, replace
from typing import Any

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


@dataclass(frozen=True)
class EstimateOptions:
    """What :func:`estimate` is asked of a deployment, checked: ``batch`` requests of ``prompt``
    input and ``output`` generated tokens (``beam`` beams each), the share of GPU memory the
    engine may use, whether a batch that does not fit is priced anyway (``allow_overflow``),
    error bars (``intervals``: True or :class:`~llmsim.estimates.intervals.IntervalOptions`),
    speculative decoding and the context served (``max_model_len``: None, the model's)."""

    batch: int = 1
    prompt: int = 512
    output: int = 128
    beam: int = 1
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION
    allow_overflow: bool = False
    intervals: bool | iv.IntervalOptions = False
    speculative: Speculation | None = None
    max_model_len: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch", "prompt", "output", "beam"):
            object.__setattr__(self, name, checks.whole(getattr(self, name), name))
        object.__setattr__(self, "memory_utilization", checks.number(
            self.memory_utilization, "memory_utilization", 0.05, 1.0))
        checks.flag(self.allow_overflow, "allow_overflow")

    @property
    def steps(self) -> int:
        """Decode steps: the first output token comes out of the prefill."""
        return self.output - 1


@dataclass(frozen=True)
class DeploymentArgs:
    """The deployment :func:`estimate` prices when no step model is given: the arguments of
    :meth:`Deployment.resolve` after the model and hardware."""

    cluster: str | Cluster | None = None
    num_gpus: int | None = None
    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp: int = 1
    micro_batches: int = 0
    dtype: str | None = None
    weight_dtype: str | None = None
    act_dtype: str | None = None
    kv_dtype: str | None = None
    profile: Profile | str | None = None
    efficiency: float | None = None
    estimator: str = "calibrated"
    estimator_model: str | None = None
    expert_skew: float = 0.0
    redundant_experts: int = 0
    ep_kernel: str | None = None
    two_batch_overlap: bool = False

    def step_model(self, model: str | ModelSpec, hardware: str | None) -> StepTimeModel:
        """The plan checked (a warning when ``num_gpus`` sizes more GPUs than it uses), then
        the step model of the deployment."""
        tp, pp, ep, dp, micro, num_gpus = check_plan_args(
            model, self.tp, self.pp, self.ep, self.dp, self.micro_batches, self.num_gpus)
        unused = checks.unused_gpus(num_gpus, tp, pp, dp)
        if unused:  # the cluster is sized (node layout) by num_gpus; the plan uses fewer
            log.warning("%s", unused)
        return build_step_model(Deployment.resolve(
            model, hardware, self.cluster, num_gpus, tp, pp, ep, dp, micro, self.dtype,
            self.weight_dtype, self.act_dtype, self.kv_dtype, self.profile, self.efficiency,
            self.estimator, self.estimator_model, self.expert_skew, self.redundant_experts,
            self.ep_kernel, self.two_batch_overlap))


@dataclass(frozen=True)
class _Layout:
    """How the batch spreads: sequences per DP replica, pipeline micro-batches, sequences per
    micro-batch, and decode sequences per micro-batch (x beams)."""

    per_replica: int
    micro: int
    per_micro: int
    seqs: int

    @classmethod
    def of(cls, dep: Deployment, opts: EstimateOptions) -> _Layout:
        plan = dep.plan
        per_replica = _split(opts.batch, plan.dp)
        if plan.micro_batches > per_replica:
            raise ConfigError(
                f"--micro-batches {plan.micro_batches} exceeds the {per_replica} sequences per "
                f"replica (batch {opts.batch}, dp {plan.dp}); use at most --micro-batches "
                f"{per_replica}")
        micro = plan.micro_batches or (min(plan.pp, per_replica) if plan.pp > 1 else 1)
        micro = max(1, min(micro, per_replica))
        per_micro = _split(per_replica, micro)
        return cls(per_replica, micro, per_micro, per_micro * opts.beam)


@dataclass(frozen=True)
class _Times:
    """The priced steps and the figures derived from them."""

    prefill_step: StepCost
    ttft_s: float
    decode_step: StepCost
    decode_shape: BatchShape
    contexts: np.ndarray
    tpot_s: float
    decode_s: float
    decode_step_s: float  # the mid-context decode step (MBU / MFU)

    @property
    def e2e_s(self) -> float:
        return self.ttft_s + self.decode_s


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
    at the lengths asked). The arguments are gathered into :class:`EstimateOptions` and
    :class:`DeploymentArgs` (or ``step_model``) and priced by :func:`estimate_with`."""
    opts = EstimateOptions(batch, prompt, output, beam, memory_utilization, allow_overflow,
                           intervals, speculative, max_model_len)
    sm = step_model or DeploymentArgs(
        cluster, num_gpus, tp, pp, ep, dp, micro_batches, dtype, weight_dtype, act_dtype,
        kv_dtype, profile, efficiency, estimator, estimator_model, expert_skew,
        redundant_experts, ep_kernel, two_batch_overlap).step_model(model, hardware)
    return estimate_with(sm, opts, engine)


def estimate_with(step_model: StepTimeModel, opts: EstimateOptions,
                  engine: str | None = None) -> EstimateResult:
    """:func:`estimate` of ``opts`` on ``step_model`` (with ``engine``'s fixed costs): check
    the deployment, lay the batch out, size its memory, price the prefill and decode steps,
    and derive the figures (with their intervals)."""
    sm, eng = step_model, None
    if engine is not None:
        from llmsim.engines import EngineStepModel, resolve_engine

        eng = resolve_engine(engine)
        sm = EngineStepModel(sm, eng.profile, eng.label)
    dep = _checked_deployment(sm, opts)
    layout = _Layout.of(dep, opts)
    spec_model = _speculative_model(sm, opts, layout)
    mem, spec_info = _memory(dep, opts, layout)
    times = _price(sm, spec_model, opts, layout, spec_info)
    if eng is not None:
        times = replace(times, ttft_s=times.ttft_s + eng.profile.request_overhead_s)
    return _result(sm, dep, opts, layout, mem, times, spec_model, spec_info, eng)


def _checked_deployment(sm: StepTimeModel, opts: EstimateOptions) -> Deployment:
    """The step model's deployment, once the request fits its context and its weights fit."""
    dep = sm.deployment
    if dep is None:
        raise ConfigError("estimate needs a step model of a deployment (a memory analysis)")
    spec = dep.model
    checks.context(opts.prompt + opts.output, spec.name, spec.max_position_embeddings,
                   opts.max_model_len, "prompt + output", "--input-len or --output-len")
    check_weights_fit(spec, dep.cluster, dep.plan, dep.precision, opts.memory_utilization)
    return dep


def _speculative_model(sm: StepTimeModel, opts: EstimateOptions, layout: _Layout
                       ) -> StepTimeModel | None:
    """The speculating step model (None without ``speculative``)."""
    if opts.speculative is None:
        return None
    if opts.beam > 1 or layout.micro > 1 or opts.intervals:
        raise ConfigError("speculative decoding is estimated without --beam, pipeline "
                          "micro-batches (--pp) or intervals; drop one or the other")
    return speculative_step_model(sm, opts.speculative)


def _memory(dep: Deployment, opts: EstimateOptions, layout: _Layout
            ) -> tuple[MemoryReport, dict[str, object] | None]:
    """The memory per GPU (every replica holds its sequences' KV; beams share the prompt's
    blocks; speculation adds the draft slots and the proposer) and the speculation record;
    :class:`DoesNotFitError` when it does not fit, unless ``allow_overflow``."""
    spec, plan, cl, precision = dep.model, dep.plan, dep.cluster, dep.precision
    prompt, beam, speculative = opts.prompt, opts.beam, opts.speculative
    kv_tokens = layout.per_replica * (prompt + beam * opts.output)
    if speculative is not None:  # the k draft slots each sequence holds while it verifies
        kv_tokens += layout.per_replica * speculative.num_tokens
    mem = analyze_memory(spec, cl, plan, precision, kv_tokens=kv_tokens,
                         max_tokens=layout.per_micro * prompt,
                         max_logits=layout.per_micro * beam,
                         memory_utilization=opts.memory_utilization)
    spec_info: dict[str, object] | None = None
    if speculative is not None:
        dmem = draft_memory(dep, speculative)
        extra = dmem.weight_bytes + kv_tokens * dmem.kv_bytes_per_token
        fits = mem.fits and mem.peak_bytes + extra <= mem.usable_bytes
        spec_info = {**speculative.describe(),
                     "draft_weight_bytes_per_device": dmem.weight_bytes,
                     "draft_kv_bytes_per_device": kv_tokens * dmem.kv_bytes_per_token,
                     "fits_with_draft": fits}
        if not fits and mem.fits and not opts.allow_overflow:
            raise DoesNotFitError(
                f"the batch fits but the proposer's weights and KV "
                f"({units.fmt_bytes(extra)}) do not: {units.fmt_bytes(mem.peak_bytes + extra)} "
                f"of {units.fmt_bytes(mem.usable_bytes)} usable per GPU; lower --batch or "
                "raise --tp", need_bytes=mem.peak_bytes + extra, have_bytes=mem.usable_bytes)
    if not mem.fits and not opts.allow_overflow:
        raise _batch_does_not_fit(dep, opts, mem)
    return mem, spec_info


def _batch_does_not_fit(dep: Deployment, opts: EstimateOptions, mem: MemoryReport
                        ) -> DoesNotFitError:
    """What the batch needs per GPU, what one GPU gives, and what to change."""
    spec, plan, cl, precision = dep.model, dep.plan, dep.cluster, dep.precision
    prompt, output, beam = opts.prompt, opts.output, opts.beam
    max_batch = plan.dp * max_sequences(spec, cl, plan, precision, prompt + beam * output,
                                        memory_utilization=opts.memory_utilization,
                                        prefill_tokens=prompt, logits_per_seq=beam)
    hint = batch_fix(max_batch, spec, cl, plan, precision, mem.peak_bytes)
    alt = "" if precision.kv.bits <= 8 else " or --kv-dtype fp8"
    return DoesNotFitError(
        f"batch {opts.batch} x {prompt}+{output} tokens needs {units.fmt_bytes(mem.peak_bytes)} "
        f"per GPU (weights {units.fmt_bytes(mem.weight_bytes)}, KV "
        f"{units.fmt_bytes(mem.kv_bytes)}, activations {units.fmt_bytes(mem.activation_bytes)} "
        f"for the whole batch's prefill) but one {cl.hardware.name} gives "
        f"{units.fmt_bytes(mem.usable_bytes)} usable; try {hint}{alt}",
        need_bytes=mem.peak_bytes, have_bytes=mem.usable_bytes,
    )


def _price(sm: StepTimeModel, spec_model: StepTimeModel | None, opts: EstimateOptions,
           layout: _Layout, spec_info: dict[str, object] | None) -> _Times:
    """The prefill step (TTFT: the pipeline filled once) and the decode steps over the growing
    context (TPOT: their mean, a steady-state round per step with micro-batches; speculation
    replaces both with its own; ``spec_info`` gains the speculation's figures)."""
    micro, seqs, prompt, steps = layout.micro, layout.seqs, opts.prompt, opts.steps
    prefill_shape = BatchShape.prefill(layout.per_micro, prompt)
    prefill_step = sm.price(prefill_shape)
    ttft = pipeline.fill_s(sm.step_time(prefill_shape), sm.stage_time(prefill_shape), micro) \
        if micro > 1 else sm.step_time(prefill_shape)
    if spec_model is not None:  # the proposer prefills the prompt too
        prefill_step = spec_model.price(prefill_shape)
        ttft = spec_model.step_time(prefill_shape)

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
    return _Times(prefill_step, ttft, decode_step, decode_shape, ctx, tpot, decode_total,
                  (spec_model or sm).step_time(decode_shape))


def _result(sm: StepTimeModel, dep: Deployment, opts: EstimateOptions, layout: _Layout,
            mem: MemoryReport, t: _Times, spec_model: StepTimeModel | None,
            spec_info: dict[str, object] | None, eng: Any) -> EstimateResult:
    """The figures (throughput, MFU / MBU, intervals) and the result record."""
    spec, plan, cl, precision = dep.model, dep.plan, dep.cluster, dep.precision
    batch, prompt, output = opts.batch, opts.prompt, opts.output
    gpus = plan.num_gpus
    e2e = t.e2e_s
    prefill_mfu = utilization.mfu(t.prefill_step.flops * layout.micro, t.ttft_s, dep)
    decode_mbu = utilization.mbu(t.decode_step.bytes, t.decode_step_s, dep)
    decode_mfu = utilization.mfu(t.decode_step.flops, t.decode_step_s, dep)
    out_tps = batch * output / e2e
    bounds, level, basis = None, None, None
    if opts.intervals:
        bounds, basis, level = _intervals(sm, opts, layout, t, eng, gpus, {
            "ttft_s": t.ttft_s, "_mid_s": t.decode_step_s, "prefill_mfu": prefill_mfu,
            "decode_mbu": decode_mbu, "decode_mfu": decode_mfu})
    return EstimateResult(
        model=spec.name, hardware=cl.hardware.name, cluster=cl.name, num_gpus=gpus,
        tp=plan.tp, pp=plan.pp, ep=plan.ep, dp=plan.dp, micro_batches=layout.micro,
        precision=precision.describe(), batch=batch, prompt=prompt, output=output,
        beam=opts.beam, ttft_s=t.ttft_s, tpot_s=t.tpot_s, e2e_s=e2e, prefill_s=t.ttft_s,
        decode_s=t.decode_s, output_tokens_per_s=out_tps,
        output_tokens_per_s_per_gpu=out_tps / gpus, input_tokens_per_s=batch * prompt / t.ttft_s,
        prefill_mfu=prefill_mfu, decode_mbu=decode_mbu, decode_mfu=decode_mfu,
        weight_bytes_per_device=mem.weight_bytes, kv_bytes_per_device=mem.kv_bytes,
        activation_bytes_per_device=mem.activation_bytes,
        peak_bytes_per_device=mem.peak_bytes, usable_bytes_per_device=mem.usable_bytes,
        max_kv_tokens_per_device=mem.max_kv_tokens, fits=mem.fits,
        profile=dep.hardware_profile.describe(), prefill_step=t.prefill_step,
        decode_step=t.decode_step, memory=mem, intervals=bounds, interval_level=level,
        interval_basis=basis, engine=eng.describe() if eng is not None else None,
        speculative=spec_info, estimator=dep.estimator,
    )


def _intervals(sm: StepTimeModel, opts: EstimateOptions, layout: _Layout, t: _Times, eng: Any,
               gpus: int, points: dict[str, float]
               ) -> tuple[dict[str, list[float]], dict[str, str], float]:
    """``(bounds, basis, level)``: every figure re-derived under factor draws
    (``estimates/intervals.py``; an engine's fixed costs added to both ends)."""
    options = opts.intervals if isinstance(opts.intervals, iv.IntervalOptions) \
        else iv.IntervalOptions()
    run = iv.StaticRun(t.prefill_step, layout.micro, layout.seqs, t.contexts, t.decode_step,
                       opts.steps, opts.batch, opts.prompt, opts.output, gpus,
                       **({} if eng is None else {
                           "engine": eng.label,
                           "engine_step_s": float(eng.profile.step_overhead_s),
                           "engine_request_s": float(eng.profile.request_overhead_s),
                           "engine_prefill_factor": float(eng.profile.prefill_step_factor)}))
    bounds, basis = iv.intervals(sm, run, points, options)
    return bounds, basis, options.level
