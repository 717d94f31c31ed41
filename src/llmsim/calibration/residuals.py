"""Validation residuals -> the residual file behind the intervals, and their coverage.

From :mod:`.validation` residual cases (one per estimator, mode, part, family and table),
per estimator (``costmodel/estimators/intervals.py`` describes the factor model):

- ``transfer[family]``: leave-one-GPU-out cases of every part. ``sigma`` = RMS of the per-case
  median residuals (``mu`` = 0: a fitted estimator is unbiased across parts on average; for the
  uncalibrated ``analytic`` estimator ``mu``, ``sigma`` = mean and standard deviation of the
  medians: the datasheet roofline is biased), ``q`` = quantiles of the centred residuals
  ``r - median(r)`` of all cases, each case weighted equally;
- ``own[hardware][family]``, where the estimator has data for the part and family: ``q`` from
  its in-sample residuals on the fit tables (centred), ``sigma`` = RMS of the in-sample median
  residuals on *other* stacks' tables of that part (the spread a user's stack adds), or the
  transfer ``sigma`` when the part has no other stack measured;
- ``engine[own|transfer][hardware]``: end-to-end log residuals (TTFT, TPOT) of the Splitwise
  runs (with each row's tensor-parallel degree, for inspection); ``own``: the estimator as
  shipped,
  ``transfer``: the part priced without its data (:func:`transfer.profile_without`). A
  deployment draws from the mode its kernel pools use, so the engine term of a part without
  data carries the transfer error it adds end to end (research r12, Q5).

``exclude`` leaves one part out of every pool (nested leave-one-GPU-out, to score coverage on
it honestly).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from llmsim.calibration.reference import FIT
from llmsim.calibration.validation import IN_SAMPLE, TRANSFER, Residuals
from llmsim.costmodel.estimators.intervals import ResidualData

QUANTILES = 101
_PER_CASE = 2000
MIN_CASE_ROWS = 5
UNCENTRED = ("analytic",)


def _stats(cases: list[Residuals], centred: bool) -> tuple[float, float]:
    meds = np.array([float(np.median(c.log_ratio)) for c in cases])
    if not centred:
        return float(meds.mean()), float(meds.std())
    return 0.0, float(math.sqrt(float(np.mean(meds ** 2))))


def _quantiles(cases: list[Residuals], seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    parts = []
    for c in cases:
        x = c.log_ratio - np.median(c.log_ratio)
        parts.append(x if x.size <= _PER_CASE else rng.choice(x, _PER_CASE, replace=False))
        if x.size < _PER_CASE:  # equal weight per case
            parts[-1] = rng.choice(x, _PER_CASE, replace=True)
    q = np.quantile(np.concatenate(parts), np.linspace(0.0, 1.0, QUANTILES))
    return [round(float(v), 5) for v in q]


def _usable(res: Iterable[Residuals]) -> list[Residuals]:
    return [r for r in res if r.n >= MIN_CASE_ROWS]


def estimator_pools(res: list[Residuals], estimator: str, exclude: str | None = None
                    ) -> dict[str, Any]:
    """The ``transfer`` and ``own`` pools of one estimator (module docstring)."""
    mine = _usable(r for r in res if r.estimator == estimator and r.hardware != exclude)
    centred = estimator not in UNCENTRED
    transfer: dict[str, Any] = {}
    for fam in sorted({r.family for r in mine}):
        cases = [r for r in mine if r.mode == TRANSFER and r.family == fam]
        if not cases:
            continue
        mu, sigma = _stats(cases, centred)
        transfer[fam] = {"mu": round(mu, 5), "sigma": round(sigma, 5), "q": _quantiles(cases),
                         "cases": [f"{c.hardware}/{c.set}" for c in cases],
                         "rows": int(sum(c.n for c in cases))}
    own: dict[str, dict[str, Any]] = {}
    if centred:
        for hw in sorted({r.hardware for r in mine}):
            for fam in sorted({r.family for r in mine if r.hardware == hw}):
                here = [r for r in mine if r.mode == IN_SAMPLE and r.hardware == hw
                        and r.family == fam]
                fit = [r for r in here if r.role == FIT]
                if not fit:
                    continue
                other = [r for r in here if r.role != FIT]
                sigma = _stats(other, True)[1] if other else \
                    transfer.get(fam, {}).get("sigma", 0.0)
                own.setdefault(hw, {})[fam] = {
                    "mu": 0.0, "sigma": round(float(sigma), 5), "q": _quantiles(fit),
                    "cases": [f"{c.hardware}/{c.set}" for c in fit],
                    "sigma_from": [f"{c.hardware}/{c.set}" for c in other] or "transfer",
                    "rows": int(sum(c.n for c in fit))}
    return {"centred": centred, "transfer": transfer, "own": own}


def e2e_residuals(pred: pd.DataFrame) -> dict[str, dict[str, list[float]]]:
    """``{hardware: {"ttft": [...], "tpot": [...]}}`` log residuals of predicted Splitwise rows
    (rows that fit, both metrics finite)."""
    out: dict[str, dict[str, list[float]]] = {}
    ok = pred["fits"].to_numpy(bool)
    for hw, sub in pred[ok].groupby("hardware"):
        rt = np.log(sub["ttft_s"].to_numpy(float) / sub["pred_ttft_s"].to_numpy(float))
        rp = np.log(sub["tpot_s"].to_numpy(float) / sub["pred_tpot_s"].to_numpy(float))
        keep = np.isfinite(rt) & np.isfinite(rp)
        out[str(hw)] = {"ttft": [round(float(x), 5) for x in rt[keep]],
                        "tpot": [round(float(x), 5) for x in rp[keep]],
                        "tp": [int(x) for x in sub["tp"].to_numpy()[keep]]}
    return out


def engine_residuals(table: pd.DataFrame, base, estimator: str = "calibrated",
                     estimator_model: str | None = None) -> dict[str, dict[str, Any]]:
    """``{"own": ..., "transfer": ...}`` :func:`e2e_residuals` of Splitwise-like runs (the
    transfer mode for the profile-priced estimators only: a learned model would need one
    training per part)."""
    from llmsim.calibration import e2e, transfer

    own = e2e_residuals(e2e.predict(table, base, estimator=estimator,
                                    estimator_model=estimator_model))
    out: dict[str, dict[str, Any]] = {"own": own}
    if estimator in ("calibrated", "table", "analytic"):
        out["transfer"] = {}
        for hw in sorted(set(table["hardware"]) & set(transfer.fitted_parts(base))):
            sub = table[table["hardware"] == hw].reset_index(drop=True)
            prof = base if estimator == "analytic" else transfer.profile_without(base, hw)
            pred = e2e.predict(sub, prof, estimator="calibrated" if estimator == "table"
                               else estimator)
            out["transfer"].update(e2e_residuals(pred))
    return out


def residual_file(res: list[Residuals], engine: dict[str, dict[str, Any]],
                  exclude: str | None = None, sources: list[str] | None = None,
                  generated_by: str = "scripts/fit_residuals.py") -> dict[str, Any]:
    """The residual file's content (``engine``: per estimator, :func:`engine_residuals`)."""
    ests = sorted({r.estimator for r in res})
    return {"version": 1, "generated_by": generated_by, "sources": sources or [],
            "quantiles": QUANTILES, "excluded_hardware": exclude,
            "estimators": {e: estimator_pools(res, e, exclude) for e in ests},
            "engine": {e: {mode: {h: v for h, v in rows.items() if h != exclude}
                           for mode, rows in eng.items()}
                       for e, eng in engine.items()}}


def kernel_coverage(res: list[Residuals], estimator: str, level: float = 0.8,
                    k: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Coverage of the ``level`` factor interval on each leave-one-GPU-out case, its pools
    built without that case's part (nested)."""
    rows = []
    cases = _usable(r for r in res if r.estimator == estimator and r.mode == TRANSFER)
    files: dict[str, ResidualData] = {}
    for c in cases:
        if c.hardware not in files:
            files[c.hardware] = ResidualData(residual_file(res, {}, exclude=c.hardware),
                                             f"without {c.hardware}")
        pool = files[c.hardware].pool(estimator, "(held out)", c.family)
        if pool.basis == "none":
            continue
        d = pool.draw(np.random.default_rng(seed), k)
        lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
        cov = float(np.mean((c.log_ratio >= lo) & (c.log_ratio <= hi)))
        rows.append({"estimator": estimator, "family": c.family, "hardware": c.hardware,
                     "set": c.set, "n": c.n, "lo": float(lo), "hi": float(hi),
                     "coverage": cov, "level": level})
    return pd.DataFrame(rows)


def e2e_coverage(table: pd.DataFrame, pred: pd.DataFrame, lo_hi: dict[str, np.ndarray]
                 ) -> dict[str, float]:
    """Share of Splitwise rows whose measured TTFT / TPOT lie in their interval."""
    ok = pred["fits"].to_numpy(bool)
    out = {}
    for m in ("ttft", "tpot"):
        lo, hi = lo_hi[f"{m}_lo"], lo_hi[f"{m}_hi"]
        meas = table[f"{m}_s"].to_numpy(float)
        good = ok & np.isfinite(lo) & np.isfinite(hi)
        out[m] = float(np.mean((meas[good] >= lo[good]) & (meas[good] <= hi[good]))) \
            if good.any() else math.nan
    out["n"] = int(ok.sum())
    return out


def e2e_logo_coverage(table: pd.DataFrame, base, res: list[Residuals],
                      engine: dict[str, dict[str, Any]], estimator: str = "calibrated",
                      level: float = 0.8, engine_term: bool = True,
                      draws: int = 200) -> list[dict[str, Any]]:
    """Coverage of the estimate intervals on each fitted part's end-to-end rows, the part
    priced by :func:`transfer.profile_without` and its factors (kernel pools and engine term)
    built without it: the honest check for a GPU with no data."""
    from llmsim.calibration import e2e, transfer
    from llmsim.estimates.intervals import IntervalOptions

    out = []
    for hw in sorted(set(table["hardware"]) & set(transfer.fitted_parts(base))):
        data = ResidualData(residual_file(res, engine, exclude=hw), f"without {hw}")
        sub = table[table["hardware"] == hw].reset_index(drop=True)
        opts = IntervalOptions(level=level, draws=draws, engine=engine_term, residuals=data)
        pred = e2e.predict(sub, transfer.profile_without(base, hw), estimator=estimator,
                           intervals=opts)
        cov = e2e_coverage(sub, pred, {c: pred[c].to_numpy(float) for c in
                                       ("ttft_lo", "ttft_hi", "tpot_lo", "tpot_hi")})
        ok = pred["fits"].to_numpy(bool)
        widths = {f"{m}_width_pct": float(np.median(
            (pred[f"{m}_hi"] - pred[f"{m}_lo"])[ok] / pred[f"pred_{m}_s"][ok] * 100))
            for m in ("ttft", "tpot")}
        out.append({"hardware": hw, "estimator": estimator, "level": level, **cov, **widths})
    return out
