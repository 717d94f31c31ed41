"""Rendering of a disaggregated (xPyD) estimate: a summary table, JSON or a CSV row."""

from __future__ import annotations

from typing import Any

import pandas as pd

from llmsim import units
from llmsim.report.render import as_json, emit, frame_to_csv, kv_table, print_tables


def write_disagg(result: Any, fmt: str, out: str | None = None) -> None:
    """One :class:`~llmsim.disagg.DisaggResult` as JSON, a CSV row or its table."""
    if fmt == "json":
        emit(as_json(result.as_dict()), out)
    elif fmt == "csv":
        emit(frame_to_csv(pd.DataFrame([result.as_dict()])), out)
    else:
        r = result
        print_tables([kv_table(
            f"{r.model}: {r.prefill_workers}P{r.decode_workers}D ({r.prefill_gpus} prefill "
            f"GPUs on {r.prefill_hardware}, {r.decode_gpus} decode GPUs on {r.decode_hardware})",
            [
                ("concurrency x prompt -> output", f"{r.concurrency} x {r.prompt} -> {r.output}"),
                ("TTFT", f"{units.fmt_time(r.ttft_s)}  (prefill {units.fmt_time(r.prefill_s)}, "
                         f"queue {units.fmt_time(r.prefill_queue_s)}, KV exposed "
                         f"{units.fmt_time(r.kv_exposed_s)}, decode wait "
                         f"{units.fmt_time(r.decode_wait_s)})"),
                ("TPOT", units.fmt_time(r.tpot_s)),
                ("E2E", units.fmt_time(r.e2e_s)),
                ("KV per request per decode GPU", f"{units.fmt_bytes(r.kv_bytes_per_decode_gpu)}"
                                                  f" in {units.fmt_time(r.kv_transfer_s)}"),
                ("decode batch per worker", f"{r.decode_batch_per_worker:,.1f}"),
                ("requests/s", f"{r.requests_per_s:,.2f}"),
                ("output tokens/s", f"{r.output_tokens_per_s:,.1f}  "
                                    f"({r.output_tokens_per_s_per_gpu:,.1f} per GPU)"),
                ("input tokens/s per prefill GPU", f"{r.input_tokens_per_s_per_prefill_gpu:,.0f}"),
                ("prefill busy / decode slots used",
                 f"{units.fmt_pct(r.prefill_utilization)} / "
                 f"{units.fmt_pct(r.decode_utilization)}  (bottleneck: {r.bottleneck})"),
                ("balanced prefill:decode workers", f"{r.balanced_prefill_per_decode:.2f} : 1 "
                                                   f"(e.g. {r.suggested_xpyd})"),
            ])], out)
