"""One op case: a kernel or collective named by its kind and shape columns.

The schema that ``llmsim op`` (and its ``--cases`` files), the measurement tables of
calibration and their predictions share, and the one mapping from a case's columns to the
arguments of the kernel formulas (``kernels.*_work``). Kinds and the columns each needs:

- ``gemm``: m, n, k                         ``[m, k] x [k, n]`` with weights in ``dtype``
- ``attention-prefill``: batch, seq_len, num_heads, num_kv_heads, head_dim
  (``batch`` prompts of ``seq_len`` tokens, no cached prefix: ``batch x seq_len (seq_len + 1)
  / 2`` causal pairs)
- ``attention-decode``: batch, context_len, num_heads, num_kv_heads, head_dim
- ``moe``: num_tokens, hidden_size, intermediate_size, num_experts, top_k (``ep``: 1)
- ``elementwise``: bytes_read, bytes_written (measurement tables only: ``llmsim op`` has no
  shape flags for memory-bound kernels)
- collectives (:class:`~llmsim.catalog.blocks.CollectiveKind`): message_bytes, num_gpus
  (``p2p``: message_bytes only)

Formats as ``llmsim estimate`` picks them (:func:`case_precision`: ``Precision.resolve`` with
the case's ``dtype`` as the weight format). An attention case's KV bytes per token are
:func:`kv_bytes_per_token`, the formula the step model's ``Layout`` uses too (group scales of
int4 / fp4 caches included). Every function takes scalars or numpy arrays of a column.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmsim.catalog.blocks import CollectiveKind
from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel import kernels
from llmsim.costmodel.ops import OpCost, Precision
from llmsim.costmodel.profile import HardwareProfile, kernel_family
from llmsim.dtypes import DType, compute_dtype

KERNEL_KINDS = ("gemm", "moe", "attention-prefill", "attention-decode", "elementwise")
COMM_KINDS = tuple(c.value for c in CollectiveKind)
KINDS = KERNEL_KINDS + COMM_KINDS
#: what ``llmsim op`` prices (every kind but ``elementwise``)
OP_KINDS = tuple(k for k in KINDS if k != "elementwise")

_ATTENTION = ("batch", "num_heads", "num_kv_heads", "head_dim")
REQUIRED: dict[str, tuple[str, ...]] = {
    "gemm": ("m", "n", "k"),
    "attention-prefill": ("batch", "seq_len", *_ATTENTION[1:]),
    "attention-decode": ("batch", "context_len", *_ATTENTION[1:]),
    "moe": ("num_tokens", "hidden_size", "intermediate_size", "num_experts", "top_k"),
    "elementwise": ("bytes_read", "bytes_written"),
    **{c: ("message_bytes", "num_gpus") for c in COMM_KINDS if c != "p2p"},
    "p2p": ("message_bytes",),
}

#: the columns of an op case file (``llmsim op --cases``); measurement tables add theirs
CASE_COLUMNS = ("kind", "hardware", "dtype", "act_dtype", "kv_dtype", "inter_node", "m", "n",
                "k", "batch", "seq_len", "context_len", "num_heads", "num_kv_heads", "head_dim",
                "num_tokens", "hidden_size", "intermediate_size", "num_experts", "top_k", "ep",
                "message_bytes", "num_gpus", "cluster")

#: the calibration-profile family that prices each kernel kind (collectives: ``comm_intra`` /
#: ``comm_inter``, decided per case by whether its group spans nodes)
FAMILY = {"gemm": "gemm", "moe": "moe", "attention-prefill": "attention_prefill",
          "attention-decode": "attention_decode", "elementwise": "elementwise"}


def family_of(kind: str, hw: HardwareSpec, precision: Precision) -> str:
    """The profile family of one kernel case: :data:`FAMILY`, with a GEMM or expert kernel
    whose math runs in fp8 priced by its fp8 variant (``costmodel.profile.kernel_family``)."""
    return kernel_family(FAMILY[kind], compute_dtype(precision.weight, precision.activation,
                                                     hw.supported_dtypes))


def normalize_kind(value: object) -> str:
    """``attention_decode`` / ``All-Reduce`` -> ``attention-decode`` / ``all-reduce``."""
    return str(value).strip().lower().replace("_", "-")


def case_precision(hw: HardwareSpec, dtype: str | DType = "bf16", act_dtype: str | None = None,
                   kv_dtype: str | None = None) -> Precision:
    """The formats of one case: ``dtype`` is the weight format; activations and KV cache as
    ``Precision.resolve`` defaults them (W4A16 for int4 weights, KV in ``dtype`` when it is a
    float format) unless given, adapted to what the part computes."""
    dt = DType.parse(dtype)
    return Precision.resolve(dt, dt, activation=act_dtype, kv=kv_dtype,
                             supported=hw.supported_dtypes)


def kv_bytes_per_token(kv_heads: Any, key_dim: Any, value_dim: Any, kv: DType) -> Any:
    """KV-cache bytes per token of one attention layer: ``kv_heads x (key_dim + value_dim) x
    bytes per element``, group scales of int4 / fp4 caches included (the one formula)."""
    return kv_heads * (key_dim + value_dim) * kv.bytes_with_scales


def _kernel_args(kind: str, col: Callable[[str], Any],
                 precision: Precision) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The shape arguments and format keywords of a kernel case, shared by the ``*_work``
    formula and the op builder of ``kernels`` (both take ``(*shape, hw, [prof], **formats)``)."""
    w, act = precision.weight, precision.activation
    if kind == "gemm":
        return (col("m"), col("n"), col("k")), {"weight": w, "activation": act}
    if kind == "moe":
        return ((col("num_tokens"), col("hidden_size"), col("intermediate_size"),
                 col("num_experts"), col("top_k")),
                {"ep": col("ep"), "weight": w, "activation": act})
    heads, hd, b = col("num_heads"), col("head_dim"), col("batch")
    kv_bpt = kv_bytes_per_token(col("num_kv_heads"), hd, hd, precision.kv)
    if kind == "attention-prefill":
        sl = col("seq_len")
        return (b, b * sl, b * sl * (sl + 1) / 2.0, b * sl, heads, kv_bpt, hd, hd), \
            {"activation": act}
    if kind == "attention-decode":
        return (b, b * col("context_len"), heads, kv_bpt, hd, hd), {"activation": act}
    raise ValueError(f"not a kernel kind: {kind}")


def _balanced(col: Callable[[str], Any]) -> Any:
    """A MoE case's ``balanced`` column (measured with evenly dealt routing), False where the
    case has none (uniform routing, as a served model)."""
    try:
        return col("balanced")
    except KeyError:
        return False


_WORK = {"gemm": kernels.gemm_work, "moe": lambda *a, **k: kernels.moe_work(*a, **k)[0],
         "attention-prefill": kernels.attention_prefill_work,
         "attention-decode": kernels.attention_decode_work}
_OP = {"gemm": kernels.gemm, "moe": kernels.moe_experts,
       "attention-prefill": kernels.attention_prefill,
       "attention-decode": kernels.attention_decode}


def kernel_work(kind: str, col: Callable[[str], Any], hw: HardwareSpec,
                precision: Precision) -> kernels.KernelWork:
    """The :class:`~llmsim.costmodel.kernels.KernelWork` of a kernel case; ``col(name)`` reads
    one column (a number, or an array over many cases of the same kind and formats; MoE cases
    also read ``balanced``, the measured routing, :func:`kernels.expected_experts_touched`)."""
    if kind == "elementwise":
        return kernels.elementwise_work(col("bytes_read"), col("bytes_written"), hw)
    args, formats = _kernel_args(kind, col, precision)
    if kind == "moe":
        formats["balanced"] = _balanced(col)
    return _WORK[kind](*args, hw, **formats)


def kernel_op(kind: str, col: Callable[[str], Any], hw: HardwareSpec, prof: HardwareProfile,
              precision: Precision) -> OpCost:
    """One kernel case priced as an :class:`OpCost` (the same arguments as
    :func:`kernel_work`)."""
    if kind == "elementwise":
        return kernels.elementwise("elementwise", col("bytes_read"), col("bytes_written"), hw,
                                   prof)
    args, formats = _kernel_args(kind, col, precision)
    if kind == "moe":
        formats["balanced"] = _balanced(col)
    return _OP[kind](*args, hw, prof, **formats)
