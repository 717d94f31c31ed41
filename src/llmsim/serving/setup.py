"""The set-up of a serving run: a ``SimulationConfig`` resolved into what the event loop needs.

:class:`ServingSetup` builds (or takes) the step model, resolves the engine (its scheduler,
default limits and fixed costs: ``llmsim.engines``), sizes each replica's KV cache from the
memory left beside the weights (or the offload tier), and marks the requests rejected at
arrival; :func:`scheduler_limits` and :func:`step_pricer` give the replicas' scheduler limits
and step pricer. ``simulator.py`` runs it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from llmsim.costmodel import StepTimeModel, build_step_model
from llmsim.errors import ConfigError, DoesNotFitError
from llmsim.serving.config import (
    DEFAULT_BATCH_WINDOW_S,
    DEFAULT_SWAP_SPACE_BYTES,
    Preemption,
    SimulationConfig,
    deployment_of,
)
from llmsim.serving.pricing import StepPricer
from llmsim.serving.request import RejectReason
from llmsim.serving.router import ROUTERS
from llmsim.serving.schedulers import SCHEDULERS, SchedulerLimits
from llmsim.workload.stream import Workload, build_workload

log = logging.getLogger(__name__)

DEFAULT_CHUNKED_BATCHED_TOKENS = 8192


class ServingSetup:
    """Everything resolved from the config before the run (step model, KV capacity...)."""

    def __init__(self, cfg: SimulationConfig, step_model: StepTimeModel | None = None,
                 workload: Workload | None = None):
        self.engine = None
        self.request_overhead_s = 0.0
        wl_cfg = cfg.workload
        if cfg.engine is not None:  # its scheduler, default limits and fitted profile
            cfg, self.engine = _resolve_engine(cfg)
            self.request_overhead_s = float(self.engine.profile.request_overhead_s)
            if wl_cfg.jitter_s is None:
                wl_cfg = wl_cfg.model_copy(update={"jitter_s": self.engine.profile.jitter_s})
        self.cfg = cfg
        self.workload = workload or build_workload(wl_cfg)
        self.scheduler_cls = SCHEDULERS.get(cfg.scheduler.name)
        self.router_cls = ROUTERS.get(cfg.parallelism.router)
        self.info: dict[str, Any] = {}
        self._resolve_step_model(step_model)
        self._resolve_token_limits()
        self._resolve_kv_blocks()
        par = cfg.parallelism
        self.gpus_per_replica = (self.deployment.afd.num_gpus(par.tp) if self.deployment
                                 is not None and self.deployment.afd is not None
                                 else par.tp * par.pp)
        self.num_gpus = self.gpus_per_replica * par.replicas

    def _resolve_step_model(self, step_model: StepTimeModel | None) -> None:
        """The step model a replica prices with: the given one or the deployment's kernels,
        under the engine's profile, with speculative decoding, beams and the expert cache."""
        cfg = self.cfg
        self.step_model: StepTimeModel = (step_model if step_model is not None
                                          else build_step_model(deployment_of(cfg)))
        if self.engine is not None:
            from llmsim.engines import EngineStepModel

            self.step_model = EngineStepModel(self.step_model, self.engine.profile,
                                              self.engine.label)
        self.deployment = self.step_model.deployment
        #: speculative decoding (``decoding`` section): the step model verifies k + 1 tokens
        #: per decode sequence, and a request's decode ticks are its verification steps
        self.speculation = cfg.decoding.speculation()
        self.output_tokens = self.workload.output_tokens  # tokens each request emits
        if self.speculation is not None:
            self._speculate(self.speculation)
        self.beam = cfg.decoding.beam
        if self.beam > 1:  # steps carry beam x decoding sequences
            from llmsim.costmodel.beams import BeamStepModel

            self.step_model = BeamStepModel(self.step_model, self.beam)
        self.expert_offload = None
        if cfg.expert_offload is not None:  # a GPU expert cache per replica (expert_offload.py)
            from llmsim.serving.expert_offload import ExpertOffload

            self.expert_offload = ExpertOffload(
                cfg.expert_offload, self.step_model, cfg.workload.seed, cfg.parallelism.tp,
                cfg.parallelism.pp, self.beam, self.speculation)

    def _resolve_token_limits(self) -> None:
        """``max_model_len`` (the config's, else the model's trained context) and the step's
        token budget ``max_batched`` (the config's; else 8192 for schedulers that chunk,
        at least the longest prompt for those that do not)."""
        cfg, sc = self.cfg, self.cfg.scheduler
        model_len = (self.deployment.model.max_position_embeddings
                     if self.deployment is not None else 1 << 20)
        self.max_model_len = int(cfg.model.max_model_len or model_len)
        if cfg.model.max_model_len and cfg.model.max_model_len > model_len:
            # engines serve beyond the trained context when told (vLLM --max-model-len with
            # rope scaling); the KV cache and attention are priced at the lengths served
            log.info("max_model_len %d is beyond the model's trained context of %d tokens",
                     cfg.model.max_model_len, model_len)
        chunks = self.scheduler_cls.chunks_prompts
        if sc.max_num_batched_tokens is not None:
            self.max_batched = int(sc.max_num_batched_tokens)
        elif chunks:
            self.max_batched = DEFAULT_CHUNKED_BATCHED_TOKENS
        else:  # vLLM v0 requires >= max_model_len; the longest prompt suffices here
            longest = int(self.workload.input_tokens.max()) if len(self.workload) else 1
            self.max_batched = max(DEFAULT_CHUNKED_BATCHED_TOKENS,
                                   min(self.max_model_len, longest))
        if chunks and self.max_batched < sc.max_num_seqs:
            raise ConfigError(f"max_num_batched_tokens ({self.max_batched}) must be >= "
                              f"max_num_seqs ({sc.max_num_seqs}) for chunked prefill "
                              "(every decoding sequence needs a token per step)")

    def _resolve_kv_blocks(self) -> None:
        """The KV cache of a replica in blocks (:meth:`_kv_capacity`), the watermark kept free
        at admission and the host blocks swap preemption may use."""
        sc = self.cfg.scheduler
        self.kv_bytes_per_token = 0.0
        self.kv_tokens = self._kv_capacity()
        self.num_blocks = self.kv_tokens // sc.block_size
        if self.num_blocks < 1:
            fix = ("raise --kv-capacity-tokens" if sc.kv_capacity_tokens is not None else
                   "raise --tp or --memory-utilization, or lower --max-num-batched-tokens")
            raise DoesNotFitError(f"no room for the KV cache: {self.kv_tokens} tokens is less "
                                  f"than one block of {sc.block_size}; {fix}")
        self.watermark_blocks = (int(sc.watermark_frac * self.num_blocks)
                                 if self.scheduler_cls.uses_watermark else 0)
        self.host_blocks = 0
        if sc.preemption == Preemption.SWAP and self.kv_bytes_per_token > 0:
            swap_bytes = (DEFAULT_SWAP_SPACE_BYTES if sc.swap_space_bytes is None
                          else sc.swap_space_bytes)
            self.host_blocks = int(swap_bytes // (sc.block_size * self.kv_bytes_per_token))

    # ------------------------------------------------------------------ resolution
    def _kv_capacity(self) -> int:
        sc, dep = self.cfg.scheduler, self.deployment
        if dep is None:
            if sc.kv_capacity_tokens is None:
                raise ConfigError("a step-time model without a deployment (no memory analysis) "
                                  "needs scheduler.kv_capacity_tokens")
            return int(sc.kv_capacity_tokens)
        from llmsim.memory import analyze_memory, check_weights_fit
        from llmsim.memory.draft import speculative_kv_tokens

        util = self.cfg.hardware.memory_utilization
        if dep.afd is not None and sc.kv_capacity_tokens is None:  # AFD: attention holds KV
            from llmsim.memory.afd import afd_kv_capacity_tokens

            tokens, self.info["memory"] = afd_kv_capacity_tokens(dep, util, self.max_batched,
                                                                 sc.max_num_seqs)
            return tokens
        if self.expert_offload is not None:
            return self._offload_kv_capacity(util)
        spec = dep.model
        check_weights_fit(spec, dep.cluster, dep.plan, dep.precision, util)
        mem = analyze_memory(spec, dep.cluster, dep.plan, dep.precision,
                             max_tokens=self.max_batched, max_logits=sc.max_num_seqs,
                             memory_utilization=util)
        self.kv_bytes_per_token = mem.kv_bytes_per_token
        if self.speculation is not None:  # the proposer's weights and KV, the draft slots
            max_kv = speculative_kv_tokens(dep, self.speculation, mem, sc.max_num_seqs)
            mem = replace(mem, max_kv_tokens=max_kv)
        self.info["memory"] = {"weight_bytes_per_gpu": mem.weight_bytes,
                               "activation_bytes_per_gpu": mem.activation_bytes,
                               "kv_bytes_per_token_per_gpu": mem.kv_bytes_per_token,
                               "max_kv_tokens": mem.max_kv_tokens}
        if sc.kv_capacity_tokens is not None:
            return int(sc.kv_capacity_tokens)
        if mem.max_kv_tokens < sc.block_size:
            raise DoesNotFitError(
                f"{spec.name} fits but leaves no KV cache on {dep.hardware.name} "
                f"(weights {mem.weight_bytes / 1e9:.1f} GB, activations "
                f"{mem.activation_bytes / 1e9:.1f} GB of {mem.usable_bytes / 1e9:.1f} GB usable); "
                f"raise --memory-utilization (now {util:g}) or --tp, use --dtype fp8 or lower "
                "--max-num-batched-tokens",
                need_bytes=mem.weight_bytes + mem.activation_bytes, have_bytes=mem.usable_bytes)
        return int(mem.max_kv_tokens)

    def _offload_kv_capacity(self, util: float) -> int:
        """KV tokens beside the expert cache (``expert_cache.gpu_memory.serving_footprint``)."""
        sc = self.cfg.scheduler
        assert self.expert_offload is not None
        fp = self.expert_offload.footprint(self.max_batched, sc.max_num_seqs, util)
        self.kv_bytes_per_token = fp.kv_bytes_per_token
        self.info["memory"] = {"expert_offload": fp.as_dict()}
        if sc.kv_capacity_tokens is not None:
            return int(sc.kv_capacity_tokens)
        if fp.max_kv_tokens < sc.block_size:
            raise DoesNotFitError(
                f"{self.deployment.model.name} with {self.expert_offload.config.capacity} "
                f"experts cached per layer leaves no KV cache on {self.deployment.hardware.name}"
                f" ({fp.cache_bytes / 1e9:.1f} GB cache, {fp.resident_weight_bytes / 1e9:.1f} GB"
                f" other weights of {fp.usable_bytes / 1e9:.1f} GB usable); lower "
                "--expert-cache-experts or raise --memory-utilization",
                need_bytes=fp.resident_weight_bytes + fp.cache_bytes,
                have_bytes=fp.usable_bytes)
        return int(fp.max_kv_tokens)

    def _speculate(self, spec: Any) -> None:
        """Verification steps as decode ticks: the step model prices each decode sequence as
        a draft pass plus a ``k + 1``-token verification; each request's output becomes its
        first token plus the verification steps that produce the rest, sampled per request
        with the workload seed (``Speculation.sample_steps``); ``output_tokens`` keeps the
        tokens it emits (TPOT and throughput count those)."""
        from llmsim.costmodel.speculative import speculative_step_model

        self.step_model = speculative_step_model(self.step_model, spec)
        wl = self.workload
        rng = np.random.default_rng(np.random.SeedSequence(self.cfg.workload.seed).spawn(7)[6])
        steps = spec.sample_steps(np.maximum(wl.output_tokens - 1, 0), rng)
        self.workload = replace(wl, output_tokens=np.where(wl.output_tokens > 0, 1 + steps,
                                                           wl.output_tokens))
        self.verification_steps = int(steps.sum())

    def reject_reasons(self) -> np.ndarray:
        """Per request: why it would be refused at arrival (0: admissible)."""
        wl, bs = self.workload, self.cfg.scheduler.block_size
        p, o = wl.input_tokens.astype(np.int64), wl.output_tokens.astype(np.int64)
        reason = np.zeros(len(p), dtype=np.int8)
        kv_blocks = -(-(p + o - 1) // bs)
        if self.beam > 1:  # the beams share the prompt's blocks, each holds its own output
            kv_blocks = -(-p // bs) + self.beam * -(-(o - 1) // bs)
        if not self.scheduler_cls.chunks_prompts:
            reason[p > self.max_batched] = RejectReason.BATCH_TOKENS
        reason[kv_blocks > self.num_blocks - self.watermark_blocks] = RejectReason.KV_CAPACITY
        reason[p + self.output_tokens > self.max_model_len] = RejectReason.CONTEXT_LENGTH
        return reason


def _resolve_engine(cfg: SimulationConfig) -> tuple[SimulationConfig, Any]:
    """The config with the engine's scheduler and default limits filled in, and the engine
    (its profile with the config's overrides)."""
    from dataclasses import replace

    from llmsim.engines import resolve_engine
    from llmsim.engines.profile import OVERRIDABLE
    from llmsim.serving.config import with_engine_defaults

    sec = cfg.engine
    assert sec is not None
    eng = resolve_engine(sec.name, sec.profile)
    over = {k: getattr(sec, k) for k in OVERRIDABLE if getattr(sec, k) is not None}
    if over:
        eng = replace(eng, profile=eng.profile.model_copy(update=over))
    return with_engine_defaults(cfg, dict(eng.spec.defaults), eng.spec.scheduler), eng


def scheduler_limits(setup: ServingSetup) -> SchedulerLimits:
    """What ``setup``'s schedulers plan under (its config's limits, resolved)."""
    sc = setup.cfg.scheduler
    window_s = DEFAULT_BATCH_WINDOW_S if sc.batch_window_s is None else sc.batch_window_s
    return SchedulerLimits(sc.max_num_seqs, setup.max_batched, setup.watermark_blocks,
                           window_s, sc.chunk_size_tokens or 0,
                           True if sc.mix_decodes is None else sc.mix_decodes)


def step_pricer(setup: ServingSetup) -> StepPricer:
    """The ``StepPricer`` of ``setup``'s replicas: its step model, PP micro-batches, and the
    host link that swaps KV."""
    cfg = setup.cfg
    link = setup.deployment.hardware.host_link if setup.deployment is not None else None
    micro = cfg.parallelism.micro_batches or cfg.parallelism.pp
    return StepPricer(setup.step_model, setup.max_model_len,
                      micro if cfg.parallelism.pp > 1 else 1, setup.kv_bytes_per_token,
                      link.bandwidth_bytes_per_s if link is not None else 0.0,
                      link.latency_s if link is not None else 0.0)
