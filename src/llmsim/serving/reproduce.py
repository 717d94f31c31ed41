"""Reproduce a measured serving benchmark row as its benchmark ran it (``scripts/
fit_engine_profile.py`` and ``benchmarks/serving_accuracy.py`` use it).

A row of ``../shared/data/e2e/aiconfigurator_silicon/silicon_h100_sxm.csv`` (``mode=agg``)
is one aiperf run (that folder's PROVENANCE.md): a closed loop of ``c`` clients
(``batch_size``), ``20c`` measured requests after ``2c`` warm-up requests, fixed ISL / OSL,
on one engine deployment with the generator's limits:

* TensorRT-LLM: ``max_num_tokens = c + isl + 1500``, ``max_batch_size = c``, no chunking;
* vLLM: ``max_num_batched_tokens = c + isl + 1500``, ``max_num_seqs = c`` (``>= c``: with
  ``c`` clients more slots are never used);
* SGLang: ``max_prefill_tokens = isl + 1500``. PROVENANCE.md reads the generator as turning
  mixed chunks on, but the measurements say otherwise: rerun with SGLang's default (no mixed
  chunk: decodes wait while a prefill runs) the mean TPOT of the SGLang rows is within a few
  per cent with kernels alone, with mixing it is 15-40% too high and the TTFT several times
  too low (``python benchmarks/serving_accuracy.py --sglang-mixed`` shows it), so the reruns
  keep the default.

Precision: a ``gemm_quant_mode`` of ``fp8`` / ``fp8_block`` runs fp8 weights and GEMM
activations; ``nvfp4`` (gpt-oss-120b on vLLM: its own MXFP4 expert checkpoint, which Hopper
runs as 4-bit weights dequantised into bf16 math; H100 has no fp4 tensor cores) runs fp4 weights
with bf16 activations; blank: the checkpoint's bf16. KV cache: fp8 for TensorRT-LLM with per-tensor
``fp8`` GEMMs, bf16 otherwise. TensorRT-LLM's generator config leaves ``kv_cache_dtype: auto``,
which takes the checkpoint's KV quantisation: per-tensor fp8 checkpoints (ModelOpt) carry an
fp8 KV cache, block-fp8 ones (Qwen's own ``-FP8``) do not. The measurements need it: Qwen3-32B
fp8 on one H100 at ``c = 64``, 4096 / 256 tokens has a TPOT (102 ms) only 64 running
sequences explain, 278k tokens of KV; in bf16 (256 KiB a token) they need 73 GB beside 34 GB
of weights; rerun with a bf16 KV cache llmsim holds 35 of them and over-predicts the TTFT
5.7-fold. vLLM's ``auto`` is the model's dtype (bf16): its KV-bound rows (Llama-3.1-70B fp8,
tp 2, 8192 / 1024) plateau at the ~29 running sequences a bf16 cache holds.

Rows llmsim cannot reproduce are skipped with the reason (:func:`row_config` raises
:class:`Unsupported`): a model missing from the catalog, attention data parallelism (the
MiniMax-M2.5 rows at ``attention_dp_size`` 4: one engine of four attention replicas is not what
``simulate`` runs).

Rows that contradict their own deployment are set aside by a stated rule
(:func:`inconsistent_rows`) before a fit, and reported apart by the accuracy benchmark.
"""

from __future__ import annotations

import math
from typing import Any

#: the measured corpus' model ids -> llmsim catalog names
MODELS = {
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
    "Qwen/Qwen3-32B": "qwen3-32b",
    "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b",
    "deepseek-ai/DeepSeek-V3": "deepseek-v3",
    "openai/gpt-oss-120b": "gpt-oss-120b",
    "MiniMaxAI/MiniMax-M2.5": "minimax-m2.5",
}
HARDWARE = {"h100_sxm": "h100-sxm", "h200_sxm": "h200-sxm", "b200_sxm": "b200-sxm",
            "a100_sxm": "a100-sxm-80gb", "gb200": "gb200", "l40s": "l40s"}
FP8_MODES = ("fp8", "fp8_block")
FP4_MODES = ("nvfp4",)


class Unsupported(ValueError):
    """A measured row llmsim cannot reproduce (the message says why)."""


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def row_limits(engine: str, c: int, isl: int, sglang_mixed: bool = False) -> dict[str, Any]:
    """The scheduler limits the generator gave an aggregated deployment (module doc)."""
    if engine == "trtllm":
        return {"max_num_batched_tokens": c + isl + 1500, "max_num_seqs": c}
    if engine == "vllm":
        return {"max_num_batched_tokens": c + isl + 1500, "max_num_seqs": max(c, 1)}
    if engine == "sglang":
        return {"max_num_batched_tokens": isl + 1500, "mix_decodes": sglang_mixed,
                "max_num_seqs": max(c, 1)}
    raise Unsupported(f"engine {engine!r}")


def _text(value: Any) -> str | None:
    """A CSV cell as text; None where pandas read a blank cell (NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else str(value)


def row_version(row: dict[str, Any]) -> str | None:
    """The engine release that ran ``row`` (None where the data leaves it blank)."""
    return _text(row.get("backend_version"))


def row_config(row: dict[str, Any], engine_overrides: dict[str, Any] | None = None,
               requests_per_client: int = 20, warmup_per_client: int = 2,
               with_version: bool = True, sglang_mixed: bool = False) -> dict[str, Any]:
    """The simulation config (a dict) that reruns one measured ``mode=agg`` row."""
    if row.get("mode") != "agg":
        raise Unsupported(f"mode {row.get('mode')!r} (aggregated rows only)")
    model = MODELS.get(str(row["model_path"]))
    if model is None:
        raise Unsupported(f"model {row['model_path']} is not in the catalog")
    hw = HARDWARE.get(str(row["system"]))
    if hw is None:
        raise Unsupported(f"system {row['system']}")
    gemm = _text(row.get("gemm_quant_mode"))
    if gemm not in (None, *FP8_MODES, *FP4_MODES):
        raise Unsupported(f"GEMM quantisation {gemm}")
    adp = _num(row.get("attention_dp_size")) or 1
    if adp > 1:
        raise Unsupported(f"attention data parallelism {int(adp)}")
    tp = int(_num(row.get("tp_size")) or 1)
    pp = int(_num(row.get("pp_size")) or 1)
    ep = int(_num(row.get("moe_ep_size")) or 1)
    c = int(_num(row["batch_size"]) or 1)
    isl, osl = int(row["isl"]), int(row["osl"])
    engine = str(row["backend"])
    version = row_version(row)
    name = f"{engine}@{version}" if (with_version and version) else engine
    model_sec: dict[str, Any] = {"name": model}
    if gemm in FP8_MODES:
        kv = "fp8" if (engine == "trtllm" and gemm == "fp8") else "bf16"
        model_sec.update(weight_dtype="fp8", act_dtype="fp8", kv_dtype=kv)
    elif gemm in FP4_MODES:
        model_sec.update(weight_dtype="fp4", act_dtype="bf16", kv_dtype="bf16")
    return {
        "model": model_sec,
        "hardware": {"name": hw},
        "parallelism": {"tp": tp, "pp": pp, "ep": ep},
        "engine": {"name": name, **(engine_overrides or {})},
        "scheduler": row_limits(engine, c, isl, sglang_mixed),
        "workload": {"concurrency": c, "num_requests": (requests_per_client
                                                        + warmup_per_client) * c,
                     "warmup_requests": warmup_per_client * c,
                     "prompt": f"fixed:{isl}", "output": f"fixed:{osl}", "seed": 0},
    }


def measured(row: dict[str, Any]) -> tuple[float, float]:
    """The row's measured (mean TTFT, mean TPOT) in seconds."""
    return float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3


def load_rows(path: str) -> list[dict[str, Any]]:
    """The ``mode=agg`` rows of a silicon CSV, as dicts (in file order)."""
    import pandas as pd

    frame = pd.read_csv(path)
    return [r for r in frame.to_dict("records") if r.get("mode") == "agg"]


def base_step_model(cfg: dict[str, Any]) -> Any:
    """The kernel-level step model of a row's deployment (shared by its reruns)."""
    from llmsim.costmodel import build_step_model
    from llmsim.serving.config import deployment_of, load_config

    return build_step_model(deployment_of(load_config(cfg)))


def run_row(cfg: dict[str, Any], step_model: Any = None) -> tuple[float, float]:
    """Simulate a row's config; its (mean TTFT, mean TPOT) in seconds, warm-up excluded."""
    from llmsim.serving.run import simulate

    s = simulate(cfg, step_model=step_model).summary()
    return float(s["ttft_s"]["mean"]), float(s["tpot_s"]["mean"])


#: the consistency rule's margins (:func:`inconsistent_rows`)
OCCUPANCY_RATIO = 4.0
TPOT_RATIO = 0.8
#: the columns that name one deployment (a row's concurrency and version left out)
DEPLOYMENT_KEYS = ("backend", "model_path", "system", "precision", "gemm_quant_mode",
                   "moe_quant_mode", "tp_size", "pp_size", "attention_dp_size",
                   "moe_tp_size", "moe_ep_size", "isl", "osl")


def decode_occupancy(row: dict[str, Any]) -> float:
    """The mean number of a closed loop's requests that are decoding, by Little's law.

    ``n = c D / (TTFT + D)`` with ``D = (osl - 1) TPOT``: each of the ``c`` clients always has
    a request in flight, which spends ``D`` of its ``TTFT + D`` decoding.
    """
    ttft_s, tpot_s = measured(row)
    decode_s = (int(row["osl"]) - 1) * tpot_s
    return float(row["batch_size"]) * decode_s / (ttft_s + decode_s)


def inconsistent_rows(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Rows whose TPOT contradicts their own deployment: ``{row id: why}``.

    The rule: a decode step does not get faster when it holds more sequences, so row A is
    set aside when a row B of the same deployment (:data:`DEPLOYMENT_KEYS`: engine, model,
    precision, parallel plan, ISL / OSL; any version) decodes at most a quarter of A's
    :func:`decode_occupancy` (``OCCUPANCY_RATIO``) yet measures a TPOT above A's by more than
    ``1 / TPOT_RATIO``. On the H100 corpus it takes out the nine vLLM gpt-oss-120b rows at
    ``c = 512`` (vLLM 0.11.2 or no version): their TTFTs (20-460 s) leave about 100 requests
    decoding in every one of them, whatever the plan or lengths, at a TPOT below the one the
    same deployment measures with 16 decoding; nothing in PROVENANCE.md explains it (a
    client-side cap of about 100 open requests would explain the TTFTs, not the TPOTs).
    """
    groups: dict[tuple, list] = {}
    for r in rows:
        key = tuple(str(r.get(k)) for k in DEPLOYMENT_KEYS)
        groups.setdefault(key, []).append(r)
    out: dict[str, str] = {}
    for group in groups.values():
        occ = [(decode_occupancy(r), measured(r)[1], r) for r in group]
        for n_a, tpot_a, a in occ:
            for n_b, tpot_b, b in occ:
                if n_b * OCCUPANCY_RATIO <= n_a and tpot_a < TPOT_RATIO * tpot_b:
                    out[str(a["id"])] = (
                        f"TPOT {tpot_a * 1e3:.2f} ms with {n_a:.0f} requests decoding, "
                        f"below the {tpot_b * 1e3:.2f} ms of the same deployment with "
                        f"{n_b:.0f} ({b['id']})")
                    break
    return out


def concurrency_bucket(c: int) -> str:
    """The concurrency buckets of the accuracy tables."""
    return "c<=8" if c <= 8 else "c16-64" if c <= 64 else "c>=128"
