"""Price one op (a fused kernel or a collective) from its shape: ``llmsim op`` and
``llmsim.price_op``. Kinds and their shape arguments:

- ``gemm``: m, n, k
- ``attention-prefill``: batch, seq_len, num_heads, num_kv_heads, head_dim
- ``attention-decode``: batch, context_len, num_heads, num_kv_heads, head_dim (kv_dtype)
- ``moe``: num_tokens, hidden_size, intermediate_size, num_experts, top_k, ep
- ``all-reduce`` / ``all-gather`` / ``reduce-scatter`` / ``all-to-all``: message_bytes,
  num_gpus (a group larger than a node crosses the inter-node network)
- ``p2p``: message_bytes; ``inter_node`` puts the two GPUs on different nodes

``library`` (collectives): ``auto`` prices an intra-node all-reduce as serving engines run it
(the faster of NCCL and the engine's custom all-reduce, ``costmodel/collectives.py``), ``nccl``
as NCCL alone, ``custom`` as the custom kernel alone.

``routing`` (MoE): ``uniform`` (each token's experts at random: what a served model is priced
with) or ``balanced`` (the batch's ``tokens x top_k`` assignments dealt evenly over the
experts, as AIConfigurator's ``balanced`` tables measure them; the calibration prices those
rows so): ``costmodel.kernels.expected_experts_touched``. Not for the ``learned`` estimator
(its features are those of its training rows' routing).

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

from llmsim import checks
from llmsim.catalog import get_cluster, get_hardware
from llmsim.costmodel import opcases
from llmsim.costmodel.collectives import LIBRARIES, collective
from llmsim.costmodel.estimators import ESTIMATORS, kernel_pricer
from llmsim.costmodel.estimators.repriced import price_case, tagged
from llmsim.costmodel.kernels import ROUTINGS
from llmsim.costmodel.ops import OpCost, OpKind
from llmsim.costmodel.profile import Profile
from llmsim.errors import ConfigError, UnknownNameError

#: every shape argument ``price_op`` knows (the op case columns that are not formats / names)
SHAPE_KEYS = tuple(c for c in opcases.CASE_COLUMNS
                   if c not in ("kind", "hardware", "dtype", "act_dtype", "kv_dtype",
                                "inter_node", "cluster"))
#: shape arguments a kind takes beyond its required ones (with their neutral value)
_OPTIONAL = {"moe": {"ep": 1}, "p2p": {"num_gpus": 2}}
#: the kinds a KV-cache format applies to
_KV_KINDS = ("attention-prefill", "attention-decode")


def _flags(keys) -> str:
    return " ".join("--" + k.replace("_", "-") for k in keys)


def _need(kind: str, shape: dict[str, Any]) -> dict[str, float]:
    """The kind's shape arguments, checked: known keys only (did-you-mean), none the kind does
    not use (they would change nothing), every required one a whole number >= 1
    (``message_bytes`` a finite number >= 1)."""
    unknown = [k for k in shape if k not in SHAPE_KEYS]
    if unknown:
        raise UnknownNameError("op shape argument", unknown[0], SHAPE_KEYS)
    given = {k: v for k, v in shape.items() if v is not None and v != ""}
    optional = _OPTIONAL.get(kind, {})
    unused = [k for k in given if k not in opcases.REQUIRED[kind] and k not in optional
              and not (k == "ep" and given[k] == 1)]  # ep 1 is every kind's default
    if unused:
        raise ConfigError(f"op {kind} does not use {_flags(unused)} (it takes "
                          f"{_flags(opcases.REQUIRED[kind] + tuple(optional))}); drop "
                          f"{'it' if len(unused) == 1 else 'them'}")
    missing = [k for k in opcases.REQUIRED[kind] if k not in given]
    if missing:
        raise ConfigError(f"op {kind} needs {_flags(missing)}")
    out: dict[str, float] = {}
    for k in opcases.REQUIRED[kind]:
        if k == "message_bytes":
            out[k] = checks.number(given[k], f"op {kind}: {k}", low=1.0)
        else:
            out[k] = float(checks.whole(given[k], f"op {kind}: {k}",
                                        low=2 if k == "num_gpus" else 1))
    for k, neutral in optional.items():
        out[k] = float(checks.whole(given.get(k, neutral), f"op {kind}: {k}"))
    return out


def price_op(kind: str, hardware: str, dtype: str = "bf16", kv_dtype: str | None = None,
             cluster: str | None = None, profile: Profile | str | None = None,
             efficiency: float | None = None, act_dtype: str | None = None,
             inter_node: bool = False, estimator: str = "calibrated",
             estimator_model: str | None = None, library: str = "auto",
             routing: str = "uniform", **shape: Any) -> OpCost:
    """Cost of one op on ``hardware`` (see module docstring for kinds and shape keys)."""
    checks.text(kind, "op kind")
    kind = opcases.normalize_kind(kind)
    if kind not in opcases.OP_KINDS:
        raise UnknownNameError("op kind", kind, opcases.OP_KINDS)
    checks.efficiency(efficiency)
    s = _need(kind, shape)
    remote = _truthy(inter_node)
    if remote and kind != "p2p":
        raise ConfigError(f"--inter-node applies to p2p only, not {kind} (a group larger than "
                          "a node crosses the network by itself: set --num-gpus)")
    if kv_dtype is not None and kind not in _KV_KINDS:
        raise ConfigError(f"--kv-dtype applies to attention ops only, not {kind}; drop it")
    if act_dtype is not None and kind not in opcases.KERNEL_KINDS:
        raise ConfigError(f"--act-dtype applies to kernels only, not the collective {kind}")
    if library not in LIBRARIES:
        raise UnknownNameError("collective library", library, LIBRARIES)
    if library != "auto" and kind in opcases.KERNEL_KINDS:
        raise ConfigError(f"--library applies to collectives only, not the kernel {kind}")
    if routing not in ROUTINGS:
        raise UnknownNameError("MoE routing", routing, ROUTINGS)
    if routing != "uniform" and kind != "moe":
        raise ConfigError(f"--routing applies to moe only, not {kind}; drop it")
    hw = get_hardware(hardware)
    name = ESTIMATORS.canonical(estimator)
    if routing != "uniform" and name == "learned":
        raise ConfigError(f"--routing {routing} does not apply to the learned estimator (its "
                          "features follow its training rows' routing); drop --routing or use "
                          "--estimator calibrated / table")
    if name == "analytic":
        if profile is not None:
            raise ConfigError("estimator analytic is the uncalibrated datasheet roofline and "
                              "takes no profile; drop --profile or use --estimator calibrated")
        profile = Profile.empty()
    pricer = kernel_pricer(name, estimator_model, hw.name)
    prof = (profile if isinstance(profile, Profile) else Profile.load(profile)).for_hardware(
        hw, efficiency)
    prec = opcases.case_precision(hw, dtype, act_dtype, kv_dtype)
    if kind in opcases.KERNEL_KINDS:
        _check_kernel_case(kind, s, shape)
        cols = {**s, "ep": int(s.get("ep", 1)), "balanced": routing == "balanced"}
        op = opcases.kernel_op(kind, cols.__getitem__, hw, prof, prec)
        return op if pricer is None else price_case(pricer, kind, cols, hw, prec, op)
    out = _collective(kind, s, hw, cluster, prof, inter_node, library)
    return out if pricer is None else tagged(out)


def _collective(kind: str, s: dict[str, float], hw, cluster: str | None, prof,
                inter_node: bool, library: str) -> OpCost:
    op_kind = OpKind(kind)
    remote = _truthy(inter_node)
    if kind == "p2p":
        if s["num_gpus"] != 2:
            raise ConfigError("p2p is between two GPUs; drop --num-gpus (--inter-node puts "
                              "them on different nodes)")
        if not remote:
            return collective(op_kind, s["message_bytes"], 2, get_cluster(cluster, hw, 2), prof)
        node = get_cluster(cluster, hw).gpus_per_node  # ranks a node apart: two nodes
        cl = get_cluster(cluster, hw, num_gpus=2 * node)
        return collective(op_kind, s["message_bytes"], 2, cl, prof, stride=node)
    n = int(s["num_gpus"])
    cl = get_cluster(cluster, hw, num_gpus=max(n, 2))
    if n > cl.num_gpus:
        raise ConfigError(f"{kind} over {n} GPUs but cluster {cl.name} has {cl.num_gpus}")
    return collective(op_kind, s["message_bytes"], n, cl, prof, library=library)


def _check_kernel_case(kind: str, s: dict[str, float], shape: dict[str, Any]) -> None:
    """Shapes the kernel formulas accept but no model has (one-line errors with the fix)."""
    if kind.startswith("attention") and s["num_heads"] % s["num_kv_heads"]:
        raise ConfigError(f"num_heads {s['num_heads']:g} is not a multiple of num_kv_heads "
                          f"{s['num_kv_heads']:g}")
    if kind == "moe":
        ep = int(s["ep"])
        if int(s["num_experts"]) % ep:
            raise ConfigError(f"ep {ep} does not divide num_experts {s['num_experts']:g}")
        if s["top_k"] > s["num_experts"]:
            raise ConfigError(f"top_k {s['top_k']:g} exceeds num_experts {s['num_experts']:g}; "
                              "lower --top-k")


_TRUE, _FALSE = ("1", "true", "yes", "y"), ("0", "false", "no", "n", "")


def _truthy(value: Any) -> bool:
    """A flag from the CLI or a case-file cell (``1``, ``true``, ``yes`` / ``0``, ``false``,
    ``no``); anything else is an error, not a silent False."""
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise ConfigError(f"--inter-node must be true or false, got {value!r}")
