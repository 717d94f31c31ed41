"""Run a simulation of a resolved set-up (``setup.py``): ``simulate(config) -> report``.

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
from typing import Any

import numpy as np

from llmsim.errors import ConfigError
from llmsim.serving.config import Preemption
from llmsim.serving.events import EventLoop
from llmsim.serving.kvcache import KVCache
from llmsim.serving.metrics import LogHistogram, ReplicaStats, TimeSeries
from llmsim.serving.pricing import StepPricer
from llmsim.serving.replica import PRIO_ARRIVAL, PRIO_SAMPLE, Replica, ReplicaConfig
from llmsim.serving.replica.itls import ItlLog, ItlReplica
from llmsim.serving.request import RequestStatus, RequestTable
from llmsim.serving.setup import ServingSetup, scheduler_limits, step_pricer

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


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
                                 reserve_full_kv=sc.preemption == Preemption.NONE,
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
            if (all(r.seg is None for r in self.replicas)  # a step in flight: live
                    and not self.loop.has_live_events()):
                raise ConfigError(self._stall_message(now))
            self.loop.schedule(max(self.ts.next_time(), now), PRIO_SAMPLE, self._on_sample)

    def _stall_message(self, now: float) -> str:
        """Why a run can go no further: requests wait, nothing runs and nothing will arrive
        (a waiting head that no step can ever take, e.g. a prompt recomputed after a
        preemption that no longer fits a scheduler's whole-prompt budget)."""
        t = self.table
        for r in self.replicas:
            if len(r.waiting):
                rid = r.waiting.peek()
                need = t.input_tokens[rid] + t.generated[rid]
                lim = r.scheduler.limits
                if r.scheduler.chunks_prompts or need <= lim.max_num_batched_tokens:
                    continue
                return (f"the simulation stalled at t = {now:.3f} s: {len(r.waiting)} requests "
                        f"wait on replica {r.index} and nothing runs; request {rid} needs "
                        f"{need} prompt tokens (recomputed after {t.preemptions[rid]} "
                        f"preemptions) in one step, over max_num_batched_tokens = "
                        f"{lim.max_num_batched_tokens}; raise --max-num-batched-tokens, use "
                        "--preemption none (admission reserves the whole KV) or a scheduler "
                        "that chunks prompts")
        return (f"the simulation stalled at t = {now:.3f} s with {self.n - self.done} "
                "requests unfinished and nothing left to run")

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


def _clear_histogram(hist: LogHistogram) -> None:
    """Empty the streamed ITL histogram in place (the replicas hold it): the warm-up's
    ITLs are left out. With closed-loop clients every warm-up request has finished by then
    (exact); with open-loop arrivals warm-up requests still running add their later ITLs."""
    hist.counts = [0.0] * hist.bins
    hist.count = 0.0
    hist.total = 0.0
    hist.vmax = 0.0
    hist.vmin = math.inf

