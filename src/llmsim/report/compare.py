"""Output of ``llmsim compare``: a measured vLLM benchmark result and llmsim's prediction of it,
key by key (``llmsim.serving.vllm_bench``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from llmsim.report.render import (
    TABULAR,
    as_json,
    check_no_report,
    emit,
    emit_frame,
    frame_table,
    print_tables,
)


def comparison_frame(measured: Mapping[str, Any], report: Any) -> pd.DataFrame:
    """``metric, measured, predicted, error_pct`` for every vLLM key the measured result has,
    the prediction computed at the measured result's percentiles."""
    from llmsim.serving.vllm_bench import (
        comparison_rows,
        measured_percentiles,
        metric_keys,
        vllm_bench_metrics,
    )

    percentiles = measured_percentiles(measured)
    predicted = vllm_bench_metrics(report, percentiles)
    return pd.DataFrame(comparison_rows(measured, predicted, metric_keys(percentiles)),
                        columns=["metric", "measured", "predicted", "error_pct"])


def write_comparison(measured: Mapping[str, Any], report: Any, fmt: str, out: str | None,
                     source: str) -> None:
    """The comparison as JSON (``{"measured_file", "rows"}``), CSV / Parquet rows, or a table."""
    check_no_report(fmt, "compare")
    frame = comparison_frame(measured, report)
    if fmt == "json":
        emit(as_json({"measured_file": source, "rows": frame.to_dict(orient="records")}), out)
    elif fmt in TABULAR:
        emit_frame(frame, fmt, out)
    else:
        print_tables([frame_table(frame, title=f"llmsim vs {source} (error: predicted / "
                                               "measured - 1, %)")], out)


def write_runs(frame: pd.DataFrame, fmt: str, out: str | None, title: str,
               bars: Sequence[tuple[str, str]]) -> None:
    """Runs compared (one row each, ``run`` naming it): JSON records, CSV / Parquet, a table
    that fits the terminal, or (``html``) one page of bars and the table."""
    if fmt == "html":
        from llmsim.report.html import comparison_html
        from llmsim.report.render import emit_html

        emit_html(comparison_html(title, frame, "run", bars), out)
    elif fmt == "json":
        emit(as_json({"runs": frame.to_dict(orient="records")}), out)
    elif fmt in TABULAR:
        emit_frame(frame, fmt, out)
    else:
        keep = [c for c in frame.columns if c in ("run", *COMPARE_ESSENTIAL)]
        print_tables([frame_table(frame, title=title, essential=keep)], out)


#: the columns a narrow terminal keeps of a comparison
COMPARE_ESSENTIAL = ("num_gpus", "output_tokens_per_s_per_gpu", "goodput_requests_per_s",
                     "ttft_s", "tpot_s", "ttft_s.p99", "tpot_s.p99", "fits")
