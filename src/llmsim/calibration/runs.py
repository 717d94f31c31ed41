"""The end-to-end measurement schema: one measured configuration (or request) per row.

docs/calibration.md ("The end-to-end schema") documents it with an example; Splitwise's table
(:mod:`.splitwise`) is one such file. Columns:

- required: ``model``, ``hardware`` (catalog names or aliases), ``input_tokens``,
  ``output_tokens``, ``mode`` (``static``: a batch run to completion, as ``estimate``
  prices; ``closed_loop`` / ``open_loop``: a serving benchmark at a ``concurrency`` or
  ``request_rate``, as ``simulate`` prices), and at least one measured figure of
  ``ttft_s``, ``tpot_s``, ``e2e_s``, ``output_tokens_per_s``;
- load: ``batch`` (static; default 1 when absent: a per-request file), ``concurrency``
  (closed loop) or ``request_rate`` (open loop, requests/s);
- plan: ``tp`` (default 1), ``pp``, ``ep``, ``dp`` (default 1), ``num_gpus``, ``cluster``;
- formats: ``dtype``, ``weight_dtype``, ``kv_dtype``;
- provenance: ``framework``, ``framework_version``, ``runs`` (repeats; the figures are their
  median), ``source``.

``prompt`` / ``output`` are accepted for ``input_tokens`` / ``output_tokens`` (the Splitwise
loader's names).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsim.catalog import get_hardware
from llmsim.costmodel.estimators.sources import read_table_file
from llmsim.errors import DataError

MODES = ("static", "closed_loop", "open_loop")
FIGURES = ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s")
REQUIRED = ("model", "hardware", "input_tokens", "output_tokens", "mode")
LOAD = {"static": "batch", "closed_loop": "concurrency", "open_loop": "request_rate"}
OPTIONAL = ("batch", "concurrency", "request_rate", "tp", "pp", "ep", "dp", "num_gpus",
            "cluster", "dtype", "weight_dtype", "kv_dtype", "framework", "framework_version",
            "runs", "source")
COLUMNS = REQUIRED + FIGURES + OPTIONAL
ALIASES = {"prompt": "input_tokens", "output": "output_tokens"}
_INTS = ("input_tokens", "output_tokens", "batch", "concurrency", "tp", "pp", "ep", "dp",
         "num_gpus", "runs")


def validate_runs(df: pd.DataFrame, origin: str = "runs") -> pd.DataFrame:
    """Check and normalise an end-to-end table (raises :class:`DataError`, one line)."""
    if df is None or len(df) == 0:
        raise DataError(f"{origin}: no rows")
    df = df.rename(columns={k: v for k, v in ALIASES.items() if k in df.columns
                            and v not in df.columns})
    unknown = [c for c in df.columns if c not in COLUMNS]
    if unknown:
        raise DataError(f"{origin}: unknown columns {unknown}; known: {list(COLUMNS)}")
    out = df.copy()
    if "mode" not in out.columns:
        out["mode"] = "static"
    missing = [c for c in REQUIRED if c not in out.columns]
    if missing:
        raise DataError(f"{origin}: missing required columns {missing}")
    if not any(c in out.columns for c in FIGURES):
        raise DataError(f"{origin}: no measured figure; give one of {list(FIGURES)}")
    bad = sorted(set(out["mode"].astype(str)) - set(MODES))
    if bad:
        raise DataError(f"{origin}: unknown mode(s) {bad}; known: {list(MODES)}")
    if "batch" not in out.columns:
        out["batch"] = np.where(out["mode"] == "static", 1, np.nan)
    for mode, col in LOAD.items():
        rows = (out["mode"] == mode).to_numpy()
        if not rows.any():
            continue
        vals = (pd.to_numeric(out[col], errors="coerce") if col in out.columns
                else pd.Series(np.nan, index=out.index))
        bad = rows & (vals.isna() | (vals <= 0)).to_numpy()
        if bad.any():
            raise DataError(f"{origin}: row {int(np.flatnonzero(bad)[0])}: mode {mode} needs "
                            f"{col} > 0")
    for c in FIGURES:
        if c in out.columns:
            v = pd.to_numeric(out[c], errors="coerce")
            if (v <= 0).any():
                row = int(np.flatnonzero((v <= 0).to_numpy())[0])
                raise DataError(f"{origin}: row {row}: {c} must be > 0 (got {out[c].iloc[row]})")
            out[c] = v
    present = np.zeros(len(out), dtype=bool)
    for c in FIGURES:
        if c in out.columns:
            present |= out[c].notna().to_numpy()
    if not present.all():
        row = int(np.flatnonzero(~present)[0])
        raise DataError(f"{origin}: row {row}: no measured figure")
    for c in ("input_tokens", "output_tokens"):
        v = pd.to_numeric(out[c], errors="coerce")
        if v.isna().any() or (v < 1).any():
            row = int(np.flatnonzero((v.isna() | (v < 1)).to_numpy())[0])
            raise DataError(f"{origin}: row {row}: {c} must be a whole number >= 1")
    out["tp"] = pd.to_numeric(out["tp"], errors="coerce").fillna(1) if "tp" in out.columns \
        else 1
    for c in _INTS:
        if c in out.columns and out[c].notna().all():
            out[c] = pd.to_numeric(out[c]).astype(int)
    names = {h: get_hardware(str(h)).name for h in set(out["hardware"])}
    out["hardware"] = out["hardware"].map(names)
    return out.reset_index(drop=True)


def read_runs(path: str) -> pd.DataFrame:
    """Read (CSV / Parquet / JSONL) and check an end-to-end measurement file."""
    return validate_runs(read_table_file(path), origin=str(path))
