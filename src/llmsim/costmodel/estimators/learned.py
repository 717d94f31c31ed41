"""``learned`` estimator: a scikit-learn regressor of ``log(measured / datasheet roofline)``.

One model per op kind over the features of :mod:`.features` (research r12, Q3: the ratio target
transfers to a faster part where a log-time target cannot; RandomForest for prefill attention,
HistGradientBoosting for the other kinds, as the leave-one-GPU-out errors on the vLLM tables
rank them)::

    t = sol(case) x exp(model_kind(features(case)))

:func:`train` fits the models on measured rows (op-timing schema) and writes a joblib file;
the estimator loads it from ``Deployment.estimator_model``. Kinds the file has no model for,
and cases outside its *envelope* are priced by the ``calibrated`` roofline and tagged so; the
first such op logs one warning per model file. The envelope is the per-feature box of the
hardware-independent features over the training rows (shape dims, formats' bytes, FLOPs,
bytes), widened by :data:`ENVELOPE_MARGIN_OCTAVES` on the ``log2`` columns: a case within a
factor 2 of the trained range in every dimension is inside (a strict box put 62% of H100 decode
rows outside an A100-trained model and cost 5 points of median error; a format never trained
on, e.g. an fp8 KV cache, stays outside). A part outside the training parts' datasheet
range (ridge, peak or bandwidth beyond [0.5 x min, 2 x max]) logs one warning and keeps the
learned values (out of sample they still beat the transferred roofline on attention).

Serving runs call the model through per-op curves: for each op's fixed columns the model is
evaluated once on a log-spaced grid of its inner column (:data:`GRID_PER_OCTAVE` points per
octave) and interpolated in ``log2`` of it, so a step costs a table lookup, not a prediction.
scikit-learn is the optional extra ``llmsim[learned]``.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmsim.catalog import get_hardware
from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.estimator_registry import ESTIMATORS
from llmsim.costmodel.estimators import features as ft
from llmsim.costmodel.estimators import sources, work
from llmsim.costmodel.estimators.repriced import FALLBACK, INNER, RepricedStepTimeModel
from llmsim.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
LEARNED, OUTSIDE = "learned", "calibrated-outside-envelope"
GRID_PER_OCTAVE = 12
#: inner-column grid (log2 range) per kind
_GRID = {"gemm": (0.0, 20.0), "moe": (0.0, 20.0), "attention-prefill": (0.0, 20.0),
         "attention-decode": (0.0, 22.0), "elementwise": (6.0, 40.0)}
MIN_ROWS = 50
ENVELOPE_MARGIN_OCTAVES = 1.0
_PART_MARGIN = 2.0


def sklearn_models():
    """The two regressor classes, or a one-line error naming the extra to install."""
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
        raise ConfigError("the learned estimator needs scikit-learn: pip install "
                          "'llmsim[learned]'") from None
    return HistGradientBoostingRegressor, RandomForestRegressor


def _regressor(kind: str, quick: bool):
    hgb, rf = sklearn_models()
    if kind == "attention-prefill":
        return rf(n_estimators=20 if quick else 60, min_samples_leaf=5, max_features=0.6,
                  n_jobs=1, random_state=0)
    return hgb(max_iter=60 if quick else 250, learning_rate=0.08, max_leaf_nodes=31,
               min_samples_leaf=40 if not quick else 10, l2_regularization=1.0,
               random_state=0)


@dataclass
class KindModel:
    """One op kind's regressor, feature names and training envelope."""

    kind: str
    model: Any
    names: list[str]
    box_cols: list[int]
    box_lo: np.ndarray
    box_hi: np.ndarray
    n: int
    parts: dict[str, dict[str, float]] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def inside(self, x: np.ndarray) -> np.ndarray:
        """Rows inside the envelope (module docstring)."""
        b = x[:, self.box_cols]
        margin = np.array([ENVELOPE_MARGIN_OCTAVES if self.names[i].startswith("log_") else 0.0
                           for i in self.box_cols]) + 1e-9
        return np.all((b >= self.box_lo - margin) & (b <= self.box_hi + margin), axis=1)


@dataclass
class LearnedModel:
    """A trained model file: per-kind models, provenance."""

    kinds: dict[str, KindModel]
    info: dict[str, object]
    path: str = ""

    def save(self, path: str | Path) -> None:
        """Write the model file atomically (a joblib pickle)."""
        import joblib

        from llmsim.io import atomic_path

        with atomic_path(path) as tmp:
            joblib.dump({"format": FORMAT_VERSION, "kinds": self.kinds, "info": self.info},
                        str(tmp), compress=3)

    @classmethod
    def load(cls, path: str | Path) -> LearnedModel:
        sklearn_models()
        import joblib

        p = Path(path)
        if not p.is_file():
            raise DataError(f"{p}: no such model file (train one with "
                            "llmsim.costmodel.estimators.learned.train or "
                            "scripts/train_learned.py)")
        try:
            data = joblib.load(p)
        except Exception as exc:  # unpickling errors of every flavour
            raise DataError(f"{p}: not a learned-estimator model file ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise DataError(f"{p}: not a learned-estimator model file of format "
                            f"{FORMAT_VERSION}")
        return cls(data["kinds"], data["info"], str(p))

    def predict_rows(self, rows: pd.DataFrame) -> np.ndarray:
        """Seconds for each measured row (its own hardware; NaN for kinds without a model)."""
        out = np.full(len(rows), np.nan)
        for (kind, hwname, fmt), idx in _groups(rows).items():
            km = self.kinds.get(kind)
            if km is None:
                continue
            hw = get_hardware(hwname)
            cols = _cols(rows.iloc[idx], kind)
            x, sol = ft.features(kind, cols, hw, work.precision_of(hw, *fmt))
            out[idx] = sol * np.exp(km.predict(x))
        return out


def feature_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The learned estimator's features of op-case rows (``kind``, ``hardware``, shapes,
    formats; the measurement columns may be there too), one row per input row in order, plus
    ``sol_s`` (the datasheet roofline time): the export that lines up with measured latencies
    for training elsewhere (``op --features``). Kinds without features (collectives) get NaN."""
    import pandas as pd

    rows = rows.reset_index(drop=True)
    frames = []
    for (kind, hwname, fmt), idx in _groups(rows).items():
        if kind not in ft.SHAPE:
            continue
        hw = get_hardware(hwname)
        x, sol = ft.features(kind, _cols(rows.iloc[idx], kind), hw, work.precision_of(hw, *fmt))
        f = pd.DataFrame(x, columns=ft.names(kind), index=idx)
        f["sol_s"] = sol
        frames.append(f)
    out = pd.concat(frames).sort_index() if frames else pd.DataFrame(index=rows.index)
    return out.reindex(rows.index)


def _cols(rows: pd.DataFrame, kind: str) -> dict[str, np.ndarray]:
    import pandas as pd

    out = {c: pd.to_numeric(rows[c], errors="coerce").to_numpy(float) for c in ft.SHAPE[kind]
           if c in rows.columns}
    if kind == "moe":
        out["ep"] = np.nan_to_num(out.get("ep", np.ones(len(rows))), nan=1.0)
    return out


def _groups(rows: pd.DataFrame) -> dict[tuple, np.ndarray]:
    import pandas as pd

    def fmt(c: str) -> pd.Series:
        if c not in rows.columns:
            return pd.Series([""] * len(rows), index=rows.index, dtype=object)
        return rows[c].astype(object).where(rows[c].notna(), "")

    keys = pd.DataFrame({"kind": rows["kind"].astype(object), "hw": rows["hardware"],
                         "d": fmt("dtype"), "a": fmt("act_dtype"), "k": fmt("kv_dtype")})
    out = {}
    for (kind, hw, d, a, k), idx in keys.groupby(["kind", "hw", "d", "a", "k"]).indices.items():
        out[(str(kind), str(hw), (d or "bf16", a or None, k or None))] = idx
    return out


def _part(hw: HardwareSpec, precision) -> dict[str, float]:
    peak = hw.peak_flops(precision.activation) if precision.activation in hw.supported_dtypes \
        else hw.peak_flops(next(iter(hw.supported_dtypes)))
    bw = hw.memory_bandwidth_bytes_per_s
    return {"peak": float(peak), "bandwidth": float(bw), "ridge": float(peak / bw)}


def train(measurements: pd.DataFrame, out_path: str | Path | None = None, *,
          kinds: tuple[str, ...] | None = None, max_rows_per_part: int = 15_000,
          quick: bool = False, seed: int = 0, origin: str = "measurements") -> LearnedModel:
    """Fit one regressor per kernel kind on measured rows (op-timing schema: ``kind``,
    ``hardware``, shape columns, formats, ``measured_time_s``) and write it to ``out_path``
    (joblib). At most ``max_rows_per_part`` rows per (kind, hardware) are used, drawn with
    ``seed``; ``quick`` trains small models (tests, ``--smoke``). Deterministic."""
    import pandas as pd

    sklearn_models()
    if measurements is None or len(measurements) == 0:
        raise DataError(f"{origin}: no rows to train on")
    rng = np.random.default_rng(seed)
    rows = measurements[measurements["kind"].isin(list(ft.SHAPE))].reset_index(drop=True)
    t = pd.to_numeric(rows[sources.MEASURED], errors="coerce").to_numpy(float)
    rows = rows[np.isfinite(t) & (t > 0)].reset_index(drop=True)
    wanted = kinds or tuple(k for k in ft.SHAPE if (rows["kind"] == k).any())
    out: dict[str, KindModel] = {}
    for kind in wanted:
        xs, ys, parts = [], [], {}
        for (_kind, hwname, fmt), idx in _groups(rows[rows["kind"] == kind]).items():
            sub = rows[rows["kind"] == kind].iloc[idx]
            if len(sub) > max_rows_per_part:
                sub = sub.iloc[np.sort(rng.choice(len(sub), max_rows_per_part, replace=False))]
            hw = get_hardware(hwname)
            prec = work.precision_of(hw, *fmt)
            x, sol = ft.features(kind, _cols(sub, kind), hw, prec)
            y = np.log(sub[sources.MEASURED].to_numpy(float) / sol)
            ok = np.isfinite(y) & np.all(np.isfinite(x), axis=1)
            xs.append(x[ok])
            ys.append(y[ok])
            parts[hw.name] = _part(hw, prec)
        if not xs or sum(len(y) for y in ys) < MIN_ROWS:
            log.info("learned: %s has too few rows; left to the calibrated roofline", kind)
            continue
        x, y = np.vstack(xs), np.concatenate(ys)
        model = _regressor(kind, quick).fit(x, y)
        names = ft.names(kind)
        box = [names.index(c) for c in ft.box_columns(kind)]
        out[kind] = KindModel(kind, model, names, box, x[:, box].min(axis=0),
                              x[:, box].max(axis=0), int(len(y)), parts)
    if not out:
        raise DataError(f"{origin}: no kernel kind has {MIN_ROWS} rows to train on")
    from sklearn import __version__ as skv

    info = {"origin": origin, "sklearn": skv, "quick": quick, "seed": seed,
            "max_rows_per_part": max_rows_per_part,
            "kinds": {k: {"n": m.n, "parts": sorted(m.parts)} for k, m in out.items()}}
    result = LearnedModel(out, info, str(out_path or ""))
    if out_path is not None:
        result.save(out_path)
    return result


class LearnedPricer:
    """Per-op curves of a :class:`LearnedModel` on one part (a ``KernelPricer``)."""

    def __init__(self, model: LearnedModel, hw: HardwareSpec):
        self.model = model
        self.hw = hw
        self._curves: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}

    def _warn(self, what: str, message: str) -> None:
        key = f"{self.model.path}:{what}"
        if key not in _WARNED:
            _WARNED.add(key)
            log.warning(message)

    def _check_part(self, km: KindModel, prec) -> None:
        if not km.parts:
            return
        me = _part(self.hw, prec)
        for q in ("ridge", "peak", "bandwidth"):
            lo = min(p[q] for p in km.parts.values()) / _PART_MARGIN
            hi = max(p[q] for p in km.parts.values()) * _PART_MARGIN
            if not lo <= me[q] <= hi:
                self._warn(f"part:{self.hw.name}", f"learned model {self.model.path or ''} "
                           f"extrapolates to {self.hw.name} (its {q} is outside the training "
                           f"parts' {sorted(km.parts)} range x/÷{_PART_MARGIN:g})")
                return

    def _curve(self, kind: str, case: Mapping[str, object]):
        key_items = tuple(sorted((k, str(v)) for k, v in case.items()))
        hit = self._curves.get((kind, key_items), False)
        if hit is not False:
            return hit
        km = self.model.kinds.get(kind)
        curve = None
        if km is not None:
            fmt = (str(case.get("dtype", "bf16")), case.get("act_dtype"), case.get("kv_dtype"))
            prec = work.precision_of(self.hw, *fmt)
            self._check_part(km, prec)
            lo, hi = _GRID[kind]
            g = np.linspace(lo, hi, int((hi - lo) * GRID_PER_OCTAVE) + 1)
            inner = 2.0 ** g
            cols = {c: np.full(g.size, float(v)) for c, v in case.items()  # type: ignore
                    if c in ft.SHAPE[kind]}
            if kind == "elementwise":
                ratio = float(case["bytes_read"]) / (float(case["bytes_read"])  # type: ignore
                                                     + float(case["bytes_written"]))  # type: ignore
                cols = {"bytes_read": ratio * inner, "bytes_written": (1 - ratio) * inner}
            else:
                cols[INNER[kind]] = inner
            x, _ = ft.features(kind, cols, self.hw, prec)
            curve = (g, km.predict(x), km.inside(x))
        if len(self._curves) < 50_000:
            self._curves[(kind, key_items)] = curve
        return curve

    def inner_column(self, kind: str) -> str:
        return INNER[kind]

    def evaluator(self, kind: str, case: Mapping[str, object]) -> _LearnedEval | None:
        key = dict(case)
        if kind == "elementwise":
            total = float(key["bytes_read"]) + float(key["bytes_written"])  # type: ignore
            key = {"bytes_read": round(float(key["bytes_read"]) / total, 4),  # type: ignore
                   "bytes_written": round(float(key["bytes_written"]) / total, 4)}  # type: ignore
        curve = self._curve(kind, key)
        return None if curve is None else _LearnedEval(*curve, self, kind)

    def times(self, kind: str, case: Mapping[str, object], inner: np.ndarray,
              sol: np.ndarray) -> tuple[np.ndarray, list[str]]:
        x = np.asarray(inner, dtype=float)
        ev = self.evaluator(kind, case)
        if ev is None:
            return np.full(x.shape, np.nan), [FALLBACK] * x.size
        return ev(x, sol)

    def describe(self) -> dict[str, object]:
        return {"model": self.model.path, "hardware": self.hw.name,
                "kinds": {k: {"n": m.n, "parts": sorted(m.parts)}
                          for k, m in self.model.kinds.items()},
                "fallback": {"estimator": FALLBACK,
                             "kinds": [k for k in ft.SHAPE if k not in self.model.kinds]
                             + ["collectives", "cases outside the training envelope"]}}


class _LearnedEval:
    """One case's learned curve along its inner column (grid in ``log2``), vector and scalar;
    NaN outside the envelope (tagged, one warning per model file)."""

    __slots__ = ("g", "y", "inside", "pricer", "kind", "_lists")

    def __init__(self, g: np.ndarray, y: np.ndarray, inside: np.ndarray, pricer: LearnedPricer,
                 kind: str):
        self.g, self.y, self.inside, self.pricer, self.kind = g, y, inside, pricer, kind
        self._lists = (g.tolist(), y.tolist(), inside.tolist())

    def _warn(self) -> None:
        self.pricer._warn("envelope", f"learned model {self.pricer.model.path or ''}: "
                          f"{self.kind} cases outside its training envelope are priced by the "
                          "calibrated roofline")

    def __call__(self, inner: np.ndarray, sol: np.ndarray) -> tuple[np.ndarray, list[str]]:
        g = self.g
        lx = np.log2(np.maximum(np.asarray(inner, dtype=float), 1e-30))
        t = np.asarray(sol, dtype=float) * np.exp(np.interp(lx, g, self.y))
        j = np.clip(np.searchsorted(g, lx), 1, g.size - 1)
        ok = self.inside[j - 1] & self.inside[j] & (lx >= g[0]) & (lx <= g[-1])
        if not ok.all():
            self._warn()
        return np.where(ok, t, np.nan), [LEARNED if o else OUTSIDE for o in np.atleast_1d(ok)]

    def scalar(self, inner: float, sol: float) -> tuple[float, str]:
        gs, ys, ins = self._lists
        lx = math.log2(max(inner, 1e-30))
        if lx < gs[0] or lx > gs[-1]:
            self._warn()
            return math.nan, OUTSIDE
        j = min(max(bisect.bisect_left(gs, lx), 1), len(gs) - 1)
        if not (ins[j - 1] and ins[j]):
            self._warn()
            return math.nan, OUTSIDE
        f = (lx - gs[j - 1]) / (gs[j] - gs[j - 1])
        return sol * math.exp(ys[j - 1] + f * (ys[j] - ys[j - 1])), LEARNED


_WARNED: set[str] = set()


@lru_cache(maxsize=8)
def load_model(path: str) -> LearnedModel:
    """A model file, loaded once per process."""
    return LearnedModel.load(path)


@ESTIMATORS.register("learned", "ml")
def build(deployment: Deployment) -> RepricedStepTimeModel:
    """The learned model of ``deployment.estimator_model`` (a joblib file from :func:`train`),
    the calibrated roofline for what it does not cover."""
    if not deployment.estimator_model:
        raise ConfigError("the learned estimator needs a model file: --estimator-model "
                          "model.joblib (train one with scripts/train_learned.py)")
    model = load_model(str(deployment.estimator_model))
    return RepricedStepTimeModel(deployment, LearnedPricer(model, deployment.hardware),
                                 "learned")
