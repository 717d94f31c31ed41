"""``SimulationReport``: the summary dict, the per-request table, the time series, and writers.

Output directory (``write``): ``summary.json``, ``requests.csv`` (or ``.parquet``),
``timeseries.csv``, ``latency_cdf.png``, ``timeseries.png`` and, when recorded,
``trace.json`` (Chrome trace of the engine steps; open in chrome://tracing or Perfetto) and
``itls.csv`` (or ``.parquet``: every inter-token latency, ``metrics.save_itls``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llmsim.costmodel import utilization
from llmsim.io import prepare_dir, write_json, write_table
from llmsim.serving.metrics import LogHistogram, dist_stats, replica_summary, work_sums
from llmsim.serving.request import RejectReason, RequestStatus

if TYPE_CHECKING:
    from llmsim.serving.pricing import WorkFit
    from llmsim.serving.simulator import Simulation

LATENCY_KEYS = ("ttft_s", "tpot_s", "itl_s", "e2e_s", "queueing_delay_s")


def _clean(obj: Any) -> Any:
    """NaN/inf -> None so the JSON is standard."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def prepare_out_dir(out_dir: str | Path) -> Path:
    """The ``--out`` folder, created before a run (:func:`llmsim.io.prepare_dir`)."""
    return prepare_dir(out_dir, "--out", "simulate writes a folder (summary.json, requests, "
                                         "time series, plots)")


class SimulationReport:
    """Result of :func:`llmsim.serving.simulate`.

    ``summary()``: the JSON-able summary; ``requests``: one row per request; ``timeseries``;
    ``itl_hist``: the streamed ITL histogram; ``itls``: every inter-token latency
    (``request_id, token_index, itl_s``) when the run kept them (``metrics.save_itls``), else
    None; ``steps``: the Chrome-trace rows when recorded."""

    def __init__(self, summary: dict[str, Any], requests: dict[str, np.ndarray],
                 timeseries: pd.DataFrame, itl_hist: LogHistogram,
                 steps: list[tuple] | None = None, config: Any = None,
                 itls: pd.DataFrame | None = None):
        self._summary = summary
        self._requests = requests
        self.timeseries = timeseries
        self.itl_hist = itl_hist
        self.steps = steps
        self.config = config
        self.itls = itls

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (NaN as None)."""
        return _clean(self._summary)

    def add_intervals(self, intervals: dict[str, Any]) -> None:
        """Merge :func:`llmsim.serving.intervals.simulate_intervals` into the summary: each
        latency block gains ``interval`` (of its mean) and ``intervals`` (per statistic), the
        top level ``intervals`` (throughput figures), ``interval_level``, ``interval_draws``
        and ``interval_basis``."""
        s = self._summary
        for block, stats in intervals["blocks"].items():
            if isinstance(s.get(block), dict):
                s[block] = {**s[block], "interval": stats.get("mean"), "intervals": stats}
        s["intervals"] = intervals["figures"]
        s["interval_level"] = intervals["level"]
        s["interval_draws"] = intervals["draws"]
        s["interval_basis"] = intervals["basis"]

    @property
    def requests(self) -> pd.DataFrame:
        """One row per request (times in seconds; NaN where not applicable)."""
        return pd.DataFrame(self._requests)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_simulation(cls, sim: Simulation, work: WorkFit | None = None) -> SimulationReport:
        """The report of a finished run, made of the request table, the replicas' records
        (``Simulation.replica_stats``, summed by ``metrics.replica_summary``), the streamed
        ITL histogram and time series; ``work`` (the FLOPs / bytes fit) gives MFU / MBU."""
        setup, cfg, t = sim.setup, sim.setup.cfg, sim.table
        col = t.column
        status = col("status")
        done = status == RequestStatus.FINISHED
        rejected = status == RequestStatus.REJECTED
        arrival = col("arrival_s").copy()
        ttft = col("first_token_s") - arrival
        e2e = col("finish_s") - arrival
        out = col("output_tokens").copy()
        inp = col("input_tokens").copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = np.where(out > 1, (e2e - ttft) / np.maximum(out - 1, 1), np.nan)
        queue = col("first_scheduled_s") - arrival
        for arr in (ttft, e2e, tpot, queue):
            arr[~done] = np.nan
        itl_max = np.where(done & (out > 1), col("itl_max_s"), np.nan)
        names = np.array([""] + [r.name.lower() for r in RejectReason][1:], dtype=object)
        requests = {
            "request_id": np.arange(t.n), "replica": col("replica").copy(),
            "status": np.where(done, "finished", np.where(rejected, "rejected", "unfinished")),
            "reject_reason": names[col("reject_reason")],
            "priority": col("priority").copy(), "input_tokens": inp, "output_tokens": out,
            "cached_tokens": col("cached_tokens").copy(),
            "preemptions": col("preemptions").copy(),
            "arrival_s": arrival, "first_scheduled_s": col("first_scheduled_s").copy(),
            "first_token_s": col("first_token_s").copy(), "finish_s": col("finish_s").copy(),
            "ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e, "queueing_delay_s": queue,
            "itl_max_s": itl_max,
        }
        start = float(np.nanmin(arrival)) if t.n else 0.0
        duration = max(sim.end_s - start, 1e-12)
        n_done = int(done.sum())
        in_tok = int(inp[done].sum())
        out_tok = int(out[done].sum())
        gpus = setup.num_gpus
        slo = cfg.slo
        good = done.copy()
        if slo.ttft_s is not None:
            good &= ttft <= slo.ttft_s
        if slo.tpot_s is not None:
            good &= (out <= 1) | (tpot <= slo.tpot_s)
        stats = sim.replica_stats()  # the replicas' records: never their internals
        per_replica = replica_summary(stats, duration)
        mfu = mbu = math.nan
        dep = setup.deployment
        if work is not None and dep is not None:
            flops, nbytes = work.totals(work_sums(stats))
            mfu = utilization.mfu(flops, duration, dep, replicas=len(stats))
            mbu = utilization.mbu(nbytes, duration, dep, replicas=len(stats))
        ts = sim.ts.frame()
        rr = col("reject_reason")
        reasons = {RejectReason(v).name.lower(): int((rr == v).sum()) for v in (1, 2, 3)}
        describe = setup.step_model.describe()
        summary: dict[str, Any] = {
            "model": describe.get("model", cfg.model.name),
            "hardware": describe.get("hardware", cfg.hardware.name),
            "precision": describe.get("precision"),
            "num_gpus": gpus, "tp": cfg.parallelism.tp, "pp": cfg.parallelism.pp,
            "replicas": cfg.parallelism.replicas, "router": cfg.parallelism.router,
            "scheduler": cfg.scheduler.name, "order": cfg.scheduler.order.value,
            "preemption_mode": cfg.scheduler.preemption.value,
            "prefix_caching": cfg.scheduler.prefix_caching,
            "max_num_seqs": cfg.scheduler.max_num_seqs,
            "max_num_batched_tokens": setup.max_batched, "block_size": cfg.scheduler.block_size,
            "max_model_len": setup.max_model_len,
            "kv_capacity_tokens_per_replica": setup.num_blocks * cfg.scheduler.block_size,
            "workload": setup.workload.info,
            "num_requests": int(t.n), "num_completed": n_done,
            "num_rejected": int(rejected.sum()), "rejected_by_reason": reasons,
            "num_preemptions": per_replica["num_preemptions"],
            "duration_s": duration,
            "requests_per_s": n_done / duration,
            "input_tokens_per_s": in_tok / duration,
            "output_tokens_per_s": out_tok / duration,
            "total_tokens_per_s": (in_tok + out_tok) / duration,
            "input_tokens_per_s_per_gpu": in_tok / duration / gpus,
            "output_tokens_per_s_per_gpu": out_tok / duration / gpus,
            "goodput_requests_per_s": int(good.sum()) / duration,
            "slo": {"ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s},
            "slo_attainment_frac": int(good.sum()) / n_done if n_done else math.nan,
            "ttft_s": dist_stats(ttft[done]),
            "tpot_s": dist_stats(tpot[done]),
            "itl_s": sim.hist.stats(),
            "e2e_s": dist_stats(e2e[done]),
            "queueing_delay_s": dist_stats(queue[done]),
            "busy_frac": per_replica["busy_frac"],
            "mfu": mfu, "mbu": mbu,
            "prefix_cache_hit_rate": per_replica["prefix_cache_hit_rate"],
            "kv_usage_mean_frac": float(ts["kv_usage_frac"].mean()) if len(ts) else 0.0,
            "kv_usage_peak_frac": per_replica["kv_usage_peak_frac"],
            "mean_tokens_per_step": per_replica["mean_tokens_per_step"],
            "num_steps": per_replica["num_steps"],
            "sim_wall_s": sim.wall_s,
            "sim_requests_per_wall_s": t.n / sim.wall_s if sim.wall_s > 0 else math.nan,
            "sim_events": sim.loop.num_events,
        }
        if "memory" in setup.info:
            summary["memory"] = setup.info["memory"]
        itls = sim.itl_log.frame(col("replica")) if sim.itl_log is not None else None
        return cls(summary, requests, ts, sim.hist, sim.trace_steps, cfg, itls)

    # ------------------------------------------------------------------ output
    def write(self, out_dir: str | Path, table_format: str = "csv", plots: bool = True
              ) -> list[Path]:
        """Write every output into ``out_dir`` (atomically, file by file); returns the paths."""
        out = prepare_out_dir(out_dir)
        paths = []
        p = out / "summary.json"
        write_json(p, self.summary())
        paths.append(p)
        suffix = ".parquet" if table_format == "parquet" else ".csv"
        p = out / f"requests{suffix}"
        write_table(p, self.requests)
        paths.append(p)
        p = out / "timeseries.csv"
        write_table(p, self.timeseries)
        paths.append(p)
        if self.config is not None:
            import yaml

            from llmsim.io import write_text
            from llmsim.serving.config import paths_relative_to

            p = out / "config.yaml"  # with absolute paths: it runs again from any folder
            data = paths_relative_to(self.config.model_dump(mode="json"), Path.cwd())
            write_text(p, yaml.safe_dump(data, sort_keys=False))
            paths.append(p)
        if plots:
            from llmsim.serving.plots import plot_latency_cdfs, plot_timeseries

            paths.append(plot_latency_cdfs(self, out / "latency_cdf.png"))
            paths.append(plot_timeseries(self, out / "timeseries.png"))
        if self.steps is not None:
            p = out / "trace.json"
            write_json(p, chrome_trace(self.steps, self._summary))
            paths.append(p)
        if self.itls is not None:
            p = out / f"itls{suffix}"
            write_table(p, self.itls)
            paths.append(p)
        return paths


def chrome_trace(steps: list[tuple], summary: dict[str, Any], limit: int = 200_000
                 ) -> dict[str, Any]:
    """Chrome trace-event JSON of engine steps: one track per replica; a closed-form decode
    run is one event (``args.steps`` steps)."""
    events = []
    for rep, start, dur, pseqs, ptok, dseqs, nsteps, kv_used in steps[:limit]:
        kind = ("mixed" if pseqs and dseqs else "prefill" if pseqs else
                f"decode x{nsteps}" if nsteps > 1 else "decode")
        events.append({"name": kind, "ph": "X", "pid": int(rep), "tid": 0,
                       "ts": start * 1e6, "dur": dur * 1e6,
                       "args": {"prefill_seqs": pseqs, "prefill_tokens": ptok,
                                "decode_seqs": dseqs, "steps": nsteps, "kv_blocks": kv_used}})
    meta = [{"name": "process_name", "ph": "M", "pid": r, "args": {"name": f"replica {r}"}}
            for r in sorted({e["pid"] for e in events})]
    return {"traceEvents": meta + events, "displayTimeUnit": "ms",
            "otherData": {"model": summary.get("model"), "scheduler": summary.get("scheduler"),
                          "truncated": len(steps) > limit}}
