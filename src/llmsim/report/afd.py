"""Rendering of ``llmsim afd simulate``: the unit's summary, one row per layer template (stage
times per micro-batch, the bottleneck stage) and, with a TPOT target, the layouts searched.
Table, JSON (everything) or CSV (the per-layer rows, or the searched layouts)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from llmsim import units
from llmsim.report.render import (
    as_json,
    check_no_report,
    emit,
    emit_frame,
    emit_records,
    frame_table,
    kv_table,
    print_tables,
)

_LAYER_COLUMNS = ("layer", "x", "attn_ms", "a_to_f_ms", "ffn_ms", "f_to_a_ms", "period_ms",
                  "bottleneck", "xfer_KiB")
_LAYERS_TITLE = ("per layer (x: layers of the template; stage times of one micro-batch; period: "
                 "max(round trip, m x slowest stage); xfer: bytes of each transfer)")
_SEARCH_COLUMNS = ("attention", "ffn", "m", "gpus", "tpot_ms", "tok_s_per_gpu", "bottleneck",
                   "fits", "meets_target")


def _layers_frame(result: Any) -> pd.DataFrame:
    rows = [{"layer": r["name"], "x": r["repeat"], "attn_ms": r["attention_s"] * 1e3,
             "a_to_f_ms": r["a_to_f_s"] * 1e3, "ffn_ms": r["ffn_s"] * 1e3,
             "f_to_a_ms": r["f_to_a_s"] * 1e3, "period_ms": r["period_s"] * 1e3,
             "bottleneck": r["bottleneck"], "xfer_KiB": r["transfer_bytes"] / 1024}
            for r in result.layers]
    return pd.DataFrame(rows, columns=list(_LAYER_COLUMNS))


def _summary(r: Any, title: str) -> Any:
    return kv_table(title, [
        ("unit", f"{r.attention_instances} attention x tp {r.attention_tp} + "
                 f"{r.ffn_instances} FFN = {r.num_gpus} GPUs, {r.microbatches} micro-batch"
                 f"{'es' if r.microbatches > 1 else ''}, "
                 f"link {r.link}"),
        ("batch x seq", f"{r.batch_per_attention} per attention instance "
                        f"({r.batch_per_attention * r.attention_instances} in all) x {r.seq}"),
        ("TPOT (decode step)", units.fmt_time(r.tpot_s)),
        ("prefill step", units.fmt_time(r.prefill_s)),
        ("decode tokens/s", f"{r.decode_tokens_per_s:,.1f}  "
                            f"({r.decode_tokens_per_s_per_gpu:,.2f} per GPU)"),
        ("bottleneck stage", r.bottleneck_stage),
        ("memory per GPU", f"attention {units.fmt_bytes(r.attention_bytes_per_gpu)}, FFN "
                           f"{units.fmt_bytes(r.ffn_bytes_per_gpu)} of "
                           f"{units.fmt_bytes(r.usable_bytes_per_gpu)} usable"
                           f"{'' if r.fits else '  (does not fit)'}"),
    ])


def _search_frame(search: Any) -> pd.DataFrame:
    rows = [{"attention": c.attention_instances, "ffn": c.ffn_instances, "m": c.microbatches,
             "gpus": c.num_gpus, "tpot_ms": c.tpot_s * 1e3,
             "tok_s_per_gpu": c.decode_tokens_per_s_per_gpu, "bottleneck": c.bottleneck_stage,
             "fits": c.fits, "meets_target": c.fits and c.tpot_s <= search.tpot_target_s}
            for c in search.candidates]
    return pd.DataFrame(rows, columns=list(_SEARCH_COLUMNS))


def write_afd(result: Any, fmt: str, out: str | None = None) -> None:
    """An :class:`~llmsim.disagg.afd.AFDResult` as JSON, CSV (per-layer rows) or tables."""
    check_no_report(fmt, "afd simulate")
    if emit_records(result, pd.DataFrame(list(result.layers)), fmt, out):
        return
    print_tables([_summary(result, f"{result.model} on {result.hardware}: attention-FFN "
                                   "disaggregation"),
                  frame_table(_layers_frame(result), _LAYERS_TITLE,
                              essential=_LAYER_COLUMNS[:8])], out)


def write_afd_search(search: Any, fmt: str, out: str | None = None, top: int = 10) -> None:
    """An :class:`~llmsim.disagg.afd.AFDSearch`: JSON (all), CSV (every layout) or tables (the
    best's records and the ``top`` layouts)."""
    check_no_report(fmt, "afd simulate")
    if fmt == "json":
        emit(as_json(search.as_dict()), out)
        return
    if fmt in ("csv", "parquet"):
        emit_frame(pd.DataFrame([c.summary_row() for c in search.candidates]), fmt, out)
        return
    target = units.fmt_time(search.tpot_target_s)
    tables: list[Any] = []
    if search.best is None:
        tables.append(f"no layout fits with TPOT <= {target}; the closest are below")
    else:
        tables.append(_summary(search.best, f"best layout for TPOT <= {target}: "
                                            f"{search.best.model} on {search.best.hardware}"))
        tables.append(frame_table(_layers_frame(search.best),
                                  _LAYERS_TITLE,
                                  essential=_LAYER_COLUMNS[:8]))
    tables.append(frame_table(_search_frame(search).head(top),
                              f"top {top} of {len(search.candidates)} layouts (decode tokens/s "
                              "per GPU)", essential=_SEARCH_COLUMNS))
    print_tables(tables, out)
