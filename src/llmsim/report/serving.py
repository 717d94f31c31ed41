"""Outputs of ``llmsim simulate``: the summary and latency tables of a serving simulation (from
its JSON summary, :meth:`SimulationReport.summary`), its JSON, and its per-request CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from llmsim import units
from llmsim.report.render import as_json, console, emit, frame_to_csv, kv_table

#: summary keys of the latency table, with their row names
LATENCY_ROWS = (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("itl_s", "ITL"), ("e2e_s", "E2E"),
                ("queueing_delay_s", "queueing"))
LATENCY_STATS = ("mean", "p50", "p90", "p95", "p99", "max")


def write_simulation(report: Any, fmt: str, out: str | None = None) -> None:
    """A :class:`SimulationReport` on stdout: its summary as JSON, its per-request table as
    CSV, or the summary and latency tables (``out``: the folder the files went to)."""
    if fmt == "json":
        emit(as_json(report.summary()))
    elif fmt == "csv":
        emit(frame_to_csv(report.requests))
    else:
        con = console()
        for table in simulation_tables(report.summary(), out):
            con.print(table)


def simulation_tables(summary: dict[str, Any], out: str | None = None) -> list[Table]:
    """The summary (workload, requests, throughput, goodput, utilisation, KV cache, simulator)
    and latency tables of a simulation's JSON summary."""
    s = summary
    title = (f"{s['model']} on {s['num_gpus']}x {s['hardware']} (tp {s['tp']}, pp {s['pp']}, "
             f"{s['replicas']} replica{'s' if s['replicas'] > 1 else ''}; {s['scheduler']}, "
             f"{s['order']})")
    rows = summary_rows(s)
    if out:
        rows.append(("output", out))
    return [kv_table(title, rows), latency_table(s)]


def summary_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The key/value rows of the summary table."""
    pct = units.fmt_pct
    rej_txt = ", ".join(f"{k} {v}" for k, v in s["rejected_by_reason"].items() if v) or "none"
    return [
        ("workload", workload_text(s.get("workload", {}))),
        ("requests", f"{s['num_completed']:,} completed, {s['num_rejected']:,} rejected "
                     f"({rej_txt}) of {s['num_requests']:,}"),
        ("simulated time", f"{s['duration_s']:,.1f} s"),
        ("throughput", f"{units.fmt_rate(s['requests_per_s'], 'req/s')}; "
                       f"{units.fmt_rate(s['output_tokens_per_s'], 'output tok/s', 0)} "
                       f"({s['output_tokens_per_s_per_gpu']:,.0f} per GPU); "
                       f"{units.fmt_rate(s['input_tokens_per_s'], 'input tok/s', 0)}"),
        ("goodput", f"{units.fmt_rate(s['goodput_requests_per_s'], 'req/s')} "
                    f"({pct(s['slo_attainment_frac'] or 0)} meet {slo_text(s.get('slo', {}))})"),
        ("utilisation", f"busy {pct(s['busy_frac'])}, MFU {pct(s['mfu'])}, MBU {pct(s['mbu'])}, "
                        f"{s['mean_tokens_per_step']:,.1f} tokens/step"),
        ("KV cache", f"{s['kv_capacity_tokens_per_replica']:,} tokens per replica; usage mean "
                     f"{pct(s['kv_usage_mean_frac'])}, peak {pct(s['kv_usage_peak_frac'])}; "
                     f"{s['num_preemptions']:,} preemptions"
                     + (f"; prefix hit rate {pct(s['prefix_cache_hit_rate'])}"
                        if s.get("prefix_caching") else "")),
        ("simulator", f"{s['sim_wall_s']:.2f} s wall, {s['sim_requests_per_wall_s']:,.0f} "
                      f"requests/s, {s['num_steps']:,} engine steps"),
    ]


def workload_text(wl: dict[str, Any]) -> str:
    """One line on the request stream: the trace (format, rows, tiling, rate scale) or the
    synthetic arrivals and lengths; the closed loop's concurrency."""
    if wl.get("trace"):
        tiles = f", tiled x{wl['tiles']}" if wl.get("tiles", 1) > 1 else ""
        scale = f", rate x{wl['rate_scale']:g}" if wl.get("rate_scale") else ""
        desc = (f"{Path(wl['trace']).name} ({wl.get('trace_format')}, {wl.get('trace_rows'):,} "
                f"rows{tiles}); arrivals: {wl.get('arrival')}{scale}")
    else:
        desc = (f"{wl.get('arrival', '')}; prompt {wl.get('prompt', '')}; output "
                f"{wl.get('output', '')}")
    if wl.get("concurrency"):
        desc += f"; at most {wl['concurrency']} in flight"
    return desc


def slo_text(slo: dict[str, Any]) -> str:
    """The goodput SLOs, e.g. ``"TTFT <= 2000 ms, TPOT <= 100 ms"`` (``"none"``)."""
    return ", ".join(f"{k.removesuffix('_s').upper()} <= {v * 1e3:g} ms"
                     for k, v in slo.items() if v is not None) or "none"


def latency_table(s: dict[str, Any]) -> Table:
    """Mean and percentiles of TTFT, TPOT, ITL, E2E and queueing delay, in milliseconds."""
    with_iv = "interval_level" in s
    title = "latency (ms)" + (f"; mean interval: {s['interval_level']:.0%} level over "
                              f"{s['interval_draws']} error draws" if with_iv else "")
    lat = Table(title=title, title_justify="left")
    for c in ("metric", *LATENCY_STATS, *(("mean interval",) if with_iv else ())):
        lat.add_column(c, justify="left" if c == "metric" else "right")
    for key, name in LATENCY_ROWS:
        d = s.get(key) or {}
        cells = [units.fmt_latency_ms(d.get(k)) for k in LATENCY_STATS]
        if with_iv:
            iv = d.get("interval") or [None, None]
            cells.append(escape(f"[{units.fmt_latency_ms(iv[0])}, "
                                f"{units.fmt_latency_ms(iv[1])}]"))
        lat.add_row(name, *cells)
    return lat
