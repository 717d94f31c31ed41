"""Calibrate to, and validate against, a user's own op measurements.

A measurement file is an ``llmsim op --cases`` file (columns of
:data:`llmsim.costmodel.opcases.CASE_COLUMNS`) plus ``measured_time_s``: one measured kernel or
collective per row. ``llmsim calibrate`` fits a profile entry for one hardware from it (the
same fitter as the shipped profile); ``llmsim validate`` prints the predicted-vs-measured error
per op kind.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from llmsim.calibration import build
from llmsim.calibration import predict as pr
from llmsim.calibration.fit import FitResult
from llmsim.calibration.importers import load_source
from llmsim.calibration.measurements import MEASURED, ape_pct, summarize
from llmsim.catalog import get_hardware
from llmsim.costmodel.profile import Profile, ProfileFile
from llmsim.errors import DataError
from llmsim.estimates.sweep import log_pearson


def read_measurements(path: str, hardware: str | None = None) -> pd.DataFrame:
    """Read and check measurements: an op-timing file or any source spec of
    :func:`llmsim.calibration.importers.load_source` (``vidur:DIR``, ``aiconfigurator:DIR``,
    ``llmcompass:DIR``). ``hardware`` fills a missing ``hardware`` column (and, when the column
    exists, selects its rows). Hardware names are canonicalised."""
    return load_source(path, hardware)


def calibrate(table: pd.DataFrame, hardware: str, base: Profile | None = None,
              origin: str = "user measurements") -> tuple[ProfileFile, list[FitResult]]:
    """A profile whose ``hardware`` entry is fitted on ``table``; every other entry (and every
    family the table has no rows for) comes from ``base`` (default: the shipped profile)."""
    spec = get_hardware(hardware)
    hw = spec.name
    base = base if base is not None else Profile.load()
    fitted, results = build.fit_table(table, hw, base.for_hardware(spec))
    if not results:
        raise DataError(f"no measurements for {hw} in {origin}")
    data: dict[str, Any] = base.data.model_dump(mode="json", exclude_none=True)
    entry = dict(data["entries"].get(hw, {}))
    old_fit = dict(entry.get("fit", {}))
    entry.update({k: v for k, v in fitted.items() if k != "fit"})
    old_fit.update({fam: dict(prov, sources=[origin])
                    for fam, prov in fitted["fit"].items()})
    entry["fit"] = old_fit
    data["entries"][hw] = entry
    data["description"] = (f"{hw} fitted on {origin} by `llmsim calibrate`; other entries from "
                           f"profile '{base.origin}'")
    data["generated_by"] = "llmsim calibrate"
    data.setdefault("sources", []).append(origin)
    return ProfileFile.model_validate(data), results


def is_runs_source(spec: str) -> bool:
    """Whether a validation input is an end-to-end runs file (:mod:`.runs`: measured figures
    such as ``ttft_s``, no ``measured_time_s``) rather than op timings."""
    from llmsim.calibration.runs import FIGURES
    from llmsim.costmodel.estimators.sources import parse_source, read_table_file

    s = parse_source(spec)
    if s.kind != "file":
        return False
    cols = set(read_table_file(s.path).columns)
    return MEASURED not in cols and bool(cols & set(FIGURES))


def single_hardware(table: pd.DataFrame, origin: str) -> str:
    """The one part a measurement table holds (else a one-line error asking for --hardware)."""
    parts = sorted(set(table["hardware"]))
    if len(parts) != 1:
        raise DataError(f"{origin} holds {len(parts)} parts ({', '.join(parts)}); pick one "
                        "with --hardware")
    return parts[0]


def op_predictions(table: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """``table`` with ``pred_s`` (``profile``) and ``pred_uncalibrated_s`` (datasheet roofline)
    per measured op: the rows behind :func:`validate_against` and its plots."""
    return table.assign(pred_s=pr.predict(table, profile),
                        pred_uncalibrated_s=pr.predict(table, Profile.empty()))


def validate_against(table: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """Error per (hardware, op kind) of ``profile`` and of the uncalibrated roofline: ``n``,
    median / p90 absolute % error, the median signed % error (bias) and ``pearson_r`` (of the
    logs of predicted and measured)."""
    priced = op_predictions(table, profile)
    cal = priced["pred_s"].to_numpy(float)
    raw = priced["pred_uncalibrated_s"].to_numpy(float)
    meas = table[MEASURED].to_numpy(float)
    rows = []
    for (hw, kind), idx in table.groupby(["hardware", "kind"], sort=True).indices.items():
        c = summarize(ape_pct(cal[idx], meas[idx]))
        u = summarize(ape_pct(raw[idx], meas[idx]))
        signed = (cal[idx] / meas[idx] - 1.0) * 100.0
        rows.append({"hardware": hw, "kind": kind, "n": c["n"],
                     "median_ape_pct": c["median_ape_pct"], "p90_ape_pct": c["p90_ape_pct"],
                     "median_signed_pct": float(np.median(signed)),
                     "pearson_r": log_pearson(cal[idx], meas[idx]),
                     "uncalibrated_median_ape_pct": u["median_ape_pct"],
                     "uncalibrated_p90_ape_pct": u["p90_ape_pct"]})
    return pd.DataFrame(rows)
