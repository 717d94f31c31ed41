"""Terminal rendering (rich) and machine formats (JSON / CSV) of results. Only this layer and
the CLI print."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from llmsim import units
from llmsim.io import to_json


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


@contextmanager
def output_console(out: str | None = None) -> Iterator[Console]:
    """A console for a command's tables: the terminal, or (``--out FILE``) a recording console
    whose plain text is written atomically to ``FILE`` when the block ends."""
    if not out:
        yield console()
        return
    con = Console(record=True, file=io.StringIO(), width=120, highlight=False,
                  soft_wrap=False, color_system=None)
    yield con
    from llmsim.io import write_text

    write_text(out, con.export_text())


def emit(text: str, out: str | None = None) -> None:
    """Print ``text`` or write it atomically to ``out``."""
    if out:
        from llmsim.io import write_text

        write_text(out, text)
    else:
        print(text, end="" if text.endswith("\n") else "\n")


def as_json(data: Any) -> str:
    return to_json(data)


def frame_to_csv(frame: pd.DataFrame) -> str:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


def kv_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("", style="bold")
    t.add_column("", overflow="fold")  # long values (source URLs) wrap, never cut
    for k, v in rows:
        t.add_row(k, v)
    return t


def frame_table(frame: pd.DataFrame, title: str = "", columns: Sequence[str] | None = None,
                max_rows: int = 200) -> Table:
    cols = list(columns) if columns else list(frame.columns)
    t = Table(title=title or None, title_justify="left")
    for c in cols:
        t.add_column(str(c), overflow="fold")
    for _, row in frame.head(max_rows).iterrows():
        t.add_row(*(_cell(row[c]) for c in cols))
    return t


def _cell(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return ""
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.4g}"
        return f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def estimate_tables(result: Any) -> list[Table]:
    """Summary, memory and per-layer tables of an :class:`EstimateResult`."""
    r = result
    summary = kv_table(
        f"{r.model} on {r.num_gpus}x {r.hardware} (tp {r.tp}, pp {r.pp}, ep {r.ep}, dp {r.dp}; "
        f"{r.precision})",
        [
            ("batch x prompt -> output", f"{r.batch} x {r.prompt} -> {r.output}"
             + (f" (beam {r.beam})" if r.beam > 1 else "")),
            ("TTFT (prefill)", units.fmt_time(r.ttft_s)),
            ("TPOT (per output token)", units.fmt_time(r.tpot_s)),
            ("E2E", units.fmt_time(r.e2e_s)),
            ("output tokens/s", f"{r.output_tokens_per_s:,.1f}  "
                                f"({r.output_tokens_per_s_per_gpu:,.1f} per GPU)"),
            ("prefill MFU / decode MBU", f"{r.prefill_mfu:.1%} / {r.decode_mbu:.1%}"),
            ("bottleneck (prefill / decode)",
             f"{r.prefill_step.bottleneck.name} / {r.decode_step.bottleneck.name}"),
            ("calibration", r.profile),
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
    return [summary, mem, layer_table("prefill step", r.prefill_step),
            layer_table("decode step (mid context)", r.decode_step)]


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


def memory_table(report: Any, title: str) -> Table:
    m = report
    return kv_table(title, [
        ("capacity", units.fmt_bytes(m.capacity_bytes)),
        ("usable", f"{units.fmt_bytes(m.usable_bytes)} (x{m.memory_utilization:g} - "
                   f"{units.fmt_bytes(m.reserve_bytes)} reserve)"),
        ("weights", units.fmt_bytes(m.weight_bytes)),
        ("KV cache per token", f"{m.kv_bytes_per_token / 1e3:,.1f} kB"),
        ("activations (peak)", units.fmt_bytes(m.activation_bytes)),
        ("KV budget", units.fmt_bytes(max(m.kv_budget_bytes, 0))),
        ("max KV tokens", f"{m.max_kv_tokens:,}"),
        ("KV for this workload", units.fmt_bytes(m.kv_bytes)),
        ("peak", units.fmt_bytes(m.peak_bytes)),
        ("fits", "yes" if m.fits else "[red]no[/red]"),
    ])


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
    if c.time_s > 0 and c.flops:
        rows.append(("achieved", f"{c.flops / c.time_s / 1e12:,.1f} TFLOP/s, "
                                 f"{c.bytes / c.time_s / 1e9:,.1f} GB/s"))
    return kv_table("", rows)
