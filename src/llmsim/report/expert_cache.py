"""Outputs of ``llmsim moe-offload simulate`` (the GPU expert cache, ``llmsim.expert_cache``):
the summary and per-layer tables, the per-step timeline, JSON and the timeline as CSV."""

from __future__ import annotations

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
    print_tables,
)


def write_expert_cache(result: Any, fmt: str, out: str | None = None,
                       timeline: bool = False) -> None:
    """JSON (``timeline``: with the per-step, per-layer list), the timeline as CSV, or the
    tables (``timeline``: and :func:`timeline_table`)."""
    check_no_report(fmt, "moe-offload")
    if fmt == "json":
        emit(as_json(result.as_dict(timeline=timeline)), out)
    elif fmt in TABULAR:
        emit_frame(pd.DataFrame([e.__dict__ for e in result.timeline]), fmt, out)
    else:
        print_tables(expert_cache_tables(result)
                     + ([timeline_table(result)] if timeline else []), out)


def _prompt_text(r: Any) -> str:
    batch = getattr(r, "batch", 1)
    return (f"{batch} x {r.prompt_tokens} tokens" if batch > 1
            else f"{r.prompt_tokens} tokens")


def expert_cache_tables(r: Any) -> list[Table]:
    """The summary (prefill, decode per token, hit rates, PCIe traffic, time split, GPU memory)
    and the per-layer prefill / decode tables of an expert-cache simulation."""
    t, pct, rate = units.fmt_time, units.fmt_pct, units.fmt_rate
    tables = [kv_table(
        f"{r.model} on {r.hardware} + {r.host} ({r.precision}); cache {r.capacity}/layer "
        f"{r.policy}, prefetch {r.prefetch} @ {r.prefetch_accuracy:g}, miss {r.miss}",
        [
            ("routing", f"{r.routing} (seed {r.seed})"),
            *([("batch", f"{r.batch} sequences decoded together (each step: one token "
                         "of each; the union of their experts per layer)")]
              if getattr(r, "batch", 1) > 1 else []),
            ("prefill", f"{t(r.prefill_s)} for {_prompt_text(r)} "
                        f"({rate(r.prefill_tokens_per_s, digits=0)})"),
            ("decode per token", f"{t(r.decode_s_per_token)} ({rate(r.tokens_per_s)}, "
                                 f"{r.decode_steps} steps)" if r.decode_steps else
             "n/a (0 decode steps)"),
            ("hit rate", f"{pct(r.hit_rate)} (prefill {pct(r.prefill_hit_rate)}, decode "
                         f"{pct(r.decode_hit_rate)}; token-weighted {pct(r.token_hit_rate)})"),
            ("prefetch accuracy (measured)", pct(r.measured_prefetch_accuracy)),
            ("PCIe traffic", f"{units.fmt_bytes(r.pcie_bytes)} (H2D "
                             f"{units.fmt_bytes(r.h2d_bytes)}, D2H "
                             f"{units.fmt_bytes(r.d2h_bytes)}); link busy {t(r.transfer_s)}"),
            ("GPU / CPU expert time", f"{t(r.gpu_expert_s)} / {t(r.cpu_expert_s)}"),
            ("non-expert GPU time", t(r.dense_s)),
            ("stall (unhidden transfers)", t(r.stall_s)),
            ("GPU memory", f"{units.fmt_bytes(r.gpu_memory_bytes)} of "
                           f"{units.fmt_bytes(r.gpu_usable_bytes)} usable"
                           + ("" if r.fits else "  [red]DOES NOT FIT[/red]")),
        ])]
    for phase in ("prefill", "decode"):
        rows = r.per_layer(phase)
        if not rows:
            continue
        title = ("prefill per layer" if phase == "prefill"
                 else "decode per layer (mean per step)")
        table = Table(title=title, title_justify="left")
        for c in ("layer", "time ms", "other ms", "GPU exp ms", "CPU exp ms", "stall ms",
                  "H2D MB", "hits"):
            table.add_column(c, justify="right")
        for row in rows:
            table.add_row(str(row["layer"]), *(units.fmt_ms(row[k]) for k in (
                "time_s", "dense_s", "gpu_expert_s", "cpu_expert_s", "stall_s")),
                units.fmt_mb(row["h2d_bytes"]), pct(row["hit_rate"], 0) if row["moe"] else "-")
        tables.append(table)
    return tables


def timeline_table(r: Any) -> Table:
    """``--timeline`` as a table: one row per step and decoder layer (fits 80 columns)."""
    table = Table(title="timeline (step 0 = prefill; start on the run's clock; hits: hits / "
                        "experts used; pref: prefetch copies issued)", title_justify="left",
                  show_edge=False, pad_edge=False)
    for c in ("step", "layer", "start s", "time ms", "stall ms", "H2D MB", "D2H MB", "hits",
              "pref"):
        table.add_column(c, justify="right", no_wrap=True)
    for e in r.timeline:
        table.add_row(str(e.step), str(e.layer), f"{e.start_s:.4f}",
                      units.fmt_ms(e.time_s), units.fmt_ms(e.stall_s),
                      units.fmt_mb(e.h2d_bytes, grouped=True),
                      units.fmt_mb(e.d2h_bytes, grouped=True),
                      f"{e.hits}/{e.experts}" if e.moe else "-", str(e.prefetch_loads))
    return table
