"""Outputs of ``llmsim simulate``: the summary and latency tables of a serving simulation (from
its JSON summary, :meth:`SimulationReport.summary`), its JSON, and its per-request CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.markup import escape
from rich.table import Table

from llmsim import units
from llmsim.report.render import (
    TABULAR,
    as_json,
    emit,
    emit_frame,
    emit_html,
    kv_table,
    print_tables,
)

#: summary keys of the latency table, with their row names
LATENCY_ROWS = (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("itl_s", "ITL"), ("e2e_s", "E2E"),
                ("queueing_delay_s", "queueing"))
LATENCY_STATS = ("mean", "p50", "p90", "p95", "p99", "max")


def write_simulation(report: Any, fmt: str, out_dir: str | None = None,
                     out: str | None = None, requests: bool = False, metrics: str = "llmsim",
                     percentiles: str = "99") -> None:
    """A :class:`SimulationReport` on stdout or into the file ``out``: its summary as JSON, as
    one CSV / Parquet row (:func:`summary_record`), or the summary and latency tables
    (``out_dir``: the folder the bundle went to); ``requests``: the per-request rows instead
    (JSON records, CSV, Parquet); ``metrics="vllm"``: the vLLM-benchmark result instead of
    the summary (:func:`write_vllm_bench`; also ``vllm_bench.json`` in ``out_dir``)."""
    if fmt == "html":
        from llmsim.report.html import simulation_html

        s = report.summary()
        emit_html(simulation_html(s, report.requests, report.timeseries, report.itls,
                                  summary_rows(s)), out)
        return
    if metrics not in ("llmsim", "vllm"):
        from llmsim.errors import ConfigError

        raise ConfigError(f"--metrics must be llmsim or vllm, got {metrics!r}")
    if metrics == "vllm" and not requests:
        write_vllm_bench(report, fmt, out, percentiles, out_dir)
    elif requests and fmt in ("json", *TABULAR):
        frame = report.requests
        if fmt == "json":
            emit(as_json(frame.to_dict(orient="records")), out)
        else:
            emit_frame(frame, fmt, out)
    elif fmt == "json":
        emit(as_json(report.summary()), out)
    elif fmt in TABULAR:
        emit_frame(pd.DataFrame([summary_record(report.summary())]), fmt, out)
    else:
        print_tables(simulation_tables(report.summary(), out_dir,
                                       getattr(report, "run_info", None)), out)


def write_vllm_bench(report: Any, fmt: str, out: str | None, percentiles: str,
                     out_dir: str | None = None) -> None:
    """The vLLM-benchmark result (``llmsim.serving.vllm_bench``): JSON as vLLM saves it, one
    CSV / Parquet row, or a table of its keys; ``out_dir``: also ``vllm_bench.json`` there."""
    from llmsim.serving.vllm_bench import parse_percentiles, vllm_bench_metrics

    result = vllm_bench_metrics(report, parse_percentiles(percentiles))
    if out_dir:
        from pathlib import Path

        from llmsim.io import write_json

        write_json(Path(out_dir) / "vllm_bench.json", result)
    if fmt == "json":
        emit(as_json(result), out)
    elif fmt in TABULAR:
        emit_frame(pd.DataFrame([result]), fmt, out)
    else:
        rows = [(k, "" if v is None else f"{v:,.2f}" if isinstance(v, float) else f"{v:,}")
                for k, v in result.items()]
        print_tables([kv_table("serving benchmark result (vLLM's names and definitions)",
                               rows)], out)


def summary_record(summary: dict[str, Any], sep: str = ".") -> dict[str, Any]:
    """The summary flattened into one row: nested keys joined by ``sep`` (``ttft_s.p99``);
    lists are left out (the per-replica records: ``--format json`` has them)."""
    row: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, dict):
            for k, v in summary_record(value, sep).items():
                row[f"{key}{sep}{k}"] = v
        elif not isinstance(value, list):
            row[key] = value
    return row


def simulation_tables(summary: dict[str, Any], out: str | None = None,
                      run_info: dict[str, Any] | None = None) -> list[Table]:
    """The summary (workload, requests, throughput, goodput, utilisation, KV cache, simulator)
    and latency tables of a simulation's JSON summary (``run_info``: the simulator's wall
    time, kept out of the summary)."""
    s = summary
    title = (f"{s['model']} on {s['num_gpus']}x {s['hardware']} (tp {s['tp']}, pp {s['pp']}, "
             f"{s['replicas']} replica{'s' if s['replicas'] > 1 else ''}; {s['scheduler']}, "
             f"{s['order']})")
    rows = summary_rows(s, run_info)
    if s.get("disagg"):  # prefill/decode pools (serving/disagg_sim.py)
        d = s["disagg"]
        title = (f"{s['model']} {d['prefill']['workers']}P{d['decode']['workers']}D on "
                 f"{s['num_gpus']}x {s['hardware']} ({s['scheduler']}, {s['order']})")
        rows += disagg_rows(d)
    if out:
        rows.append(("output", out))
    return [kv_table(title, rows), latency_table(s)]


def summary_rows(s: dict[str, Any], run_info: dict[str, Any] | None = None
                 ) -> list[tuple[str, str]]:
    """The key/value rows of the summary table (``run_info``: the simulator's wall time and
    speed for its last row)."""
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
        ("simulator", simulator_text(s, run_info or s)),
        *([("speculation", speculation_text(s["speculative"]))] if s.get("speculative") else []),
        *(expert_offload_rows(s["expert_offload"]) if s.get("expert_offload") else []),
    ]


def expert_offload_rows(eo: dict[str, Any]) -> list[tuple[str, str]]:
    """Two lines on a run's expert cache: the settings, then hit rate, misses and stalls."""
    pct = units.fmt_pct

    def rate(x: float | None) -> str:
        return "n/a" if x is None else pct(x)

    return [
        ("expert cache", f"{eo['capacity_experts']} experts per layer "
                         f"({units.fmt_bytes(eo['cache_bytes'])}), {eo['policy']}, prefetch "
                         f"{eo['prefetch']} at {eo['prefetch_accuracy']:g}, miss "
                         f"{eo['miss']}, routing {eo['routing']}, host {eo['host']}"),
        ("expert hits", f"hit rate {rate(eo['hit_rate'])} (prefill "
                        f"{rate(eo['prefill_hit_rate'])}, decode {rate(eo['decode_hit_rate'])})"
                        f"; {eo['misses_per_step'] or 0:,.1f} misses of "
                        f"{eo['experts_per_step'] or 0:,.1f} experts per step; stall "
                        f"{rate(eo['stall_frac'])} of step time; "
                        f"{units.fmt_bytes(eo['bytes_fetched'])} over the host link"),
    ]


def disagg_rows(d: dict[str, Any]) -> list[tuple[str, str]]:
    """A disaggregated run's pools and KV transfers (the summary's ``disagg`` block)."""
    pct = units.fmt_pct
    rows = []
    for role in ("prefill", "decode"):
        p = d[role]
        plan = ", ".join(f"{k} {p[k]}" for k in ("tp", "pp", "ep", "dp") if p.get(k, 1) > 1)
        rows.append((f"{role} pool", f"{p['workers']} x ({plan or 'tp 1'}) = {p['gpus']} GPUs; "
                     f"busy {pct(p['busy_frac'])}, {p['num_steps']:,} steps; KV "
                     f"{p['kv_capacity_tokens_per_instance']:,} tokens per instance, usage "
                     f"mean {pct(p['kv_usage_mean_frac'])}, peak {pct(p['kv_usage_peak_frac'])}"))
    x, link = d["kv_transfer"], d["kv_link"]
    mib = x["bytes_per_decode_gpu_mean"] / 2**20
    rows.append(("KV transfer", f"{link['kind']}{' layer-wise' if link['layerwise'] else ''}: "
                 f"{x['num_transfers']:,} x {mib:,.1f} MiB per decode GPU; shown "
                 f"{units.fmt_latency_ms(x['transfer_s']['mean'])} ms mean, "
                 f"{units.fmt_latency_ms(x['transfer_s']['p99'])} p99; wait for decode KV "
                 f"{units.fmt_latency_ms(x['decode_kv_wait_s']['mean'])} ms, for admission "
                 f"{units.fmt_latency_ms(x['decode_admission_wait_s']['mean'])} ms (means)"))
    return rows


def speculation_text(sp: dict[str, Any]) -> str:
    """One line on a run's speculative decoding (ITL rows are per verification step)."""
    draft = f" ({sp['draft_model']})" if sp.get("draft_model") else ""
    acc = ",".join(f"{a:g}" for a in sp["acceptance"])
    return (f"{sp['method']}{draft}, k {sp['num_tokens']}, acceptance {acc}: "
            f"{sp['tokens_per_step']:.2f} tokens per verification step (expected "
            f"{sp['expected_tokens_per_step']:.2f}); ITL is per verification step")


def simulator_text(s: dict[str, Any], run_info: dict[str, Any]) -> str:
    """The simulator's own speed (wall time, requests per wall-second) and its engine steps."""
    steps = f"{s['num_steps']:,} engine steps"
    wall = run_info.get("sim_wall_s")
    if wall is None:
        return steps
    rate = run_info.get("sim_requests_per_wall_s") or 0.0
    return f"{wall:.2f} s wall, {rate:,.0f} requests/s, {steps}"


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


def bundle_html(run_dir: str) -> str:
    """The page of a saved ``simulate --out-dir`` bundle: ``summary.json``, ``requests.csv``
    (or ``.parquet``), ``timeseries.csv`` and, when the run kept them, ``itls.csv``."""
    import json
    from pathlib import Path

    import pandas as pd

    from llmsim.errors import ConfigError
    from llmsim.report.html import simulation_html

    d = Path(run_dir)
    if not (d / "summary.json").is_file():
        raise ConfigError(f"{run_dir}: no summary.json; give a folder written by "
                          "`llmsim simulate --out-dir DIR`")

    def table(stem: str) -> pd.DataFrame | None:
        for suffix, read in ((".parquet", pd.read_parquet), (".csv", pd.read_csv)):
            if (d / f"{stem}{suffix}").is_file():
                return read(d / f"{stem}{suffix}")
        return None

    summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
    requests, ts = table("requests"), table("timeseries")
    if requests is None or ts is None:
        raise ConfigError(f"{run_dir}: the bundle lacks requests or timeseries")
    return simulation_html(summary, requests, ts, table("itls"), summary_rows(summary))
