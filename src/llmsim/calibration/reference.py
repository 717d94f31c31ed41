"""The measured data sets used to fit the default profile and to check it, and what each is for.

Each :class:`DataSet` is a slice of the normalized measurement table for one hardware and one
profile family, with a role:

- ``fit``: the profile's parameters for that hardware and family are fitted on these rows, so
  errors on them are IN-SAMPLE;
- ``held-out``: never used by any fit; errors on them are out-of-sample (another software stack,
  another dtype, another data source, or rows the model is known not to describe — each set
  says why in ``note``).

Primary fit source: AIConfigurator's vLLM tables (the simulated engine is vLLM-like); the NCCL
tables (nccl-tests) for collectives; Vidur where AIConfigurator has nothing (A40, elementwise
kernels, multi-node collectives).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from llmsim.calibration import aiconfigurator as aic
from llmsim.calibration import llmcompass, vidur
from llmsim.calibration import predict as pr

FIT, HELD_OUT = "fit", "held-out"


@dataclass(frozen=True)
class DataSet:
    name: str
    hardware: str
    family: str
    role: str
    note: str
    rows: pd.DataFrame

    @property
    def sources(self) -> list[str]:
        return sorted(set(self.rows["source"].astype(str)))


def _aic_sets(root: Path, gpu: str) -> list[DataSet]:
    hw = aic.GPU_TO_HARDWARE[gpu]
    sets: list[DataSet] = []
    g = aic.load_gemm(root, gpu)
    sets.append(DataSet("aic-vllm bf16", hw, "gemm", FIT,
                        "AIConfigurator vLLM gemm_perf, bf16", g[g["dtype"] == "bf16"]))
    fp8 = g[g["dtype"] == "fp8"]
    if len(fp8):
        # W8A8 fp8 runs at 45-75% of the fp8 peak where bf16 runs near its own: its own curve
        sets.append(DataSet("aic-vllm fp8", hw, "gemm_fp8", FIT,
                            "AIConfigurator vLLM gemm_perf, per-tensor fp8 (W8A8)",
                            fp8[fp8["op"] != "fp8_block"]))
        sets.append(DataSet("aic-vllm fp8 block", hw, "gemm_fp8", HELD_OUT,
                            "block-scaled fp8 (DeepGEMM / CUTLASS block kernels): priced as "
                            "per-tensor fp8", fp8[fp8["op"] == "fp8_block"]))
        t = aic.load_gemm(root, gpu, framework="trtllm")
        t = t[t["dtype"] == "fp8"] if len(t) else t
        if len(t):
            sets.append(DataSet("aic-trtllm fp8", hw, "gemm_fp8", HELD_OUT,
                                "TensorRT-LLM's fp8 GEMMs (per-tensor and block): another stack "
                                "than the vLLM fit", t))
    m_all = aic.load_moe(root, gpu)
    dist = "balanced" if m_all["op"].str.endswith("balanced").any() else "power_law_1.01"
    m_all = m_all[m_all["op"].str.endswith(dist)]
    m = m_all[m_all["dtype"] == "bf16"]
    sets.append(DataSet(f"aic-vllm bf16 ep1 {dist}", hw, "moe", FIT,
                        f"AIConfigurator vLLM moe_perf, bf16, {dist} routing, moe_ep_size 1",
                        m[m["ep"] == 1]))
    sets.append(DataSet(f"aic-vllm bf16 ep>1 {dist}", hw, "moe", HELD_OUT,
                        "expert parallel: vLLM's expert_map path still sorts and activates all "
                        "T*top_k rows on every rank; the model assumes all-to-all dispatch "
                        "(T*top_k/ep rows per rank)", m[m["ep"] > 1]))
    # fp8 experts: vLLM's block-scaled path (what block-fp8 MoE checkpoints run); its
    # per-tensor fp8 path runs 2-3x slower than bf16 on the same shapes (a fallback kernel)
    mb = m_all[m_all["op"].str.startswith("fp8_block/") & (m_all["ep"] == 1)]
    if len(mb):
        sets.append(DataSet(f"aic-vllm fp8 block ep1 {dist}", hw, "moe_fp8", FIT,
                            f"AIConfigurator vLLM moe_perf, block-scaled fp8, {dist} routing, "
                            "moe_ep_size 1", mb))
        m8 = m_all[m_all["op"].str.startswith("fp8/") & (m_all["ep"] == 1)]
        sets.append(DataSet(f"aic-vllm fp8 ep1 {dist}", hw, "moe_fp8", HELD_OUT,
                            "vLLM's per-tensor fp8 fused-MoE path: 2-3x slower than its bf16 "
                            "on the same shapes (a fallback kernel the model does not price)",
                            m8))
        t = aic.load_moe(root, gpu, framework="trtllm")
        if len(t):
            t = t[t["op"].str.endswith(dist) & t["op"].str.startswith("fp8")
                  & (t["ep"] == 1)]
            sets.append(DataSet(f"aic-trtllm fp8 ep1 {dist}", hw, "moe_fp8", HELD_OUT,
                                "TensorRT-LLM's fp8 experts (per-tensor and block): another "
                                "stack than the vLLM fit", t))
    a = aic.load_attention(root, gpu)
    for kind, fam in (("attention-prefill", "attention_prefill"),
                      ("attention-decode", "attention_decode")):
        k = a[a["kind"] == kind]
        sets.append(DataSet("aic-vllm kv bf16", hw, fam, FIT,
                            f"AIConfigurator vLLM {kind}, no sliding window, bf16 KV cache",
                            k[k["kv_dtype"] == "bf16"]))
        if (k["kv_dtype"] == "fp8").any():
            sets.append(DataSet("aic-vllm kv fp8", hw, fam, HELD_OUT,
                                "fp8 KV cache (bytes halve; efficiencies from the bf16 fit)",
                                k[k["kv_dtype"] == "fp8"]))
    sets.append(DataSet("aic nccl", hw, "comm_intra", FIT,
                        "AIConfigurator nccl_perf (nccl-tests, one 8-GPU NVSwitch node): "
                        "all-reduce, all-gather, reduce-scatter, all-to-all on 2/4/8 GPUs",
                        aic.load_nccl(root, gpu)))
    sets.append(DataSet("aic custom all-reduce", hw, "comm_custom", FIT,
                        "AIConfigurator custom_allreduce_perf: the engines' own all-reduce "
                        "(vLLM / SGLang custom all-reduce, TensorRT-LLM one-/two-shot) on "
                        "2/4/8 GPUs of one node, up to 8 MiB",
                        _custom_rows(aic.load_custom_allreduce(root, gpu))))
    return sets


#: the largest all-reduce the engines run with their own kernel (vLLM's custom all-reduce
#: ``max_size`` default); larger messages go to NCCL, so larger rows are not this curve's
CUSTOM_ALLREDUCE_MAX_BYTES = 8 * 2 ** 20


def _custom_rows(rows):
    return rows[pd.to_numeric(rows["message_bytes"]) <= CUSTOM_ALLREDUCE_MAX_BYTES]


def _vidur_sets(root: Path) -> list[DataSet]:
    sets: list[DataSet] = []
    comp = vidur.load_compute(root)
    for hw in ("a100-sxm-80gb", "h100-sxm", "a40"):
        c = comp[comp["hardware"] == hw]
        g = c[c["kind"] == "gemm"]
        role = FIT if hw == "a40" else HELD_OUT
        note = ("Vidur (sarathi-serve, fp16) per-layer GEMMs" if role == FIT else
                "Vidur (sarathi-serve, fp16) per-layer GEMMs: another stack than the vLLM fit")
        sets.append(DataSet("vidur fp16", hw, "gemm", role, note, g))
        e = c[c["kind"] == "elementwise"]
        sets.append(DataSet("vidur add", hw, "elementwise", FIT,
                            "Vidur residual add (one pointwise kernel: read 2, write 1 tensor)",
                            e[e["op"] == "add"]))
        sets.append(DataSet("vidur norm/act/rope/emb", hw, "elementwise", HELD_OUT,
                            "Vidur's other per-layer ops run as several eager PyTorch kernels "
                            "each; the model prices one fused kernel (vLLM's), so it is faster",
                            e[e["op"] != "add"]))
    att = vidur.load_attention(root)
    for kind, fam in (("attention-prefill", "attention_prefill"),
                      ("attention-decode", "attention_decode")):
        sets.append(DataSet("vidur flash-attn", "a100-sxm-80gb", fam, HELD_OUT,
                            "Vidur A100 FlashAttention (Llama-2-70B heads at TP 2), another "
                            "stack than the vLLM fit", att[att["kind"] == kind]))
    net = vidur.load_network(root)
    for hw in ("a100-sxm-80gb", "h100-sxm"):
        n = net[net["hardware"] == hw]
        inter = pr.inter_node_mask(n)
        p2p = (n["kind"] == "p2p").to_numpy()
        sets.append(DataSet("vidur dgx multi-node p2p", hw, "comm_inter", FIT,
                            "Vidur NCCL send/recv between two DGX nodes (one GPU each)",
                            n[inter & p2p]))
        sets.append(DataSet("vidur dgx multi-node all-reduce", hw, "comm_inter", HELD_OUT,
                            "Vidur NCCL all-reduce across two DGX nodes (2-16 GPUs): the "
                            "hierarchical model describes these poorly", n[inter & ~p2p]))
        sets.append(DataSet("vidur dgx one node", hw, "comm_intra", HELD_OUT,
                            "Vidur NCCL all-reduce and send/recv within one DGX node",
                            n[~inter]))
    return sets


def _llmcompass_sets(root: Path) -> list[DataSet]:
    d = llmcompass.load_all(root)
    return [
        DataSet("llmcompass matmul", "a100-sxm-80gb", "gemm", HELD_OUT,
                "LLMCompass A100 fp16 matmul (PyTorch 2.0)", d[d["kind"] == "gemm"]),
        DataSet("llmcompass gelu/softmax/layernorm", "a100-sxm-80gb", "elementwise", HELD_OUT,
                "LLMCompass A100 single PyTorch kernels, timed end to end (launch included)",
                d[d["kind"] == "elementwise"]),
    ]


def load_sets(root: Path) -> list[DataSet]:
    """Every data set, in a fixed order (fit sets and held-out sets)."""
    sets = []
    for gpu in aic.GPU_TO_HARDWARE:
        sets += _aic_sets(root, gpu)
    sets += _vidur_sets(root)
    sets += _llmcompass_sets(root)
    return [s for s in sets if len(s.rows)]


def fit_sets(sets: list[DataSet], hardware: str, family: str) -> list[DataSet]:
    return [s for s in sets if s.role == FIT and s.hardware == hardware and s.family == family]


def combined(sets: list[DataSet]) -> pd.DataFrame:
    return pd.concat([s.rows for s in sets], ignore_index=True) if sets else pd.DataFrame()
