"""End-to-end check against Splitwise: ``llmsim.estimate`` vs measured TTFT and TPOT.

For each Splitwise configuration (Llama-2-70B, DGX-A100 / DGX-H100, TP 2/4/8, a batch of
``batch`` prompts of ``prompt`` tokens generating ``output`` tokens) the static-batch estimate
gives ``ttft_s`` (the prefill) and ``tpot_s`` (mean decode step), which Splitwise measures as
``prompt_time`` and ``token_time``. Nothing is fitted to these rows by default; see
:func:`fit_step_overhead` for the one optional parameter and its documented split.

Configurations whose KV cache does not fit the GPUs by llmsim's memory model (TP 2 with batch 64
on 80 GB parts) are reported as ``fits = False`` and left out of the error statistics: Splitwise
reports them anyway, with prefill times lower than at half the batch, which no real run gives.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmsim.calibration.measurements import ape_pct, summarize
from llmsim.costmodel import Deployment, build_step_model
from llmsim.costmodel.profile import Profile
from llmsim.errors import LLMSimError
from llmsim.estimates.intervals import IntervalOptions
from llmsim.estimates.static_batch import estimate

# the documented split for the optional framework-overhead fit: configurations at the Splitwise
# grid centre (batch 1, prompt 512, output 128), one per hardware and TP; every other row is
# held out.
CALIBRATION_SPLIT = {"batch": 1, "prompt": 512, "output": 128}


def predict(table: pd.DataFrame, profile: Profile | None = None,
            efficiency: float | None = None, estimator: str = "calibrated",
            estimator_model: str | None = None,
            intervals: IntervalOptions | None = None) -> pd.DataFrame:
    """Add ``pred_ttft_s``, ``pred_tpot_s`` and ``fits`` to a Splitwise table (or one in the
    end-to-end schema, :mod:`.runs`), priced by ``estimator``; with ``intervals`` also
    ``ttft_lo`` / ``ttft_hi`` / ``tpot_lo`` / ``tpot_hi``."""
    prof = profile if profile is not None else Profile.load()
    out = table.copy()
    cols: dict[str, list[float]] = {c: [] for c in ("pred_ttft_s", "pred_tpot_s", "ttft_lo",
                                                    "ttft_hi", "tpot_lo", "tpot_hi")}
    fits = []
    models: dict[tuple, object] = {}
    prompts = table["prompt"] if "prompt" in table.columns else table["input_tokens"]
    outputs = table["output"] if "output" in table.columns else table["output_tokens"]
    for row, prompt, output in zip(table.itertuples(index=False), prompts, outputs,
                                   strict=True):
        key = (row.model, row.hardware, row.tp)
        sm = models.get(key)
        if sm is None:
            sm = build_step_model(Deployment.resolve(
                row.model, hardware=row.hardware, tp=row.tp,
                profile=None if estimator == "analytic" else prof, efficiency=efficiency,
                estimator=estimator, estimator_model=estimator_model))
            models[key] = sm
        try:
            r = estimate(row.model, step_model=sm, batch=int(row.batch), prompt=int(prompt),
                         output=int(output), allow_overflow=True,
                         intervals=intervals or False)
            vals = [r.ttft_s, r.tpot_s]
            if r.intervals is not None:
                vals += [*r.intervals["ttft_s"], *r.intervals["tpot_s"]]
            fits.append(bool(r.fits))
        except LLMSimError:
            vals = []
            fits.append(False)
        for c, v in zip(cols, vals + [np.nan] * (len(cols) - len(vals)), strict=True):
            cols[c].append(v)
    for c, v in cols.items():
        if c.startswith("pred_") or intervals is not None:
            out[c] = v
    out["fits"] = fits
    return out


def split_mask(table: pd.DataFrame) -> np.ndarray:
    """Rows of the calibration split (:data:`CALIBRATION_SPLIT`)."""
    mask = np.ones(len(table), dtype=bool)
    for col, value in CALIBRATION_SPLIT.items():
        mask &= table[col].to_numpy() == value
    return mask


def errors(pred: pd.DataFrame, rows: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Median / p90 absolute % error of TTFT and TPOT over rows that fit (and ``rows``)."""
    mask = pred["fits"].to_numpy(bool).copy()
    if rows is not None:
        mask &= rows
    sub = pred[mask]
    return {
        "ttft": summarize(ape_pct(sub["pred_ttft_s"], sub["ttft_s"])),
        "tpot": summarize(ape_pct(sub["pred_tpot_s"], sub["tpot_s"])),
    }
