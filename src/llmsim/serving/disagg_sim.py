"""Prefill/decode disaggregation (xPyD) in the serving simulation: two replica kinds, the KV
cache moved between them as events.

A request's life (each step an event on the one loop; config: ``serving/disagg_config.py``)::

    arrival --router--> prefill instance: queued, prompt prefilled (its own plan, limits,
        hardware, scheduler), first token computed; the request leaves the prefill instance
        there, which keeps the prompt's KV blocks until the transfer ends
    --router--> decode instance: KV blocks for prompt + 1 tokens reserved as soon as they fit
        (FIFO per decode instance, above the scheduler's watermark, between two of its steps
        as engine schedulers allocate; the request waits otherwise: ``decode_kv_wait_s``)
    --transfer--> KV over the link (``disagg.kv_transfer``: per decode GPU
        ``prompt x kv_bytes_per_token_per_device(decode layout)`` bytes at 0.9 of the link plus
        its latency; with layer-wise sends and no wait, only ``max(T - t_prefill (L-1)/L, T/L)``
        shows after the prefill; transfers into one decode instance share its link one after
        the other: ``decode_kv_wait_s`` also counts the wait for the link); at arrival the
        prefill instance frees its blocks and the first token reaches the client
    --> decode instance: queued with the prompt's KV present (``computed = prompt``: the
        engines' "external computed tokens"), admitted by its scheduler into the reserved
        blocks (``decode_admission_wait_s``), then decodes the remaining ``output - 1`` tokens.

TTFT = arrival -> the first token reaching the client, which is when the KV has arrived: SGLang
sends the prefill's first token with the KV and the decode server streams it; vLLM's
disaggregated proxy runs the prefill with ``max_tokens=1`` and streams every token from the
decode instance (its first token one decode step later; not modelled). TPOT / ITL come from
the decode steps (the first gap: first token -> the decode instance's first token). A
1-token output finishes on its prefill instance (no transfer).

Routers (``parallelism.router``, as the aggregated run): one picks a prefill instance at
arrival (by its queued + running requests), a second, independently seeded, a decode instance
when the prefill ends (its requests plus those whose KV is on its way).
A worker with ``dp`` attention-DP ranks is ``dp`` replicas of ``tp x pp`` GPUs, each pricing
its own batch with the DP/EP plan (ranks run independently: their lock-step is not modelled).
Modules: ``disagg_config`` (the config section), ``disagg_setup`` (the pools resolved),
``disagg_decode`` (the decode replica), this one (the run and its report).
Preempted decodes recompute on the decode instance. Not modelled: prefix caching on decode
instances, speculative decoding / beam search, MFU/MBU (per pool work fits).
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np

from llmsim.disagg.kv_transfer import exposed_transfer_s
from llmsim.serving.config import SimulationConfig
from llmsim.serving.disagg_decode import DecodeReplica
from llmsim.serving.disagg_setup import DisaggSetup
from llmsim.serving.metrics import dist_stats, replica_summary
from llmsim.serving.replica import PRIO_ARRIVAL
from llmsim.serving.request import RequestStatus, RequestTable
from llmsim.serving.results import SimulationReport
from llmsim.serving.setup import step_pricer
from llmsim.serving.simulator import ProgressFn, Simulation

_WAITING, _RUNNING, _FINISHED = (int(RequestStatus.WAITING), int(RequestStatus.RUNNING),
                                 int(RequestStatus.FINISHED))


class DisaggSimulation(Simulation):
    """An xPyD run (module docstring): the clients, arrivals, closed loop and warm-up of
    :class:`Simulation`; prefill replicas on a table of 1-token requests, decode replicas on
    a table of ``prompt + 1``-token requests with ``output - 1`` to generate; the run's own
    table holds what the client sees."""

    def __init__(self, setup: DisaggSetup, progress: ProgressFn | None = None,
                 closed_form: bool = True):
        wl = setup.workload
        p = np.asarray(wl.input_tokens, dtype=np.int64)
        o = np.asarray(wl.output_tokens, dtype=np.int64)
        self.ptable = RequestTable(p, np.ones_like(o), wl.arrival_s, wl.priority)
        self.dtable = RequestTable(p + 1, np.maximum(o - 1, 0), wl.arrival_s, wl.priority)
        self._init_run(setup, progress)  # type: ignore[arg-type]
        seeds = np.random.SeedSequence(setup.cfg.workload.seed).spawn(8)
        self.router = setup.router_cls(np.random.default_rng(seeds[5]))
        self.decode_router = setup.router_cls(np.random.default_rng(seeds[7]))
        pre, dec = setup.prefill, setup.decode
        self.pricer = step_pricer(pre)
        self.prefill = self._build_replicas(pre, closed_form, self._on_prefill_done,
                                            self._next_arrival, table=self.ptable)
        self.decode: list[DecodeReplica] = self._build_replicas(  # type: ignore[assignment]
            dec, closed_form, self._on_decode_done, None, len(self.prefill), DecodeReplica,
            step_pricer(dec), self.dtable)
        for d in self.decode:
            d.on_room = self._reserve
        self.replicas = [*self.prefill, *self.decode]
        self.pbs, self.dbs = pre.cfg.scheduler.block_size, dec.cfg.scheduler.block_size
        self.dwatermark = dec.watermark_blocks
        self.held: dict[int, int] = {}  # prefill blocks kept until the transfer ends
        n = self.n
        self.ready_s = array("d", [math.nan]) * n  # prefill end
        self.kv_wait_s = array("d", [math.nan]) * n  # prefill end -> decode blocks reserved
        self.kv_xfer_s = array("d", [math.nan]) * n  # reserved -> KV arrived
        self.kv_samples = 0
        self.kv_frac_sum = [0.0, 0.0]

    # ------------------------------------------------------------------ handlers
    def _enqueue(self, now: float, rid: int) -> None:
        """The request reaches a prefill instance (the router's pick)."""
        self.table.transition(rid, _WAITING)
        self.ptable.arrival_s[rid] = now
        reps = self.prefill
        i = self.router.route(rid, reps) if len(reps) > 1 else 0
        reps[i].enqueue(rid, now)

    def _on_prefill_done(self, rid: int, now: float) -> None:
        """The prompt is prefilled and the first token computed: hold its KV, pick a decode
        instance, reserve there (or wait)."""
        t, pt = self.table, self.ptable
        t.transition(rid, _RUNNING)
        t.first_scheduled_s[rid] = pt.first_scheduled_s[rid]
        t.cached_tokens[rid] = pt.cached_tokens[rid]
        if t.output_tokens[rid] <= 1:  # nothing to decode: done where it is
            t.first_token_s[rid] = t.finish_s[rid] = now
            t.replica[rid] = pt.replica[rid]
            t.preemptions[rid] = pt.preemptions[rid]
            t.transition(rid, _FINISHED)
            self._on_finish(rid, now)
            return
        kv = self.prefill[pt.replica[rid]].kv
        hold = min(-(-t.input_tokens[rid] // self.pbs), kv.available)
        kv.allocate(hold)
        self.held[rid] = hold
        self.ready_s[rid] = now
        reps = self.decode
        d = reps[self.decode_router.route(rid, reps) if len(reps) > 1 else 0]
        d.incoming += 1
        d.pending.append(rid)
        d.want_room(now)

    def _reserve(self, d: DecodeReplica, now: float) -> None:
        """Reserve decode blocks for the pending requests in order while they fit, and start
        their transfers."""
        t, kv = self.table, d.kv
        while d.pending and not d.recomputes_waiting:
            rid = d.pending[0]
            need = -(-(t.input_tokens[rid] + 1) // self.dbs)
            if not kv.can_allocate(need, self.dwatermark):
                return
            d.pending.popleft()
            kv.allocate(need)
            d.kv_in[rid] = need
            self._transfer(d, rid, now)

    def _transfer(self, d: DecodeReplica, rid: int, now: float) -> None:
        """Start moving ``rid``'s KV into ``d`` (after the link's previous transfer)."""
        setup: DisaggSetup = self.setup  # type: ignore[assignment]
        ready = self.ready_s[rid]
        full = setup.transfer_s(self.table.input_tokens[rid])
        start = max(now, d.link_free_s)
        if start <= ready:  # sent layer by layer while the prefill ran
            pt = self.ptable
            shown = exposed_transfer_s(full, pt.first_token_s[rid] - pt.first_scheduled_s[rid],
                                       setup.num_layers, setup.link.layerwise)
        else:
            shown = full
        done = start + shown
        d.link_free_s = done
        self.kv_wait_s[rid] = start - ready
        self.kv_xfer_s[rid] = shown
        self.loop.schedule(done, PRIO_ARRIVAL, self._on_kv_arrived, (rid, d))

    def _on_kv_arrived(self, now: float, payload: tuple[int, DecodeReplica]) -> None:
        """The KV is on the decode instance: the prefill instance frees its copy, the first
        token reaches the client, the request queues at the decode instance."""
        rid, d = payload
        src = self.prefill[self.ptable.replica[rid]]
        src.kv.release(self.held.pop(rid))
        if src.seg is None:
            src.kick(now)
        self.table.first_token_s[rid] = now
        dt = self.dtable
        dt.arrival_s[rid] = now
        dt.computed[rid] = dt.input_tokens[rid] - 1
        d.incoming -= 1
        d.enqueue(rid, now)

    def _on_decode_done(self, rid: int, now: float) -> None:
        t, dt = self.table, self.dtable
        gap = dt.first_token_s[rid] - t.first_token_s[rid]  # first token -> the next
        self.hist.add(gap)
        t.itl_max_s[rid] = max(dt.itl_max_s[rid], gap)
        t.finish_s[rid] = now
        t.replica[rid] = dt.replica[rid]
        t.preemptions[rid] = self.ptable.preemptions[rid] + dt.preemptions[rid]
        t.transition(rid, _FINISHED)
        self._on_finish(rid, now)

    def _on_sample(self, now: float, payload: Any) -> None:
        for k, reps in enumerate((self.prefill, self.decode)):
            self.kv_frac_sum[k] += (sum(r.kv.used for r in reps)
                                    / max(sum(r.kv.total for r in reps), 1))
        self.kv_samples += 1
        super()._on_sample(now, payload)

    def run(self) -> None:
        super().run()
        self.ptable.release_engine_state()
        self.dtable.release_engine_state()

    # ------------------------------------------------------------------ the report
    def disagg_summary(self, duration_s: float) -> dict[str, Any]:
        """Per-pool stats and the KV transfers' (measured requests that decoded)."""
        setup: DisaggSetup = self.setup  # type: ignore[assignment]
        stats = self.replica_stats()
        npf = len(self.prefill)
        t = self.table
        warm = setup.workload.warmup_requests
        done = t.column("status") == RequestStatus.FINISHED
        moved = done & (np.arange(t.n) >= warm) & (t.column("output_tokens") > 1)
        prompt = t.column("input_tokens")[moved].astype(np.float64)
        dt = self.dtable
        admit = dt.column("first_scheduled_s")[moved] - dt.column("arrival_s")[moved]
        link = setup.link
        bw, lat = (link.resolve(setup.decode_cluster) if setup.decode_cluster is not None
                   else (math.nan, 0.0))
        pools = {}
        for k, (role, sub, st) in enumerate((("prefill", setup.prefill, stats[:npf]),
                                             ("decode", setup.decode, stats[npf:]))):
            summ = replica_summary(st, duration_s)
            pool = setup.pools[role]
            pools[role] = {
                **pool.model_dump(exclude_unset=True), "instances": len(st),
                "gpus": sub.num_gpus,
                "hardware": sub.step_model.describe().get("hardware"),
                "scheduler": sub.cfg.scheduler.name,
                "max_num_seqs": sub.cfg.scheduler.max_num_seqs,
                "max_num_batched_tokens": sub.max_batched,
                "kv_capacity_tokens_per_instance": sub.num_blocks * sub.cfg.scheduler.block_size,
                "busy_frac": summ["busy_frac"], "num_steps": summ["num_steps"],
                "mean_tokens_per_step": summ["mean_tokens_per_step"],
                "num_preemptions": summ["num_preemptions"],
                "kv_usage_mean_frac": self.kv_frac_sum[k] / max(self.kv_samples, 1),
                "kv_usage_peak_frac": summ["kv_usage_peak_frac"]}
        per_gpu = prompt * setup.kv_bytes_per_token_per_gpu
        return {
            **pools,
            "kv_link": {"kind": link.kind, "bandwidth_bytes_per_s": bw, "latency_s": lat,
                        "layerwise": link.layerwise},
            "kv_transfer": {
                "num_transfers": int(moved.sum()),
                "bytes_per_decode_gpu_mean": float(per_gpu.mean()) if len(per_gpu) else 0.0,
                "bytes_total": float(per_gpu.sum() * setup.pools["decode"].gpus_per_worker
                                     / setup.pools["decode"].dp),
                "transfer_s": dist_stats(np.frombuffer(self.kv_xfer_s)[moved]),
                "decode_kv_wait_s": dist_stats(np.frombuffer(self.kv_wait_s)[moved]),
                "decode_admission_wait_s": dist_stats(admit),
            },
        }


def simulate_disagg(cfg: SimulationConfig, progress: ProgressFn | None = None,
                    closed_form: bool = True) -> SimulationReport:
    """Run an xPyD config (``cfg.disagg`` set) and report: the aggregated summary's fields over
    the client's view of each request, plus ``disagg`` (per-pool stats, KV transfers)."""
    setup = DisaggSetup(cfg)
    sim = DisaggSimulation(setup, progress, closed_form)
    sim.run()
    report = SimulationReport.from_simulation(sim)  # type: ignore[arg-type]
    s = report._summary
    pre, dec = setup.prefill, setup.decode
    hw = {pre.step_model.describe().get("hardware"), dec.step_model.describe().get("hardware")}
    s.update(hardware=" + ".join(sorted(str(h) for h in hw)), tp=None, pp=None,
             replicas=len(sim.replicas), scheduler=dec.cfg.scheduler.name,
             max_num_seqs=dec.cfg.scheduler.max_num_seqs,
             max_num_batched_tokens=dec.max_batched,
             kv_capacity_tokens_per_replica=dec.num_blocks * dec.cfg.scheduler.block_size)
    s["disagg"] = sim.disagg_summary(s["duration_s"])
    return report
