"""Loader for Splitwise's end-to-end table (``e2e/splitwise/perf_model.csv``),
Mutinifni/splitwise-sim@8f99e7dc ``data/perf_model.csv`` (MIT).

Llama-2-70B (TP 2/4/8) and BLOOM-176B (TP 8) served on DGX-A100 / DGX-H100: ``prompt_time`` (ms,
the prefill of ``batch_size`` prompts of ``prompt_size`` tokens = TTFT) and ``token_time`` (ms per
output token = TPOT) over ``token_size`` output tokens, about 5 repeats per configuration. The
power-capped ``h100-80gb-pcap`` rows run at lower clocks than the datasheet and are left out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

HARDWARE = {"a100-80gb": "a100-sxm-80gb", "h100-80gb": "h100-sxm"}
MODELS = {"llama2-70b": "llama-2-70b", "bloom-176b": "bloom-176b"}
PATH = Path("e2e") / "splitwise" / "perf_model.csv"


def load(root: Path) -> pd.DataFrame:
    """One row per configuration: model, hardware, tp, batch, prompt, output, the median measured
    ``ttft_s`` / ``tpot_s`` over repeats and the number of repeats ``runs``."""
    d = pd.read_csv(root / PATH)
    d = d[d["hardware"].isin(list(HARDWARE)) & d["model"].isin(list(MODELS))]
    g = d.groupby(["model", "hardware", "tensor_parallel", "batch_size", "prompt_size",
                   "token_size"], as_index=False).agg(
        ttft_ms=("prompt_time", "median"), tpot_ms=("token_time", "median"),
        runs=("prompt_time", "size"))
    return pd.DataFrame({
        "model": g["model"].map(MODELS), "hardware": g["hardware"].map(HARDWARE),
        "tp": g["tensor_parallel"].astype(int), "batch": g["batch_size"].astype(int),
        "prompt": g["prompt_size"].astype(int), "output": g["token_size"].astype(int),
        "ttft_s": g["ttft_ms"] * 1e-3, "tpot_s": g["tpot_ms"] * 1e-3,
        "runs": g["runs"].astype(int),
    })
