"""Build a simulation from a ``SimulationConfig`` and run it: ``simulate(config) -> report``.

Wiring: the workload (``workload.py``) feeds arrivals into the event loop (``events.py``), one
pending arrival at a time (memory flat in the number of requests); the router (``router.py``)
sends each admitted request to a replica (``replica/``), whose scheduler (``schedulers/``)
plans steps that the ``StepTimeModel`` prices (``pricing.py``; decode runs in closed form:
``decoderuns.py``). A request is *rejected* at arrival -- counted, never a crash -- when its
input + output exceed the model context (``max_model_len``), when its KV cache alone cannot
fit a replica, or (schedulers that do not chunk prompts) when its prompt exceeds
``max_num_batched_tokens``. A model that does not fit raises
:class:`~llmsim.errors.DoesNotFitError` before the run.
"""

from __future__ import annotations

import logging
import math
import time
from array import array
from collections.abc import Callable
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
from llmsim.serving.events import EventLoop
from llmsim.serving.kvcache import KVCache
from llmsim.serving.metrics import LogHistogram, ReplicaStats, TimeSeries
from llmsim.serving.pricing import StepPricer
from llmsim.serving.replica import PRIO_ARRIVAL, PRIO_SAMPLE, Replica, ReplicaConfig
from llmsim.serving.replica.itls import ItlLog, ItlReplica
from llmsim.serving.request import RejectReason, RequestStatus, RequestTable
from llmsim.serving.router import ROUTERS
from llmsim.serving.schedulers import SCHEDULERS, SchedulerLimits
from llmsim.workload.stream import Workload, build_workload

log = logging.getLogger(__name__)

DEFAULT_CHUNKED_BATCHED_TOKENS = 8192
ProgressFn = Callable[[int, int], None]


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
        sc, par = cfg.scheduler, cfg.parallelism
        self.scheduler_cls = SCHEDULERS.get(sc.name)
        self.router_cls = ROUTERS.get(par.router)
        self.info: dict[str, Any] = {}
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
        self.gpus_per_replica = (self.deployment.afd.num_gpus(par.tp) if self.deployment
                                 is not None and self.deployment.afd is not None
                                 else par.tp * par.pp)
        self.num_gpus = self.gpus_per_replica * par.replicas

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


class Simulation:
    """One run: event loop, replicas, arrivals and sampling.

    Builds one :class:`~llmsim.serving.replica.ReplicaConfig` and one scheduler and KV cache
    per replica; the replicas share the event loop, the request table, the step pricer and the
    ITL histogram. After :meth:`run`, :meth:`replica_stats` gives their records."""

    def __init__(self, setup: ServingSetup, progress: ProgressFn | None = None,
                 closed_form: bool = True):
        self._init_run(setup, progress)
        if getattr(setup, "expert_offload", None) is not None:
            closed_form = False  # stateful pricing: every step priced one by one
        seeds = np.random.SeedSequence(setup.cfg.workload.seed).spawn(6)
        self.router = setup.router_cls(np.random.default_rng(seeds[5]))
        self.pricer = step_pricer(setup)
        self.replicas = self._build_replicas(setup, closed_form, self._on_finish,
                                             self._next_arrival)

    def _init_run(self, setup: ServingSetup, progress: ProgressFn | None) -> None:
        """What every run has whatever its replicas: the request table, the event loop, the
        ITL histogram, the time series and the clients' state (arrivals, closed loops,
        warm-up)."""
        self.setup = setup
        cfg = setup.cfg
        wl = setup.workload
        self.n = len(wl)
        # the workload's token counts, send times and priorities move into the table (its
        # arrays become views of the table's narrow columns); each request's reject reason
        # is filled in up front (applied at its arrival)
        self.table = RequestTable.from_setup(setup, cfg.parallelism.replicas)
        self.reasons = self.table.reject_reason
        self.loop = EventLoop()
        self.hist = LogHistogram()
        self.trace_steps: list | None = [] if cfg.metrics.chrome_trace else None
        self.itl_log: ItlLog | None = None
        self.offload_pricers: list = []  # expert offload: every replica's own pricer
        span = float(wl.arrival_s[-1]) if self.n else 0.0
        interval = cfg.metrics.sample_interval_s or max(span / 2000.0, 0.01)
        self.ts = TimeSeries(interval, cfg.metrics.max_timeseries_points)
        self.progress = progress
        self.progress_every = max(1, self.n // 200)
        self.concurrency = wl.concurrency
        self.think_s = wl.think_time_s
        # warm-up: the first requests run unmeasured; closed loops send the measured ones
        # only once every warm-up request is done (aiperf's phases)
        self.warmup = wl.warmup_requests
        self.warm_left = wl.warmup_requests if wl.concurrency else 0
        # a send reaches the engine's queue after its jitter and the engine's frontend cost
        self.jitter = None  # 8 B each, Python floats when read (no per-request objects)
        if wl.jitter_s is not None:
            self.jitter = array("d", [0.0]) * self.n
            np.frombuffer(self.jitter, dtype=np.float64)[:] = wl.jitter_s
            wl.jitter_s = np.frombuffer(self.jitter, dtype=np.float64)  # one copy, not two
        self.frontend_s = setup.request_overhead_s
        self.delayed = self.jitter is not None or self.frontend_s > 0
        # with an engine, the measured phase's first sends spread over a warm-up request's
        # duration (the profile's client_phase_spread; llmsim/engines/profile.py says why)
        prof = setup.engine.profile if setup.engine is not None else None
        self.phase_spread = float(prof.client_phase_spread) if (
            prof is not None and self.warm_left) else 0.0
        seeds = np.random.SeedSequence(setup.cfg.workload.seed).spawn(6)  # as __init__'s
        self.phase_rng = np.random.default_rng(seeds[5].spawn(1)[0])
        self.in_flight = 0
        self.blocked: int | None = None
        self.done = 0
        self.arrived = 0
        self.rejected = 0
        self.completed = 0
        self.end_s = 0.0
        self.wall_s = 0.0
        self.max_kv_used_frac = 0.0
        self.next_arrival_s = math.inf

    def _build_replicas(self, setup: ServingSetup, closed_form: bool,
                        on_finish: Callable[[int, float], None],
                        next_arrival: Callable[[], float] | None, first_index: int = 0,
                        replica_cls: type[Replica] = Replica,
                        pricer: StepPricer | None = None,
                        table: RequestTable | None = None) -> list[Replica]:
        """``setup``'s replicas (``parallelism.replicas`` of them, numbered from
        ``first_index``), sharing this run's loop, ITL histogram and trace; ``pricer`` and
        ``table``: theirs (default: the run's)."""
        cfg, wl, sc = setup.cfg, setup.workload, setup.cfg.scheduler
        limits = scheduler_limits(setup)
        extra: dict[str, Any] = {}
        if cfg.metrics.save_itls:  # per-token logging only when asked (replica/itls.py)
            self.itl_log = ItlLog(cfg.parallelism.replicas)
            replica_cls, extra = ItlReplica, {"itl_log": self.itl_log}
        configs = [ReplicaConfig(index=first_index + i, limits=limits, order=sc.order,
                                 swap_enabled=sc.preemption == Preemption.SWAP,
                                 closed_form=closed_form, multi_phase=not wl.concurrency,
                                 trace_limit=cfg.metrics.max_trace_steps,
                                 beam=setup.beam)
                   for i in range(cfg.parallelism.replicas)]
        base = pricer or self.pricer
        offload = getattr(setup, "expert_offload", None)
        #: one pricer per replica: the shared one, or (expert offload) each its own caches
        pricers = [base if offload is None else offload.pricer(base, rc.index, self._now)
                   for rc in configs]
        if offload is not None:
            self.offload_pricers.extend(pricers)
        return [
            replica_cls(rc, setup.scheduler_cls(limits),
                        KVCache(setup.num_blocks, sc.block_size, sc.prefix_caching,
                                setup.host_blocks),
                        loop=self.loop, table=self.table if table is None else table,
                        workload=wl,
                        pricer=pricers[i], itl_hist=self.hist, on_finish=on_finish,
                        next_arrival=next_arrival, trace_steps=self.trace_steps, **extra)
            for i, rc in enumerate(configs)
        ]

    # ------------------------------------------------------------------ handlers
    def _now(self) -> float:
        return self.loop.now_s

    def _next_arrival(self) -> float:
        return self.next_arrival_s

    def _on_arrival(self, now: float, rid: int) -> None:
        self.next_arrival_s = math.inf
        if self.concurrency and (self.in_flight >= self.concurrency
                                 or (self.warm_left and rid == self.warmup)):
            self.blocked = rid
            return
        if rid == self.warmup and rid:  # the first measured request: ITLs from here on
            _clear_histogram(self.hist)
        nxt = rid + 1
        if nxt < self.n:
            when = self.table.arrival_s[nxt]
            if when < now:
                when = now
            self.next_arrival_s = when
            self.loop.schedule(when, PRIO_ARRIVAL, self._on_arrival, nxt)
        # send it (its arrival time is when it is sent: closed loops send late)
        t = self.table
        if self.jitter is not None:
            now += self.jitter[rid]  # the client's send is late by its jitter
        t.arrival_s[rid] = now
        self.arrived += 1
        reason = self.reasons[rid]
        if reason:
            t.transition(rid, RequestStatus.REJECTED)
            t.reject_reason[rid] = reason
            self.rejected += 1
            if rid < self.warmup and self.warm_left:
                self.warm_left -= 1
            self._done(now)
            return
        self.in_flight += 1
        if self.delayed:
            self.loop.schedule(now + self.frontend_s, PRIO_ARRIVAL, self._enqueue, rid)
            return
        self._enqueue(now, rid)

    def _enqueue(self, now: float, rid: int) -> None:
        """The request reaches the engine: route it and queue it."""
        reps = self.replicas
        if len(reps) > 1:
            reps[self.router.route(rid, reps)].enqueue(rid, now)
        else:
            reps[0].enqueue(rid, now)

    def _on_finish(self, rid: int, now: float) -> None:
        self.in_flight -= 1
        self.completed += 1
        if self.warm_left and rid < self.warmup:
            self.warm_left -= 1
        if self.blocked is None and self.progress is None:  # the common case of _done
            self.done += 1
            if now > self.end_s:
                self.end_s = now
        else:
            self._done(now)

    def _done(self, now: float) -> None:
        self.done += 1
        if now > self.end_s:
            self.end_s = now
        if self.blocked is not None and (not self.concurrency or (
                self.in_flight < self.concurrency
                and not (self.warm_left and self.blocked == self.warmup))):
            rid, self.blocked = self.blocked, None
            if self.phase_spread and rid == self.warmup:
                self._spread_phase()
            when = max(self.table.arrival_s[rid], now + self.think_s, self.loop.now_s)
            self.loop.schedule(when, PRIO_ARRIVAL, self._on_arrival, rid)
        if self.progress is not None and (self.done % self.progress_every == 0
                                          or self.done == self.n):
            self.progress(self.done, self.n)

    def _spread_phase(self) -> None:
        """Delay the measured phase's first ``concurrency`` sends by seeded ``U(0, S)``,
        ``S = client_phase_spread x`` the mean warm-up request duration: the clients start the
        measured phase out of phase instead of as one cohort."""
        t, w = self.table, self.warmup
        e2e = np.asarray(t.finish_s[:w], dtype=float) - np.asarray(t.arrival_s[:w], dtype=float)
        e2e = e2e[np.isfinite(e2e)]
        if not len(e2e):
            return
        k = min(self.concurrency, self.n - w)
        delay = self.phase_rng.uniform(0.0, self.phase_spread * float(e2e.mean()), size=k)
        if self.jitter is None:
            self.jitter, self.delayed = [0.0] * self.n, True
        for i in range(k):
            self.jitter[w + i] += float(delay[i])

    def _on_sample(self, now: float, _payload: Any) -> None:
        samples = [r.sample(now) for r in self.replicas]
        waiting = sum(s.waiting for s in samples)
        pending = sum(s.finished_in_flight for s in samples)
        running = sum(s.running for s in samples) - pending
        swapped = sum(s.swapped for s in samples)
        kv = sum(s.kv_used_blocks for s in samples) / sum(s.kv_total_blocks for s in samples)
        if kv > self.max_kv_used_frac:
            self.max_kv_used_frac = kv
        out = sum(s.output_tokens for s in samples)
        self.ts.append(now, (
            waiting, running, swapped, self.arrived - self.done - pending, kv,
            self.completed + pending, out,
            sum(s.prefill_tokens for s in samples), sum(s.busy_s for s in samples)))
        if self.done < self.n:
            self.loop.schedule(max(self.ts.next_time(), now), PRIO_SAMPLE, self._on_sample)

    def replica_stats(self) -> list[ReplicaStats]:
        """Every replica's record (index order): what the report is made of."""
        return [r.stats() for r in self.replicas]

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        t0 = time.perf_counter()
        if self.n:
            self.loop.schedule(self.table.arrival_s[0], PRIO_ARRIVAL, self._on_arrival, 0)
            self.loop.schedule(0.0, PRIO_SAMPLE, self._on_sample)
        self.loop.run()
        self.wall_s = time.perf_counter() - t0
        if self.done != self.n:
            raise RuntimeError(f"simulation ended with {self.n - self.done} requests "
                               "unaccounted for")
        self.table.release_engine_state()  # memory: the report needs the output columns only
        log.info("simulated %d requests (%d events) in %.2f s", self.n,
                 self.loop.num_events, self.wall_s)


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


def _clear_histogram(hist: LogHistogram) -> None:
    """Empty the streamed ITL histogram in place (the replicas hold it): the warm-up's
    ITLs are left out. With closed-loop clients every warm-up request has finished by then
    (exact); with open-loop arrivals warm-up requests still running add their later ITLs."""
    hist.counts = [0.0] * hist.bins
    hist.count = 0.0
    hist.total = 0.0
    hist.vmax = 0.0
    hist.vmin = math.inf

