"""Outputs of the static-batch front end (``llmsim estimate`` and ``llmsim op``): the summary,
memory and per-layer tables of one estimate, the table of an op's cost, and the table / JSON /
CSV of a sweep or a per-request file."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.table import Table

from llmsim import units
from llmsim.report.render import (
    TABULAR,
    _cell,
    as_json,
    check_no_report,
    console,
    emit,
    emit_frame,
    emit_html,
    frame_table,
    kv_table,
    print_tables,
)

#: the columns of a sweep or per-request table shown on the terminal (files get them all)
CASE_COLUMNS = ("model", "hardware", "tp", "pp", "ep", "dp", "batch", "prompt", "output", "dtype",
                "input_tokens", "output_tokens", "ttft_s", "tpot_s", "e2e_s",
                "output_tokens_per_s", "pred_ttft_s", "pred_tpot_s", "pred_e2e_s", "fits",
                "error")
#: the columns kept when the table is too wide for the terminal (the rest are named under it)
ESSENTIAL_CASE_COLUMNS = ("model", "hardware", "tp", "batch", "prompt", "output",
                          "input_tokens", "output_tokens", "ttft_s", "pred_ttft_s", "tpot_s",
                          "pred_tpot_s", "e2e_s", "pred_e2e_s", "output_tokens_per_s", "fits")


def write_estimate(result: Any, fmt: str, out: str | None = None, ops: bool = False) -> None:
    """One :class:`EstimateResult` as JSON (per-layer; ``ops``: every op too), a CSV summary
    row, or its tables."""
    if fmt == "html":
        from llmsim.report.html import estimate_html

        rows = [(k, _cell(v)) for k, v in result.summary_row().items()]
        emit_html(estimate_html(result, rows), out)
    elif fmt == "json":
        emit(as_json(result.as_dict(layers=True, ops=ops)), out)
    elif fmt in TABULAR:
        emit_frame(pd.DataFrame([result.summary_row()]), fmt, out)
    else:
        print_tables(estimate_tables(result), out)


def write_cases(frame: pd.DataFrame, fmt: str, out: str | None, title: str,
                extra: dict[str, Any] | None = None) -> None:
    """A sweep or per-request table: JSON (``{"rows": [...], **extra}``), CSV (also for a table
    with ``out``) or a terminal table of :data:`CASE_COLUMNS`."""
    check_no_report(fmt, "estimate --cases")
    if fmt == "json":
        payload: dict[str, Any] = {"rows": frame.to_dict(orient="records")}
        payload.update(extra or {})
        emit(as_json(payload), out)
    elif fmt in TABULAR or (out and not _is_text(out)):
        emit_frame(frame, fmt if fmt in TABULAR else "csv", out)
    else:
        cols = [c for c in frame.columns if c in CASE_COLUMNS]
        print_tables([frame_table(frame, title=title, columns=cols,
                                  essential=ESSENTIAL_CASE_COLUMNS)], out)


def write_requests(frame: pd.DataFrame, stats: dict[str, dict[str, float]], fmt: str,
                   out: str | None) -> None:
    """Per-request predictions, and (terminal table) their error against the measured times."""
    check_no_report(fmt, "estimate --cases")
    write_cases(frame, fmt, out, title="per-request predictions", extra={"error_stats": stats})
    if fmt == "table" and stats and (not out or _is_text(out)):
        from llmsim.report.calibration import error_view

        rows = pd.DataFrame([{"figure": k, **v} for k, v in stats.items()])
        console().print(frame_table(error_view(rows), title="prediction error vs measured "
                                                           "(r: Pearson of the logs)"))


def _is_text(out: str) -> bool:
    """``--out`` names a text file for the table (``.txt``, ``.md``); any other name given
    with the table format gets the CSV (as before the format came from the extension)."""
    return out.lower().endswith((".txt", ".md"))


def estimate_tables(result: Any) -> list[Table]:
    """Summary, memory and per-layer tables of an :class:`EstimateResult`."""
    r = result
    summary = kv_table(
        f"{r.model} on {r.num_gpus}x {r.hardware} (tp {r.tp}, pp {r.pp}, ep {r.ep}, dp {r.dp}; "
        f"{r.precision})",
        [
            ("batch x prompt -> output", f"{r.batch} x {r.prompt} -> {r.output}"
             + (f" (beam {r.beam})" if r.beam > 1 else "")),
            ("TTFT (prefill)", timed(r, "ttft_s")),
            ("TPOT (per output token)", timed(r, "tpot_s")),
            ("E2E", timed(r, "e2e_s")),
            ("output tokens/s", f"{r.output_tokens_per_s:,.1f}{bracket(r, 'output_tokens_per_s')}"
                                f"  ({r.output_tokens_per_s_per_gpu:,.1f} per GPU)"),
            ("prefill MFU / decode MBU",
             f"{units.fmt_pct(r.prefill_mfu)} / {units.fmt_pct(r.decode_mbu)}"),
            ("bottleneck (prefill / decode)",
             f"{r.prefill_step.bottleneck.name} / {r.decode_step.bottleneck.name}"),
            ("calibration", r.profile),
            *estimator_rows(r),
            *interval_rows(r),
        ],
    )
    mem = kv_table(
        "memory per GPU",
        [
            ("weights", units.fmt_bytes(r.weight_bytes_per_device)),
            ("KV cache", units.fmt_bytes(r.kv_bytes_per_device)),
            ("activations", units.fmt_bytes(r.activation_bytes_per_device)),
            ("peak / usable", f"{units.fmt_bytes(r.peak_bytes_per_device)} / "
                              f"{units.fmt_bytes(r.usable_bytes_per_device)}"
                              + ("" if r.fits else "  [red]DOES NOT FIT[/red]")),
            ("max KV tokens", f"{r.max_kv_tokens_per_device:,}"),
        ],
    )
    spec = speculative_table(r.speculative) if r.speculative else None
    return [summary, *([spec] if spec is not None else []), mem,
            layer_table("prefill step", r.prefill_step),
            layer_table("decode step (mid context)", r.decode_step)]


def speculative_table(sp: dict[str, Any]) -> Table:
    """The ``speculative`` block of an estimate (``estimates/speculative.py``)."""
    method = str(sp["method"]) + (f" ({sp['draft_model']})" if sp.get("draft_model") else "")
    acc = ", ".join(f"{a:g}" for a in sp["acceptance"])  # type: ignore[union-attr]
    return kv_table("speculative decoding", [
        ("proposer / draft tokens k", f"{method} / {sp['num_tokens']}"),
        ("acceptance per position", acc),
        ("tokens per verification step", f"{sp['expected_tokens_per_step']:.3f}"),
        ("ITL (per verification step)", units.fmt_time(float(sp.get("itl_s", float("nan"))))),
        ("TPOT without speculation", units.fmt_time(float(sp.get("baseline_tpot_s",
                                                                 float("nan"))))),
        ("decode speed-up", f"{float(sp.get('speedup', float('nan'))):.2f}x"),
        ("proposer weights / KV per GPU",
         f"{units.fmt_bytes(float(sp['draft_weight_bytes_per_device']))} / "
         f"{units.fmt_bytes(float(sp['draft_kv_bytes_per_device']))}"),
    ])


def timed(result: Any, key: str) -> str:
    """A time figure of an estimate with its interval in the same unit, e.g.
    ``"412.345 ms [371, 466]"``."""
    value = getattr(result, key)
    text = units.fmt_time(value)
    bounds = (result.intervals or {}).get(key)
    if not bounds or value != value:
        return text
    scale = next((s for s, lim in ((1.0, 1.0), (1e3, 1e-3), (1e6, 1e-6)) if abs(value) >= lim),
                 1e9)
    return f"{text} [{_num(bounds[0] * scale)}, {_num(bounds[1] * scale)}]"


def bracket(result: Any, key: str) -> str:
    """``" [lo, hi]"`` of a figure's interval (empty without intervals)."""
    bounds = (result.intervals or {}).get(key)
    return f" [{_num(bounds[0])}, {_num(bounds[1])}]" if bounds else ""


def _num(x: float) -> str:
    """Three significant digits, thousands separated (``371``, ``46.6``, ``1,091``)."""
    if x != x:
        return "n/a"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def interval_rows(result: Any) -> list[tuple[str, str]]:
    """What the brackets are: the nominal level and what the draws cover."""
    if not result.intervals:
        return []
    basis = result.interval_basis or {}
    engine = ("kernel errors only" if basis.get("engine") == "not included" else
              "kernel errors + a measured engine's time outside the kernels, so often above "
              "the point value")
    return [("interval [lo, hi]", f"{result.interval_level:.0%} level, from the estimator's "
                                  f"validation residuals: {engine} (docs/estimators.md)")]


def estimator_rows(result: Any) -> list[tuple[str, str]]:
    """The estimator (when not the default ``calibrated``) and where each step's op time came
    from (``table`` / ``learned`` / ``calibrated`` fallback, as AIConfigurator marks ops
    ``[silicon]`` / ``[empirical]``)."""
    name = getattr(result, "estimator", "calibrated")
    rows = [] if name == "calibrated" else [("estimator", name)]
    sources = result.op_sources() if hasattr(result, "op_sources") else {}
    if sources:
        rows.append(("op time from", "; ".join(
            f"{step}: " + ", ".join(f"{tag} {units.fmt_pct(share)}"
                                    for tag, share in sorted(shares.items(),
                                                             key=lambda kv: -kv[1]))
            for step, shares in sources.items())))
    return rows


#: narrow names for the bound column, so a layer table fits 80 columns
_SHORT_BOUND = {"communication": "comm"}


def layer_table(title: str, step: Any) -> Table:
    t = Table(title=f"{title}: {units.fmt_time(step.time_s)}", title_justify="left")
    for c in ("layer", "x", "time/layer", "total", "GFLOP", "MB", "bound"):
        t.add_column(c, justify="right" if c not in ("layer", "bound") else "left")
    for layer in step.layers:
        t.add_row(layer.name, str(layer.repeat), units.fmt_time(layer.time_s),
                  units.fmt_time(layer.time_s * layer.repeat), f"{layer.flops / 1e9:,.2f}",
                  f"{layer.bytes / 1e6:,.2f}", _SHORT_BOUND.get(layer.bound.value,
                                                                layer.bound.value))
    return t


def op_table(cost: Any, hardware: str) -> Table:
    c = cost
    rows = [("op", f"{c.kind.value} on {hardware}"), ("time", units.fmt_time(c.time_s)),
            ("bound", c.bound.value)]
    if c.flops:
        rows.append(("FLOP", f"{c.flops:.4g}"))
    if c.bytes:
        rows.append(("bytes (read + written)", f"{c.bytes:.4g}"))
    if c.comm_bytes:
        rows.append(("message bytes", f"{c.comm_bytes:.4g}"))
    rows += [("compute / memory / comm", f"{units.fmt_time(c.compute_s)} / "
                                          f"{units.fmt_time(c.memory_s)} / "
                                          f"{units.fmt_time(c.comm_s)}"),
             ("fixed cost", units.fmt_time(c.overhead_s))]
    if c.source:
        rows.append(("time from", c.source))
    library = _library(c)
    if library:
        rows.append(("priced as", "the engines' custom all-reduce" if library == "custom"
                     else "NCCL"))
    if c.time_s > 0 and c.flops:
        rows.append(("achieved", f"{c.flops / c.time_s / 1e12:,.1f} TFLOP/s, "
                                 f"{c.bytes / c.time_s / 1e9:,.1f} GB/s"))
    return kv_table("", rows)


def op_record(cost: Any, hardware: str, dtype: str, act_dtype: str | None, inter_node: bool,
              shape: dict[str, Any]) -> dict[str, Any]:
    """The JSON / CSV record of one priced op: its inputs as given, then its cost."""
    return {"kind": cost.kind.value, "hardware": hardware, "dtype": dtype,
            **({"act_dtype": act_dtype} if act_dtype else {}),
            **({"inter_node": True} if inter_node else {}),
            **{k: v for k, v in shape.items() if v is not None}, "time_s": cost.time_s,
            "flops": cost.flops, "bytes": cost.bytes, "comm_bytes": cost.comm_bytes,
            "bound": cost.bound.value,
            "compute_s": cost.compute_s, "memory_s": cost.memory_s, "comm_s": cost.comm_s,
            "overhead_s": cost.overhead_s, **({"source": cost.source} if cost.source else {}),
            **({"library": library} if (library := _library(cost)) else {})}


def _library(cost: Any) -> str | None:
    """Which kernel priced an all-reduce (``custom``: the engines' own, ``nccl``); None for
    other ops (``collectives.collective`` marks the all-reduces)."""
    if "custom" not in cost.shape:
        return None
    return "custom" if cost.shape["custom"] else "nccl"


def write_op(record: dict[str, Any], cost: Any, fmt: str, out: str | None = None) -> None:
    """One op: its record as JSON or a CSV row, or :func:`op_table`."""
    check_no_report(fmt, "op")
    if fmt == "json":
        emit(as_json(record), out)
    elif fmt in TABULAR:
        emit_frame(pd.DataFrame([record]), fmt, out)
    else:
        print_tables([op_table(cost, record["hardware"])], out)


def write_op_cases(result: pd.DataFrame, fmt: str, out: str | None = None) -> None:
    """An ``op --cases`` result: JSON records, CSV (also for a table with ``out``) or a table."""
    check_no_report(fmt, "op --cases")
    if fmt == "json":
        emit(as_json(result.to_dict(orient="records")), out)
    elif fmt in TABULAR or (out and not _is_text(out)):
        emit_frame(result, fmt if fmt in TABULAR else "csv", out)
    else:
        print_tables([frame_table(result, title=f"{len(result)} ops")], out)


def write_features(frame: pd.DataFrame, fmt: str, out: str | None = None) -> None:
    """Feature rows (``op --cases --features``): JSON records, else CSV (the terminal gets CSV
    too: a row has 20-odd columns)."""
    if fmt == "json":
        emit(as_json(frame.to_dict(orient="records")), out)
    else:
        emit_frame(frame, "csv", out)
