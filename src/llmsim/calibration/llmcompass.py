"""Loader for LLMCompass's real-hardware kernel measurements (``kernels/llmcompass``),
PrincetonUniversity/LLMCompass@2e015fd2 ``ae/figure5/*/real_hardware`` (BSD-3-Clause).

A100, fp16, PyTorch 2.0 (headerless CSVs; column meanings from the artifact's plotting scripts):

- ``matmul_A100.csv``: ``M, N, K, "<latency>ms", "<throughput>Tflops"``;
- ``softmax_A100.csv`` / ``layernorm_A100.csv``: ``M, N, G elements/s`` over an ``M x N`` tensor
  (read and write every element once);
- ``gelu_A100.csv``: ``elements, G elements/s``.

``matmul_<GPU>.csv`` files of other parts (the artifact has ``matmul_MI210.csv``) are read for
parts in the catalog and skipped, with a logged count, otherwise (the MI210 is not in it). Rows
carry ``framework = "pytorch"``, ``framework_version = "2.0"``; the timings include PyTorch's
launch overhead. The loader takes the shared data root, an LLMCompass checkout or its
``ae/figure5`` folder (:func:`base_dir`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from llmsim.calibration import measurements as tb
from llmsim.errors import DataError, UnknownNameError

log = logging.getLogger(__name__)

_BASE = Path("ae") / "figure5"
_FP16 = 2.0
#: LLMCompass file-name parts -> catalog hardware (others are looked up in the catalog)
GPUS = {"A100": "a100-sxm-80gb"}
_STACK = {"framework": "pytorch", "framework_version": "2.0"}


def base_dir(root: Path) -> Path:
    """The ``ae/figure5`` folder under the shared root, an LLMCompass checkout, or itself."""
    root = Path(root)
    for cand in (root / "kernels" / "llmcompass" / _BASE, root / _BASE, root):
        if (cand / "ab").is_dir():
            return cand
    raise DataError(f"{root}: no LLMCompass real-hardware data (expected ae/figure5/ab/...)")


def _matmul(path: Path) -> pd.DataFrame | None:
    gpu = path.stem.split("_", 1)[1]
    try:
        from llmsim.catalog import get_hardware
        hardware = GPUS.get(gpu) or get_hardware(gpu).name
    except UnknownNameError:
        log.warning("%s: %s is not in the hardware catalog; its rows are skipped", path.name,
                    gpu)
        return None
    d = pd.read_csv(path, header=None, names=["m", "n", "k", "latency", "tflops"],
                    skipinitialspace=True)
    ms = d["latency"].astype(str).str.replace("ms", "", regex=False).astype(float)
    return tb.frame({"kind": "gemm", "hardware": hardware, "dtype": "fp16",
                     "op": "torch.matmul", "source": f"llmcompass/matmul_{gpu}", **_STACK,
                     "m": d["m"].astype(float), "n": d["n"].astype(float),
                     "k": d["k"].astype(float), "measured_time_s": ms * 1e-3})


def load_all(root: Path) -> pd.DataFrame:
    frames = []
    try:
        base = base_dir(root)
    except DataError:
        return tb.frame({})
    for mm in sorted((base / "ab" / "real_hardware").glob("matmul_*.csv")):
        f = _matmul(mm)
        if f is not None:
            frames.append(f)
    for sub, name in (("cf", "softmax"), ("de", "layernorm")):
        path = base / sub / "real_hardware" / f"{name}_A100.csv"
        if path.is_file():
            d = pd.read_csv(path, header=None, names=["m", "n", "gelem_per_s"],
                            skipinitialspace=True)
            elems = d["m"].astype(float) * d["n"].astype(float)
            frames.append(_elementwise(elems, d["gelem_per_s"], name))
    gelu = base / "g" / "real_hardware" / "gelu_A100.csv"
    if gelu.is_file():
        d = pd.read_csv(gelu, header=None, names=["elems", "gelem_per_s"], skipinitialspace=True)
        frames.append(_elementwise(d["elems"].astype(float), d["gelem_per_s"], "gelu"))
    return pd.concat(frames, ignore_index=True) if frames else tb.frame({})


def _elementwise(elems: pd.Series, gelem_per_s: pd.Series, name: str) -> pd.DataFrame:
    return tb.frame({"kind": "elementwise", "hardware": "a100-sxm-80gb", "dtype": "fp16",
                     "op": name, **_STACK, "source": f"llmcompass/{name}_A100",
                     "bytes_read": elems * _FP16, "bytes_written": elems * _FP16,
                     "measured_time_s": elems / (gelem_per_s.astype(float) * 1e9)})
