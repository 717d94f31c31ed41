"""Predicted-vs-measured residuals of every estimator, in sample and leave-one-GPU-out.

The *validation sets* are the measured kernel tables that represent what an estimator claims
to model, per part and op family: the tables the shipped profile is fitted on (``fit``) and the
same kernels measured under another software stack or cache format (``other-stack``:
AIConfigurator TensorRT-LLM, Vidur / sarathi-serve, fp8 KV caches, Vidur's NCCL). Sets the
model is known not to describe (fp8 GEMMs timed with their quantisation, expert-parallel MoE in
vLLM's ``expert_map`` path, multi-kernel eager elementwise ops, multi-node all-reduce, timings
with Python launch overhead) stay out; docs/calibration.md lists them.

Residual ``r = log(measured / predicted)``. For each estimator, two *modes*:

- ``in-sample``: the estimator as shipped (the part's own fit, table or training rows);
- ``transfer``: the estimator built without the part's data (leave-one-GPU-out):
  ``calibrated`` / ``table`` through :func:`transfer.profile_without` (a table without the part
  falls back to the calibrated roofline), ``learned`` trained on the other parts only,
  ``analytic`` unchanged (it uses no data).

The ``table`` estimator's in-sample residuals are interpolation errors: a seeded random 20%
of each fit set (and of each other set that is the table's own data, e.g. its fp8 KV rows) is
held out of the table and predicted from the rest; sets of other stacks are priced by the
part's full table (cross-stack error).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmsim.calibration import aiconfigurator as aic
from llmsim.calibration import predict as pr
from llmsim.calibration import transfer
from llmsim.calibration.measurements import MEASURED
from llmsim.calibration.reference import FIT, DataSet
from llmsim.catalog import get_hardware
from llmsim.costmodel.estimators import learned as lm
from llmsim.costmodel.estimators import sources as src
from llmsim.costmodel.estimators.table import KernelTable
from llmsim.costmodel.profile import Profile

OTHER = "other-stack"
IN_SAMPLE, TRANSFER = "in-sample", "transfer"
ESTIMATORS = ("analytic", "calibrated", "table", "learned")
FAMILY_KIND = {"gemm": "gemm", "moe": "moe", "attention_prefill": "attention-prefill",
               "attention_decode": "attention-decode", "elementwise": "elementwise"}
#: reference held-out sets (name, family) that represent the model (their rows are measured
#: kernels the model claims to price); the others are documented limitations. Vidur's
#: FlashAttention *prefill* rows are left out: on the same A100 they take 2.4x vLLM's measured
#: kernel at the same shape (1,024 tokens, 32 query / 4 KV heads: 216 vs 91 us) while Vidur's
#: decode rows agree within 12%, so the timing holds work beyond the kernel
#: (docs/calibration.md, Limitations)
REPRESENTATIVE = (("vidur fp16", "gemm"), ("aic-vllm kv fp8", "attention_prefill"),
                  ("aic-vllm kv fp8", "attention_decode"), ("vidur flash-attn", "attention_decode"),
                  ("vidur dgx one node", "comm_intra"))
HOLDOUT_FRAC = 0.2
MAX_ROWS = 20_000


@dataclass(frozen=True)
class ValidationSet:
    name: str
    hardware: str
    family: str
    role: str  # fit | other-stack
    rows: pd.DataFrame


@dataclass(frozen=True)
class Residuals:
    """Residuals of one estimator, mode and validation set."""

    estimator: str
    mode: str
    hardware: str
    family: str
    set: str
    role: str
    log_ratio: np.ndarray  # log(measured / predicted), finite values only

    @property
    def n(self) -> int:
        return int(self.log_ratio.size)

    def ape(self) -> np.ndarray:
        return np.abs(np.exp(-self.log_ratio) - 1.0) * 100.0


def _thin(rows: pd.DataFrame, max_rows: int, seed: int = 0) -> pd.DataFrame:
    if len(rows) <= max_rows:
        return rows.reset_index(drop=True)
    idx = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
    return rows.iloc[idx].reset_index(drop=True)


def _trtllm_sets(root: Path) -> list[ValidationSet]:
    out = []
    for gpu, hw in aic.GPU_TO_HARDWARE.items():
        g = aic.load_gemm(root, gpu, "trtllm")
        g = g[(g["dtype"] == "bf16") & g["act_dtype"].isna()]
        out.append(ValidationSet("aic-trtllm bf16", hw, "gemm", OTHER, g))
        a = aic.load_attention(root, gpu, "trtllm")
        a = a[a["kv_dtype"] == "bf16"]
        for kind, fam in (("attention-prefill", "attention_prefill"),
                          ("attention-decode", "attention_decode")):
            out.append(ValidationSet("aic-trtllm kv bf16", hw, fam, OTHER, a[a["kind"] == kind]))
    return out


def validation_sets(sets: Iterable[DataSet], root: Path | None = None,
                    max_rows: int = MAX_ROWS) -> list[ValidationSet]:
    """Fit sets and representative held-out sets of ``reference.load_sets`` (plus the
    AIConfigurator TensorRT-LLM tables when ``root`` is given), at most ``max_rows`` each
    (seeded subsample)."""
    out = []
    for s in sets:
        if s.family == "comm_inter":
            continue
        if s.role == FIT:
            out.append(ValidationSet(s.name, s.hardware, s.family, FIT, s.rows))
        elif (s.name, s.family) in REPRESENTATIVE:
            out.append(ValidationSet(s.name, s.hardware, s.family, OTHER, s.rows))
    if root is not None:
        out += _trtllm_sets(root)
    return [ValidationSet(v.name, v.hardware, v.family, v.role, _thin(v.rows, max_rows))
            for v in out if len(v.rows)]


def _residual(meas: np.ndarray, pred: np.ndarray) -> np.ndarray:
    r = np.log(np.asarray(meas, float) / np.asarray(pred, float))
    return r[np.isfinite(r)]


def profile_residuals(vsets: list[ValidationSet], estimator: str, profile_of) -> list[Residuals]:
    """Residuals of a profile-priced estimator: ``profile_of(hardware) -> (Profile, mode)``."""
    out = []
    for v in vsets:
        prof, mode = profile_of(v.hardware)
        pred = pr.predict(v.rows, prof)
        out.append(Residuals(estimator, mode, v.hardware, v.family, v.name, v.role,
                             _residual(v.rows[MEASURED].to_numpy(float), pred)))
    return out


def calibrated_residuals(vsets: list[ValidationSet], base: Profile, rule: str = "median"
                         ) -> list[Residuals]:
    """In-sample (the shipped profile) and transfer (:func:`transfer.profile_without`)."""
    out = profile_residuals(vsets, "calibrated", lambda hw: (base, IN_SAMPLE))
    cache: dict[str, Profile] = {}

    def without(hw: str) -> tuple[Profile, str]:
        if hw not in cache:
            cache[hw] = transfer.profile_without(base, hw, rule)
        return cache[hw], TRANSFER

    return out + profile_residuals(vsets, "calibrated", without)


def analytic_residuals(vsets: list[ValidationSet]) -> list[Residuals]:
    empty = Profile.empty()
    res = profile_residuals(vsets, "analytic", lambda hw: (empty, IN_SAMPLE))
    return res + [Residuals(r.estimator, TRANSFER, r.hardware, r.family, r.set, r.role,
                            r.log_ratio) for r in res]


def _kernel_rows(v: ValidationSet) -> bool:
    return v.family in FAMILY_KIND


def table_residuals(vsets: list[ValidationSet], base: Profile, seed: int = 0,
                    table_spec: str | None = None) -> list[Residuals]:
    """In-sample: fit sets interpolated from the rest of the table (random 20% held out);
    other-stack sets priced by the part's full table; uncovered rows by the calibrated
    profile (as the estimator does). Transfer: the calibrated transfer (no table)."""
    out = []
    rng = np.random.default_rng(seed)
    for v in vsets:
        if not _kernel_rows(v):
            pred = pr.predict(v.rows, base)
            out.append(Residuals("table", IN_SAMPLE, v.hardware, v.family, v.name, v.role,
                                 _residual(v.rows[MEASURED].to_numpy(float), pred)))
            continue
        hw = get_hardware(v.hardware)
        rows, meas = v.rows, v.rows[MEASURED].to_numpy(float)
        full = KernelTable(hw, src.read_columns(src.parse_source(table_spec), hw.name),
                           "validation")
        role = FIT if v.role == FIT or _in_table(full, v) else v.role
        if role == FIT:  # interpolate each held-out row from the rest of its own table
            test = rng.random(len(rows)) < HOLDOUT_FRAC
            table = KernelTable(hw, src.columns_of(rows[~test]), "validation")
            rows, meas = rows[test].reset_index(drop=True), meas[test]
        else:
            table = full
        pred = table_predict(table, rows)
        miss = ~np.isfinite(pred)
        if miss.any():
            pred[miss] = pr.predict(rows[miss], base)
        out.append(Residuals("table", IN_SAMPLE, v.hardware, v.family, v.name, role,
                             _residual(meas, pred)))
    return out + [Residuals("table", TRANSFER, r.hardware, r.family, r.set, r.role, r.log_ratio)
                  for r in calibrated_residuals(vsets, base) if r.mode == TRANSFER]


def _in_table(table: KernelTable, v: ValidationSet) -> bool:
    """Whether the set's rows are the shipped table's own data (same framework and version
    for the kind): another format of the same tables, e.g. fp8 KV caches."""
    info = table.info.get(FAMILY_KIND[v.family], {})
    fw = set(v.rows["framework"].dropna().astype(str)) if "framework" in v.rows else set()
    ver = set(v.rows["framework_version"].dropna().astype(str)) \
        if "framework_version" in v.rows else set()
    return fw == {info.get("framework")} and ver == {info.get("framework_version")}


_KEY = ("m", "n", "k", "batch", "seq_len", "context_len", "num_heads", "num_kv_heads",
        "head_dim", "num_tokens", "hidden_size", "intermediate_size", "num_experts", "top_k",
        "bytes_read", "bytes_written")


def table_predict(table: KernelTable, rows: pd.DataFrame) -> np.ndarray:
    """The table's time for every measured row (NaN where it has no slice); ``rows`` has a
    unique index."""
    from llmsim.costmodel.estimators import work
    from llmsim.costmodel.estimators.table import SPECS

    out = np.full(len(rows), np.nan)
    hw = table.hardware
    for kind, sub in rows.groupby("kind"):
        if kind not in SPECS:
            continue
        for fmt, part in sub.groupby([sub[c].astype(object).where(sub[c].notna(), "")
                                      for c in ("dtype", "act_dtype", "kv_dtype")]):
            prec = work.precision_of(hw, fmt[0] or "bf16", fmt[1] or None, fmt[2] or None)
            pidx = part.index.to_numpy()
            cols = {c: pd.to_numeric(part[c], errors="coerce").to_numpy(float)
                    for c in part.columns if c in _KEY and part[c].notna().any()}
            if "ep" in part.columns:
                cols["ep"] = np.nan_to_num(pd.to_numeric(part["ep"], errors="coerce")
                                           .to_numpy(float), nan=1.0)
            if kind == "moe" and "distribution" in part.columns:
                cols["balanced"] = work.balanced_rows(part["distribution"])
            sol = work.roofline_time(work.work(kind, cols, hw, prec), hw)
            case_cols = {"dtype": prec.weight.value, "act_dtype": prec.activation.value,
                         "kv_dtype": prec.kv.value}
            inner_col = table.inner_column(kind)
            inner = (cols["bytes_read"] + cols["bytes_written"] if kind == "elementwise"
                     else cols[inner_col])
            others = [c for c in cols if c not in (inner_col, "bytes_read", "bytes_written")]
            keys = pd.DataFrame({c: cols[c] for c in others}) if others else None
            groups = (keys.groupby(others, sort=False).indices if keys is not None
                      else {(): np.arange(len(pidx))})
            for key, gi in groups.items():
                key = key if isinstance(key, tuple) else (key,)
                case = {**case_cols, **dict(zip(others, key, strict=True))}
                t, _ = table.times(kind, case, inner[gi], sol[gi])
                out[rows.index.get_indexer(pidx[gi])] = t
    return out


def learned_residuals(vsets: list[ValidationSet], base: Profile, quick: bool = False,
                      max_rows_per_part: int = 15_000) -> list[Residuals]:
    """In-sample: one model trained on every part's fit sets; transfer: one model per held-out
    part trained on the other parts' fit sets. Rows a model does not cover (kinds, envelope)
    are priced by the calibrated profile (in-sample) or its transfer (held out)."""
    fit_rows = {v.hardware: [] for v in vsets}
    for v in vsets:
        if v.role == FIT and _kernel_rows(v):
            fit_rows[v.hardware].append(v.rows)
    parts = sorted(h for h, f in fit_rows.items() if f)

    def train(hws: list[str]) -> lm.LearnedModel:
        rows = pd.concat([r for h in hws for r in fit_rows[h]], ignore_index=True)
        return lm.train(rows, None, quick=quick, max_rows_per_part=max_rows_per_part,
                        origin="validation")

    out = []
    models = {"*": train(parts)}
    for hw in parts:
        models[hw] = train([h for h in parts if h != hw])
    for v in vsets:
        for mode, key, prof in ((IN_SAMPLE, "*", base),
                                (TRANSFER, v.hardware, transfer.profile_without(base,
                                                                                v.hardware))):
            if not _kernel_rows(v):
                pred = pr.predict(v.rows, prof)
            else:
                model = models.get(key, models["*"])
                pred = _inside_or_nan(model, v.rows)
                miss = ~np.isfinite(pred)
                if miss.any():
                    pred[miss] = pr.predict(v.rows[miss], prof)
            out.append(Residuals("learned", mode, v.hardware, v.family, v.name, v.role,
                                 _residual(v.rows[MEASURED].to_numpy(float), pred)))
    return out


def _inside_or_nan(model: lm.LearnedModel, rows: pd.DataFrame) -> np.ndarray:
    """The model's time where the row is inside its shape box, else NaN (as the estimator)."""
    from llmsim.costmodel.estimators import features as ft
    from llmsim.costmodel.estimators import work

    out = np.full(len(rows), np.nan)
    for (kind, hwname, fmt), idx in lm._groups(rows).items():
        km = model.kinds.get(kind)
        if km is None:
            continue
        hw = get_hardware(hwname)
        x, sol = ft.features(kind, lm._cols(rows.iloc[idx], kind), hw,
                             work.precision_of(hw, *fmt))
        t = sol * np.exp(km.predict(x))
        out[idx] = np.where(km.inside(x), t, np.nan)
    return out
