"""Op features for the learned estimator: one row per op case, from the kernel formulas.

Computed with the same :func:`opcases.kernel_work` mapping the roofline and the fits use, for
the part the op runs on, so a training row (a measured kernel) and a priced op line up
(``llmsim op --features`` exports the same columns). Per research r12 (Q3), without
hardware-identity columns (they did not help with one training part and hurt extrapolation
with three), and with the datasheet roofline ``sol`` as the target's reference:

- shape: ``log2`` of each shape column of the kind (``opcases.REQUIRED``; MoE with ``ep``),
  the GQA ratio (attention), bytes per element of the weights, activations and KV cache;
- work: ``log2`` FLOPs, bytes and arithmetic intensity (FLOP / byte);
- dimensionless roofline: ``log2(intensity / ridge)`` (ridge = peak / bandwidth),
  ``log2`` of the ideal compute, memory and roofline times in microseconds, ``log2(m / SMs)``
  (``m``: the work's first efficiency dim), and for GEMM / MoE ``log2`` of the waves of
  128 x 128 output tiles over the SMs and the last wave's fill (``waves / ceil(waves)``).

Training target: ``log(measured / sol)``; a prediction is ``sol x exp(model(features))``.
The *shape box* (the hardware-independent columns: shape, formats, FLOPs, bytes) is the
training envelope.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel import opcases
from llmsim.costmodel.estimators import work
from llmsim.costmodel.ops import Precision

SHAPE = {kind: tuple(opcases.REQUIRED[kind]) + (("ep",) if kind == "moe" else ())
         for kind in opcases.KERNEL_KINDS}
_TILE = 128.0


def names(kind: str) -> list[str]:
    """Feature names of ``kind``, in column order."""
    out = [f"log_{c}" for c in SHAPE[kind]]
    if kind.startswith("attention"):
        out += ["gqa_ratio", "kv_bytes"]
    if kind in ("gemm", "moe"):
        out += ["weight_bytes", "act_bytes"]
    out += ["log_flops", "log_bytes", "log_ai", "log_ai_over_ridge", "log_t_compute_us",
            "log_t_memory_us", "log_t_roof_us", "log_m_per_sm"]
    if kind in ("gemm", "moe"):
        out += ["log_waves", "wave_fill"]
    return out


def box_columns(kind: str) -> list[str]:
    """The hardware-independent features: the training envelope's box."""
    return [n for n in names(kind) if n.startswith("log_") and n[4:] in SHAPE[kind]] + \
        [n for n in names(kind) if n in ("gqa_ratio", "kv_bytes", "weight_bytes",
                                          "act_bytes", "log_flops", "log_bytes")]


def _log2(x) -> np.ndarray:
    return np.log2(np.maximum(np.asarray(x, dtype=float), 1e-30))


def features(kind: str, cols: Mapping[str, object], hw: HardwareSpec,
             precision: Precision) -> tuple[np.ndarray, np.ndarray]:
    """``(X [rows, features], sol [rows])`` of cases of one kind and formats on ``hw``."""
    w = work.work(kind, cols, hw, precision)
    c0, m0 = work.roofline_parts(w, hw)
    n = max(np.size(c0), max((np.size(v) for v in cols.values()), default=1))
    one = np.ones(n)
    out: list[np.ndarray] = []
    col = work.case_column(cols)
    for c in SHAPE[kind]:
        out.append(_log2(col(c)) * one)
    if kind.startswith("attention"):
        out.append(np.asarray(col("num_heads"), dtype=float) / np.asarray(col("num_kv_heads"),
                                                                          dtype=float) * one)
        out.append(precision.kv.bytes_with_scales * one)
    if kind in ("gemm", "moe"):
        out += [precision.weight.bytes_with_scales * one, precision.activation.bytes * one]
    flops = np.asarray(w.flops, dtype=float) * one
    nbytes = np.asarray(w.bytes, dtype=float) * one
    lf, lb = _log2(np.maximum(flops, 1.0)), _log2(np.maximum(nbytes, 1.0))
    ridge = w.peak_flops_per_s / hw.memory_bandwidth_bytes_per_s
    sms = float(hw.num_compute_units)
    m = np.asarray(w.m, dtype=float) * one
    out += [lf, lb, lf - lb, lf - lb - np.log2(ridge), _log2(c0 * 1e6) * one,
            _log2(m0 * 1e6) * one, _log2(np.maximum(c0, m0) * 1e6) * one,
            _log2(np.maximum(m, 1e-3) / sms) if kind != "elementwise" else 0.0 * one]
    if kind in ("gemm", "moe"):
        tiles = np.ceil(m / _TILE) * np.ceil(np.asarray(w.n, dtype=float) * one / _TILE)
        waves = np.maximum(tiles / sms, 1e-3)
        out += [_log2(waves), waves / np.ceil(waves)]
    return np.column_stack(out), np.maximum(c0, m0) * one
