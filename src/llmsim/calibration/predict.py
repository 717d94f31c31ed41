"""Predict the time of every row of a measurement table with the cost model, vectorised.

Kernel rows go through the one case mapping of :mod:`llmsim.costmodel.opcases` (the columns
to the arguments of the ``kernels.*_work`` formulas, with the formats ``llmsim op`` picks and
the step model's KV bytes per token), over arrays of rows that share kind, hardware and formats;
collectives through :func:`collectives.collective_time` on the hardware's default cluster (or
the row's ``cluster``), with the row's ``stride``. MoE rows of a table's ``balanced``
distribution are priced with that routing (every expert hit once the batch routes ``E``
assignments: ``kernels.expected_experts_touched``), others with the uniform routing a served
model is priced with. ``tests/test_calibration.py`` checks these predictions against
``price_op`` row by row.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from llmsim.calibration.measurements import COMM_KINDS
from llmsim.catalog import get_cluster, get_hardware
from llmsim.catalog.cluster import Cluster
from llmsim.costmodel import kernels, opcases
from llmsim.costmodel.collectives import collective_time
from llmsim.costmodel.estimators import work
from llmsim.costmodel.ops import OpKind
from llmsim.costmodel.profile import HardwareProfile, Profile, ResolvedKernel


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(df[name], errors="coerce").to_numpy(float)


def kernel_work(df: pd.DataFrame, kind: str, hardware: str, dtype: str,
                kv_dtype: str | None = None, act_dtype: str | None = None) -> kernels.KernelWork:
    """The :class:`~llmsim.costmodel.kernels.KernelWork` of rows that share kind, hardware and
    formats (arrays over the rows), through the one case mapping of ``costmodel.opcases``."""
    hw = get_hardware(hardware)
    precision = work.precision_of(hw, dtype, act_dtype, kv_dtype)
    cols = {c: _col(df, c) for c in opcases.REQUIRED[kind]}
    if "ep" in df.columns:
        cols["ep"] = _col(df, "ep")
    if kind == "moe" and "distribution" in df.columns:
        cols["balanced"] = work.balanced_rows(df["distribution"])
    return work.work(kind, cols, hw, precision)


def kernel_time(work: kernels.KernelWork, hardware: str, eff: ResolvedKernel) -> np.ndarray:
    t, *_ = kernels.work_time(work, get_hardware(hardware), eff)
    shape = np.broadcast_shapes(np.shape(work.flops), np.shape(work.bytes))
    return np.broadcast_to(np.asarray(t, dtype=float), shape).copy()


@lru_cache(maxsize=64)
def cluster_for(hardware: str, cluster: str | None, num_gpus: int) -> Cluster:
    """The cluster a collective row runs on (as ``llmsim op`` picks it)."""
    return get_cluster(cluster, None if cluster else hardware, num_gpus=max(num_gpus, 2))


#: ``op`` of a measured collective run by the engine's own all-reduce kernel (priced with
#: ``comm_custom``); every other measured collective is NCCL's (``library="nccl"``)
CUSTOM_OP = "custom"


def row_library(op: object) -> str:
    """The collective library a measured row ran: ``custom`` for ``op == "custom"``, else
    ``nccl`` (nccl-tests, Vidur's torch.distributed timings)."""
    return "custom" if isinstance(op, str) and op == CUSTOM_OP else "nccl"


def comm_rows(df: pd.DataFrame) -> list[tuple[OpKind, float, int, Cluster, int, str]]:
    """Per-row arguments of :func:`collective_time` (kind, bytes, group, cluster, stride,
    library)."""
    out = []
    clusters = df["cluster"] if "cluster" in df.columns else pd.Series([None] * len(df))
    ops = df["op"] if "op" in df.columns else pd.Series([None] * len(df))
    for kind, size, n, stride, hw, cl, op in zip(df["kind"], _col(df, "message_bytes"),
                                                 _col(df, "num_gpus"),
                                                 np.nan_to_num(_col(df, "stride"), nan=1.0),
                                                 df["hardware"], clusters, ops, strict=True):
        n = 2 if kind == "p2p" or not np.isfinite(n) else int(n)
        cname = cl if isinstance(cl, str) and cl else None
        cluster = cluster_for(str(hw), cname, n * int(stride))
        out.append((OpKind(kind), float(size), n, cluster, int(stride), row_library(op)))
    return out


def is_inter_node(args: tuple[OpKind, float, int, Cluster, int, str]) -> bool:
    kind, _, n, cluster, stride, _ = args
    return (2 if kind == OpKind.P2P else n) * stride > cluster.gpus_per_node


def inter_node_mask(df: pd.DataFrame) -> np.ndarray:
    """Which collective rows span more than one node (they price ``comm_inter``)."""
    if len(df) == 0:
        return np.zeros(0, dtype=bool)
    return np.array([is_inter_node(a) for a in comm_rows(df)], dtype=bool)


def comm_time(rows: list[tuple[OpKind, float, int, Cluster, int, str]],
              prof: HardwareProfile) -> np.ndarray:
    return np.array([collective_time(k, s, n, cl, prof, stride, lib)
                     for k, s, n, cl, stride, lib in rows])


def _groups(df: pd.DataFrame):
    kv = df["kv_dtype"].where(df["kv_dtype"].notna(), df["dtype"]).fillna("bf16")
    act = df["act_dtype"].astype(object).where(df["act_dtype"].notna(), "") \
        if "act_dtype" in df.columns else ""
    keys = pd.DataFrame({"kind": df["kind"], "hardware": df["hardware"],
                         "dtype": df["dtype"].fillna("bf16"), "kv": kv, "act": act})
    return keys.groupby(["kind", "hardware", "dtype", "kv", "act"], sort=True).indices


def predict(df: pd.DataFrame, profile: Profile, efficiency: float | None = None) -> np.ndarray:
    """Predicted seconds for every row of a measurement table under ``profile``."""
    out = np.full(len(df), np.nan)
    for (kind, hardware, dtype, kv, act), idx in _groups(df).items():
        sub = df.iloc[idx]
        prof = profile.for_hardware(get_hardware(hardware), efficiency)
        if kind in COMM_KINDS:
            out[idx] = comm_time(comm_rows(sub), prof)
            continue
        w = kernel_work(sub, kind, hardware, dtype, kv, act or None)
        out[idx] = kernel_time(w, hardware, prof.kernel(row_family(kind, hardware, dtype, act)))
    return out


def row_family(kind: str, hardware: str, dtype: str, act_dtype: str | None = None) -> str:
    """The profile family of rows of one kind and formats (:func:`opcases.family_of`)."""
    hw = get_hardware(hardware)
    return opcases.family_of(kind, hw, work.precision_of(hw, dtype, act_dtype or None))


def families(df: pd.DataFrame) -> np.ndarray:
    """The profile family of every kernel row (collective rows: ``""``)."""
    out = np.full(len(df), "", dtype=object)
    for (kind, hardware, dtype, _kv, act), idx in _groups(df).items():
        if kind not in COMM_KINDS:
            out[idx] = row_family(kind, hardware, dtype, act)
    return out
