"""Many cases in one process: how users sweep.

- :func:`estimate_cases`: a table whose columns are ``estimate`` flags (``model, hardware, tp,
  pp, batch, prompt, output, dtype, ...``); one output row per input row. A row that fails
  (does not fit, bad name) gets ``error`` set instead of aborting the sweep.
- :func:`predict_requests`: a per-request table (``input_tokens, output_tokens`` and optionally
  measured ``ttft_s, tpot_s, e2e_s``); one prediction per request with the shared flags, and error
  statistics where measurements exist (the GenZ analyzer workflow).
- :func:`price_op_cases`: a table of ops (``kind, hardware, dtype`` + shape columns).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from llmsim import checks
from llmsim.costmodel import Deployment, build_step_model, opcases
from llmsim.errors import DataError, LLMSimError
from llmsim.estimates.intervals import IntervalOptions
from llmsim.estimates.op import price_op
from llmsim.estimates.static_batch import estimate

ESTIMATE_COLUMNS = {
    "model": str, "hardware": str, "cluster": str, "num_gpus": int, "tp": int, "pp": int,
    "ep": int, "dp": int, "micro_batches": int, "batch": int, "prompt": int, "output": int,
    "beam": int, "dtype": str, "weight_dtype": str, "act_dtype": str, "kv_dtype": str,
    "efficiency": float, "memory_utilization": float, "estimator": str, "estimator_model": str,
    "max_model_len": int,
}
REQUEST_COLUMNS = ("input_tokens", "output_tokens")
MEASURED = ("ttft_s", "tpot_s", "e2e_s")
#: the figures of a sweep or request row that get ``_lo`` / ``_hi`` columns with intervals
INTERVAL_COLUMNS = ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s")
_STEP_KEYS = ("model", "hardware", "cluster", "num_gpus", "tp", "pp", "ep", "dp",
              "micro_batches", "dtype", "weight_dtype", "act_dtype", "kv_dtype", "efficiency",
              "estimator", "estimator_model")


def read_table(path: str) -> pd.DataFrame:
    """Read a CSV / Parquet / JSONL case file with a clear error."""
    try:
        if str(path).endswith(".parquet"):
            return pd.read_parquet(path)
        if str(path).endswith((".jsonl", ".json")):
            return pd.read_json(path, lines=str(path).endswith(".jsonl"))
        return pd.read_csv(path, skipinitialspace=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as exc:  # parser errors of every flavour
        detail = " ".join(str(exc).split())
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {detail})") from None


def missing(value: Any) -> bool:
    """An empty cell: None, NaN, pandas' NA or an empty string."""
    if isinstance(value, str):
        return value == ""
    return value is None or bool(pd.isna(value))


def whole_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Float columns that hold only whole numbers (and gaps) as nullable integers, so a case
    file's ``4096`` is echoed as ``4096``, not ``4096.0`` (pandas widens a column with a gap)."""
    out = frame.copy()
    for col in out.columns:
        values = out[col]
        if values.dtype.kind == "f":
            present = values.dropna()
            if len(present) and bool(((present % 1) == 0).all()) and \
                    bool((present.abs() < 2**53).all()):
                out[col] = values.astype("Int64")
    return out


def is_request_table(frame: pd.DataFrame) -> bool:
    return all(c in frame.columns for c in REQUEST_COLUMNS)


def _cell(value: Any, typ: type, col: str) -> Any:
    """A case-file cell as its column's type: whole numbers stay whole (2.5 in an int column
    is an error, not 2), numbers are finite, names are text."""
    if typ is int:
        return checks.whole(value, col, low=0)
    if typ is float:
        return checks.number(value, col)
    return str(value)


def _row_kwargs(row: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: v for k, v in defaults.items() if v is not None}
    for col, typ in ESTIMATE_COLUMNS.items():
        if col in row:
            value = row[col]
            if missing(value):
                continue
            kwargs[col] = _cell(value, typ, col)
    return kwargs


def _rows(frame: pd.DataFrame, what: str) -> None:
    if not len(frame):
        raise DataError(f"the {what} file has a header but no rows; add one case per row")


def _bounds(res: Any, prefix: str = "") -> dict[str, float]:
    """``{prefix}{figure}_lo`` / ``_hi`` of an estimate's intervals (none without)."""
    if res.intervals is None:
        return {}
    return {f"{prefix}{m}_{b}": v for m in INTERVAL_COLUMNS if m in res.intervals
            for b, v in zip(("lo", "hi"), res.intervals[m], strict=True)}


def estimate_cases(frame: pd.DataFrame, defaults: dict[str, Any] | None = None,
                   intervals: IntervalOptions | None = None) -> pd.DataFrame:
    """One estimate per row; columns named as the flags override ``defaults``; with
    ``intervals`` each row also gets ``{figure}_lo`` / ``_hi`` (:data:`INTERVAL_COLUMNS`)."""
    unknown = [c for c in frame.columns if c not in ESTIMATE_COLUMNS]
    if unknown:
        raise DataError(
            f"case file has unknown columns {unknown}; known: {sorted(ESTIMATE_COLUMNS)}"
        )
    _rows(frame, "case")
    defaults = defaults or {}
    rows = []
    cache: dict[tuple, Any] = {}
    for row in whole_numbers(frame).to_dict("records"):
        out: dict[str, Any] = dict(row)
        try:
            kwargs = _row_kwargs(row, defaults)
            step_key = tuple(kwargs.get(k) for k in _STEP_KEYS)
            sm = cache.get(step_key)
            if sm is None:
                sm = build_step_model(Deployment.resolve(
                    **{k: kwargs[k] for k in _STEP_KEYS if k in kwargs}))
                cache[step_key] = sm
            run = {k: v for k, v in kwargs.items() if k not in _STEP_KEYS}
            res = estimate(kwargs.get("model", ""), step_model=sm, allow_overflow=True,
                           intervals=intervals or False, **run)
            out.update(res.summary_row())
            out.update(_bounds(res))
            out["error"] = ""
        except LLMSimError as exc:
            out["fits"] = False
            out["error"] = str(exc)
        rows.append(out)
    return whole_numbers(pd.DataFrame(rows))


def error_stats(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Error statistics of predictions against measurements: ``n``, mean / median / p90 / max
    absolute % error, mean and median signed % error (the bias: > 0 predicts too slow), and
    ``pearson_r``, the correlation of ``log(predicted)`` with ``log(measured)`` (the log-log
    scatter's; NaN below 3 rows or without spread)."""
    mask = np.isfinite(measured) & np.isfinite(predicted) & (measured > 0)
    if not mask.any():
        return {"n": 0}
    ape = np.abs(predicted[mask] / measured[mask] - 1.0) * 100.0
    signed = (predicted[mask] / measured[mask] - 1.0) * 100.0
    return {
        "n": int(mask.sum()),
        "mape_pct": float(np.mean(ape)),
        "median_ape_pct": float(np.median(ape)),
        "p90_ape_pct": float(np.percentile(ape, 90)),
        "max_ape_pct": float(np.max(ape)),
        "mean_signed_pct": float(np.mean(signed)),
        "median_signed_pct": float(np.median(signed)),
        "pearson_r": log_pearson(predicted[mask], measured[mask]),
    }


def log_pearson(predicted: np.ndarray, measured: np.ndarray) -> float:
    """Pearson r of ``log(predicted)`` and ``log(measured)`` (positive values; NaN for fewer
    than 3 or no spread)."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    ok = (p > 0) & (m > 0) & np.isfinite(p) & np.isfinite(m)
    lp, lm = np.log(p[ok]), np.log(m[ok])
    if lp.size < 3 or np.std(lp) == 0 or np.std(lm) == 0:
        return float("nan")
    return float(np.corrcoef(lp, lm)[0, 1])


def predict_requests(frame: pd.DataFrame, batch: int = 1,
                     intervals: IntervalOptions | None = None, **step_kwargs: Any
                     ) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Per-request predictions (each request as a static batch of ``batch``) and error stats
    (:func:`error_stats`); with ``intervals`` also ``pred_{figure}_lo`` / ``_hi`` and, where
    measured, the share of requests inside them (``interval_coverage``)."""
    for col in REQUEST_COLUMNS:
        if col not in frame.columns:
            raise DataError(f"request file needs columns {REQUEST_COLUMNS}; missing {col!r}")
    _rows(frame, "request")
    lengths = frame[list(REQUEST_COLUMNS)].apply(pd.to_numeric, errors="coerce")
    bad_rows = (lengths.isna() | (lengths < 1) | (lengths % 1 != 0)
                | (lengths > 2**31 - 1)).any(axis=1)
    if bad_rows.any():
        bad = int(bad_rows.to_numpy().argmax())
        raise DataError(f"request row {bad}: input_tokens and output_tokens must be whole "
                        "numbers >= 1")
    frame = frame.assign(**{c: lengths[c].astype(np.int64) for c in REQUEST_COLUMNS})
    sm = build_step_model(Deployment.resolve(**step_kwargs))
    preds = []
    memo: dict[tuple[int, int], Any] = {}
    for i, o in zip(frame["input_tokens"].astype(int), frame["output_tokens"].astype(int),
                    strict=True):
        key = (i, o)
        if key not in memo:
            try:
                r = estimate(sm.deployment.model, step_model=sm, batch=batch, prompt=i, output=o,
                             allow_overflow=True, intervals=intervals or False)
                memo[key] = (r.ttft_s, r.tpot_s, r.e2e_s, r.fits, "", _bounds(r, "pred_"))
            except LLMSimError as exc:
                memo[key] = (np.nan, np.nan, np.nan, False, str(exc), {})
        preds.append(memo[key])
    out = frame.copy()
    out["pred_ttft_s"] = [p[0] for p in preds]
    out["pred_tpot_s"] = [p[1] for p in preds]
    out["pred_e2e_s"] = [p[2] for p in preds]
    out["fits"] = [p[3] for p in preds]
    out["error"] = [p[4] for p in preds]
    if intervals is not None:
        bounds = pd.DataFrame([p[5] for p in preds], index=out.index)
        for col in bounds.columns:
            out[col] = bounds[col]
    stats: dict[str, dict[str, float]] = {}
    for m in MEASURED:
        if m in frame.columns:
            meas = frame[m].to_numpy(float)
            stats[m] = error_stats(out[f"pred_{m}"].to_numpy(float), meas)
            if f"pred_{m}_lo" in out.columns and stats[m].get("n"):
                lo, hi = out[f"pred_{m}_lo"].to_numpy(float), out[f"pred_{m}_hi"].to_numpy(float)
                ok = np.isfinite(meas) & np.isfinite(lo) & (meas > 0)
                stats[m]["interval_coverage"] = float(np.mean((meas[ok] >= lo[ok])
                                                              & (meas[ok] <= hi[ok])))
    return out, stats


OP_COLUMNS = opcases.CASE_COLUMNS


def price_op_cases(frame: pd.DataFrame, defaults: dict[str, Any] | None = None) -> pd.DataFrame:
    """One op per row; repeats the input columns and adds ``time_s, flops, bytes, bound``."""
    unknown = [c for c in frame.columns if c not in OP_COLUMNS]
    if unknown:
        raise DataError(f"op case file has unknown columns {unknown}; known: {list(OP_COLUMNS)}")
    _rows(frame, "op case")
    defaults = {k: v for k, v in (defaults or {}).items() if v is not None}
    rows = []
    for row in whole_numbers(frame).to_dict("records"):
        cells = {c: v for c, v in row.items() if not missing(v)}
        kind = opcases.normalize_kind(cells.get("kind", ""))
        # a default format for the whole file applies to the rows it concerns
        args = {k: v for k, v in defaults.items()
                if not (k == "kv_dtype" and not kind.startswith("attention"))
                and not (k == "act_dtype" and kind not in opcases.KERNEL_KINDS)}
        args.update(cells)
        out = dict(row)
        try:
            kind = args.pop("kind")
            hardware = args.pop("hardware")
            cost = price_op(str(kind), str(hardware), **args)
            out.update(time_s=cost.time_s, flops=cost.flops, bytes=cost.bytes,
                       bound=cost.bound.value, error="")
            if cost.source:  # the estimator's data or its calibrated fallback
                out["source"] = cost.source
        except LLMSimError as exc:  # before KeyError: UnknownNameError is a KeyError too
            out.update(time_s=np.nan, flops=np.nan, bytes=np.nan, bound="", error=str(exc))
        except KeyError as exc:
            out.update(time_s=np.nan, flops=np.nan, bytes=np.nan, bound="",
                       error=f"missing column {exc.args[0]!r}")
        rows.append(out)
    return whole_numbers(pd.DataFrame(rows))
