"""Loader for the AIConfigurator performance database (``kernels/aiconfigurator``).

Layout: ``<gpu>/<family>/<framework>/<version>/<table>.parquet``; ``latency`` is in ms
(PROVENANCE.md). Version folders are ordered as versions (``0.5.10`` after ``0.5.9``), newest
first; a folder holding only ``reuse.yaml`` (``reuse: [{table, from_version}]``) borrows that
table from ``from_version``, as AIConfigurator's SDK does. ``collection_meta.yaml`` marking a
table ``status: partial`` is logged and kept. Column meanings (from the collectors in
ai-dynamo/aiconfigurator@095f58a5 ``collector/``):

- ``gemm_perf``: ``m, n, k, gemm_dtype``; one ``[m,k] x [k,n]`` linear. TensorRT-LLM's
  quantized GEMMs map to weight / activation formats: ``int8_wo`` -> int8 weights, bf16
  activations (W8A16); ``int4_wo`` -> W4A16; ``sq`` (SmoothQuant) -> int8 / int8 (W8A8);
  ``fp8_block`` -> fp8 tagged ``op=fp8_block`` (block scales; not told apart by the model).
- ``context_attention_perf``: ``batch_size`` sequences of ``isl`` tokens (no cached prefix),
  ``num_heads``, ``num_key_value_heads`` (0 = MHA), ``head_dim``, ``window_size`` (0 = none).
- ``generation_attention_perf``: one query token per sequence over ``step`` cached tokens; we take
  ``context_len = step + 1`` (the new token's key is attended too).
- ``moe_perf``: ``num_tokens`` routed ``topk`` of ``num_experts``, one rank of
  ``moe_tp_size x moe_ep_size``; its experts are ``inter_size / moe_tp_size`` wide. Formats as
  for GEMMs (``w4a16_mxfp4`` -> fp4 weights, bf16 activations); ``distribution`` is kept.
- ``nccl_perf``: nccl-tests ``*_perf`` out-of-place time; ``message_size`` counts elements of
  ``nccl_dtype`` (half: 2 bytes, int8: 1) of the full tensor (collect_nccl.py divides the
  nccl-tests byte size by the element size).
- ``custom_allreduce_perf`` (``comm/<framework>/``): the engine's own all-reduce (vLLM's and
  SGLang's custom all-reduce, TensorRT-LLM's one-/two-shot kernels) of ``message_size`` bf16
  elements on 2/4/8 GPUs of one node; vLLM's CUDA-graph rows are kept (decode steps run in
  graphs), tagged ``op=custom``.

Every row carries ``framework`` and ``framework_version`` (the version folder read). The
loaders take the shared data root (``../shared/data``), AIConfigurator's ``systems/data`` folder
or one GPU folder in it (:func:`base_dir`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from llmsim.calibration import measurements as tb
from llmsim.calibration.sources import AICONFIGURATOR
from llmsim.costmodel.estimators.sources import version_key
from llmsim.errors import DataError

log = logging.getLogger(__name__)

GPU_TO_HARDWARE = {"a100_sxm": "a100-sxm-80gb", "h100_sxm": "h100-sxm"}
#: AIConfigurator system names of other parts, for user copies of the database
OTHER_GPUS = {"h200_sxm": "h200-sxm", "b200_sxm": "b200-sxm", "gb200_sxm": "gb200",
              "l40s": "l40s", "a100_pcie": "a100-pcie-80gb", "h100_pcie": "h100-pcie",
              "l4": "l4", "a30": "a30"}
FRAMEWORKS = ("vllm", "trtllm", "sglang")
_MS = 1e-3
# AIConfigurator format -> (weight dtype, activation dtype); None: the weight format's default
_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "fp8": "fp8",
          "fp8_block": "fp8", "int8": "int8"}
_QUANT = {"int8_wo": ("int8", "bf16"), "int4_wo": ("int4", "bf16"), "sq": ("int8", "int8"),
          "w4a16_mxfp4": ("fp4", "bf16")}


def base_dir(root: Path) -> tuple[Path, list[str] | None]:
    """The folder holding ``<gpu>/`` folders, and the GPUs to read (None: every GPU folder).

    ``root`` may be the shared data root (``kernels/aiconfigurator`` inside), AIConfigurator's
    ``systems/data`` folder, or one ``<gpu>`` folder of it."""
    root = Path(root)
    inside = root / "kernels" / "aiconfigurator"
    if inside.is_dir():
        return inside, None
    if not root.is_dir():
        raise DataError(f"{root}: no such AIConfigurator data folder")
    families = ("gemm", "attention", "moe", "comm")
    if any((root / f).is_dir() for f in families):
        return root.parent, [root.name]
    return root, None


def gpu_folders(root: Path) -> dict[str, str]:
    """``{gpu folder: catalog hardware}`` present under ``root`` (unknown parts skipped)."""
    base, only = base_dir(root)
    names = {**GPU_TO_HARDWARE, **OTHER_GPUS}
    out = {}
    for d in sorted(p.name for p in base.iterdir() if p.is_dir()):
        if only is not None and d not in only:
            continue
        if d in names:
            out[d] = names[d]
        else:
            log.warning("AIConfigurator folder %s: not a GPU llmsim knows; skipped", d)
    return out


def _reused(folder: Path, table: str) -> str | None:
    meta = folder / "reuse.yaml"
    if not meta.is_file():
        return None
    data = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
    for item in data.get("reuse") or []:
        if item.get("table") == table:
            return str(item.get("from_version"))
    return None


def _partial(folder: Path, table: str) -> bool:
    meta = folder / "collection_meta.yaml"
    if not meta.is_file():
        return False
    data = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
    return ((data.get("tables") or {}).get(table) or {}).get("status") == "partial"


def table_paths(root: Path, gpu: str, family: str, framework: str, table: str,
                version: str | None = None) -> list[Path]:
    """The ``<table>.parquet`` of each version folder of one gpu/family/framework, newest
    version first (``reuse.yaml`` followed to its ``from_version``); ``version`` picks one."""
    base = base_dir(root)[0] / gpu / family / framework
    if not base.is_dir():
        return []
    folders = sorted((p for p in base.iterdir() if p.is_dir()),
                     key=lambda p: version_key(p.name), reverse=True)
    if version is not None:
        folders = [p for p in folders if p.name == version]
    out: list[Path] = []
    for folder in folders:
        seen = {folder.name}
        cur = folder
        while not (cur / f"{table}.parquet").is_file():
            donor = _reused(cur, table)
            if donor is None or donor in seen:
                cur = None  # type: ignore[assignment]
                break
            seen.add(donor)
            cur = base / donor
        if cur is not None and (cur / f"{table}.parquet").is_file():
            path = cur / f"{table}.parquet"
            if path not in out:
                out.append(path)
            if _partial(cur, table):
                log.warning("%s: collection_meta.yaml marks %s partial", cur, table)
    return out


def _read(root: Path, gpu: str, family: str, framework: str, table: str,
          version: str | None = None) -> tuple[pd.DataFrame, str, str]:
    paths = table_paths(root, gpu, family, framework, table, version)
    if not paths:
        return pd.DataFrame(), "", ""
    path = paths[0]
    rel = path.relative_to(base_dir(root)[0]).with_suffix("")
    return pd.read_parquet(path), f"aiconfigurator/{rel.as_posix()}", path.parent.name


def _hardware(gpu: str) -> str:
    return {**GPU_TO_HARDWARE, **OTHER_GPUS}[gpu]


def _base(d: pd.DataFrame, gpu: str, kind: str, source: str, framework: str,
          version: str) -> dict[str, object]:
    return {"kind": kind, "hardware": _hardware(gpu), "source": source,
            "framework": framework, "framework_version": version,
            "measured_time_s": d["latency"].to_numpy(float) * _MS}


def _formats(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(dtype, act_dtype) of AIConfigurator format names; act_dtype NaN = the default."""
    names = col.astype(str)
    w = names.map(lambda x: _QUANT[x][0] if x in _QUANT else _DTYPE.get(x, np.nan))
    a = names.map(lambda x: _QUANT[x][1] if x in _QUANT else np.nan)
    unknown = sorted(set(names[w.isna()]))
    if unknown:
        log.warning("AIConfigurator formats %s have no llmsim mapping; their rows are "
                    "dropped", unknown)
    return w.to_numpy(object), a.to_numpy(object)


def load_gemm(root: Path, gpu: str, framework: str = "vllm",
              version: str | None = None) -> pd.DataFrame:
    """GEMMs (bf16, fp8, TensorRT-LLM's weight-only and SmoothQuant formats; block-scaled fp8
    is tagged ``op=fp8_block``)."""
    d, src, ver = _read(root, gpu, "gemm", framework, "gemm_perf", version)
    if d.empty:
        return tb.frame({})
    rows = _base(d, gpu, "gemm", src, framework, ver)
    w, a = _formats(d["gemm_dtype"])
    rows.update(dtype=w, act_dtype=a, m=d["m"].to_numpy(float),
                n=d["n"].to_numpy(float), k=d["k"].to_numpy(float),
                op=np.where(d["gemm_dtype"] == "fp8_block", "fp8_block",
                            d["kernel_source"].astype(str)))
    out = tb.frame(rows)
    return out[out["dtype"].notna()].reset_index(drop=True)


def _kv_heads(d: pd.DataFrame) -> np.ndarray:
    kv = d["num_key_value_heads"].to_numpy(float)
    return np.where(kv == 0, d["num_heads"].to_numpy(float), kv)


def _window(d: pd.DataFrame) -> np.ndarray:
    if "window_size" in d.columns:
        return d["window_size"].to_numpy(float)
    return np.zeros(len(d))


def load_attention(root: Path, gpu: str, framework: str = "vllm",
                   version: str | None = None) -> pd.DataFrame:
    """Context (prefill) and generation (decode) attention without sliding windows
    (``window_size`` rows are dropped: the count is logged)."""
    frames = []
    for table, kind in (("context_attention_perf", "attention-prefill"),
                        ("generation_attention_perf", "attention-decode")):
        d, src, ver = _read(root, gpu, "attention", framework, table, version)
        if d.empty:
            continue
        windowed = _window(d) != 0
        if windowed.any():
            log.info("%s: %d sliding-window rows skipped", src, int(windowed.sum()))
        d = d[~windowed]
        rows = _base(d, gpu, kind, src, framework, ver)
        rows.update(dtype="bf16", kv_dtype=d["kv_cache_dtype"].map(_DTYPE).to_numpy(),
                    batch=d["batch_size"].to_numpy(float),
                    num_heads=d["num_heads"].to_numpy(float), num_kv_heads=_kv_heads(d),
                    head_dim=d["head_dim"].to_numpy(float),
                    op=d["kernel_source"].astype(str).to_numpy())
        if kind == "attention-prefill":
            rows["seq_len"] = d["isl"].to_numpy(float)
        else:
            rows["context_len"] = d["step"].to_numpy(float) + 1.0
        frames.append(tb.frame(rows))
    return pd.concat(frames, ignore_index=True) if frames else tb.frame({})


def load_moe(root: Path, gpu: str, framework: str = "vllm",
             version: str | None = None) -> pd.DataFrame:
    """Fused-MoE expert kernels. ``op`` holds ``<dtype>/<distribution>`` (AIConfigurator's
    names) and ``distribution`` the routing; the expert width is folded to
    ``inter_size / moe_tp_size`` (what one rank computes)."""
    d, src, ver = _read(root, gpu, "moe", framework, "moe_perf", version)
    if d.empty:
        return tb.frame({})
    rows = _base(d, gpu, "moe", src, framework, ver)
    w, a = _formats(d["moe_dtype"])
    rows.update(dtype=w, act_dtype=a,
                num_tokens=d["num_tokens"].to_numpy(float),
                hidden_size=d["hidden_size"].to_numpy(float),
                intermediate_size=d["inter_size"].to_numpy(float) / d["moe_tp_size"].to_numpy(),
                num_experts=d["num_experts"].to_numpy(float), top_k=d["topk"].to_numpy(float),
                ep=d["moe_ep_size"].to_numpy(float),
                distribution=d["distribution"].astype(str).to_numpy(),
                op=(d["moe_dtype"].astype(str) + "/" + d["distribution"].astype(str)).to_numpy())
    out = tb.frame(rows)
    return out[out["dtype"].notna()].reset_index(drop=True)


_NCCL_KIND = {"all_reduce": "all-reduce", "all_gather": "all-gather",
              "reduce_scatter": "reduce-scatter", "alltoall": "all-to-all"}


def load_nccl(root: Path, gpu: str, version: str | None = None) -> pd.DataFrame:
    """NCCL collectives on one 8-GPU NVSwitch node (nccl-tests)."""
    paths = table_paths(root, gpu, "comm", "nccl", "nccl_perf", version)
    if not paths:
        return tb.frame({})
    d = pd.read_parquet(paths[0])
    src = "aiconfigurator/" + paths[0].relative_to(base_dir(root)[0]).with_suffix("").as_posix()
    elem = np.where(d["nccl_dtype"] == "int8", 1.0, 2.0)
    rows = _base(d, gpu, "", src, "nccl", paths[0].parent.name)
    rows.update(kind=d["op_name"].map(_NCCL_KIND).to_numpy(),
                dtype=d["nccl_dtype"].map(_DTYPE).to_numpy(),
                message_bytes=d["message_size"].to_numpy(float) * elem,
                num_gpus=d["num_gpus"].to_numpy(float), stride=1.0, op="nccl")
    return tb.frame(rows)


def load_custom_allreduce(root: Path, gpu: str) -> pd.DataFrame:
    """Each engine's own intra-node all-reduce (``comm/<framework>/custom_allreduce_perf``,
    newest version per framework), tagged ``op=custom``."""
    frames = []
    for fw in FRAMEWORKS:
        paths = table_paths(root, gpu, "comm", fw, "custom_allreduce_perf")
        if not paths:
            continue
        d = pd.read_parquet(paths[0])
        if "backend" in d.columns:
            graph = d["backend"].astype(str).str.contains("graph")
            d = d[graph] if graph.any() else d
        src = ("aiconfigurator/"
               + paths[0].relative_to(base_dir(root)[0]).with_suffix("").as_posix())
        rows = _base(d, gpu, "all-reduce", src, fw, paths[0].parent.name)
        rows.update(dtype="bf16", message_bytes=d["message_size"].to_numpy(float) * 2.0,
                    num_gpus=d["num_gpus"].to_numpy(float), stride=1.0, op="custom")
        frames.append(tb.frame(rows))
    return pd.concat(frames, ignore_index=True) if frames else tb.frame({})


def load_all(root: Path, framework: str = "vllm", version: str | None = None) -> pd.DataFrame:
    """Every table we use (GEMM, attention, MoE of ``framework``, NCCL) for every GPU folder
    present."""
    frames = []
    for gpu in gpu_folders(root):
        frames += [load_gemm(root, gpu, framework, version),
                   load_attention(root, gpu, framework, version),
                   load_moe(root, gpu, framework, version), load_nccl(root, gpu)]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else tb.frame({})


def cite(source: str) -> str:
    """Citation of one table id (``aiconfigurator/<gpu>/...``)."""
    path = source.split("/", 1)[1] if "/" in source else source
    return AICONFIGURATOR.cite(f"aic-core/src/aiconfigurator_core/systems/data/{path}.parquet")
