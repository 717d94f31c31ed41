"""Build the kernel table the ``table`` estimator ships (src/llmsim/data/estimators/).

    python scripts/build_kernel_table.py [--data ../shared/data] [--out PATH]

From the measured data in ``../shared/data`` (nothing is downloaded), through llmsim's own
importers (``llmsim.calibration.importers``), in the op-timing schema (docs/calibration.md):

- AIConfigurator tables of vLLM (A100-SXM 0.14.0, H100-SXM 0.24.0), TensorRT-LLM (1.0.0,
  1.3.0rc20) and SGLang (A100 0.5.10), the newest version of each: GEMMs (bf16, per-tensor
  fp8, TensorRT-LLM's W8A16 / W4A16 / W8A8; block-scaled fp8 left out), context / generation
  attention (bf16 and fp8 KV caches, no sliding window), fused MoE (one routing distribution
  per part and framework: balanced where measured, else power_law_1.01; block-scaled fp8 left
  out);
- Vidur (sarathi-serve, fp16): per-layer GEMMs of A100, H100 and A40 (the A40's only GEMM
  data), the residual ``add`` kernels (the one single-kernel elementwise op) and A100
  FlashAttention.

The estimator picks one framework per part and op kind: the one asked for
(``?framework=``), else vLLM, else the one with most rows.

Attribution: src/llmsim/data/estimators/ATTRIBUTION.md. The file is deterministic (rows sorted).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from llmsim.calibration import aiconfigurator as aic
from llmsim.calibration import vidur
from llmsim.calibration.sources import data_root
from llmsim.costmodel.estimators.sources import BUILTIN_TABLE

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "llmsim" / "data" / "estimators" / BUILTIN_TABLE
COLUMNS = ("kind", "hardware", "dtype", "act_dtype", "kv_dtype", "m", "n", "k", "batch",
           "seq_len", "context_len", "num_heads", "num_kv_heads", "head_dim", "num_tokens",
           "hidden_size", "intermediate_size", "num_experts", "top_k", "ep", "bytes_read",
           "bytes_written", "measured_time_s", "framework", "framework_version",
           "distribution", "source")
_STRINGS = ("kind", "hardware", "dtype", "act_dtype", "kv_dtype", "framework",
            "framework_version", "distribution", "source")


def _aic(root: Path) -> list[pd.DataFrame]:
    frames = []
    for gpu in aic.GPU_TO_HARDWARE:
        for fw in aic.FRAMEWORKS:
            g = aic.load_gemm(root, gpu, fw)
            frames.append(g[g["op"] != "fp8_block"])
            frames.append(aic.load_attention(root, gpu, fw))
            m = aic.load_moe(root, gpu, fw)
            if len(m) == 0:
                continue
            m = m[~m["op"].astype(str).str.startswith("fp8_block")]
            dist = "balanced" if (m["distribution"] == "balanced").any() else "power_law_1.01"
            frames.append(m[m["distribution"] == dist])
    return frames


def _vidur(root: Path) -> list[pd.DataFrame]:
    c = vidur.load_compute(root)
    gemm = c[c["kind"] == "gemm"]
    add = c[(c["kind"] == "elementwise") & (c["op"] == "add")]
    return [gemm, add, vidur.load_attention(root)]


def build(root: Path) -> pd.DataFrame:
    rows = pd.concat(_aic(root) + _vidur(root), ignore_index=True)
    out = pd.DataFrame({c: rows[c] for c in COLUMNS})
    for c in COLUMNS:
        if c in _STRINGS:
            out[c] = out[c].astype(object).where(out[c].notna(), None)
        else:
            out[c] = pd.to_numeric(out[c], errors="coerce")
    keys = ["hardware", "kind", "framework", "dtype", "kv_dtype", "m", "n", "k", "batch",
            "seq_len", "context_len", "num_heads", "num_kv_heads", "head_dim", "num_tokens",
            "hidden_size", "intermediate_size", "num_experts", "top_k", "ep", "bytes_read",
            "measured_time_s"]
    out = out.sort_values(keys, kind="mergesort", na_position="first").reset_index(drop=True)
    # keep only columns some row uses
    return out[[c for c in COLUMNS if out[c].notna().any()]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="measured data folder (default ../shared/data)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    table = build(data_root(args.data))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for c in _STRINGS:  # dictionary-encoded: small and fast to read
        if c in table.columns:
            table[c] = table[c].astype("category")
    # rows sorted by hardware in row groups of 20k: a read for one part skips the others
    table.to_parquet(out, index=False, compression="zstd", compression_level=19,
                     row_group_size=20_000)
    size = out.stat().st_size
    print(f"{out}: {len(table)} rows, {size / 1e6:.2f} MB")
    print(table.groupby(["hardware", "kind", "framework"]).size().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
