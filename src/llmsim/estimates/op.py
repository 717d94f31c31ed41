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
(``profile`` / ``efficiency`` as for ``estimate``), or another ``estimator`` (``analytic``:
the datasheet roofline; ``table`` / ``learned``: the kernel re-priced by that estimator's data,
``OpCost.source`` saying which; collectives stay calibrated).
"""

from __future__ import annotations

from typing import Any

from llmsim.catalog import get_cluster, get_hardware
from llmsim.costmodel import opcases
from llmsim.costmodel.collectives import collective
from llmsim.costmodel.estimators import ESTIMATORS, kernel_pricer
from llmsim.costmodel.estimators.repriced import price_case, tagged
from llmsim.costmodel.ops import OpCost, OpKind
from llmsim.costmodel.profile import Profile
from llmsim.errors import ConfigError, UnknownNameError


def _need(kind: str, shape: dict[str, Any]) -> dict[str, float]:
    missing = [k for k in opcases.REQUIRED[kind] if shape.get(k) in (None, "")]
    if missing:
        flags = " ".join("--" + m.replace("_", "-") for m in missing)
        raise ConfigError(f"op {kind} needs {flags}")
    out = {}
    for k in opcases.REQUIRED[kind]:
        v = float(shape[k])
        if v <= 0:
            raise ConfigError(f"op {kind}: {k} must be > 0, got {shape[k]}")
        out[k] = v
    return out


def price_op(kind: str, hardware: str, dtype: str = "bf16", kv_dtype: str | None = None,
             cluster: str | None = None, profile: Profile | str | None = None,
             efficiency: float | None = None, act_dtype: str | None = None,
             inter_node: bool = False, estimator: str = "calibrated",
             estimator_model: str | None = None, **shape: Any) -> OpCost:
    """Cost of one op on ``hardware`` (see module docstring for kinds and shape keys)."""
    kind = opcases.normalize_kind(kind)
    if kind not in opcases.OP_KINDS:
        raise UnknownNameError("op kind", kind, opcases.OP_KINDS)
    hw = get_hardware(hardware)
    name = ESTIMATORS.canonical(estimator)
    if name == "analytic":
        if profile is not None:
            raise ConfigError("estimator analytic is the uncalibrated datasheet roofline and "
                              "takes no profile; drop --profile or use --estimator calibrated")
        profile = Profile.empty()
    pricer = kernel_pricer(name, estimator_model, hw.name)
    prof = (profile if isinstance(profile, Profile) else Profile.load(profile)).for_hardware(
        hw, efficiency)
    prec = opcases.case_precision(hw, dtype, act_dtype, kv_dtype)
    s = _need(kind, shape)
    if kind in opcases.KERNEL_KINDS:
        _check_kernel_case(kind, s, shape)
        cols = {**s, "ep": int(shape.get("ep") or 1)}
        op = opcases.kernel_op(kind, cols.__getitem__, hw, prof, prec)
        return op if pricer is None else price_case(pricer, kind, cols, hw, prec, op)
    out = _collective(kind, s, shape, hw, cluster, prof, inter_node)
    return out if pricer is None else tagged(out)


def _collective(kind: str, s: dict[str, float], shape: dict[str, Any], hw, cluster: str | None,
                prof, inter_node: bool) -> OpCost:
    op_kind = OpKind(kind)
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


def _check_kernel_case(kind: str, s: dict[str, float], shape: dict[str, Any]) -> None:
    """Shapes the kernel formulas accept but no model has (one-line errors with the fix)."""
    if kind.startswith("attention") and s["num_heads"] % s["num_kv_heads"]:
        raise ConfigError(f"num_heads {s['num_heads']:g} is not a multiple of num_kv_heads "
                          f"{s['num_kv_heads']:g}")
    if kind == "moe":
        ep = int(shape.get("ep") or 1)
        if int(s["num_experts"]) % ep:
            raise ConfigError(f"ep {ep} does not divide num_experts {s['num_experts']:g}")
        if s["top_k"] > s["num_experts"]:
            raise ConfigError(f"top_k {s['top_k']:g} exceeds num_experts {s['num_experts']:g}; "
                              "lower --top-k")


def _truthy(value: Any) -> bool:
    """A flag from the CLI or a case-file cell (``1``, ``true``, ``yes``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "y")
    return bool(value)
