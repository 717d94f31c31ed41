"""Fit efficiency-model parameters to measured op times.

For one hardware and one op family, minimise over the free parameters ``p`` (in log space, so
every parameter stays positive and the steps are relative)::

    sum_i rho( log t_model(p; shape_i) - log t_measured_i )

with ``scipy.optimize.least_squares`` and the robust ``soft_l1`` loss (``f_scale = 0.1``: rows
further than ~10% off count linearly, not quadratically, so a few odd kernels do not drag the
fit). ``t_model`` is the cost model itself (``kernels.work_time`` / ``collective_time``), so a
fitted profile reproduces exactly what was fitted. The fit is deterministic: fixed start values,
a fixed row subsample (``numpy.random.default_rng(0)``) and no randomness in the solver.
Fitted values are rounded to 4 significant figures; the reported errors are those of the rounded
values.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from llmsim.calibration import predict as pr
from llmsim.calibration.measurements import MEASURED, ape_pct, summarize
from llmsim.costmodel.profile import (
    FP8_FAMILIES,
    NEUTRAL_KERNEL,
    HardwareProfile,
    ProfileEntry,
    ResolvedKernel,
)
from llmsim.errors import DataError

log = logging.getLogger(__name__)

KERNEL_PARAMS = ("compute_eff", "memory_eff", "launch_s", "m_half", "n_half", "k_half",
                 "mn_half")
COMM_PARAMS = ("bw_eff", "latency_s", "base_latency_s")
# Free parameters per family: elementwise kernels have no GEMM-like dims and no FLOPs to speak of.
# The memory ramp (mn_half) is fitted where it lowered the in-sample error (gemm on H100, decode
# attention on both parts); for MoE and prefill attention it did not (docs/calibration.md).
FREE = {
    "gemm": KERNEL_PARAMS,
    "moe": KERNEL_PARAMS[:6],
    "attention_prefill": KERNEL_PARAMS[:6],
    "attention_decode": KERNEL_PARAMS,
    "elementwise": ("memory_eff", "launch_s"),
}
FREE.update({variant: FREE[base] for variant, base in FP8_FAMILIES.items()})
_START = dict(compute_eff=0.7, memory_eff=0.7, launch_s=5e-6, m_half=64.0, n_half=64.0,
              k_half=64.0, mn_half=1e3, bw_eff=0.7, latency_s=2e-6, base_latency_s=5e-6)
# Per-step collective latency is capped at 20 us (an IB / NVLink hop is 1-10 us; larger fitted
# values only trade against bandwidth on mid-size messages). Efficiencies are capped at 1: a
# kernel that beats the datasheet roofline in a micro-benchmark is reading from cache (repeated
# runs on the same tensors), which a serving step cannot count on.
_BOUNDS = dict(compute_eff=(1e-3, 1.0), memory_eff=(1e-3, 1.0), launch_s=(1e-8, 1e-3),
               m_half=(1e-2, 1e8), n_half=(1e-2, 1e8), k_half=(1e-2, 1e8), mn_half=(1e-2, 1e10),
               bw_eff=(1e-3, 1.0), latency_s=(1e-9, 2e-5), base_latency_s=(1e-9, 1e-3))
# a fitted half-saturation this small has no effect on any real shape: drop it (0 = off)
_NEGLIGIBLE_HALF = 0.05
MAX_FIT_ROWS = 20_000
LOSS, F_SCALE = "soft_l1", 0.1


@dataclass
class FitResult:
    """Fitted parameters of one family on one hardware, with provenance and in-sample error."""

    hardware: str
    family: str
    params: dict[str, float]
    sources: list[str]
    n: int
    n_fit: int
    median_ape_pct: float
    p90_ape_pct: float
    notes: list[str] = field(default_factory=list)

    def provenance(self) -> dict[str, object]:
        out: dict[str, object] = {
            "sources": sorted(self.sources), "n": self.n, "n_fit": self.n_fit,
            "median_ape_pct": round(self.median_ape_pct, 2),
            "p90_ape_pct": round(self.p90_ape_pct, 2), "in_sample": True,
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def round_sig(x: float, digits: int = 4) -> float:
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits - 1}e}")


def subsample(df: pd.DataFrame, max_rows: int = MAX_FIT_ROWS) -> pd.DataFrame:
    """At most ``max_rows`` rows, drawn with a fixed seed (deterministic)."""
    if len(df) <= max_rows:
        return df
    idx = np.sort(np.random.default_rng(0).choice(len(df), size=max_rows, replace=False))
    return df.iloc[idx]


def _check(df: pd.DataFrame, what: str) -> None:
    if len(df) == 0:
        raise DataError(f"no measurements to fit {what}")


# Deterministic multi-start: the objective is not convex in the half-saturation points, so the
# solver starts from the default guess and from small / large halves and keeps the best.
_HALF_STARTS = (1.0, 1 / 8, 8.0)


def _solve(residual, names: tuple[str, ...]) -> dict[str, float]:
    lo = np.log([_BOUNDS[n][0] for n in names])
    hi = np.log([_BOUNDS[n][1] for n in names])
    best = None
    for scale in _HALF_STARTS:
        start = [_START[n] * (scale if n.endswith("_half") else 1.0) for n in names]
        x0 = np.clip(np.log(start), lo + 1e-9, hi - 1e-9)
        res = least_squares(residual, x0, bounds=(lo, hi), loss=LOSS, f_scale=F_SCALE,
                            x_scale=1.0, max_nfev=400)
        if best is None or res.cost < best.cost - 1e-12:
            best = res
        if not any(n.endswith("_half") for n in names):
            break
    assert best is not None
    return {n: round_sig(float(v)) for n, v in zip(names, np.exp(best.x), strict=True)}


def _clean_kernel(params: dict[str, float]) -> dict[str, float]:
    out = dict(params)
    for key in ("m_half", "n_half", "k_half", "mn_half"):
        if key in out and out[key] < _NEGLIGIBLE_HALF:
            out[key] = 0.0
    return out


def _kernel_groups(df: pd.DataFrame, hardware: str) -> list[tuple[pd.DataFrame, object]]:
    kv = df["kv_dtype"].where(df["kv_dtype"].notna(), df["dtype"]).fillna("bf16")
    act = (df["act_dtype"].astype(object).where(df["act_dtype"].notna(), "")
           if "act_dtype" in df.columns else pd.Series("", index=df.index))
    keys = [df["kind"], df["dtype"].fillna("bf16"), kv, act]
    return [(sub, pr.kernel_work(sub, kind, hardware, dtype, kvd, a or None))
            for (kind, dtype, kvd, a), sub in df.groupby(keys, sort=True)]


def fit_kernel_family(df: pd.DataFrame, hardware: str, family: str,
                      free: tuple[str, ...] | None = None,
                      fixed: dict[str, float] | None = None) -> FitResult:
    """Fit one kernel family on rows of a single kind (all rows must map to ``family``)."""
    _check(df, f"{family} on {hardware}")
    free = tuple(free or FREE[family])
    fixed = {k: v for k, v in (fixed or {}).items() if k not in free}
    groups = _kernel_groups(df, hardware)
    fit_groups = [(np.log(sub[MEASURED].to_numpy(float)), work)
                  for sub, work in _kernel_groups(subsample(df), hardware)]

    def resolved(values: dict[str, float]) -> ResolvedKernel:
        vals = {**NEUTRAL_KERNEL, **fixed, **values}
        return ResolvedKernel(**{k: float(vals[k]) for k in KERNEL_PARAMS})

    def residual(x: np.ndarray) -> np.ndarray:
        eff = resolved(dict(zip(free, np.exp(x), strict=True)))
        parts = []
        for log_t, work in fit_groups:
            t = pr.kernel_time(work, hardware, eff)
            parts.append(np.log(np.maximum(t, 1e-30)) - log_t)
        return np.concatenate(parts)

    params = _clean_kernel(_solve(residual, free))
    eff = resolved(params)
    ape = np.concatenate([ape_pct(pr.kernel_time(w, hardware, eff), sub[MEASURED].to_numpy(float))
                          for sub, w in groups])
    stats = summarize(ape)
    return FitResult(hardware, family, {**fixed, **params}, sorted(set(df["source"].astype(str))),
                     stats["n"], min(len(df), MAX_FIT_ROWS), stats["median_ape_pct"],
                     stats["p90_ape_pct"])


def comm_profile(hardware: str, intra: dict[str, float], inter: dict[str, float],
                 custom: dict[str, float] | None = None) -> HardwareProfile:
    """A :class:`HardwareProfile` with only collective parameters set."""
    entry = ProfileEntry(comm_intra=intra, comm_inter=inter, comm_custom=custom or {})
    return HardwareProfile([entry], [hardware], None)


def fit_comm(df: pd.DataFrame, hardware: str, link: str,
             other: dict[str, float] | None = None,
             free: tuple[str, ...] = COMM_PARAMS) -> FitResult:
    """Fit ``comm_intra`` (``link='intra'``), ``comm_inter`` or ``comm_custom`` (``'custom'``:
    the engines' own all-reduce, rows tagged ``op=custom``) on collective rows; ``other`` holds
    the already fitted parameters of the other link class (multi-node rows use both)."""
    _check(df, f"comm_{link} on {hardware}")
    rows = pr.comm_rows(df)
    fit_df = subsample(df, 4000)
    fit_rows = pr.comm_rows(fit_df)
    log_t = np.log(fit_df[MEASURED].to_numpy(float))
    other = other or {}

    def prof_for(values: dict[str, float]) -> HardwareProfile:
        if link == "intra":
            return comm_profile(hardware, values, other)
        if link == "custom":
            return comm_profile(hardware, other, {}, values)
        return comm_profile(hardware, other, values)

    def residual(x: np.ndarray) -> np.ndarray:
        prof = prof_for(dict(zip(free, np.exp(x), strict=True)))
        return np.log(np.maximum(pr.comm_time(fit_rows, prof), 1e-30)) - log_t

    params = _solve(residual, free)
    ape = ape_pct(pr.comm_time(rows, prof_for(params)), df[MEASURED].to_numpy(float))
    stats = summarize(ape)
    return FitResult(hardware, f"comm_{link}", params, sorted(set(df["source"].astype(str))),
                     stats["n"], len(fit_df), stats["median_ape_pct"], stats["p90_ape_pct"])
