"""Outputs of ``llmsim calibrate`` (the fitted families of a profile and their in-sample error)
and ``llmsim validate`` (predicted-vs-measured error per op kind)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from llmsim.report.render import (
    TABULAR,
    as_json,
    check_no_report,
    console,
    emit,
    emit_frame,
    emit_html,
    frame_table,
)

#: the fit columns kept when the table is too wide for the terminal
FIT_ESSENTIAL = ("hardware", "family", "n", "median_ape_pct", "p90_ape_pct")
#: the validation columns kept when the table is too wide for the terminal
VALIDATION_ESSENTIAL = ("hardware", "kind", "n", "median_ape_pct", "p90_ape_pct",
                        "median_signed_pct", "uncalibrated_median_ape_pct")


def fit_rows(results: Sequence[Any]) -> list[dict[str, Any]]:
    """One record per fitted family: its error (%, two decimals) and parameters, as text."""
    return [{"hardware": r.hardware, "family": r.family, "n": r.n,
             "median_ape_pct": round(r.median_ape_pct, 2), "p90_ape_pct": round(r.p90_ape_pct, 2),
             "params": " ".join(f"{k}={v:g}" for k, v in r.params.items()),
             "notes": "; ".join(r.notes)} for r in results]


def write_fits(results: Sequence[Any], profile_path: str, fmt: str) -> None:
    """The fits of a calibration written to ``profile_path``: JSON (parameters as numbers), CSV,
    or a table and the line that says how to use the profile."""
    check_no_report(fmt, "calibrate")
    rows = fit_rows(results)
    if fmt == "json":
        emit(as_json({"profile": profile_path, "fits": [
            dict(r, params=res.params) for r, res in zip(rows, results, strict=True)]}))
        return
    frame = pd.DataFrame(rows)
    if fmt in TABULAR:
        emit_frame(frame, fmt)
        return
    console().print(frame_table(frame, title=f"fitted {len(results)} families (in-sample error)",
                                essential=FIT_ESSENTIAL))
    console().print(f"wrote {profile_path}; use it with --profile {profile_path}")


#: what a validation page plots: group -> (predicted, measured)
Series = Mapping[str, tuple[Any, Any]]


def write_validation(errors: pd.DataFrame, num_measurements: int, profile_origin: str, fmt: str,
                     out: str | None = None, series: Series | None = None) -> None:
    """Absolute % error per op kind against ``num_measurements`` measurements: JSON, CSV (also
    for a table with ``out``), a table (two decimals) or the HTML page of ``series`` (per
    hardware and op kind: predicted and measured seconds)."""
    if fmt == "html":
        from llmsim.report.html import validation_html

        emit_html(validation_html(
            f"validation: {num_measurements} measured op timings", series or {}, errors,
            rows=[("measurements", str(num_measurements)), ("profile", profile_origin),
                  ("groups", str(len(errors)))]), out)
    elif fmt == "json":
        emit(as_json({"profile": profile_origin, "errors": errors.to_dict(orient="records")}),
             out)
    elif fmt in TABULAR or out:
        emit_frame(errors, fmt if fmt in TABULAR else "csv", out)
    else:
        console().print(frame_table(errors.round(2), title=(
            f"absolute % error vs {num_measurements} measurements (profile: {profile_origin})"),
            essential=VALIDATION_ESSENTIAL))


def write_training(model: Any, path: str, fmt: str) -> None:
    """What ``llmsim train`` fitted: rows and parts per op kind, and how to use the file."""
    rows = [{"kind": k, "rows": v["n"], "parts": ", ".join(v["parts"])}
            for k, v in model.info["kinds"].items()]
    if fmt == "json":
        emit(as_json({"model_file": path, "kinds": rows, "info": model.info}))
        return
    frame = pd.DataFrame(rows)
    if fmt == "csv":
        emit(frame.to_csv(index=False))
        return
    console().print(frame_table(frame, title=f"learned estimator: {len(rows)} op kinds"))
    console().print(f"wrote {path}; use it with --estimator learned --estimator-model {path}")


def write_run_validation(errors: pd.DataFrame, rows: pd.DataFrame, skipped: int,
                         estimator: str, fmt: str, out: str | None = None,
                         series: Series | None = None) -> None:
    """Per-figure error of an end-to-end validation: JSON (``errors`` and every priced
    ``rows``), CSV of the rows (also for a table with ``out``), the error table, or the HTML
    page of ``series`` (per figure: predicted and measured seconds)."""
    if fmt == "html":
        from llmsim.report.html import validation_html

        emit_html(validation_html(
            f"validation: {len(rows)} measured runs (estimator {estimator})", series or {},
            errors, rows=[("runs priced", str(len(rows))), ("estimator", estimator),
                          ("serving-mode rows left out", str(skipped))]), out)
    elif fmt == "json":
        emit(as_json({"estimator": estimator, "skipped_rows": skipped,
                      "errors": errors.to_dict(orient="records"),
                      "rows": rows.to_dict(orient="records")}), out)
    elif fmt in TABULAR or out:
        emit_frame(rows, fmt if fmt in TABULAR else "csv", out)
    else:
        note = f"; {skipped} serving-mode rows left to simulate" if skipped else ""
        console().print(frame_table(error_view(errors), title=(
            f"% error vs {len(rows)} measured runs (estimator {estimator}{note})")))


#: the terminal columns of a predicted-vs-measured error table, with their short names
ERROR_VIEW = {"figure": "figure", "n": "n", "median_ape_pct": "median %", "p90_ape_pct": "p90 %",
              "median_signed_pct": "bias %", "pearson_r": "r (log)",
              "interval_coverage": "in interval"}


def error_view(errors: pd.DataFrame) -> pd.DataFrame:
    """The columns of :data:`ERROR_VIEW` that ``errors`` has, renamed, two decimals (files and
    JSON keep every column under its full name)."""
    cols = [c for c in ERROR_VIEW if c in errors.columns]
    return errors[cols].rename(columns=ERROR_VIEW).round(2)
