"""``llmsim simulate``: event-driven serving simulation (see ``docs/serving.md``).

Takes the same model / hardware / parallel-plan / dtype flags as ``estimate``; the workload is a
trace (``--trace``) or synthetic (``--arrival``, ``--rate``, ``--prompt-dist``,
``--output-dist``); ``--config FILE.yaml`` gives every knob in one file (flags override it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from llmsim.cli.options import (
    ActDtypeOpt,
    ClusterOpt,
    DtypeOpt,
    EfficiencyOpt,
    Format,
    FormatOpt,
    HardwareOpt,
    KvDtypeOpt,
    ModelOpt,
    NumGpusOpt,
    ProfileOpt,
    WeightDtypeOpt,
)
from llmsim.errors import ConfigError

_MS_KEYS = (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("itl_s", "ITL"), ("e2e_s", "E2E"),
            ("queueing_delay_s", "queueing"))


def simulate_cmd(
    model: ModelOpt = None,
    hardware: HardwareOpt = None,
    cluster: ClusterOpt = None,
    num_gpus: NumGpusOpt = None,
    tp: Annotated[int | None, typer.Option("--tp", min=1, help="Tensor-parallel ways.")] = None,
    pp: Annotated[int | None, typer.Option("--pp", min=1, help="Pipeline stages.")] = None,
    ep: Annotated[int | None, typer.Option("--ep", min=1, help="Expert-parallel ways.")] = None,
    replicas: Annotated[int | None, typer.Option(
        "--replicas", "--dp", min=1,
        help="Independent data-parallel replicas behind the router (each tp x pp GPUs; "
             "unlike estimate's --dp, MoE experts are not shared across replicas).")] = None,
    micro_batches: Annotated[int | None, typer.Option(
        "--micro-batches", min=0, help="Pipeline micro-batches in flight (0: one per stage).")
    ] = None,
    dtype: DtypeOpt = None,
    weight_dtype: WeightDtypeOpt = None,
    act_dtype: ActDtypeOpt = None,
    kv_dtype: KvDtypeOpt = None,
    profile: ProfileOpt = None,
    efficiency: EfficiencyOpt = None,
    memory_utilization: Annotated[float | None, typer.Option(
        "--memory-utilization", min=0.05, max=1.0,
        help="Fraction of GPU memory the engine may use (vLLM gpu_memory_utilization).")
    ] = None,
    scenario: Annotated[str | None, typer.Option(
        "--scenario", help="Scenario YAML: hardware + layer templates + defaults.")] = None,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", help="Simulation config YAML (sections model, hardware, "
                               "parallelism, scheduler, workload, slo, metrics).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", "-s", help="static | dynamic | continuous | chunked.")] = None,
    max_num_seqs: Annotated[int | None, typer.Option(
        "--max-num-seqs", min=1, help="Most sequences in a batch (default 256).")] = None,
    max_num_batched_tokens: Annotated[int | None, typer.Option(
        "--max-num-batched-tokens", min=1,
        help="Token budget per step (chunked default 8192).")] = None,
    block_size: Annotated[int | None, typer.Option(
        "--block-size", min=1, help="KV-cache block size in tokens (default 16).")] = None,
    order: Annotated[str | None, typer.Option(
        "--order", help="Queue order: fcfs | priority.")] = None,
    preemption: Annotated[str | None, typer.Option(
        "--preemption", help="recompute | swap (KV to host over PCIe).")] = None,
    swap_space_gb: Annotated[float | None, typer.Option(
        "--swap-space", min=0.0, help="Host memory for swapped KV per GPU, GB (default 4 GiB).")
    ] = None,
    prefix_caching: Annotated[bool | None, typer.Option(
        "--prefix-caching/--no-prefix-caching", help="Reuse KV blocks of shared prefixes.")
    ] = None,
    batch_window: Annotated[float | None, typer.Option(
        "--batch-window", min=0.0, help="Dynamic batching window, seconds.")] = None,
    max_model_len: Annotated[int | None, typer.Option(
        "--max-model-len", min=2, help="Longest input+output served (default: model's).")
    ] = None,
    kv_capacity_tokens: Annotated[int | None, typer.Option(
        "--kv-capacity-tokens", min=1,
        help="KV-cache capacity per replica in tokens (default: from the memory analysis).")
    ] = None,
    router: Annotated[str | None, typer.Option(
        "--router", help="round-robin | least-outstanding | least-kv | random.")] = None,
    trace: Annotated[str | None, typer.Option(
        "--trace", "-t", help="Trace CSV/JSONL (Azure 2023, Mooncake, Vidur or "
                              "input_tokens,output_tokens[,arrival_time_s]).")] = None,
    trace_format: Annotated[str | None, typer.Option(
        "--trace-format", help="auto | azure | mooncake | vidur | plain.")] = None,
    rate_scale: Annotated[float | None, typer.Option(
        "--rate-scale", min=1e-9, help="Replay the trace this many times faster (2 = 2x rate).")
    ] = None,
    num_requests: Annotated[int | None, typer.Option(
        "--num-requests", "-n", min=1, help="Requests to simulate (a trace is tiled if short).")
    ] = None,
    arrival: Annotated[str | None, typer.Option(
        "--arrival", help="poisson | gamma | deterministic | batch (all at once).")] = None,
    rate: Annotated[float | None, typer.Option(
        "--rate", "-r", min=1e-12, help="Arrival rate, requests/s.")] = None,
    cv: Annotated[float | None, typer.Option(
        "--cv", min=1e-9, help="Gamma arrivals: coefficient of variation of the gaps.")] = None,
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", min=1, help="Closed loop: at most C requests in flight.")] = None,
    think_time: Annotated[float | None, typer.Option(
        "--think-time", min=0.0, help="Closed loop: seconds between a reply and the next send.")
    ] = None,
    prompt_dist: Annotated[str | None, typer.Option(
        "--prompt-dist", help="Input lengths, e.g. 1024, uniform:128,2048, "
                              "lognormal:mean=1024,cv=1, zipf:a=1.2,high=8192, "
                              "empirical:path=trace.csv.")] = None,
    output_dist: Annotated[str | None, typer.Option(
        "--output-dist", help="Output lengths (same syntax as --prompt-dist).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    shared_prefix: Annotated[int | None, typer.Option(
        "--shared-prefix", min=0, help="Synthetic: tokens of a prompt prefix shared by a group.")
    ] = None,
    prefix_groups: Annotated[int | None, typer.Option(
        "--prefix-groups", min=1, help="Synthetic: number of distinct shared prefixes.")] = None,
    priority_levels: Annotated[int | None, typer.Option(
        "--priority-levels", min=1, help="Synthetic: random priorities 0..K-1 (with --order "
                                         "priority).")] = None,
    slo_ttft: Annotated[float | None, typer.Option(
        "--slo-ttft", min=0.0, help="Goodput SLO on TTFT, seconds (default 2).")] = None,
    slo_tpot: Annotated[float | None, typer.Option(
        "--slo-tpot", min=0.0, help="Goodput SLO on TPOT, seconds (default 0.1).")] = None,
    sample_interval: Annotated[float | None, typer.Option(
        "--sample-interval", min=1e-6, help="Time-series sampling interval, seconds.")] = None,
    out: Annotated[str | None, typer.Option(
        "--out", "-o", help="Write summary.json, requests, time series, plots to this folder.")
    ] = None,
    requests_format: Annotated[str, typer.Option(
        "--requests-format", help="Per-request table format in --out: csv | parquet.")
    ] = "csv",
    chrome_trace: Annotated[bool, typer.Option(
        "--chrome-trace", help="Also write trace.json (Chrome trace of the steps) to --out.")
    ] = False,
    save_itls: Annotated[bool, typer.Option(
        "--save-itls", help="Also write every inter-token latency to --out (itls.csv or "
                            ".parquet: request_id, token_index, itl_s; one row per token).")
    ] = False,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG plots to --out.")
                     ] = True,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress on stderr (default: a bar when stderr is a "
                                         "TTY; --progress elsewhere prints a line per 10%).")
    ] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Simulate serving a request stream: TTFT/TPOT/ITL/E2E percentiles, throughput, goodput."""
    from llmsim.cli.estimate_cmd import resolve_common
    from llmsim.serving.config import SimulationConfig, check_gpu_count, load_config, merge
    from llmsim.serving.results import prepare_out_dir

    if requests_format not in ("csv", "parquet"):
        raise ConfigError(f"--requests-format must be csv or parquet, got {requests_format!r}")
    common = resolve_common(scenario, model=model, hardware=hardware, cluster=cluster,
                            num_gpus=num_gpus, tp=tp, pp=pp, ep=ep, dp=replicas,
                            micro_batches=micro_batches, dtype=dtype, weight_dtype=weight_dtype,
                            act_dtype=act_dtype, kv_dtype=kv_dtype, efficiency=efficiency)
    step_model = None
    spec_obj = common.get("model")
    if spec_obj is not None and not isinstance(spec_obj, str):  # a scenario's ModelSpec
        from llmsim.costmodel import Deployment, build_step_model

        check_gpu_count(common.get("num_gpus"), common.get("tp", 1), common.get("pp", 1),
                        common.get("dp") or 1)
        step_model = build_step_model(Deployment.resolve(
            spec_obj, common.get("hardware"), common.get("cluster"),
            common.get("num_gpus") or common.get("tp", 1) * common.get("pp", 1),
            tp=common.get("tp", 1), pp=common.get("pp", 1), ep=common.get("ep", 1), dp=1,
            micro_batches=common.get("micro_batches", 0), dtype=common.get("dtype"),
            weight_dtype=common.get("weight_dtype"), act_dtype=common.get("act_dtype"),
            kv_dtype=common.get("kv_dtype"), profile=profile, efficiency=efficiency))
        common["model"] = spec_obj.name
    overrides: dict[str, dict[str, Any]] = {
        "model": {"name": common.get("model"), "dtype": common.get("dtype"),
                  "weight_dtype": common.get("weight_dtype"),
                  "act_dtype": common.get("act_dtype"), "kv_dtype": common.get("kv_dtype"),
                  "max_model_len": max_model_len},
        "hardware": {"name": common.get("hardware"), "cluster": common.get("cluster"),
                     "num_gpus": common.get("num_gpus"), "profile": profile,
                     "efficiency": common.get("efficiency"),
                     "memory_utilization": memory_utilization},
        "parallelism": {"tp": common.get("tp"), "pp": common.get("pp"), "ep": common.get("ep"),
                        "replicas": common.get("dp"),
                        "micro_batches": common.get("micro_batches"), "router": router},
        "scheduler": {"name": scheduler, "max_num_seqs": max_num_seqs,
                      "max_num_batched_tokens": max_num_batched_tokens,
                      "block_size": block_size, "order": order, "preemption": preemption,
                      "swap_space_bytes": None if swap_space_gb is None else swap_space_gb * 1e9,
                      "prefix_caching": prefix_caching, "batch_window_s": batch_window,
                      "kv_capacity_tokens": kv_capacity_tokens},
        "workload": {"trace": trace, "trace_format": trace_format, "rate_scale": rate_scale,
                     "num_requests": num_requests, "arrival": arrival, "rate": rate, "cv": cv,
                     "concurrency": concurrency, "think_time_s": think_time,
                     "prompt": prompt_dist, "output": output_dist, "seed": seed,
                     "shared_prefix_tokens": shared_prefix, "prefix_groups": prefix_groups,
                     "priority_levels": priority_levels},
        "slo": {"ttft_s": slo_ttft, "tpot_s": slo_tpot},
        "metrics": {"sample_interval_s": sample_interval,
                    "chrome_trace": True if chrome_trace else None,
                    "save_itls": True if save_itls else None},
    }
    if config:
        cfg = merge(load_config(config), overrides)
    else:
        if not overrides["model"]["name"]:
            raise ConfigError("give --model and --hardware (or --config FILE.yaml)")
        if not overrides["hardware"]["name"] and not overrides["hardware"]["cluster"]:
            raise ConfigError("give --hardware (or --cluster, or --config FILE.yaml)")
        cfg = merge(SimulationConfig(model={"name": overrides["model"]["name"]},
                                     hardware={"name": overrides["hardware"]["name"],
                                               "cluster": overrides["hardware"]["cluster"]}),
                    overrides)
    if not out:
        for flag, on in (("--chrome-trace (metrics.chrome_trace)", cfg.metrics.chrome_trace),
                         ("--save-itls (metrics.save_itls)", cfg.metrics.save_itls)):
            if on:
                raise ConfigError(f"{flag} writes a file into the --out folder; add --out DIR")
    else:
        prepare_out_dir(out)  # a folder that cannot be made fails now, not after the run
    show = sys.stderr.isatty() if progress is None else progress
    report = _run(cfg, step_model, show)
    if out:
        report.write(out, requests_format, plots=plots)
    if fmt == Format.json:
        from llmsim.report.render import as_json, emit

        emit(as_json(report.summary()))
    elif fmt == Format.csv:  # the per-request table
        from llmsim.report.render import emit, frame_to_csv

        emit(frame_to_csv(report.requests))
    else:
        _render(report.summary(), out)


def _run(cfg: Any, step_model: Any, show_progress: bool) -> Any:
    from llmsim.serving.simulator import simulate

    if not show_progress:
        return simulate(cfg, step_model=step_model)
    if not sys.stderr.isatty():  # a log file or a pipe: plain lines, one per 10 %
        return simulate(cfg, step_model=step_model, progress=_progress_lines())
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from llmsim.report.render import console

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task("simulating", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return simulate(cfg, step_model=step_model, progress=tick)


def _progress_lines() -> Any:
    """A ``progress(done, total)`` callback printing a plain line on stderr at every 10 %."""
    t0 = time.perf_counter()
    shown = [-1]

    def tick(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth > shown[0]:
            shown[0] = tenth
            print(f"simulating: {done:,}/{total:,} requests done ({done / max(total, 1):.0%}), "
                  f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    return tick


def _fmt_ms(v: Any) -> str:
    if v is None:
        return "-"
    ms = v * 1e3
    return f"{ms:,.0f}" if ms >= 1000 else f"{ms:,.2f}"


def _render(s: dict[str, Any], out: str | None) -> None:
    from rich.table import Table

    from llmsim.report.render import console, kv_table

    con = console()
    wl = s.get("workload", {})
    slo = s.get("slo", {})
    slo_txt = ", ".join(f"{k.removesuffix('_s').upper()} <= {v * 1e3:g} ms"
                        for k, v in slo.items() if v is not None) or "none"
    rej = s["rejected_by_reason"]
    rej_txt = ", ".join(f"{k} {v}" for k, v in rej.items() if v) or "none"
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
    rows = [
        ("workload", desc),
        ("requests", f"{s['num_completed']:,} completed, {s['num_rejected']:,} rejected "
                     f"({rej_txt}) of {s['num_requests']:,}"),
        ("simulated time", f"{s['duration_s']:,.1f} s"),
        ("throughput", f"{s['requests_per_s']:,.2f} req/s; {s['output_tokens_per_s']:,.0f} "
                       f"output tok/s ({s['output_tokens_per_s_per_gpu']:,.0f} per GPU); "
                       f"{s['input_tokens_per_s']:,.0f} input tok/s"),
        ("goodput", f"{s['goodput_requests_per_s']:,.2f} req/s "
                    f"({(s['slo_attainment_frac'] or 0):.1%} meet {slo_txt})"),
        ("utilisation", f"busy {s['busy_frac']:.1%}, MFU {_pct(s['mfu'])}, MBU {_pct(s['mbu'])}, "
                        f"{s['mean_tokens_per_step']:,.1f} tokens/step"),
        ("KV cache", f"{s['kv_capacity_tokens_per_replica']:,} tokens per replica; usage mean "
                     f"{s['kv_usage_mean_frac']:.1%}, peak {s['kv_usage_peak_frac']:.1%}; "
                     f"{s['num_preemptions']:,} preemptions"
                     + (f"; prefix hit rate {s['prefix_cache_hit_rate']:.1%}"
                        if s.get("prefix_caching") else "")),
        ("simulator", f"{s['sim_wall_s']:.2f} s wall, {s['sim_requests_per_wall_s']:,.0f} "
                      f"requests/s, {s['num_steps']:,} engine steps"),
    ]
    if out:
        rows.append(("output", out))
    title = (f"{s['model']} on {s['num_gpus']}x {s['hardware']} (tp {s['tp']}, pp {s['pp']}, "
             f"{s['replicas']} replica{'s' if s['replicas'] > 1 else ''}; {s['scheduler']}, "
             f"{s['order']})")
    con.print(kv_table(title, rows))
    lat = Table(title="latency (ms)", title_justify="left")
    for c in ("metric", "mean", "p50", "p90", "p95", "p99", "max"):
        lat.add_column(c, justify="left" if c == "metric" else "right")
    for key, name in _MS_KEYS:
        d = s.get(key) or {}
        lat.add_row(name, *(_fmt_ms(d.get(k)) for k in ("mean", "p50", "p90", "p95", "p99",
                                                          "max")))
    con.print(lat)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.1%}"


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)
