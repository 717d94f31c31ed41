"""``table`` estimator: interpolation over measured kernels of the deployment's GPU.

The rows (op-timing schema, docs/calibration.md) of one hardware are split per op kind into
*slices* (exact categorical keys) and, inside a slice, a nested ragged grid over the *outer*
columns with one curve along the *inner* column per grid node (AIConfigurator's database
layout and its ``Grid`` / ``ScatteredSites`` engines, ai-dynamo/aiconfigurator@095f58a5
``sdk/perf_interp``):

- gemm: slice (dtype, act_dtype); outer k, n; inner m; log2 coordinates, log-util values;
- attention-prefill: slice (kv_dtype, act_dtype, num_kv_heads, head_dim); outer num_heads,
  seq_len; inner batch; log2 coordinates, log-util values (bracketing seq_len before batch:
  2.8 / 4.2% median on a 20% hold-out of the A100 / H100 vLLM tables, against 4.6 / 6.2% with
  the batch outside);
- attention-decode: the same slices and outer axes; inner context_len; linear coordinates,
  latency values (AIConfigurator's raw-latency blend, 1.9% vs 5.5-6.4% for log-util);
- moe: slice (dtype, act_dtype, hidden_size, intermediate_size, num_experts, top_k, ep); inner
  num_tokens; log2 coordinates, log-util values;
- elementwise: one slice; inner bytes moved (read + written); log2, log-util.

``util = sol / measured`` with ``sol`` the datasheet roofline of the same case
(:mod:`.work`), so one formula defines the roofline for fits, tables and the learned model;
a MoE row's ``sol`` follows the routing it was measured under (a ``balanced`` table's evenly
dealt assignments read more experts than uniform routing), a query's the uniform routing of a
served model, as the calibrated roofline prices it.
A query brackets each outer axis between its two nearest keys (linear weights in the axis'
coordinates; an exact key collapses the level; a branch without data is dropped and the
weights renormalised) and interpolates every bracketing curve along the inner axis. Latency
values (decode) are blended where the query lies inside every bracket; elsewhere, and for the
log-util kinds always, ``t = sol(query) / exp(sum_i w_i log util_i)``. Beyond a curve's range
the boundary util (median of its last 3 points) is held and the roofline carries the scaling.
Per-family settings from a 20% hold-out of each table (research r12, Q4): median error 1-5%.

The grid itself (curves, nested outer axes, the blend) is :mod:`.grid`. Sources per op
(``OpCost.source``): ``table`` (inside the data), ``table-extrapolated``
(beyond a curve or an outer axis, or prefill after a cached prefix), ``calibrated`` (no slice
for the case: other formats, head layouts, MoE configs, sliding windows, MLA, collectives).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from llmsim.catalog import get_hardware
from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel import opcases
from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.estimator_registry import ESTIMATORS
from llmsim.costmodel.estimators import sources, work
from llmsim.costmodel.estimators.grid import TableEval, bracket, build_grid
from llmsim.costmodel.estimators.repriced import FALLBACK, RepricedStepTimeModel
from llmsim.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: frameworks preferred where a table holds several for one kind (the simulated engine is vLLM)
PREFERRED_FRAMEWORKS = ("vllm",)
#: routing preferred for MoE tables (each row is divided by the roofline of its own routing)
PREFERRED_DISTRIBUTIONS = ("balanced", "power_law_1.01")


@dataclass(frozen=True)
class TableSpec:
    """How one op kind is sliced and interpolated (module docstring)."""

    cat: tuple[str, ...]
    outer: tuple[str, ...]
    inner: str
    log_coords: bool
    raw_values: bool


_ATT = ("kv_dtype", "act_dtype", "num_kv_heads", "head_dim")
SPECS = {
    "gemm": TableSpec(("dtype", "act_dtype"), ("k", "n"), "m", True, False),
    "attention-prefill": TableSpec(_ATT, ("num_heads", "seq_len"), "batch", True, False),
    "attention-decode": TableSpec(_ATT, ("num_heads", "batch"), "context_len", False, True),
    "moe": TableSpec(("dtype", "act_dtype", "hidden_size", "intermediate_size", "num_experts",
                      "top_k", "ep"), (), "num_tokens", True, False),
    "elementwise": TableSpec((), (), "bytes", True, False),
}
_DTYPE_COLS = ("dtype", "act_dtype", "kv_dtype")


class KernelTable:
    """Measured kernels of one hardware, sliced for interpolation (module docstring); a
    :class:`~llmsim.costmodel.estimators.repriced.KernelPricer`."""

    def __init__(self, hardware: HardwareSpec, rows: pd.DataFrame | Mapping[str, np.ndarray],
                 origin: str, framework: str | None = None, version: str | None = None):
        self.hardware = hardware
        self.origin = origin
        self._slices: dict[tuple, object] = {}
        self._memo: dict[tuple, list | None] = {}
        self.info: dict[str, dict[str, object]] = {}
        cols = _for_hardware(sources.columns_of(rows), hardware)
        for kind, spec in SPECS.items():
            sub = _take(cols, cols["kind"] == kind)
            if len(sub["kind"]) == 0:
                continue
            sub, picked = _pick_stack(sub, kind, framework, version)
            if len(sub["kind"]) == 0:
                continue
            frame, names = _prepared(sub, kind, spec, hardware)
            if len(frame) == 0:
                continue
            groups = frame.groupby(list(spec.cat), sort=True).indices if spec.cat else \
                {(): np.arange(len(frame))}
            outer = frame[list(spec.outer)].to_numpy(float).reshape(len(frame), -1)
            x, lu, t = (frame[c].to_numpy(float) for c in ("_x", "_lu", "_t"))
            for key, idx in groups.items():
                key = key if isinstance(key, tuple) else (key,)
                key = tuple(names[c][int(v)] if c in names else float(v)
                            for c, v in zip(spec.cat, key, strict=True))
                idx = np.sort(idx)  # rows are sorted by (cat, outer, x): keep that order
                self._slices[(kind, key)] = build_grid(outer[idx], x[idx], lu[idx], t[idx],
                                                       spec.log_coords)
            self.info[kind] = {**picked, "rows": int(len(frame)),
                               "slices": int(sum(1 for k in self._slices if k[0] == kind))}

    @property
    def kinds(self) -> list[str]:
        return sorted(self.info)

    def _entries(self, kind: str, case: Mapping[str, object]) -> list | None:
        spec = SPECS[kind]
        try:
            key = _norm_key(tuple(_case_value(case, c) for c in spec.cat))
            outer = tuple(float(case[c]) for c in spec.outer)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            return None
        memo_key = (kind, key, outer)
        if memo_key in self._memo:
            return self._memo[memo_key]
        node = self._slices.get((kind, key))
        out = None if node is None else bracket(node, outer, spec.log_coords)
        if len(self._memo) < 100_000:
            self._memo[memo_key] = out
        return out

    def covers(self, kind: str, case: Mapping[str, object]) -> bool:
        """Whether the table has a slice for this case (else the fallback prices it)."""
        return kind in SPECS and self._entries(kind, case) is not None

    def inner_column(self, kind: str) -> str:
        return SPECS[kind].inner

    def evaluator(self, kind: str, case: Mapping[str, object]) -> TableEval | None:
        """The interpolant of one case's fixed columns along the inner one (None: no slice);
        the step model caches it per attention batch size."""
        entries = self._entries(kind, case) if kind in SPECS else None
        return None if entries is None else TableEval(entries, SPECS[kind].raw_values)

    def times(self, kind: str, case: Mapping[str, object], inner: np.ndarray,
              sol: np.ndarray) -> tuple[np.ndarray, list[str]]:
        x = np.asarray(inner, dtype=float)
        ev = self.evaluator(kind, case)
        if ev is None:
            return np.full(x.shape, np.nan), [FALLBACK] * x.size
        return ev(x, sol)

    def describe(self) -> dict[str, object]:
        covered = {k: v for k, v in self.info.items()}
        missing = [k for k in SPECS if k not in covered]
        return {"table": self.origin, "hardware": self.hardware.name, "kinds": covered,
                "fallback": {"estimator": FALLBACK,
                             "kinds": missing + ["collectives", "cases without a slice"]}}


def _case_value(case: Mapping[str, object], col: str) -> object:
    v = case[col]
    if col in _DTYPE_COLS:
        return work.dtype_key(v)
    return float(v)  # type: ignore[arg-type]


def _norm_key(key: tuple) -> tuple:
    return tuple(x if isinstance(x, str) else float(x) for x in key)


def _take(cols: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {c: v[mask] for c, v in cols.items()}


def _present(v: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.notna(v) & (v != "") if v.dtype == object else np.isfinite(v)


def _for_hardware(cols: Mapping[str, np.ndarray], hw: HardwareSpec) -> dict[str, np.ndarray]:
    import pandas as pd

    for need in ("hardware", "kind", sources.MEASURED):
        if need not in cols:
            raise DataError("a kernel table needs the columns kind, hardware and "
                            f"{sources.MEASURED} (docs/calibration.md)")
    codes, names = pd.factorize(cols["hardware"])
    mine = np.array([_canonical(str(h)) == hw.name for h in names] + [False])
    t = np.asarray(cols[sources.MEASURED], dtype=float)
    out = _take(cols, mine[codes] & np.isfinite(t) & (t > 0))
    codes, kinds = pd.factorize(out["kind"])
    normal = np.array([opcases.normalize_kind(k) for k in kinds] + [""], dtype=object)
    out["kind"] = normal[codes]
    return out


def _canonical(name: str) -> str:
    try:
        return get_hardware(name).name
    except Exception:  # a part the catalog does not know: never matches a deployment
        return name


def _pick_stack(cols: dict[str, np.ndarray], kind: str, framework: str | None,
                version: str | None) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """One framework (and its newest version) per kind: the one asked for, else vLLM, else
    the one with most rows; MoE rows of one routing distribution (balanced first)."""
    picked: dict[str, object] = {}

    def column(name: str) -> np.ndarray | None:
        v = cols.get(name)
        if v is None or v.dtype != object:
            return None
        present = _present(v)
        return np.where(present, v, "").astype(str) if present.any() else None

    fws = column("framework")
    if fws is not None:
        names, counts = np.unique(fws, return_counts=True)
        if framework is not None:
            fw = framework
        else:
            fw = next((f for f in PREFERRED_FRAMEWORKS if f in names),
                      str(names[int(np.argmax(counts))]))
        cols = _take(cols, fws == fw)
        picked["framework"] = fw
        vs = column("framework_version")
        if vs is not None:
            v = version if version is not None else max(set(vs), key=sources.version_key)
            cols = _take(cols, vs == v)
            picked["framework_version"] = str(v)
    ds = column("distribution") if kind == "moe" else None
    if ds is not None:
        have = sorted(set(ds))
        d = next((x for x in PREFERRED_DISTRIBUTIONS if x in have), have[0])
        cols = _take(cols, ds == d)
        picked["distribution"] = d
    src = column("source")
    if src is not None:
        picked["sources"] = sorted(str(x) for x in set(src) - {""})[:8]
    return cols, picked


def _prepared(cols: Mapping[str, np.ndarray], kind: str, spec: TableSpec, hw: HardwareSpec
              ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Per row (duplicates merged, sorted by slice, outer axes, inner): canonical format codes,
    shape columns, ``_x`` (inner), ``_lu`` (log-util), ``_t`` (latency); and the format names
    of the codes."""
    import pandas as pd

    need = [c for c in opcases.REQUIRED[kind] if c not in cols]
    if need:
        raise DataError(f"kernel table rows of kind {kind} need the columns {need}")
    n = len(cols["kind"])
    num = {c: np.asarray(cols[c], dtype=float) for c in opcases.REQUIRED[kind]}
    num["ep"] = (np.nan_to_num(np.asarray(cols["ep"], dtype=float), nan=1.0)
                 if "ep" in cols else np.ones(n))
    if kind == "moe" and "distribution" in cols:  # the roofline of the routing measured
        num["balanced"] = work.balanced_rows(cols["distribution"])
    t = np.asarray(cols[sources.MEASURED], dtype=float)
    fmt = {c: (np.where(_present(cols[c]), cols[c], "").astype(str) if c in cols
               and cols[c].dtype == object else np.full(n, "", dtype=object))
           for c in _DTYPE_COLS}
    combo, uniq = pd.factorize(pd.Series(list(zip(*(fmt[c] for c in _DTYPE_COLS),
                                                   strict=True)), dtype=object))
    sol = np.full(n, np.nan)
    names: dict[str, list[str]] = {c: [] for c in _DTYPE_COLS}
    codes = {c: np.full(n, -1) for c in _DTYPE_COLS}
    for i, (dt, act, kv) in enumerate(uniq):
        idx = np.flatnonzero(combo == i)
        try:
            prec = work.precision_of(hw, dt or "bf16", act or None, kv or None)
        except Exception as exc:  # a format the part does not have
            log.info("kernel table: %d %s rows in %s/%s/%s skipped (%s)", len(idx), kind, dt,
                     act, kv, exc)
            continue
        sol[idx] = work.roofline_time(work.work(kind, {c: v[idx] for c, v in num.items()},
                                                hw, prec), hw)
        for c, d in zip(_DTYPE_COLS, (prec.weight, prec.activation, prec.kv), strict=True):
            key = work.dtype_key(d)
            if key not in names[c]:
                names[c].append(key)
            codes[c][idx] = names[c].index(key)
    out = pd.DataFrame(num)
    for c in _DTYPE_COLS:
        out[c] = codes[c]
    if kind == "elementwise":
        out["bytes"] = num["bytes_read"] + num["bytes_written"]
    out["_x"] = out[spec.inner]
    out["_t"] = t
    out["_lu"] = np.log(sol / t)
    keep = np.isfinite(out["_lu"].to_numpy()) & (out["_x"].to_numpy(float) > 0)
    for c in spec.outer:
        keep &= np.isfinite(out[c].to_numpy(float))
    out = out[keep]
    if len(out) == 0:
        return out, names
    keys = list(spec.cat) + list(spec.outer) + ["_x"]
    return out.groupby(keys, as_index=False, sort=True).agg(
        _lu=("_lu", "median"), _t=("_t", "median")), names


@lru_cache(maxsize=16)
def load_table(spec: str | None, hardware: str) -> KernelTable:
    """The :class:`KernelTable` of ``hardware`` from a source spec (None: the shipped table),
    cached per (spec, hardware)."""
    s = sources.parse_source(spec)
    hw = get_hardware(hardware)
    cols = sources.read_columns(s, hw.name)
    return KernelTable(hw, cols, str(s), s.options.get("framework"), s.options.get("version"))


@ESTIMATORS.register("table", "silicon")
def build(deployment: Deployment) -> RepricedStepTimeModel:
    """Measured kernels of the deployment's GPU (``estimator_model``: a source spec, default
    the shipped table), the calibrated roofline where they have no data."""
    table = load_table(deployment.estimator_model, deployment.hardware.name)
    if not table.kinds:
        log.warning("the kernel table %s has no rows for %s: every op is priced by the "
                    "calibrated roofline", table.origin, deployment.hardware.name)
    return RepricedStepTimeModel(deployment, table, "table")
