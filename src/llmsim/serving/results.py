"""``SimulationReport``: the summary dict, the per-request table, the time series, and writers.

Output directory (``write``): ``summary.json``, ``requests.csv`` (or ``.parquet``),
``timeseries.csv``, ``latency_cdf.png``, ``timeseries.png`` and, when recorded,
``trace.json`` (Chrome trace of the engine steps; open in chrome://tracing or Perfetto) and
``itls.csv`` (or ``.parquet``: every inter-token latency, ``metrics.save_itls``).
The folder is written whole into a temporary sibling and swapped in (``llmsim.io.atomic_dir``):
an old bundle there is replaced entirely, a folder holding other files is refused.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llmsim.costmodel import utilization
from llmsim.io import atomic_dir, check_bundle_dir, write_json, write_table, write_table_chunks
from llmsim.serving.metrics import LogHistogram, dist_stats, replica_summary, work_sums
from llmsim.serving.request import RejectReason, RequestStatus
from llmsim.serving.request_rows import CHUNK_ROWS, RequestRows

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


#: every file a simulate bundle may hold; ``summary.json`` marks a folder as one
BUNDLE_FILES = frozenset({
    "summary.json", "run_info.json", "requests.csv", "requests.parquet", "timeseries.csv",
    "config.yaml", "latency_cdf.png", "timeseries.png", "trace.json", "itls.csv",
    "itls.parquet"})
BUNDLE_MARKER = "summary.json"
_OUT_WHAT = "simulate writes a folder (summary.json, requests, time series, plots)"


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Check the ``--out`` folder before a run, creating nothing
    (:func:`llmsim.io.check_bundle_dir`): new, empty, or a bundle of an earlier run."""
    return check_bundle_dir(out_dir, BUNDLE_FILES, BUNDLE_MARKER, "--out", _OUT_WHAT)


class SimulationReport:
    """Result of :func:`llmsim.serving.simulate`.

    ``summary()``: the JSON-able summary; ``requests``: one row per request; ``timeseries``;
    ``itl_hist``: the streamed ITL histogram; ``run_info``: what changes from run to run of
    the same config (the simulator's wall time and speed, versions, when), kept out of the
    summary so that it (and every bundle file but ``run_info.json``) is the same bytes for the
    same config and seed; ``itls``: every inter-token latency
    (``request_id, token_index, itl_s``) when the run kept them (``metrics.save_itls``), else
    None; ``steps``: the Chrome-trace rows when recorded."""

    def __init__(self, summary: dict[str, Any], requests: RequestRows | dict[str, np.ndarray],
                 timeseries: pd.DataFrame, itl_hist: LogHistogram,
                 steps: list[tuple] | None = None, config: Any = None,
                 itls: pd.DataFrame | None = None, run_info: dict[str, Any] | None = None):
        self._summary = summary
        self._requests = requests
        self.timeseries = timeseries
        self.itl_hist = itl_hist
        self.steps = steps
        self.config = config
        self.itls = itls
        self.run_info = run_info or {}

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
        """One row per request (times in seconds; NaN where not applicable), built when asked
        (a run keeps only its compact request table: ``request_rows.py``)."""
        if isinstance(self._requests, RequestRows):
            return self._requests.frame()
        return pd.DataFrame(self._requests)

    def request_column(self, name: str) -> np.ndarray:
        """One column of :attr:`requests` (e.g. ``ttft_s``) without building the table."""
        if isinstance(self._requests, RequestRows):
            return self._requests.column(name)
        return np.asarray(self._requests[name])

    def request_chunks(self) -> Any:
        """:attr:`requests` as consecutive DataFrames (bounded memory for long runs)."""
        if isinstance(self._requests, RequestRows):
            return self._requests.chunks()
        return iter([self.requests])

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
        arrival = col("arrival_s")
        out = np.asarray(setup.output_tokens)  # tokens emitted (a view of the table's)
        warm = setup.workload.warmup_requests  # run first, left out of every metric
        rows = RequestRows(t, out, warm)
        inp = col("input_tokens")
        if warm:
            measured = np.arange(t.n) >= warm
            warm_done = int((done & ~measured).sum())
            done = done & measured
            rejected = rejected & measured
        start = float(np.nanmin(arrival[warm:])) if t.n else 0.0
        end_s = float(np.max(col("finish_s")[done])) if warm and done.any() else sim.end_s
        duration = max(end_s - start, 1e-12)
        n_done = int(done.sum())
        in_tok = int(inp[done].sum(dtype=np.int64))
        out_tok = int(out[done].sum(dtype=np.int64))
        gpus = setup.num_gpus
        slo = cfg.slo
        n_good = good_count(rows, done, slo.ttft_s, slo.tpot_s)
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
        summary: dict[str, Any] = {
            **_run_settings(setup),
            "workload": setup.workload.info,
            "num_requests": int(t.n) - warm, "num_completed": n_done,
            "num_rejected": int(rejected.sum()), "rejected_by_reason": reasons,
            "num_preemptions": per_replica["num_preemptions"],
            "duration_s": duration,
            "requests_per_s": n_done / duration,
            "input_tokens_per_s": in_tok / duration,
            "output_tokens_per_s": out_tok / duration,
            "total_tokens_per_s": (in_tok + out_tok) / duration,
            "input_tokens_per_s_per_gpu": in_tok / duration / gpus,
            "output_tokens_per_s_per_gpu": out_tok / duration / gpus,
            "goodput_requests_per_s": n_good / duration,
            "slo": {"ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s},
            "slo_attainment_frac": n_good / n_done if n_done else math.nan,
            "ttft_s": done_stats(rows, "ttft_s", done, n_done),
            "tpot_s": done_stats(rows, "tpot_s", done, n_done),
            "itl_s": sim.hist.stats(),
            "e2e_s": done_stats(rows, "e2e_s", done, n_done),
            "queueing_delay_s": done_stats(rows, "queueing_delay_s", done, n_done),
            "busy_frac": per_replica["busy_frac"],
            "mfu": mfu, "mbu": mbu,
            "prefix_cache_hit_rate": per_replica["prefix_cache_hit_rate"],
            "kv_usage_mean_frac": float(ts["kv_usage_frac"].mean()) if len(ts) else 0.0,
            "kv_usage_peak_frac": per_replica["kv_usage_peak_frac"],
            "mean_tokens_per_step": per_replica["mean_tokens_per_step"],
            "num_steps": per_replica["num_steps"],
            "sim_events": sim.loop.num_events,
        }
        if "memory" in setup.info:
            summary["memory"] = setup.info["memory"]
        if warm:
            summary["num_warmup_requests"] = warm
            summary["num_warmup_completed"] = warm_done
        engine = getattr(setup, "engine", None)
        if engine is not None:
            summary["engine"] = engine.describe()
        if setup.beam > 1:
            summary["beam"] = setup.beam
        if setup.speculation is not None:
            summary["speculative"] = speculative_summary(setup, col("output_tokens"), done)
        if getattr(setup, "expert_offload", None) is not None:
            summary["expert_offload"] = setup.expert_offload.summary(sim.offload_pricers)
        itls = sim.itl_log.frame(col("replica")) if sim.itl_log is not None else None
        return cls(summary, rows, ts, sim.hist, sim.trace_steps, cfg, itls,
                   run_info(sim.wall_s, t.n))

    # ------------------------------------------------------------------ output
    def write(self, out_dir: str | Path, table_format: str = "csv", plots: bool = True
              ) -> list[Path]:
        """Write the bundle into ``out_dir``: all files into a temporary sibling folder, then
        swapped in whole (an earlier bundle there is replaced, none of its files kept; a folder
        with other files is refused); returns the paths."""
        with atomic_dir(out_dir, BUNDLE_FILES, BUNDLE_MARKER, "--out") as stage:
            names = self._write_files(stage, table_format, plots)
        return [Path(out_dir) / name for name in names]

    def _write_files(self, out: Path, table_format: str, plots: bool) -> list[str]:
        """Every output file into the folder ``out``; returns their names."""
        names = ["summary.json", "run_info.json"]
        write_json(out / "summary.json", self.summary())
        write_json(out / "run_info.json", _clean(self.run_info))
        suffix = ".parquet" if table_format == "parquet" else ".csv"
        names.append(f"requests{suffix}")
        write_table_chunks(out / names[-1], self.request_chunks())
        names.append("timeseries.csv")
        write_table(out / names[-1], self.timeseries)
        if self.config is not None:
            import yaml

            from llmsim.io import write_text
            from llmsim.serving.config import paths_relative_to

            names.append("config.yaml")  # with absolute paths: it runs again from any folder
            data = paths_relative_to(self.config.model_dump(mode="json"), Path.cwd())
            write_text(out / names[-1], yaml.safe_dump(data, sort_keys=False))
        if plots:
            from llmsim.serving.plots import plot_latency_cdfs, plot_timeseries

            names.append("latency_cdf.png")
            plot_latency_cdfs(self, out / names[-1])
            names.append("timeseries.png")
            plot_timeseries(self, out / names[-1])
        if self.steps is not None:
            names.append("trace.json")
            write_json(out / names[-1], chrome_trace(self.steps, self._summary))
        if self.itls is not None:
            names.append(f"itls{suffix}")
            write_table(out / names[-1], self.itls)
        assert set(names) <= BUNDLE_FILES, names
        return names


def done_values(rows: RequestRows, name: str, done: np.ndarray, n_done: int) -> np.ndarray:
    """Column ``name`` of the finished (measured) requests, in request order: the same array
    as ``rows.column(name)[done]``, built a slice of rows at a time (8 bytes per finished
    request, not three or four full-length temporaries)."""
    values = np.empty(n_done, dtype=np.float64)
    pos = 0
    for lo in range(0, rows.n, CHUNK_ROWS):
        hi = min(lo + CHUNK_ROWS, rows.n)
        part = rows.column(name, lo, hi)[done[lo:hi]]
        values[pos:pos + len(part)] = part
        pos += len(part)
    return values


def done_stats(rows: RequestRows, name: str, done: np.ndarray, n_done: int) -> dict[str, float]:
    """``dist_stats`` of column ``name`` over the finished requests (exact; one 8-byte array of
    the values at a time, its percentiles taken in place)."""
    return dist_stats(done_values(rows, name, done, n_done), overwrite=True)


def good_count(rows: RequestRows, done: np.ndarray, slo_ttft_s: float | None,
               slo_tpot_s: float | None) -> int:
    """Finished requests meeting both SLOs: TTFT <= ``slo_ttft_s`` and (one output token, or)
    TPOT <= ``slo_tpot_s`` (a bound that is None always holds); counted a slice at a time."""
    if slo_ttft_s is None and slo_tpot_s is None:
        return int(done.sum())
    good = 0
    for lo in range(0, rows.n, CHUNK_ROWS):
        hi = min(lo + CHUNK_ROWS, rows.n)
        ok = done[lo:hi].copy()
        if slo_ttft_s is not None:
            ok &= rows.column("ttft_s", lo, hi) <= slo_ttft_s
        if slo_tpot_s is not None:
            ok &= (rows.column("output_tokens", lo, hi) <= 1) | (
                rows.column("tpot_s", lo, hi) <= slo_tpot_s)
        good += int(ok.sum())
    return good


def run_info(wall_s: float, num_requests: int) -> dict[str, Any]:
    """The run's non-deterministic facts: the simulator's wall time (the event loop alone) and
    simulated requests per wall-second, llmsim and Python versions, the platform, the UTC time
    the report was made."""
    import datetime
    import platform
    from importlib import metadata

    try:
        version = metadata.version("llmsim")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        version = None
    return {
        "sim_wall_s": wall_s,
        "sim_requests_per_wall_s": num_requests / wall_s if wall_s > 0 else math.nan,
        "llmsim_version": version, "python_version": platform.python_version(),
        "platform": platform.platform(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
    }


def speculative_summary(setup: Any, ticks: np.ndarray, done: np.ndarray) -> dict[str, Any]:
    """The speculation of a run: its parameters, the expected and the realised tokens per
    verification step of the finished requests (``itl_s`` is per verification step, as
    engines report it; TPOT counts emitted tokens)."""
    out = np.asarray(setup.output_tokens)[done]
    steps = np.asarray(ticks)[done] - 1
    return {**setup.speculation.describe(),
            "tokens_per_step": float((out - 1).sum() / max(int(steps.sum()), 1)),
            "verification_steps": int(steps.sum())}


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


def _run_settings(setup: Any) -> dict[str, Any]:
    """What ran: model, hardware, precision, GPUs, parallel plan and the scheduler's limits
    (the summary's first keys)."""
    cfg = setup.cfg
    describe = setup.step_model.describe()
    return {
        "model": describe.get("model", cfg.model.name),
        "hardware": describe.get("hardware", cfg.hardware.name),
        "precision": describe.get("precision"),
        "num_gpus": setup.num_gpus, "tp": cfg.parallelism.tp, "pp": cfg.parallelism.pp,
        "replicas": cfg.parallelism.replicas, "router": cfg.parallelism.router,
        "scheduler": cfg.scheduler.name, "order": cfg.scheduler.order.value,
        "preemption_mode": cfg.scheduler.preemption.value,
        "prefix_caching": cfg.scheduler.prefix_caching,
        "max_num_seqs": cfg.scheduler.max_num_seqs,
        "max_num_batched_tokens": setup.max_batched, "block_size": cfg.scheduler.block_size,
        "max_model_len": setup.max_model_len,
        "kv_capacity_tokens_per_replica": setup.num_blocks * cfg.scheduler.block_size,
    }
