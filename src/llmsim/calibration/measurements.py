"""The normalized measurement table every loader produces and every fit / check consumes.

One row = one measured op. Columns are the ``llmsim op --cases`` columns
(:data:`llmsim.costmodel.opcases.CASE_COLUMNS`: ``kind, hardware, dtype, kv_dtype, m, n,
k, batch, ...``) plus

- ``measured_time_s``: the measured latency in seconds (required);
- ``source``: which table the row came from (``aiconfigurator/h100_sxm/gemm/vllm/0.24.0/...``);
- ``op``: a finer name within the kind (``input_layernorm``, ``attn_pre_proj``, ...);
- ``bytes_read`` / ``bytes_written``: for ``kind == "elementwise"`` (memory-bound kernels have no
  shape flags in ``llmsim op``);
- ``stride``: rank spacing of a collective's group (``gpus_per_node / devices_per_node`` for
  multi-node rows; 1 otherwise);
- ``framework``, ``framework_version``: the software stack that ran the kernel (``vllm``,
  ``0.24.0``); tables and residual pools are keyed by them;
- ``distribution``: MoE routing of the measurement (``balanced``, ``power_law_1.01``);
- ``statistic``, ``n_samples``, ``std_s``: which statistic ``measured_time_s`` is (median, mean,
  min), over how many repeats, and their spread in seconds.

A user's own measurements (``llmsim calibrate --measurements FILE``) are this table with only the
``op --cases`` columns and ``measured_time_s`` required (docs/calibration.md, "The op-timing
schema").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from llmsim.costmodel import opcases
from llmsim.errors import DataError

MEASURED = "measured_time_s"
EXTRA_COLUMNS = ("source", "op", "bytes_read", "bytes_written", "stride", "framework",
                 "framework_version", "distribution", "statistic", "n_samples", "std_s")
ALL_COLUMNS = opcases.CASE_COLUMNS + (MEASURED,) + EXTRA_COLUMNS

KERNEL_KINDS, COMM_KINDS, KINDS = opcases.KERNEL_KINDS, opcases.COMM_KINDS, opcases.KINDS
FAMILY = opcases.FAMILY
normalize_kind = opcases.normalize_kind


def frame(rows: dict[str, object] | pd.DataFrame) -> pd.DataFrame:
    """Build a table with every column of :data:`ALL_COLUMNS` (missing ones filled with NaN)."""
    df = pd.DataFrame(rows)
    for col in ALL_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    return df[list(ALL_COLUMNS)].reset_index(drop=True)


def validate(df: pd.DataFrame, origin: str = "measurements") -> pd.DataFrame:
    """Check a user's measurement table; returns it normalized (raises :class:`DataError`).

    Needs ``kind``, ``hardware`` and ``measured_time_s`` (> 0), and the shape columns each kind
    needs (as ``llmsim op`` does); unknown columns are rejected with the known list.
    """
    if df is None or len(df) == 0:
        raise DataError(f"{origin}: no rows")
    unknown = [c for c in df.columns if c not in ALL_COLUMNS]
    if unknown:
        raise DataError(f"{origin}: unknown columns {unknown}; known: {list(ALL_COLUMNS)}")
    missing = [c for c in ("kind", "hardware", MEASURED) if c not in df.columns]
    if missing:
        raise DataError(f"{origin}: missing required columns {missing} (a measurement file is "
                        f"an `llmsim op --cases` file plus a {MEASURED} column)")
    out = frame(df.copy())
    out["kind"] = out["kind"].map(normalize_kind)
    bad = sorted(set(out["kind"]) - set(KINDS))
    if bad:
        raise DataError(f"{origin}: unknown op kinds {bad}; known: {list(KINDS)}")
    t = pd.to_numeric(out[MEASURED], errors="coerce")
    if t.isna().any() or (t <= 0).any():
        row = int(np.flatnonzero((t.isna() | (t <= 0)).to_numpy())[0])
        raise DataError(f"{origin}: row {row}: {MEASURED} must be a number > 0 "
                        f"(got {df[MEASURED].iloc[row]!r})")
    out[MEASURED] = t.astype(float)
    for kind, need in opcases.REQUIRED.items():
        rows = out["kind"] == kind
        if not rows.any():
            continue
        for col in need:
            vals = pd.to_numeric(out.loc[rows, col], errors="coerce")
            if vals.isna().any():
                row = int(vals.index[vals.isna()][0])
                raise DataError(f"{origin}: row {row}: kind {kind} needs column {col!r}")
    out["dtype"] = out["dtype"].astype(object).where(out["dtype"].notna(), "bf16")
    out["source"] = out["source"].astype(object).where(out["source"].notna(), origin)
    out["stride"] = pd.to_numeric(out["stride"], errors="coerce").fillna(1.0)
    return out




def ape_pct(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Absolute percentage error ``|pred / meas - 1| * 100``."""
    return np.abs(np.asarray(predicted, float) / np.asarray(measured, float) - 1.0) * 100.0


def summarize(ape: np.ndarray) -> dict[str, float]:
    """n, median, p90 and max of absolute % errors (non-finite values are dropped)."""
    ape = np.asarray(ape, float)
    ape = ape[np.isfinite(ape)]
    if ape.size == 0:
        return {"n": 0, "median_ape_pct": math.nan, "p90_ape_pct": math.nan,
                "max_ape_pct": math.nan}
    return {"n": int(ape.size), "median_ape_pct": float(np.median(ape)),
            "p90_ape_pct": float(np.percentile(ape, 90)), "max_ape_pct": float(np.max(ape))}
