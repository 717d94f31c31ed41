"""``llmsim validate`` on end-to-end measurements (the runs schema, :mod:`.runs`): each static
row priced by ``estimate`` (:func:`llmsim.calibration.e2e.predict`) and compared per figure.

Figures: ``ttft_s`` and ``tpot_s`` as priced; ``e2e_s = TTFT + (output - 1) x TPOT`` and
``output_tokens_per_s = batch x output / E2E`` (``estimate``'s conventions) where the file
measures them. Rows of the serving modes (``closed_loop`` / ``open_loop``) need a request
stream and are left to ``simulate``: they are counted as skipped. With intervals each row also
gets ``{figure}_lo`` / ``{figure}_hi`` and the table the share of measurements inside them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsim.calibration import e2e
from llmsim.calibration.runs import FIGURES, validate_runs
from llmsim.costmodel.profile import Profile
from llmsim.errors import DataError
from llmsim.estimates.intervals import IntervalOptions
from llmsim.estimates.sweep import error_stats


def predict_runs(runs: pd.DataFrame, profile: Profile | None = None,
                 estimator: str = "calibrated", estimator_model: str | None = None,
                 intervals: IntervalOptions | None = None) -> tuple[pd.DataFrame, int]:
    """``(rows, skipped)``: the static rows of a runs table with ``pred_{figure}`` (and with
    ``intervals`` the bounds) for every figure; ``skipped``: rows of serving modes."""
    runs = validate_runs(runs)
    static = runs[runs["mode"] == "static"].reset_index(drop=True)
    if not len(static):
        raise DataError("no static rows to validate (closed_loop / open_loop runs are "
                        "simulate's; validate prices static batches)")
    pred = e2e.predict(static, profile, estimator=estimator, estimator_model=estimator_model,
                       intervals=intervals)
    steps = static["output_tokens"].to_numpy(float) - 1.0
    batch = static["batch"].to_numpy(float)
    out_tokens = static["output_tokens"].to_numpy(float)
    for suffix_t, suffix_p in (("pred_ttft_s", "pred_tpot_s"), ("ttft_lo", "tpot_lo"),
                               ("ttft_hi", "tpot_hi")):
        if suffix_t not in pred.columns:
            continue
        tag = suffix_t.split("_")[-1] if suffix_t.startswith("ttft") else "pred"
        ttft, tpot = pred[suffix_t].to_numpy(float), pred[suffix_p].to_numpy(float)
        e2e_s = ttft + steps * np.where(steps > 0, tpot, 0.0)
        names = {"pred": ("pred_e2e_s", "pred_output_tokens_per_s"),
                 "lo": ("e2e_lo", "output_tokens_per_s_hi"),
                 "hi": ("e2e_hi", "output_tokens_per_s_lo")}[tag]
        pred[names[0]] = e2e_s
        pred[names[1]] = batch * out_tokens / e2e_s
    rename = {f"{f.removesuffix('_s')}_{b}": f"{f}_{b}" for f in ("ttft_s", "tpot_s", "e2e_s")
              for b in ("lo", "hi")}
    return pred.rename(columns=rename), len(runs) - len(static)


def run_errors(pred: pd.DataFrame) -> pd.DataFrame:
    """One row per measured figure: ``n``, median / p90 absolute % error, bias, Pearson r (of
    logs) over rows that fit, and the interval coverage where bounds exist."""
    ok = pred["fits"].to_numpy(bool)
    rows = []
    for f in FIGURES:
        if f not in pred.columns or f"pred_{f}" not in pred.columns:
            continue
        meas = pred[f].to_numpy(float)
        stats = error_stats(pred[f"pred_{f}"].to_numpy(float)[ok], meas[ok])
        if not stats.get("n"):
            continue
        row = {"figure": f, **stats}
        if f"{f}_lo" in pred.columns:
            lo, hi = pred[f"{f}_lo"].to_numpy(float), pred[f"{f}_hi"].to_numpy(float)
            m = ok & np.isfinite(meas) & np.isfinite(lo)
            row["interval_coverage"] = float(np.mean((meas[m] >= lo[m]) & (meas[m] <= hi[m])))
        rows.append(row)
    return pd.DataFrame(rows)
