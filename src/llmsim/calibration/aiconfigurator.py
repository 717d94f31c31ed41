"""Loader for the AIConfigurator performance database (``kernels/aiconfigurator``).

Layout: ``<gpu>/<family>/<framework>/<version>/<table>.parquet``; ``latency`` is in ms
(PROVENANCE.md). A version folder holding only ``reuse.yaml`` borrows another version's tables;
we read the folder that has the parquet. Column meanings (from the collectors in
ai-dynamo/aiconfigurator@095f58a5 ``collector/``):

- ``gemm_perf``: ``m, n, k, gemm_dtype``; one ``[m,k] x [k,n]`` linear.
- ``context_attention_perf``: ``batch_size`` sequences of ``isl`` tokens (no cached prefix),
  ``num_heads``, ``num_key_value_heads`` (0 = MHA), ``head_dim``, ``window_size`` (0 = none).
- ``generation_attention_perf``: one query token per sequence over ``step`` cached tokens; we take
  ``context_len = step + 1`` (the new token's key is attended too).
- ``moe_perf``: ``num_tokens`` routed ``topk`` of ``num_experts``, one rank of
  ``moe_tp_size x moe_ep_size``; its experts are ``inter_size / moe_tp_size`` wide.
- ``nccl_perf``: nccl-tests ``*_perf`` out-of-place time; ``message_size`` counts elements of
  ``nccl_dtype`` (half: 2 bytes, int8: 1) of the full tensor (collect_nccl.py divides the
  nccl-tests byte size by the element size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmsim.calibration import measurements as tb
from llmsim.calibration.sources import AICONFIGURATOR

GPU_TO_HARDWARE = {"a100_sxm": "a100-sxm-80gb", "h100_sxm": "h100-sxm"}
_MS = 1e-3
_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "fp8": "fp8",
          "fp8_block": "fp8", "int8": "int8"}


def table_paths(root: Path, gpu: str, family: str, framework: str, table: str) -> list[Path]:
    """Every ``<table>.parquet`` of one gpu/family/framework, newest version folder first."""
    base = root / "kernels" / "aiconfigurator" / gpu / family / framework
    return sorted(base.glob(f"*/{table}.parquet"), reverse=True)


def _read(root: Path, gpu: str, family: str, framework: str, table: str
          ) -> tuple[pd.DataFrame, str]:
    paths = table_paths(root, gpu, family, framework, table)
    if not paths:
        return pd.DataFrame(), ""
    path = paths[0]
    rel = path.relative_to(root / "kernels" / "aiconfigurator").with_suffix("")
    return pd.read_parquet(path), f"aiconfigurator/{rel.as_posix()}"


def _base(d: pd.DataFrame, gpu: str, kind: str, source: str) -> dict[str, object]:
    return {"kind": kind, "hardware": GPU_TO_HARDWARE[gpu], "source": source,
            "measured_time_s": d["latency"].to_numpy(float) * _MS}


def load_gemm(root: Path, gpu: str, framework: str = "vllm") -> pd.DataFrame:
    """GEMMs (bf16 and per-tensor fp8; block-scaled fp8 is tagged ``op=fp8_block``)."""
    d, src = _read(root, gpu, "gemm", framework, "gemm_perf")
    if d.empty:
        return tb.frame({})
    rows = _base(d, gpu, "gemm", src)
    rows.update(dtype=d["gemm_dtype"].map(_DTYPE).to_numpy(), m=d["m"].to_numpy(float),
                n=d["n"].to_numpy(float), k=d["k"].to_numpy(float),
                op=np.where(d["gemm_dtype"] == "fp8_block", "fp8_block",
                            d["kernel_source"].astype(str)))
    return tb.frame(rows)


def _kv_heads(d: pd.DataFrame) -> np.ndarray:
    kv = d["num_key_value_heads"].to_numpy(float)
    return np.where(kv == 0, d["num_heads"].to_numpy(float), kv)


def _window(d: pd.DataFrame) -> np.ndarray:
    if "window_size" in d.columns:
        return d["window_size"].to_numpy(float)
    return np.zeros(len(d))


def load_attention(root: Path, gpu: str, framework: str = "vllm") -> pd.DataFrame:
    """Context (prefill) and generation (decode) attention without sliding windows."""
    frames = []
    d, src = _read(root, gpu, "attention", framework, "context_attention_perf")
    if not d.empty:
        d = d[_window(d) == 0]
        rows = _base(d, gpu, "attention-prefill", src)
        rows.update(dtype="bf16", kv_dtype=d["kv_cache_dtype"].map(_DTYPE).to_numpy(),
                    batch=d["batch_size"].to_numpy(float), seq_len=d["isl"].to_numpy(float),
                    num_heads=d["num_heads"].to_numpy(float), num_kv_heads=_kv_heads(d),
                    head_dim=d["head_dim"].to_numpy(float),
                    op=d["kernel_source"].astype(str).to_numpy())
        frames.append(tb.frame(rows))
    d, src = _read(root, gpu, "attention", framework, "generation_attention_perf")
    if not d.empty:
        d = d[_window(d) == 0]
        rows = _base(d, gpu, "attention-decode", src)
        rows.update(dtype="bf16", kv_dtype=d["kv_cache_dtype"].map(_DTYPE).to_numpy(),
                    batch=d["batch_size"].to_numpy(float),
                    context_len=d["step"].to_numpy(float) + 1.0,
                    num_heads=d["num_heads"].to_numpy(float), num_kv_heads=_kv_heads(d),
                    head_dim=d["head_dim"].to_numpy(float),
                    op=d["kernel_source"].astype(str).to_numpy())
        frames.append(tb.frame(rows))
    return pd.concat(frames, ignore_index=True) if frames else tb.frame({})


def load_moe(root: Path, gpu: str, framework: str = "vllm") -> pd.DataFrame:
    """Fused-MoE expert kernels. ``op`` holds ``<dtype>/<distribution>``; the expert width is
    folded to ``inter_size / moe_tp_size`` (what one rank computes)."""
    d, src = _read(root, gpu, "moe", framework, "moe_perf")
    if d.empty:
        return tb.frame({})
    rows = _base(d, gpu, "moe", src)
    rows.update(dtype=d["moe_dtype"].map(lambda x: _DTYPE.get(x, x)).to_numpy(),
                num_tokens=d["num_tokens"].to_numpy(float),
                hidden_size=d["hidden_size"].to_numpy(float),
                intermediate_size=d["inter_size"].to_numpy(float) / d["moe_tp_size"].to_numpy(),
                num_experts=d["num_experts"].to_numpy(float), top_k=d["topk"].to_numpy(float),
                ep=d["moe_ep_size"].to_numpy(float),
                op=(d["moe_dtype"].astype(str) + "/" + d["distribution"].astype(str)).to_numpy())
    return tb.frame(rows)


_NCCL_KIND = {"all_reduce": "all-reduce", "all_gather": "all-gather",
              "reduce_scatter": "reduce-scatter", "alltoall": "all-to-all"}


def load_nccl(root: Path, gpu: str) -> pd.DataFrame:
    """NCCL collectives on one 8-GPU NVSwitch node (nccl-tests)."""
    paths = sorted((root / "kernels" / "aiconfigurator" / gpu / "comm" / "nccl").glob(
        "*/nccl_perf.parquet"), reverse=True)
    if not paths:
        return tb.frame({})
    d = pd.read_parquet(paths[0])
    src = "aiconfigurator/" + paths[0].relative_to(
        root / "kernels" / "aiconfigurator").with_suffix("").as_posix()
    elem = np.where(d["nccl_dtype"] == "int8", 1.0, 2.0)
    rows = _base(d, gpu, "", src)
    rows.update(kind=d["op_name"].map(_NCCL_KIND).to_numpy(),
                dtype=d["nccl_dtype"].map(_DTYPE).to_numpy(),
                message_bytes=d["message_size"].to_numpy(float) * elem,
                num_gpus=d["num_gpus"].to_numpy(float), stride=1.0, op="nccl")
    return tb.frame(rows)


def load_all(root: Path, framework: str = "vllm") -> pd.DataFrame:
    """Every table we use, for every GPU present."""
    frames = []
    for gpu in GPU_TO_HARDWARE:
        frames += [load_gemm(root, gpu, framework), load_attention(root, gpu, framework),
                   load_moe(root, gpu, framework), load_nccl(root, gpu)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else tb.frame({})


def cite(source: str) -> str:
    """Citation of one table id (``aiconfigurator/<gpu>/...``)."""
    path = source.split("/", 1)[1] if "/" in source else source
    return AICONFIGURATOR.cite(f"aic-core/src/aiconfigurator_core/systems/data/{path}.parquet")

