"""Rendering of ``llmsim large-ep evaluate``: a summary and one row per layer template and
phase (table), the whole record (JSON) or the per-layer rows (CSV)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from llmsim import units
from llmsim.report.render import (
    check_no_report,
    emit_records,
    frame_table,
    kv_table,
    print_tables,
)

_COLUMNS = ("phase", "layer", "x", "ms", "bound", "disp_KiB", "disp_ms", "comb_ms", "exp_ms",
            "imbal")


def layer_frame(result: Any) -> pd.DataFrame:
    """One row per (phase, layer template), every field."""
    return pd.DataFrame([layer.as_dict() for layer in result.layers])


def _display_frame(result: Any) -> pd.DataFrame:
    rows = [{"phase": r.phase, "layer": r.layer, "x": r.repeat, "ms": r.time_s * 1e3,
             "bound": r.bound.replace("communication", "comm"),
             "disp_KiB": r.dispatch_bytes / 1024, "disp_ms": r.dispatch_s * 1e3,
             "comb_ms": r.combine_s * 1e3, "exp_ms": r.experts_s * 1e3,
             "imbal": r.imbalance} for r in result.layers]
    return pd.DataFrame(rows, columns=list(_COLUMNS))


def write_large_ep(result: Any, fmt: str, out: str | None = None) -> None:
    """A :class:`~llmsim.estimates.large_ep.LargeEPResult` as JSON, CSV rows or tables."""
    check_no_report(fmt, "large-ep evaluate")
    if emit_records(result, layer_frame(result), fmt, out):
        return
    r = result
    kernel = r.ep_kernel or "generic all-to-all"
    summary = kv_table(
        f"{r.model} on {r.num_gpus}x {r.hardware} (tp {r.tp}, ep {r.ep}, attention-dp {r.dp})",
        [("batch per DP rank x seq", f"{r.batch} x {r.seq}"),
         ("imbalance", f"{r.imbalance:.3f} (skew {r.expert_skew:g}, "
                       f"{r.redundant_experts} redundant experts)"),
         ("dispatch/combine", f"{kernel}{', two-batch overlap' if r.two_batch_overlap else ''}"),
         ("prefill step", f"{units.fmt_time(r.prefill_s)}  "
                          f"({r.prefill_tokens_per_s_per_gpu:,.0f} tokens/s per GPU)"),
         ("decode step", f"{units.fmt_time(r.decode_s)}  "
                         f"({r.decode_tokens_per_s_per_gpu:,.1f} tokens/s per GPU)"),
         ("bottleneck (prefill / decode)", f"{r.prefill_bottleneck} / {r.decode_bottleneck}"),
         ("weights per GPU", f"{units.fmt_bytes(r.weight_bytes_per_gpu)} of "
                             f"{units.fmt_bytes(r.memory_bytes_per_gpu)}")])
    layers = frame_table(_display_frame(r), "per layer (x: layers of the template; ms: one "
                                            "layer; disp/comb: MoE dispatch/combine, bytes one "
                                            "rank sends; exp: expert GEMMs)",
                         essential=_COLUMNS[:5])
    print_tables([summary, layers], out)
