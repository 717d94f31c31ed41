"""The learned estimator's features of an op-case or measurement file (``llmsim op --cases
FILE --features``): the rows that line up with measured latencies, for training elsewhere.

Each input row (the ``op --cases`` columns, optionally ``measured_time_s`` and the other
op-timing columns of :mod:`.measurements`) is kept in order and gains the features of
:mod:`llmsim.costmodel.estimators.features` for its kind and part, plus ``sol_s`` (the
datasheet roofline time, the reference of the learned target ``log(measured / sol_s)``).
Collectives have no features (NaN).
"""

from __future__ import annotations

import pandas as pd

from llmsim.calibration.measurements import ALL_COLUMNS, normalize_kind
from llmsim.catalog import get_hardware
from llmsim.costmodel.estimators.learned import feature_table
from llmsim.errors import DataError


def case_features(rows: pd.DataFrame, hardware: str | None = None,
                  origin: str = "cases") -> pd.DataFrame:
    """``rows`` with the learned estimator's feature columns and ``sol_s`` appended;
    ``hardware`` fills a missing or empty ``hardware`` column. One-line :class:`DataError`
    for unknown columns, a missing ``kind`` or a row without a part."""
    if rows is None or not len(rows):
        raise DataError(f"{origin}: no rows")
    unknown = [c for c in rows.columns if c not in ALL_COLUMNS]
    if unknown:
        raise DataError(f"{origin}: unknown columns {unknown}; known: {list(ALL_COLUMNS)}")
    if "kind" not in rows.columns:
        raise DataError(f"{origin}: missing column 'kind'")
    out = rows.reset_index(drop=True).copy()
    if "hardware" not in out.columns:
        out["hardware"] = hardware
    elif hardware is not None:
        out["hardware"] = out["hardware"].fillna(hardware)
    if out["hardware"].isna().any():
        row = int(out["hardware"].isna().to_numpy().argmax())
        raise DataError(f"{origin}: row {row} has no hardware; fill the column or pass "
                        "--hardware")
    names = {h: get_hardware(str(h)).name for h in set(out["hardware"])}
    work = out.assign(kind=out["kind"].map(normalize_kind),
                      hardware=out["hardware"].map(names))
    if "dtype" in work.columns:
        work["dtype"] = work["dtype"].astype(object).where(work["dtype"].notna(), "bf16")
    feats = feature_table(work)
    from llmsim.estimates.sweep import whole_numbers

    return pd.concat([whole_numbers(out),
                      feats.drop(columns=[c for c in feats.columns if c in out.columns])], axis=1)
