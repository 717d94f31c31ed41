"""Price one op (a fused kernel or a collective) from its shape: ``llmsim op`` and
``llmsim.price_op``. Kinds and their shape arguments:

- ``gemm``: m, n, k
- ``attention-prefill``: batch, seq_len, num_heads, num_kv_heads, head_dim
- ``attention-decode``: batch, context_len, num_heads, num_kv_heads, head_dim (kv_dtype)
- ``moe``: num_tokens, hidden_size, intermediate_size, num_experts, top_k, ep
- ``all-reduce`` / ``all-gather`` / ``reduce-scatter`` / ``all-to-all``: message_bytes,
  num_gpus (a group larger than a node crosses the inter-node network)
- ``p2p``: message_bytes; ``inter_node`` puts the two GPUs on different nodes

``dtype`` is the weight format, ``act_dtype`` the activation (math) format, chosen as
``estimate`` does: by default the weight format when it is 16/32-bit or fp8, else 16-bit
(weight-only int4 / int8 / fp4: W4A16), and a format the part cannot compute becomes one it can.
``kv_dtype`` is the cache's. Times follow the calibrated roofline of ``costmodel``
(``profile`` / ``efficiency`` as for ``estimate``).
"""

from __future__ import annotations

from typing import Any

from llmsim.catalog import get_cluster, get_hardware
from llmsim.costmodel import kernels
from llmsim.costmodel.collectives import collective
from llmsim.costmodel.ops import OpCost, OpKind, Precision
from llmsim.costmodel.profile import Profile
from llmsim.dtypes import DType
from llmsim.errors import ConfigError, UnknownNameError

OP_KINDS = ("gemm", "attention-prefill", "attention-decode", "moe", "all-reduce", "all-gather",
            "reduce-scatter", "all-to-all", "p2p")

REQUIRED: dict[str, tuple[str, ...]] = {
    "gemm": ("m", "n", "k"),
    "attention-prefill": ("batch", "seq_len", "num_heads", "num_kv_heads", "head_dim"),
    "attention-decode": ("batch", "context_len", "num_heads", "num_kv_heads", "head_dim"),
    "moe": ("num_tokens", "hidden_size", "intermediate_size", "num_experts", "top_k"),
    "all-reduce": ("message_bytes", "num_gpus"),
    "all-gather": ("message_bytes", "num_gpus"),
    "reduce-scatter": ("message_bytes", "num_gpus"),
    "all-to-all": ("message_bytes", "num_gpus"),
    "p2p": ("message_bytes",),
}


def _need(kind: str, shape: dict[str, Any]) -> dict[str, float]:
    missing = [k for k in REQUIRED[kind] if shape.get(k) in (None, "")]
    if missing:
        flags = " ".join("--" + m.replace("_", "-") for m in missing)
        raise ConfigError(f"op {kind} needs {flags}")
    out = {}
    for k in REQUIRED[kind]:
        v = float(shape[k])
        if v <= 0:
            raise ConfigError(f"op {kind}: {k} must be > 0, got {shape[k]}")
        out[k] = v
    return out


def price_op(kind: str, hardware: str, dtype: str = "bf16", kv_dtype: str | None = None,
             cluster: str | None = None, profile: Profile | str | None = None,
             efficiency: float | None = None, act_dtype: str | None = None,
             inter_node: bool = False, **shape: Any) -> OpCost:
    """Cost of one op on ``hardware`` (see module docstring for kinds and shape keys)."""
    kind = kind.strip().lower().replace("_", "-")
    if kind not in OP_KINDS:
        raise UnknownNameError("op kind", kind, OP_KINDS)
    hw = get_hardware(hardware)
    prof = (profile if isinstance(profile, Profile) else Profile.load(profile)).for_hardware(
        hw, efficiency)
    dt = DType.parse(dtype)
    prec = Precision.resolve(dt, dtype, activation=act_dtype, kv=kv_dtype,
                             supported=hw.supported_dtypes)
    w, act, kv = prec.weight, prec.activation, prec.kv
    s = _need(kind, shape)
    if kind == "gemm":
        return kernels.gemm(s["m"], s["n"], s["k"], hw, prof, w, act)
    if kind in ("attention-prefill", "attention-decode"):
        heads, kv_heads, d = s["num_heads"], s["num_kv_heads"], int(s["head_dim"])
        if heads % kv_heads:
            raise ConfigError(f"num_heads {heads:g} is not a multiple of num_kv_heads {kv_heads:g}")
        kv_bpt = 2 * kv_heads * d * kv.bytes
        if kind == "attention-prefill":
            b, sl = s["batch"], s["seq_len"]
            pairs = b * (sl * (sl + 1) / 2)
            return kernels.attention_prefill(b, b * sl, pairs, b * sl, heads, kv_bpt, d, d, hw,
                                             prof, act)
        b, c = s["batch"], s["context_len"]
        return kernels.attention_decode(b, b * c, heads, kv_bpt, d, d, hw, prof, act)
    if kind == "moe":
        ep = int(shape.get("ep") or 1)
        if int(s["num_experts"]) % ep:
            raise ConfigError(f"ep {ep} does not divide num_experts {s['num_experts']:g}")
        if s["top_k"] > s["num_experts"]:
            raise ConfigError(f"top_k {s['top_k']:g} exceeds num_experts {s['num_experts']:g}; "
                              "lower --top-k")
        return kernels.moe_experts(s["num_tokens"], int(s["hidden_size"]),
                                   int(s["intermediate_size"]), int(s["num_experts"]),
                                   int(s["top_k"]), hw, prof, ep=ep, weight=w, activation=act)
    op_kind = {"all-reduce": OpKind.ALL_REDUCE, "all-gather": OpKind.ALL_GATHER,
               "reduce-scatter": OpKind.REDUCE_SCATTER, "all-to-all": OpKind.ALL_TO_ALL,
               "p2p": OpKind.P2P}[kind]
    if kind == "p2p":
        if int(shape.get("num_gpus") or 2) != 2:
            raise ConfigError("p2p is between two GPUs; drop --num-gpus (--inter-node puts "
                              "them on different nodes)")
        if not _truthy(inter_node):
            return collective(op_kind, s["message_bytes"], 2, get_cluster(cluster, hw, 2), prof)
        node = get_cluster(cluster, hw).gpus_per_node  # ranks a node apart: two nodes
        cl = get_cluster(cluster, hw, num_gpus=2 * node)
        return collective(op_kind, s["message_bytes"], 2, cl, prof, stride=node)
    n = int(s["num_gpus"])
    cl = get_cluster(cluster, hw, num_gpus=max(n, 2))
    if n > cl.num_gpus:
        raise ConfigError(f"{kind} over {n} GPUs but cluster {cl.name} has {cl.num_gpus}")
    return collective(op_kind, s["message_bytes"], n, cl, prof)


def _truthy(value: Any) -> bool:
    """A flag from the CLI or a case-file cell (``1``, ``true``, ``yes``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y")
    return bool(value)
