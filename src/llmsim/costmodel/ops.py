"""Op records: what one kernel (or collective) costs and what bounds it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum

from llmsim.catalog.blocks import CollectiveKind
from llmsim.dtypes import DType
from llmsim.errors import ConfigError

log = logging.getLogger(__name__)


class _Kind(str, Enum):
    """Behaviour of :data:`OpKind` (its members are made below)."""

    @property
    def is_comm(self) -> bool:
        """A collective (priced by ``collectives.py``), not a kernel."""
        return self.value in _COLLECTIVES

    @property
    def collective(self) -> CollectiveKind:
        """The catalog's collective of a communication op kind."""
        return CollectiveKind(self.value)


_KERNEL_KINDS = {"GEMM": "gemm", "MOE": "moe", "ATTENTION_PREFILL": "attention-prefill",
                 "ATTENTION_DECODE": "attention-decode", "ELEMENTWISE": "elementwise",
                 "EMBEDDING": "embedding", "SAMPLING": "sampling"}
_COLLECTIVES = frozenset(c.value for c in CollectiveKind)

#: What an op is: the kernel kinds (``GEMM``, ``MOE``, ``ATTENTION_PREFILL``,
#: ``ATTENTION_DECODE``, ``ELEMENTWISE``, ``EMBEDDING``, ``SAMPLING``) and, with the same names
#: and values, every :class:`~llmsim.catalog.blocks.CollectiveKind` (``ALL_REDUCE``,
#: ``ALL_GATHER``, ``REDUCE_SCATTER``, ``ALL_TO_ALL``, ``P2P``): one collective vocabulary.
OpKind = _Kind("OpKind", {**_KERNEL_KINDS, **{c.name: c.value for c in CollectiveKind}},
               module=__name__)


class Bound(str, Enum):
    """What dominates an op's time."""

    COMPUTE = "compute"
    MEMORY = "memory"
    COMMUNICATION = "communication"
    OVERHEAD = "overhead"  # launch / latency dominated (tiny kernels, small messages)


@dataclass(frozen=True, slots=True)
class Precision:
    """Numeric formats chosen independently for weights, activations and the KV cache."""

    weight: DType = DType.BF16
    activation: DType = DType.BF16
    kv: DType = DType.BF16

    def describe(self) -> str:
        return f"W:{self.weight.value} A:{self.activation.value} KV:{self.kv.value}"

    @property
    def unquantized(self) -> DType:
        """Format of the parts engines keep unquantized (embedding, LM head, router, norms):
        the activation format when it is 16/32-bit (the compute format of a weight-only
        checkpoint: fp16 for W4A16 on a T4), else the weight format when it is 16/32-bit,
        else bf16 (W8A8 checkpoints keep those parts in bf16)."""
        if self.activation.bits >= 16:
            return self.activation
        return self.weight if self.weight.bits >= 16 else DType.BF16

    @classmethod
    def resolve(cls, model_weight: DType, dtype: DType | str | None = None,
                weight: DType | str | None = None, activation: DType | str | None = None,
                kv: DType | str | None = None,
                supported: set[DType] | None = None) -> Precision:
        """Defaults as serving engines pick them. Weights: ``weight``, else ``dtype``, else the
        checkpoint's format. Activations: ``activation``, else the weight format when it is
        16/32-bit or fp8 (W8A8, as DeepSeek-V3 ships), else 16-bit (weight-only int4/int8/fp4
        runs W4A16). KV cache: ``kv``, else ``dtype`` when it is a float format, else the
        activation format if 16/32-bit, else bf16 (vLLM's 'auto').

        With ``supported`` (the part's compute formats), defaults adapt as vLLM does, with a
        logged warning: a 16-bit format the part lacks becomes the other one (bf16 -> fp16 on a
        T4), and fp8 math on a part without it runs fp8 weights weight-only (W8A16). An
        explicit ``activation`` is kept as asked (an unsupported one then errors when priced).
        """
        base = DType.parse(dtype) if dtype is not None else None
        w = DType.parse(weight) if weight is not None else (base or model_weight)
        if activation is not None:
            a = DType.parse(activation)
        elif w.bits >= 16 or w == DType.FP8:
            a = w
        elif base is not None and base.bits >= 16:
            a = base
        else:
            a = model_weight if model_weight.bits >= 16 else DType.BF16
        if kv is not None:
            k = DType.parse(kv)
        elif base is not None and base.bits >= 8 and base.is_float:
            k = base
        else:
            k = a if a.bits >= 16 else DType.BF16
        if supported:
            w, a, k = _adapt(w, a, k, supported, weight is None and dtype is None,
                             activation is None, kv is None)
        if a.bits < 16 and a.bits < w.bits:
            raise ConfigError(
                f"activations in {a.value} with wider {w.value} weights is not a kernel engines "
                f"run; quantize the weights as far (--dtype {a.value}, W{a.bits}A{a.bits}) or "
                "keep 16-bit activations")
        return cls(w, a, k)


@dataclass(frozen=True, slots=True)
class OpCost:
    """Cost of one op on one device. Times in seconds, sizes in bytes, work in FLOP.

    ``time_s = overhead_s + max(compute_s, memory_s)`` for kernels, and
    ``time_s = overhead_s + comm_s`` for collectives (roofline with a fixed cost).
    ``count`` repeats the op (e.g. two all-reduces per layer); totals are per single op.
    ``source`` says which estimator priced it (empty: the analytic roofline of the profile;
    ``table``, ``table-extrapolated``, ``learned``, ``calibrated`` (fallback) under the table and
    learned estimators). ``case``: the op-case columns (``opcases``) that reproduce the op's work
    with ``opcases.kernel_work`` (kernels only; not serialised).
    """

    name: str
    kind: OpKind
    flops: float
    bytes_read: float
    bytes_written: float
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float
    time_s: float
    bound: Bound
    comm_bytes: float = 0.0
    count: int = 1
    shape: dict[str, float] = field(default_factory=dict)
    source: str = ""
    case: tuple[tuple[str, object], ...] = field(default=(), compare=False, repr=False)

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written

    def scaled(self, count: int) -> OpCost:
        """The same op repeated ``count`` times (fields stay per-op; ``count`` multiplies)."""
        return OpCost(self.name, self.kind, self.flops, self.bytes_read, self.bytes_written,
                      self.compute_s, self.memory_s, self.comm_s, self.overhead_s, self.time_s,
                      self.bound, self.comm_bytes, self.count * count, self.shape,
                      self.source, self.case)

    def repriced(self, time_s: float, compute_s: float, memory_s: float, overhead_s: float,
                 source: str) -> OpCost:
        """The same op (work, count, shape) with another estimator's time and its source tag."""
        bound = kernel_bound(compute_s, memory_s, overhead_s)
        return OpCost(self.name, self.kind, self.flops, self.bytes_read, self.bytes_written,
                      compute_s, memory_s, self.comm_s, overhead_s, time_s, bound,
                      self.comm_bytes, self.count, self.shape, source, self.case)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "kind": self.kind.value, "count": self.count,
            "time_s": self.time_s, "flops": self.flops, "bytes": self.bytes,
            "bytes_read": self.bytes_read, "bytes_written": self.bytes_written,
            "comm_bytes": self.comm_bytes, "compute_s": self.compute_s,
            "memory_s": self.memory_s, "comm_s": self.comm_s, "overhead_s": self.overhead_s,
            "bound": self.bound.value, **{f"shape_{k}": v for k, v in self.shape.items()},
            **({"source": self.source} if self.source else {}),
        }


def kernel_bound(compute_s: float, memory_s: float, overhead_s: float) -> Bound:
    """Classify a kernel: overhead when the fixed cost exceeds the roofline part."""
    if overhead_s > max(compute_s, memory_s):
        return Bound.OVERHEAD
    return Bound.COMPUTE if compute_s >= memory_s else Bound.MEMORY


_HALF = (DType.BF16, DType.FP16)


def _adapt(w: DType, a: DType, k: DType, supported: set[DType], free_w: bool, free_a: bool,
           free_k: bool) -> tuple[DType, DType, DType]:
    """Default formats the part cannot compute, replaced (see :meth:`Precision.resolve`)."""
    half = next((d for d in _HALF if d in supported), None)
    if half is None:
        return w, a, k

    def other(d: DType) -> DType:
        return half if d in _HALF and d not in supported else d

    new_w = other(w) if free_w else w
    new_a = a
    if free_a and a not in supported:
        new_a = other(new_w) if new_w in _HALF else (half if a == DType.FP8 or a in _HALF else a)
    new_k = other(k) if free_k else k
    if (new_w, new_a, new_k) != (w, a, k):
        log.warning("the part has no %s math: running W:%s A:%s KV:%s (pass --act-dtype / "
                    "--dtype to choose)", a.value if a != new_a else w.value, new_w.value,
                    new_a.value, new_k.value)
    return new_w, new_a, new_k

