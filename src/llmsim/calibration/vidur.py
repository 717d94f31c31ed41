"""Loader for Vidur's profiling data (``kernels/vidur``), microsoft/vidur@7d475133 (MIT).

- ``profiling/compute/<gpu>/<org>/<model>/mlp.csv``: one transformer layer's non-attention ops on
  one GPU with TP sharding emulated (``num_tensor_parallel_workers``), ``time_stats.<op>.median``
  in ms, fp16 (sarathi-serve's default). GEMMs: ``attn_pre_proj`` (QKV), ``attn_post_proj``
  (O), ``mlp_up_proj`` (gate+up when gated), ``mlp_down_proj``. Memory-bound ops:
  ``input_layernorm`` / ``post_attention_layernorm`` (read T*h, write T*h), ``attn_rope``
  (read and write Q and K), ``mlp_act`` (SiLU-and-mul reads 2*T*I/tp, writes T*I/tp),
  ``add`` (read 2*T*h, write T*h), ``emb`` (gather T rows of h).
- ``profiling/network/<setup>/{all_reduce,send_recv}.csv``: NCCL kernel times (ms, Kineto) vs
  ``size``, ``num_workers`` ranks with ``devices_per_node`` per node. ``size`` is in BYTES of the
  full fp16 tensor: vidur/profiling/collectives/collectives_wrapper.py records
  ``"size": self._size * 2  # bytes`` for a buffer of ``self._size`` fp16 elements (the
  PROVENANCE note calling it an element count is contradicted by that line and by the implied
  bus bandwidth, which would exceed NVLink's 300 GB/s on A100 if it were elements).
- ``data_history/e2d00e9a/data/profiling/a100/attention.csv``: FlashAttention prefill / decode
  for 64 query / 8 KV heads of 128 (Llama-2-70B) at TP 2 on A100 (ms).

Rows carry ``framework = "vidur"`` (sarathi-serve's kernels as Vidur profiles them). The loaders
take the shared data root (``kernels/vidur`` inside) or a Vidur checkout's ``data/`` folder
(:func:`base_dir`); Vidur's HEAD layout for attention (``compute/<gpu>/<org>/<model>/
attention.csv``) is not read (its blobs are not in our copy to test against).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from llmsim.calibration import measurements as tb
from llmsim.errors import DataError

log = logging.getLogger(__name__)

GPU_TO_HARDWARE = {"a100": "a100-sxm-80gb", "h100": "h100-sxm", "a40": "a40"}
# Only the DGX setups map onto a catalog cluster; the ``*_pairwise_nvlink`` setups (GPUs joined
# in NVLink pairs) have no catalog counterpart and are not used.
NETWORK_SETUPS = {"a100_dgx": ("a100-sxm-80gb", "dgx-a100"), "h100_dgx": ("h100-sxm", "dgx-h100")}
_MS = 1e-3
_ACT_BYTES = 2.0  # fp16
GEMM_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
ELEMENTWISE_OPS = ("input_layernorm", "post_attention_layernorm", "attn_rope", "mlp_act", "add",
                   "emb")


FRAMEWORK, VERSION = "vidur", "7d475133"


def base_dir(root: Path) -> Path:
    """The folder holding ``profiling/``: ``<root>/kernels/vidur`` (the shared data root), a
    Vidur ``data/`` folder, or the ``profiling`` folder itself (its parent)."""
    root = Path(root)
    for cand in (root / "kernels" / "vidur", root, root / "data"):
        if (cand / "profiling").is_dir():
            return cand
    if root.name == "profiling" and root.is_dir():
        return root.parent
    raise DataError(f"{root}: no Vidur profiling data (expected {root}/profiling/compute/...)")


def _median_ms(d: pd.DataFrame, op: str) -> np.ndarray:
    return d[f"time_stats.{op}.median"].to_numpy(float) * _MS


def _mlp_rows(d: pd.DataFrame, hardware: str, source: str) -> list[pd.DataFrame]:
    t = d["num_tokens"].to_numpy(float)
    tp = d["num_tensor_parallel_workers"].to_numpy(float)
    h = d["n_embd"].to_numpy(float)
    heads = d["n_head"].to_numpy(float)
    kv = d["n_kv_head"].to_numpy(float)
    inter = d["n_expanded_embd"].to_numpy(float)
    gated = d["use_gated_mlp"].astype(bool).to_numpy()
    hd = h / heads
    gemms = {
        "attn_pre_proj": (h, (heads + 2 * kv) * hd / tp),
        "attn_post_proj": (heads * hd / tp, h),
        "mlp_up_proj": (h, inter * np.where(gated, 2, 1) / tp),
        "mlp_down_proj": (inter / tp, h),
    }
    out = []
    base = {"hardware": hardware, "source": source, "dtype": "fp16", "framework": FRAMEWORK,
            "framework_version": VERSION}
    for op, (k, n) in gemms.items():
        out.append(tb.frame(dict(base, kind="gemm", op=op, m=t, n=n, k=k,
                                 measured_time_s=_median_ms(d, op))))
    hb = t * h * _ACT_BYTES
    qk = t * (heads + kv) / tp * hd * _ACT_BYTES
    act_out = t * inter / tp * _ACT_BYTES
    elem = {
        "input_layernorm": (hb, hb),
        "post_attention_layernorm": (hb, hb),
        "attn_rope": (qk, qk),
        "mlp_act": (act_out * np.where(gated, 2, 1), act_out),
        "add": (2 * hb, hb),
        "emb": (hb, hb),
    }
    for op, (rd, wr) in elem.items():
        col = f"time_stats.{op}.median"
        if col not in d.columns:
            continue
        out.append(tb.frame(dict(base, kind="elementwise", op=op, bytes_read=rd, bytes_written=wr,
                                 measured_time_s=_median_ms(d, op))))
    return out


def load_compute(root: Path, gpus: tuple[str, ...] = tuple(GPU_TO_HARDWARE)) -> pd.DataFrame:
    """GEMM and elementwise rows from every ``mlp.csv`` (phi-2's partial rotary and parallel
    block do not follow the layout above: its elementwise rows are skipped, its GEMMs kept)."""
    frames: list[pd.DataFrame] = []
    base = base_dir(root) / "profiling" / "compute"
    if base.is_dir():
        for d in sorted(p.name for p in base.iterdir() if p.is_dir()):
            if d not in GPU_TO_HARDWARE:
                log.warning("Vidur compute folder %s: not a GPU llmsim maps; skipped", d)
    for gpu in gpus:
        for path in sorted((base / gpu).glob("*/*/mlp.csv")):
            d = pd.read_csv(path)
            model = path.parent.relative_to(base / gpu).as_posix()
            src = f"vidur/compute/{gpu}/{model}/mlp"
            rows = _mlp_rows(d, GPU_TO_HARDWARE[gpu], src)
            if "phi-2" in model:
                rows = [r for r in rows if (r["kind"] == "gemm").all()]
            frames += rows
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else tb.frame({})


def load_network(root: Path) -> pd.DataFrame:
    """NCCL all-reduce and send/recv; ``stride`` places ``devices_per_node`` ranks per node."""
    frames = []
    base = base_dir(root) / "profiling" / "network"
    for setup, (hardware, cluster) in NETWORK_SETUPS.items():
        for name, kind in (("all_reduce", "all-reduce"), ("send_recv", "p2p")):
            path = base / setup / f"{name}.csv"
            if not path.is_file():
                continue
            d = pd.read_csv(path)
            per_node = d["devices_per_node"].to_numpy(float)
            gpn = d["max_devices_per_node"].to_numpy(float)
            frames.append(tb.frame({
                "kind": kind, "hardware": hardware, "source": f"vidur/network/{setup}/{name}",
                "op": "nccl", "dtype": "fp16", "cluster": cluster, "framework": FRAMEWORK,
                "framework_version": VERSION,
                "message_bytes": d["size"].to_numpy(float),
                "num_gpus": d["num_workers"].to_numpy(float),
                "stride": np.maximum(1.0, gpn // np.maximum(per_node, 1.0)),
                "measured_time_s": _median_ms(d, name),
            }))
    return pd.concat(frames, ignore_index=True) if frames else tb.frame({})


def load_attention(root: Path) -> pd.DataFrame:
    """A100 FlashAttention: prefill rows without a cached prefix and every decode row."""
    path = base_dir(root) / "data_history" / "e2d00e9a" / "data" / "profiling" / "a100" / \
        "attention.csv"
    if not path.is_file():
        return tb.frame({})
    d = pd.read_csv(path)
    tp = d["num_tensor_parallel_workers"].to_numpy(float)
    heads = d["n_q_head"].to_numpy(float) / tp
    kv = np.maximum(1.0, d["n_kv_head"].to_numpy(float) / tp)
    hd = d["n_embd"].to_numpy(float) / d["n_q_head"].to_numpy(float)
    src = "vidur/history/e2d00e9a/a100/attention"
    base = {"hardware": "a100-sxm-80gb", "source": src, "dtype": "fp16", "kv_dtype": "fp16",
            "op": "flash_attention", "framework": FRAMEWORK, "framework_version": "e2d00e9a",
            "num_heads": heads, "num_kv_heads": kv, "head_dim": hd}
    pre = d["is_prefill"].astype(bool).to_numpy() & (d["kv_cache_size"].to_numpy() == 0)
    dec = ~d["is_prefill"].astype(bool).to_numpy()
    prefill = tb.frame(dict(
        {k: (v[pre] if isinstance(v, np.ndarray) else v) for k, v in base.items()},
        kind="attention-prefill", batch=d["batch_size"].to_numpy(float)[pre],
        seq_len=d["prefill_chunk_size"].to_numpy(float)[pre],
        measured_time_s=_median_ms(d, "attn_prefill")[pre]))
    decode = tb.frame(dict(
        {k: (v[dec] if isinstance(v, np.ndarray) else v) for k, v in base.items()},
        kind="attention-decode", batch=d["batch_size"].to_numpy(float)[dec],
        context_len=d["kv_cache_size"].to_numpy(float)[dec] + 1.0,
        measured_time_s=_median_ms(d, "attn_decode")[dec]))
    out = pd.concat([prefill, decode], ignore_index=True)
    return out[np.isfinite(out["measured_time_s"]) & (out["measured_time_s"] > 0)]
