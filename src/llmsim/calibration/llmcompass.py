"""Loader for LLMCompass's real-hardware kernel measurements (``kernels/llmcompass``),
PrincetonUniversity/LLMCompass@2e015fd2 ``ae/figure5/*/real_hardware`` (BSD-3-Clause).

A100, fp16, PyTorch 2.0 (headerless CSVs; column meanings from the artifact's plotting scripts):

- ``matmul_A100.csv``: ``M, N, K, "<latency>ms", "<throughput>Tflops"``;
- ``softmax_A100.csv`` / ``layernorm_A100.csv``: ``M, N, G elements/s`` over an ``M x N`` tensor
  (read and write every element once);
- ``gelu_A100.csv``: ``elements, G elements/s``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmsim.calibration import measurements as tb

_BASE = Path("kernels") / "llmcompass" / "ae" / "figure5"
_FP16 = 2.0


def load_all(root: Path) -> pd.DataFrame:
    frames = []
    mm = root / _BASE / "ab" / "real_hardware" / "matmul_A100.csv"
    if mm.is_file():
        d = pd.read_csv(mm, header=None, names=["m", "n", "k", "latency", "tflops"],
                        skipinitialspace=True)
        ms = d["latency"].astype(str).str.replace("ms", "", regex=False).astype(float)
        frames.append(tb.frame({"kind": "gemm", "hardware": "a100-sxm-80gb", "dtype": "fp16",
                                "op": "torch.matmul", "source": "llmcompass/matmul_A100",
                                "m": d["m"].astype(float), "n": d["n"].astype(float),
                                "k": d["k"].astype(float), "measured_time_s": ms * 1e-3}))
    for sub, name in (("cf", "softmax"), ("de", "layernorm")):
        path = root / _BASE / sub / "real_hardware" / f"{name}_A100.csv"
        if path.is_file():
            d = pd.read_csv(path, header=None, names=["m", "n", "gelem_per_s"],
                            skipinitialspace=True)
            elems = d["m"].astype(float) * d["n"].astype(float)
            frames.append(_elementwise(elems, d["gelem_per_s"], name))
    gelu = root / _BASE / "g" / "real_hardware" / "gelu_A100.csv"
    if gelu.is_file():
        d = pd.read_csv(gelu, header=None, names=["elems", "gelem_per_s"], skipinitialspace=True)
        frames.append(_elementwise(d["elems"].astype(float), d["gelem_per_s"], "gelu"))
    return pd.concat(frames, ignore_index=True) if frames else tb.frame({})


def _elementwise(elems: pd.Series, gelem_per_s: pd.Series, name: str) -> pd.DataFrame:
    return tb.frame({"kind": "elementwise", "hardware": "a100-sxm-80gb", "dtype": "fp16",
                     "op": name, "source": f"llmcompass/{name}_A100",
                     "bytes_read": elems * _FP16, "bytes_written": elems * _FP16,
                     "measured_time_s": elems / (gelem_per_s.astype(float) * 1e9)})
