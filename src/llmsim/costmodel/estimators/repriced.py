"""A step model whose kernels are priced by measured data or a learned model, per op.

:class:`RepricedStepTimeModel` is the calibrated :class:`AnalyticStepTimeModel` (same op lists,
same memoised dense path, attention from the step's running aggregates) with every kernel op
handed to a :class:`KernelPricer` first. A pricer returns the time of an op case from its own
data, or NaN where it has none, in which case the calibrated roofline's time stays and the op
is tagged ``calibrated``. Each re-priced op keeps its work and gets::

    util      = sol / t                   (sol = max(F / P, B / W), the datasheet roofline)
    compute_s = (F / P) / util,  memory_s = (B / W) / util,  overhead_s = 0

so ``time_s = max(compute_s, memory_s)`` still holds and the bound is the roofline's.

The pricer sees an op as its kind, its case columns (``opcases``) and one *inner* column that
varies fastest in a serving run (GEMM rows ``m``, MoE tokens, attention sequence length or
context, elementwise bytes); it may memoise everything else (AIConfigurator's slices).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.estimators import work
from llmsim.costmodel.ops import OpCost, OpKind, Precision
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import AnalyticStepTimeModel, StepCost, _AttentionPricer
from llmsim.dtypes import DType

#: the calibrated roofline's tag on ops a pricer does not cover
FALLBACK = "calibrated"
#: the case column a pricer receives as an array by default (the rest of the case is fixed per
#: op); a pricer may name another (``KernelPricer.inner_column``)
INNER = {"gemm": "m", "moe": "num_tokens", "attention-prefill": "seq_len",
         "attention-decode": "context_len", "elementwise": "bytes"}
_CASE_KIND = {OpKind.GEMM: "gemm", OpKind.MOE: "moe", OpKind.ELEMENTWISE: "elementwise",
              OpKind.EMBEDDING: "elementwise", OpKind.SAMPLING: "elementwise"}
_ATTENTION = (OpKind.ATTENTION_PREFILL, OpKind.ATTENTION_DECODE)


class CaseEvaluator(Protocol):
    """A pricer's function of one case's inner column (its fixed columns resolved once)."""

    def __call__(self, inner: np.ndarray, sol: np.ndarray) -> tuple[np.ndarray, list[str]]: ...

    def scalar(self, inner: float, sol: float) -> tuple[float, str]:
        """One value (NaN time: not covered, with the reason as tag)."""


class KernelPricer(Protocol):
    """Times of op cases from measured data or a model, for one deployment's hardware."""

    def inner_column(self, kind: str) -> str:
        """The case column this pricer interpolates along for ``kind`` (:data:`INNER`)."""

    def evaluator(self, kind: str, case: Mapping[str, object]) -> CaseEvaluator | None:
        """The case's evaluator, or None where the pricer has no data for it."""

    def times(self, kind: str, case: Mapping[str, object], inner: np.ndarray,
              sol: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Seconds for each ``inner`` value of the case (NaN: not covered) and one source tag
        per value. ``sol`` is the datasheet roofline time of each (see module docstring)."""

    def describe(self) -> dict[str, object]:
        """What data prices which op kinds (JSON-able)."""


class RepricedStepTimeModel(AnalyticStepTimeModel):
    """The calibrated step model with kernels re-priced by ``pricer`` (module docstring)."""

    def __init__(self, deployment: Deployment, pricer: KernelPricer, label: str):
        self.pricer = pricer
        self.label = label
        super().__init__(deployment)

    # ------------------------------------------------------------------ per-op repricing
    def _priced(self, ops: list[OpCost], shape: BatchShape, attention: bool = True,
                template: int | None = None) -> list[OpCost]:
        out = []
        for op in ops:
            if op.kind in _ATTENTION:
                if attention and template is not None:
                    op = self._attention_record(op, shape, template)
                out.append(op)
            elif op.kind in _CASE_KIND and op.case:
                out.append(self._reprice(op))
            else:
                out.append(_tagged(op, FALLBACK))
        return out

    def _reprice(self, op: OpCost) -> OpCost:
        if op.flops <= 0 and op.bytes <= 0:
            return _tagged(op, FALLBACK)
        kind = _CASE_KIND[op.kind]
        cols = dict(op.case)
        prec = self.precision
        if kind != "elementwise":  # the op's own formats (the LM head and router: unquantized)
            prec = Precision(DType.parse(str(cols.pop("dtype"))),
                             DType.parse(str(cols.pop("act_dtype"))), prec.kv)
        return price_case(self.pricer, kind, cols, self.cluster.hardware, prec, op)

    def _attention_record(self, op: OpCost, shape: BatchShape, template: int) -> OpCost:
        pricer = self._pricer_of(template)
        if not isinstance(pricer, _RepricedAttention):
            return _tagged(op, FALLBACK)
        part = pricer.prefill(shape) if op.kind == OpKind.ATTENTION_PREFILL \
            else pricer.decode(shape)
        if part is None:
            return _tagged(op, FALLBACK)
        t, tag, c0, m0 = part
        return _with_time(op, t, tag, c0, m0)

    def _pricer_of(self, template: int) -> _AttentionPricer | None:
        by_template = self.__dict__.get("_by_template")
        if by_template is None:
            pricers = {p.consts: p for groups in self._stage_attn for p, _ in groups}
            by_template = self._by_template = [pricers.get(c) if c is not None else None
                                               for c in self._attn]
        return by_template[template]

    # ------------------------------------------------------------------ attention
    def _attention_pricer(self, consts: tuple) -> _AttentionPricer:
        return _RepricedAttention(consts, self)

    def _decode_attention_times(self, idx: int, num_seqs: int, ctx: np.ndarray) -> np.ndarray:
        base = super()._decode_attention_times(idx, num_seqs, ctx)
        pricer = self._pricer_of(idx)
        if not isinstance(pricer, _RepricedAttention) or pricer.case is None:
            return base
        c = np.asarray(ctx, dtype=float)
        t = pricer.decode_curve(num_seqs, c)
        return np.where(np.isfinite(t), t, base)

    def describe(self) -> dict[str, object]:
        return {**self.deployment.describe(), "estimator": self.label,
                "coverage": self.pricer.describe()}


class _RepricedAttention(_AttentionPricer):
    """Attention kernels of one block priced by the model's pricer (calibrated fallback)."""

    __slots__ = ("consts", "model", "case", "_evals")

    def __init__(self, consts: tuple, model: RepricedStepTimeModel) -> None:
        super().__init__(consts, model.cluster.hardware, model.profile,
                         model.precision.activation)
        self.consts = consts
        self.model = model
        attn, heads, _, (qk_p, v_p), (qk_d, v_d) = consts
        prec = model.precision
        standard = (not attn.is_mla and not attn.sliding_window and qk_p == v_p == qk_d == v_d)
        self.case: dict[str, object] | None = None
        self._evals: dict[tuple[str, float], CaseEvaluator | None] = {}
        if standard:
            self.case = {"num_heads": heads, "num_kv_heads": model.layout.kv_heads(attn),
                         "head_dim": qk_p, "kv_dtype": prec.kv.value,
                         "act_dtype": prec.activation.value, "dtype": prec.weight.value}

    def _sol(self, flops: float, nbytes: float, peak: float) -> tuple[float, float]:
        return flops / peak, nbytes / self.hw_bw

    def _eval(self, kind: str, value: float, column: str = "batch") -> CaseEvaluator | None:
        """The pricer's evaluator with ``column`` (the fixed one of batch / length) at
        ``value``, cached."""
        key = (kind, value)
        if key not in self._evals:
            ev = self.model.pricer.evaluator(kind, {**self.case, column: value})  # type: ignore
            if len(self._evals) > 100_000:
                self._evals.clear()
            self._evals[key] = ev
        return self._evals[key]

    def prefill(self, shape: BatchShape) -> tuple[float, str, float, float] | None:
        """``(time, source, F / P, B / W)`` of the prefill chunks, None if not covered."""
        if self.case is None or not shape.prefill_tokens:
            return None
        flops, nbytes, seqs, new, ctx = self.prefill_work(shape)
        c0, m0 = self._sol(flops, nbytes, self.peak_p)
        batch, chunk = float(shape.prefill_seqs), new / seqs
        if self.model.pricer.inner_column("attention-prefill") == "batch":
            ev, inner = self._eval("attention-prefill", chunk, "seq_len"), batch
        else:
            ev, inner = self._eval("attention-prefill", batch), chunk
        if ev is None:
            return None
        t, tag = ev.scalar(inner, c0 if c0 > m0 else m0)
        if not t > 0:
            return math.nan, tag, c0, m0
        if ctx > new * (1 + 1e-9) and not tag.endswith("-extrapolated"):
            tag += "-extrapolated"  # a cached prefix: the tables time prompts without one
        return t, tag, c0, m0

    def decode(self, shape: BatchShape) -> tuple[float, str, float, float] | None:
        if self.case is None or not shape.decode_seqs or self.window:
            return None
        flops, nbytes, seqs, keys = self.decode_work(shape)
        c0, m0 = self._sol(flops, nbytes, self.peak_d)
        ev = self._eval("attention-decode", float(seqs))
        if ev is None:
            return None
        t, tag = ev.scalar(keys / seqs, c0 if c0 > m0 else m0)
        return t, tag, c0, m0

    def decode_curve(self, num_seqs: int, ctx: np.ndarray) -> np.ndarray:
        """Decode attention time at each context per sequence (NaN where not covered)."""
        if self.case is None or self.window or num_seqs <= 0:
            return np.full(ctx.shape, np.nan)
        keys = num_seqs * ctx
        sol = np.maximum(self.f_key * keys / self.peak_d,
                         (self.b_key * keys + self.b_seq * num_seqs) / self.hw_bw)
        ev = self._eval("attention-decode", float(num_seqs))
        if ev is None:
            return np.full(ctx.shape, np.nan)
        return ev(ctx, sol)[0]

    def prefill_time(self, shape: BatchShape) -> float:
        part = self.prefill(shape)
        return super().prefill_time(shape) if part is None or not part[0] > 0 else part[0]

    def decode_time(self, shape: BatchShape) -> float:
        part = self.decode(shape)
        return super().decode_time(shape) if part is None or not part[0] > 0 else part[0]


def tagged(op: OpCost, source: str = FALLBACK) -> OpCost:
    """``op`` tagged with ``source`` (the calibrated fallback by default)."""
    return _tagged(op, source)


def price_case(pricer: KernelPricer, kind: str, cols: Mapping[str, float], hw,
               precision: Precision, op: OpCost) -> OpCost:
    """One kernel case (op-case columns ``cols``) priced by ``pricer``; ``op`` is the
    calibrated record of the same case (kept, tagged, where the pricer has no data)."""
    w = work.work(kind, cols, hw, precision)
    c0, m0 = (float(x) for x in work.roofline_parts(w, hw))
    inner_col = pricer.inner_column(kind)
    if kind == "elementwise":
        inner = float(cols["bytes_read"]) + float(cols["bytes_written"])
        case = dict(cols)
    else:
        inner = float(cols[inner_col])
        case = {k: v for k, v in cols.items() if k != inner_col}
    case.update(dtype=precision.weight.value, act_dtype=precision.activation.value,
                kv_dtype=precision.kv.value)
    t, tags = pricer.times(kind, case, np.array([inner]), np.array([max(c0, m0)]))
    return _with_time(op, float(t[0]), tags[0], c0, m0)


def _tagged(op: OpCost, source: str) -> OpCost:
    """``op`` unchanged but for its source tag (an already tagged op keeps its tag)."""
    return op if op.source else dataclasses.replace(op, source=source)


def _with_time(op: OpCost, t: float, tag: str, c0: float, m0: float) -> OpCost:
    """``op`` with time ``t`` (NaN: the calibrated time stays, tagged with the pricer's reason,
    ``calibrated`` or an envelope tag)."""
    if not np.isfinite(t) or t <= 0:
        return _tagged(op, tag or FALLBACK)
    sol = max(c0, m0)
    scale = t / sol if sol > 0 else 0.0
    return op.repriced(t, c0 * scale, m0 * scale, 0.0 if sol > 0 else t, tag)


def source_shares(step: StepCost) -> dict[str, float]:
    """Fraction of a step's op time (time x count x repeat) priced by each source tag (the
    empty tag of the analytic estimators reads ``roofline``)."""
    totals: dict[str, float] = {}
    for layer in step.layers:
        for o in layer.ops:
            key = o.source or "roofline"
            totals[key] = totals.get(key, 0.0) + o.time_s * o.count * layer.repeat
    whole = sum(totals.values())
    return {k: v / whole for k, v in sorted(totals.items())} if whole > 0 else {}
