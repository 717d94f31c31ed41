"""Outputs of ``llmsim memory``: the breakdown per GPU and the largest batch that fits."""

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
    output_console,
)


def write_memory(record: dict[str, Any], report: Any, title: str, max_batch: int,
                 max_tokens: int | None, fmt: str, out: str | None = None) -> None:
    """``record`` (the JSON / CSV row) or the breakdown table titled ``title`` and a line with
    ``max_batch``, the largest batch at the sequence length (forward passes of ``max_tokens``
    when given)."""
    check_no_report(fmt, "memory")
    if fmt == "json":
        emit(as_json(record), out)
    elif fmt in TABULAR:
        emit_frame(pd.DataFrame([record]), fmt, out)
    else:
        with output_console(out) as con:
            con.print(memory_table(report, title))
            basis = (f"forward passes of up to {max_tokens:,} tokens" if max_tokens else
                     "the whole batch in one forward pass; --max-num-batched-tokens sets an "
                     "engine's budget")
            con.print(f"max batch at {record['seq_len']} tokens per sequence: "
                      f"{max_batch:,} ({basis})")


def memory_table(report: Any, title: str) -> Table:
    """The memory breakdown of one GPU (a :class:`MemoryReport`) and whether it fits."""
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
