"""Kernel work and datasheet roofline time of op cases, vectorised over columns.

The one mapping from op-case columns to kernel formulas is :func:`opcases.kernel_work`; this
module feeds it arrays (a measured table's rows, or one op's case) and returns the datasheet
roofline time (the ``SOL`` of AIConfigurator) every measured-data estimator is relative to::

    sol = max(F / P, B / W)        (P: the op's compute-format peak, W: memory bandwidth)

so ``util = sol / measured`` is the fraction of the datasheet roofline a kernel reaches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel import kernels, opcases
from llmsim.costmodel.ops import Precision
from llmsim.costmodel.profile import NEUTRAL_KERNEL, ResolvedKernel
from llmsim.dtypes import DType

ROOFLINE = ResolvedKernel(**NEUTRAL_KERNEL)


def precision_of(hw: HardwareSpec, dtype: object = "bf16", act_dtype: object = None,
                 kv_dtype: object = None) -> Precision:
    """The formats of a case as ``llmsim op`` picks them; NaN / None / "" mean the default."""
    def clean(x: object) -> str | None:
        if x is None or (isinstance(x, float) and np.isnan(x)) or str(x) in ("", "nan"):
            return None
        return str(x)

    return opcases.case_precision(hw, clean(dtype) or "bf16", clean(act_dtype), clean(kv_dtype))


def case_column(cols: Mapping[str, Any]) -> Callable[[str], Any]:
    """A column reader over a mapping of arrays (``ep`` defaults to 1 where missing / NaN)."""
    def col(name: str) -> Any:
        if name == "ep":
            v = cols.get("ep")
            if v is None:
                return 1.0
            return np.nan_to_num(np.asarray(v, dtype=float), nan=1.0)
        return np.asarray(cols[name], dtype=float)
    return col


def balanced_rows(distribution: Any) -> np.ndarray:
    """Which measured MoE rows ran evenly dealt routing (a table's ``distribution`` column:
    ``kernels.BALANCED``): the ``balanced`` column the MoE case mapping reads
    (``opcases.kernel_work``; missing: uniform routing)."""
    return np.asarray(distribution).astype(str) == kernels.BALANCED


def work(kind: str, cols: Mapping[str, Any], hw: HardwareSpec,
         precision: Precision) -> kernels.KernelWork:
    """:func:`opcases.kernel_work` of cases given as a mapping of columns."""
    return opcases.kernel_work(kind, case_column(cols), hw, precision)


def roofline_parts(w: kernels.KernelWork, hw: HardwareSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(F / P, B / W)``: the datasheet compute and memory times of a work (arrays)."""
    f = np.asarray(w.flops, dtype=float) / w.peak_flops_per_s
    b = np.asarray(w.bytes, dtype=float) / hw.memory_bandwidth_bytes_per_s
    shape = np.broadcast_shapes(f.shape, b.shape)
    return np.broadcast_to(f, shape), np.broadcast_to(b, shape)


def roofline_time(w: kernels.KernelWork, hw: HardwareSpec) -> np.ndarray:
    """The datasheet roofline time ``max(F / P, B / W)`` (no launch cost)."""
    c, m = roofline_parts(w, hw)
    return np.maximum(c, m)


def dtype_key(value: object) -> str:
    """The table key of a numeric format: fp16 and bf16 GEMMs run at one tensor-core rate on
    every part that has both, so both key as ``bf16``; others as ``DType`` names."""
    d = value if isinstance(value, DType) else DType.parse(str(value))
    return "bf16" if d in (DType.BF16, DType.FP16) else d.value
