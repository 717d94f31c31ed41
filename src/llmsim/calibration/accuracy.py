"""Predicted-vs-measured error of the cost model: per op family, per data set, and end to end.

Used by ``benchmarks/accuracy.py`` (the numbers docs/calibration.md quotes), the golden tests
and ``llmsim validate``. Every comparison is made for two profiles: the calibrated one and
:meth:`Profile.empty` (the datasheet roofline), so the table shows what calibration buys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmsim.calibration import e2e
from llmsim.calibration import predict as pr
from llmsim.calibration.measurements import ALL_COLUMNS, MEASURED, ape_pct, summarize
from llmsim.calibration.reference import FIT, HELD_OUT, DataSet
from llmsim.costmodel.profile import Profile, ProfileFile

GOLDEN_SET_COLUMNS = ("set", "family", "role")


@dataclass(frozen=True)
class SetError:
    family: str
    hardware: str
    name: str
    role: str
    n: int
    errors: dict[str, dict[str, float]]  # profile label -> summarize() dict

    def as_dict(self) -> dict[str, object]:
        return {"family": self.family, "hardware": self.hardware, "set": self.name,
                "role": self.role, "n": self.n, **self.errors}


def set_errors(ds: DataSet, profiles: dict[str, Profile]) -> SetError:
    meas = ds.rows[MEASURED].to_numpy(float)
    errs = {label: summarize(ape_pct(pr.predict(ds.rows, prof), meas))
            for label, prof in profiles.items()}
    return SetError(ds.family, ds.hardware, ds.name, ds.role, len(ds.rows), errs)


def thin(ds: DataSet, max_rows: int) -> DataSet:
    """An evenly spaced subset (over the rows sorted by measured time; deterministic)."""
    if len(ds.rows) <= max_rows:
        return ds
    rows = ds.rows.sort_values(MEASURED, kind="mergesort")
    idx = np.unique(np.linspace(0, len(rows) - 1, max_rows).round().astype(int))
    return DataSet(ds.name, ds.hardware, ds.family, ds.role, ds.note,
                   rows.iloc[idx].reset_index(drop=True))


def golden_frame(sets: list[DataSet], fit_rows: int, held_out_rows: int) -> pd.DataFrame:
    """The small subsets copied into ``tests/golden/calib_kernels.csv`` (thinned evenly by time)."""
    frames = []
    for ds in sets:
        sub = thin(ds, fit_rows if ds.role == FIT else held_out_rows).rows.copy()
        sub.insert(0, "role", ds.role)
        sub.insert(0, "family", ds.family)
        sub.insert(0, "set", ds.name)
        frames.append(sub)
    out = pd.concat(frames, ignore_index=True)
    keep = [c for c in out.columns if c in GOLDEN_SET_COLUMNS or out[c].notna().any()]
    return out[keep]


def sets_from_golden(path: str | Path) -> list[DataSet]:
    """Rebuild :class:`DataSet` objects from ``tests/golden/calib_kernels.csv``."""
    df = pd.read_csv(path)
    sets = []
    for (name, family, role, hardware), sub in df.groupby(
            ["set", "family", "role", "hardware"], sort=False):
        rows = sub.drop(columns=list(GOLDEN_SET_COLUMNS)).reset_index(drop=True)
        for col in ALL_COLUMNS:
            if col not in rows.columns:
                rows[col] = np.nan
        sets.append(DataSet(str(name), str(hardware), str(family), str(role), "",
                            rows[list(ALL_COLUMNS)]))
    return sets


def with_step_overhead(profile: Profile, overhead_s: dict[str, float]) -> Profile:
    """A copy of ``profile`` with ``step_overhead_s`` set on the given hardware entries."""
    data = profile.data.model_dump(mode="json", exclude_none=True)
    for hw, value in overhead_s.items():
        data["entries"].setdefault(hw, {})["step_overhead_s"] = float(value)
    return Profile(ProfileFile.model_validate(data), profile.origin + "+step_overhead")


def fit_step_overhead(pred: pd.DataFrame) -> dict[str, float]:
    """Per-hardware framework overhead per step: the median TPOT shortfall (measured minus
    predicted decode step) over the calibration split rows (:data:`e2e.CALIBRATION_SPLIT`)."""
    rows = pred[e2e.split_mask(pred) & pred["fits"].to_numpy(bool)]
    out = {}
    for hw, sub in rows.groupby("hardware"):
        out[str(hw)] = float(max(0.0, np.median(sub["tpot_s"] - sub["pred_tpot_s"])))
    return out


@dataclass(frozen=True)
class E2EError:
    metric: str
    model: str
    hardware: str
    role: str
    n: int
    errors: dict[str, dict[str, float]]

    def as_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "model": self.model, "hardware": self.hardware,
                "role": self.role,
                "n": self.n, **self.errors}


def e2e_errors(table: pd.DataFrame, profiles: dict[str, Profile], overhead_label: str | None
               ) -> tuple[list[E2EError], dict[str, float], pd.DataFrame]:
    """TTFT / TPOT error per model and hardware for every profile; with ``overhead_label`` the
    calibrated
    profile (the first) is also run with a step overhead fitted on the split, scored on the
    held-out rows only. Returns the errors, the fitted overheads and the predictions."""
    preds = {label: e2e.predict(table, prof) for label, prof in profiles.items()}
    first = next(iter(profiles))
    overhead: dict[str, float] = {}
    if overhead_label:
        overhead = fit_step_overhead(preds[first])
        preds[overhead_label] = e2e.predict(
            table, with_step_overhead(profiles[first], overhead))
    held = ~e2e.split_mask(table)
    out = []
    groups = table[["model", "hardware"]].drop_duplicates().sort_values(["model", "hardware"])
    for model, hw in groups.itertuples(index=False):
        hw_rows = ((table["hardware"].to_numpy() == hw)
                   & (table["model"].to_numpy() == model))
        for metric in ("ttft", "tpot"):
            errs = {}
            n = 0
            for label, pred in preds.items():
                rows = hw_rows & held if label == overhead_label else hw_rows
                stats = e2e.errors(pred, rows)[metric]
                errs[label] = stats
                n = max(n, stats["n"]) if label != overhead_label else n
            out.append(E2EError(metric, model, hw, HELD_OUT, n, errs))
    combined = preds[first].copy()
    for label, pred in preds.items():
        combined[f"{label}_ttft_s"] = pred["pred_ttft_s"]
        combined[f"{label}_tpot_s"] = pred["pred_tpot_s"]
    return out, overhead, combined
