"""Outputs of ``llmsim executor run|check|presets`` (the PyTorch MoE executor and the closed
loop that checks ``llmsim.expert_cache`` against it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd
from rich.table import Table

from llmsim import units
from llmsim.report.render import (
    TABULAR,
    as_json,
    check_no_report,
    emit,
    emit_frame,
    kv_table,
    output_console,
    print_tables,
)


def write_run(r: Any, fmt: str, out: str | None = None) -> None:
    """An executor run as JSON or :func:`run_tables`."""
    if fmt == "json":
        emit(as_json(r.as_dict()), out)
    else:
        print_tables(run_tables(r), out)


def run_tables(r: Any) -> list[Table]:
    """Summary (model, routing, prefill, decode per token, hits, bytes moved) and per-layer
    times of an executor run."""
    t, pct = units.fmt_time, units.fmt_pct
    m, o = r.model, r.offload
    decode = (f"{t(r.decode_s_per_token)} ({r.tokens_per_s:,.2f} tokens/s; median "
              f"{t(r.decode_s_per_token_median)})" if r.decode_steps else "n/a (0 decode steps)")
    summary = kv_table(
        f"executor: {m['name']} on {r.device} ({r.dtype}); cache {o['capacity']}/layer "
        f"{o['policy']}, prefetch {o['prefetch']} @ {o['prefetch_accuracy']:g}, miss {o['miss']}",
        [
            ("model", f"hidden {m['hidden_size']}, {m['num_layers']} layers, {m['num_heads']} "
                      f"heads / {m['num_kv_heads']} KV x {m['head_dim']}, {m['num_experts']} "
                      f"experts top-{m['top_k']} x {m['expert_intermediate_size']}"),
            ("routing", r.routing),
            ("prefill", f"{t(r.prefill_s)} for {r.prompt_tokens} tokens "
                        f"({r.prefill_tokens_per_s:,.0f} tokens/s; "
                        f"median {t(r.prefill_s_median)})"),
            ("decode per token", decode),
            ("cache hits", f"{r.hits} hits / {r.misses} misses = {pct(r.hit_rate)} (prefill "
                           f"{pct(r.prefill_hit_rate)}, decode {pct(r.decode_hit_rate)})"),
            ("prefetch accuracy (measured)", pct(r.prefetch_accuracy)),
            ("host<->device bytes", f"H2D {units.fmt_bytes(r.h2d_bytes)}, D2H "
                                    f"{units.fmt_bytes(r.d2h_bytes)}"),
            ("KV length", str(r.kv_len)),
            ("timing", f"best of {r.repeats} timed passes after {r.warmup} warm-up"),
        ])
    table = Table(title="per layer", title_justify="left")
    for c in ("layer", "prefill", "decode (mean/step)"):
        table.add_column(c, justify="right")
    for i, (a, b) in enumerate(zip(r.prefill_layer_s, r.decode_layer_s, strict=True)):
        table.add_row(str(i), t(a), t(b))
    return [summary, table]


def write_check(r: Any, fmt: str, out: str | None = None, details: bool = False) -> None:
    """A closed-loop check as JSON (``details``: with the executor and simulation results in
    full) or :func:`print_check`."""
    if fmt == "json":
        emit(as_json(r.as_dict(details=details)), out)
    else:
        print_check(r, out)


def _err(pred: float, meas: float) -> float:
    return (pred - meas) / meas if meas else pred - meas


def _median(values: Iterable[float]) -> float:
    import statistics

    return float(statistics.median(values))


def print_check(r: Any, out: str | None = None) -> None:
    """The closed-loop check: measured vs predicted (and replayed-routing) prefill, decode per
    token and hit rate, a note on the routing and the machine's load, the measured machine."""
    ex, m = r.executor, r.machine
    o = ex.offload
    table = Table(title=f"closed loop: {ex.model['name']} on {m.device_name} ({ex.dtype}, "
                        f"{m.threads} threads); cache {o['capacity']}/layer {o['policy']}, "
                        f"prefetch {o['prefetch']} @ {o['prefetch_accuracy']:g}, miss "
                        f"{o['miss']}", title_justify="left")
    for c in ("metric", "measured", "predicted", "error", "replay", "error"):
        table.add_column(c, justify="right" if c != "metric" else "left", no_wrap=True)
    labels = {"prefill_s": "prefill", "decode_s_per_token": "decode / token",
              "hit_rate": "hit rate"}
    for key, label in labels.items():
        show = units.fmt_pct if key == "hit_rate" else units.fmt_time
        table.add_row(label, show(r.measured[key]), show(r.predicted[key]),
                      units.fmt_pct(r.error_frac[key], signed=True),
                      show(r.predicted_replay[key]),
                      units.fmt_pct(r.error_frac_replay[key], signed=True))
    batch = getattr(r, "batch", 1)
    if batch > 1:
        b = r.bytes_copied
        table.add_row("H2D bytes", units.fmt_bytes(b["measured"]),
                      units.fmt_bytes(b["predicted"]),
                      units.fmt_pct(_err(b["predicted"], b["measured"]), signed=True),
                      units.fmt_bytes(b["predicted_replay"]),
                      units.fmt_pct(_err(b["predicted_replay"], b["measured"]), signed=True))
        table.add_row("stall (predicted)", "", units.fmt_time(r.simulation.stall_s), "",
                      units.fmt_time(r.simulation_replay.stall_s), "")
    with output_console(out) as con:
        con.print(table)
        shape = (f"batch {batch} x prompt {ex.prompt_tokens}" if batch > 1
                 else f"prompt {ex.prompt_tokens}")
        con.print(f"predicted: routing {r.sim_routing}; replay: the executor's recorded "
                  f"routing.\nExecutor routing: {ex.routing}; {shape}, "
                  f"{ex.decode_steps} decode steps, best of {ex.repeats} passes.")
        if batch > 1 and ex.decode_step_s:
            errs = r.step_error_frac
            con.print("decode steps (replay), measured / predicted: " + ", ".join(
                f"{units.fmt_time(m)} / {units.fmt_time(p)}" for m, p in zip(
                    ex.decode_step_s, r.simulation_replay.decode_step_s, strict=True)))
            con.print(f"per-step error: median {units.fmt_pct(_median(errs), signed=True)}, "
                      f"worst {units.fmt_pct(max(errs, key=abs), signed=True)}")
        if r.contended:
            con.print(f"[yellow]note: load average {r.load_avg_before:.1f} on {r.cpu_count} "
                      "CPUs when the check started; other processes may have inflated the "
                      "timings (on a shared machine try --threads 1).[/yellow]")
        con.print(kv_table("measured machine", [
            ("matmul peak", f"{m.matmul_flops_per_s / 1e9:,.1f} GFLOP/s ({m.dtype})"),
            ("GEMM / expert fit", f"compute {m.gemm_compute_eff:.2f} / "
                                  f"{m.expert_compute_eff:.2f} of peak, m_half "
                                  f"{m.gemm_m_half:.3g} / {m.expert_m_half:.3g}, weight "
                                  f"streaming {m.gemm_memory_eff:.2f} / "
                                  f"{m.expert_memory_eff:.2f} of GEMV"),
            ("attention efficiency", f"{m.attention_compute_eff:.2f}"),
            ("memory bandwidth", f"{units.fmt_bandwidth(m.memory_bandwidth_bytes_per_s)} "
                                 f"(GEMV), copy "
                                 f"{units.fmt_bandwidth(m.copy_bandwidth_bytes_per_s)}"),
            ("host->device", f"{units.fmt_bandwidth(m.h2d_bandwidth_bytes_per_s)}, latency "
                             f"{units.fmt_time(m.link_latency_s)}"),
            ("fixed costs", ", ".join(f"{k} {units.fmt_time(v)}" for k, v in m.launch_s.items())
             + f", step {units.fmt_time(m.step_overhead_s)}"),
            ("wall time", units.fmt_time(r.wall_s)),
        ]))


def preset_rows(presets: Iterable[Any]) -> list[dict[str, Any]]:
    """One JSON / CSV record per executor preset: its model config, cache and run shape."""
    return [{**{k: v for k, v in p.model.model_dump(mode="json").items() if k != "format"},
             "model": p.model.name, "name": p.name, "description": p.description,
             "capacity": p.offload.capacity, "prefetch": p.offload.prefetch,
             "prefetch_accuracy": p.offload.prefetch_accuracy,
             "prompt_tokens": p.prompt_tokens, "decode_steps": p.decode_steps}
            for p in presets]


#: the rows of the presets table: label, value of a preset
_PRESET_FIELDS: tuple[tuple[str, Callable[[Any], str]], ...] = (
    ("hidden size", lambda p: str(p.model.hidden_size)),
    ("layers", lambda p: str(p.model.num_layers)),
    ("heads / KV x dim", lambda p: f"{p.model.num_heads} / {p.model.num_kv_heads} x "
                                   f"{p.model.head_dim}"),
    ("experts, top-k", lambda p: f"{p.model.num_experts}, top-{p.model.top_k}"),
    ("expert width", lambda p: str(p.model.expert_intermediate_size)),
    ("dtype", lambda p: p.model.weight_dtype.value),
    ("cache / layer", lambda p: str(p.offload.capacity)),
    ("prefetch @ accuracy", lambda p: f"{p.offload.prefetch} @ "
                                      f"{p.offload.prefetch_accuracy:g}"),
    ("prompt, decode steps", lambda p: f"{p.prompt_tokens}, {p.decode_steps}"),
)


def presets_table(presets: Sequence[Any]) -> Table:
    """One column per preset (fits 80 columns however many fields a preset has)."""
    table = Table(title="executor presets", title_justify="left")
    table.add_column("")
    for p in presets:
        table.add_column(p.name, justify="right")
    for label, get in _PRESET_FIELDS:
        table.add_row(label, *(get(p) for p in presets))
    return table


def write_presets(presets: Sequence[Any], fmt: str, out: str | None = None) -> None:
    """The presets as JSON, CSV (without descriptions) or :func:`presets_table`."""
    check_no_report(fmt, "executor presets")
    rows = preset_rows(presets)
    if fmt == "json":
        emit(as_json({"presets": rows}), out)
    elif fmt in TABULAR:
        emit_frame(pd.DataFrame(rows).drop(columns=["description"]), fmt, out)
    else:
        print_tables([presets_table(presets)], out)
