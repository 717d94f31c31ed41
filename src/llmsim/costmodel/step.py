"""The one seam: ``StepTimeModel`` prices a batch shape. Nothing else in llmsim computes time.

:class:`AnalyticStepTimeModel` builds per-device op lists for every layer template (see
``layers.py``), prices them with the calibrated roofline, and sums per pipeline stage:

    stage_time = sum over its layers of sum(op.time_s)
    step latency = sum(stage times) + (pp - 1) * p2p + step_overhead_s
    issue interval (throughput with pp micro-batches in flight) = max(stage times)

For speed (simulators call it per step) everything except the attention kernels depends only on
``(num_tokens, num_logits)`` and is memoised; attention is recomputed from the shape's running
aggregates in O(templates). ``price(shape)`` returns the full per-layer, per-op breakdown and
always agrees with ``step_time(shape)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from llmsim.costmodel import kernels
from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.layers import (
    Layout,
    _windowed_prefill,
    embedding_ops,
    lm_head_ops,
    stage_p2p,
    template_ops,
    windowed_decode,
)
from llmsim.costmodel.ops import Bound, OpCost, OpKind
from llmsim.costmodel.profile import HardwareProfile
from llmsim.costmodel.shapes import BatchShape

_ATTENTION_KINDS = (OpKind.ATTENTION_PREFILL, OpKind.ATTENTION_DECODE)


@dataclass(frozen=True)
class LayerRecord:
    """One layer (or embedding / LM head / stage send) of one stage, per single instance."""

    name: str
    kind: str
    stage: int
    repeat: int
    ops: tuple[OpCost, ...]

    def _sum(self, attr: str) -> float:
        return sum(getattr(o, attr) * o.count for o in self.ops)

    @property
    def time_s(self) -> float:
        return self._sum("time_s")

    @property
    def flops(self) -> float:
        return self._sum("flops")

    @property
    def bytes(self) -> float:
        return sum(o.bytes * o.count for o in self.ops)

    @property
    def compute_s(self) -> float:
        return self._sum("compute_s")

    @property
    def memory_s(self) -> float:
        return self._sum("memory_s")

    @property
    def comm_s(self) -> float:
        return self._sum("comm_s")

    @property
    def overhead_s(self) -> float:
        return self._sum("overhead_s")

    @property
    def dominant_s(self) -> float:
        """The op-by-op bounding time (compute or memory or comm, whichever each op is)."""
        return self.time_s - self.overhead_s

    @property
    def bound(self) -> Bound:
        """Which resource bounds most of this layer's time."""
        totals: dict[Bound, float] = {}
        for o in self.ops:
            totals[o.bound] = totals.get(o.bound, 0.0) + o.time_s * o.count
        return max(totals, key=totals.get) if totals else Bound.OVERHEAD  # type: ignore[arg-type]

    def as_dict(self, with_ops: bool = True) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name, "type": self.kind, "stage": self.stage, "repeat": self.repeat,
            "time_s": self.time_s, "flops": self.flops, "bytes": self.bytes,
            "compute_s": self.compute_s, "memory_s": self.memory_s, "comm_s": self.comm_s,
            "overhead_s": self.overhead_s, "dominant_s": self.dominant_s,
            "bound": self.bound.value,
        }
        if with_ops:
            out["ops"] = [o.as_dict() for o in self.ops]
        return out


@dataclass(frozen=True)
class StepCost:
    """The priced step: latency, issue interval and the breakdown."""

    time_s: float
    stage_time_s: float
    layers: tuple[LayerRecord, ...]
    overhead_s: float

    def _total(self, attr: str) -> float:
        return sum(getattr(layer, attr) * layer.repeat for layer in self.layers)

    @property
    def flops(self) -> float:
        return self._total("flops")

    @property
    def bytes(self) -> float:
        return self._total("bytes")

    @property
    def compute_s(self) -> float:
        return self._total("compute_s")

    @property
    def memory_s(self) -> float:
        return self._total("memory_s")

    @property
    def comm_s(self) -> float:
        return self._total("comm_s")

    @property
    def bottleneck(self) -> LayerRecord:
        """The layer (template) that takes the most time in total (time x repeat)."""
        return max(self.layers, key=lambda r: r.time_s * r.repeat)

    def ops_by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for layer in self.layers:
            for o in layer.ops:
                out[o.kind.value] = out.get(o.kind.value, 0.0) + o.time_s * o.count * layer.repeat
        return out


@runtime_checkable
class StepTimeModel(Protocol):
    """Price a batch shape: the one seam every front end calls (estimators implement it).

    ``deployment`` is what is priced (``None`` only for synthetic timing models in tests, which
    then have no memory analysis). ``price(s).time_s == step_time(s)``; the decode curves are
    the vectorised ``step_time`` / per-stage times of decode steps at many contexts (the
    simulator's closed-form runs tabulate them).
    """

    @property
    def deployment(self) -> Deployment | None: ...

    @property
    def num_stages(self) -> int: ...

    def step_time(self, shape: BatchShape) -> float:
        """Latency of one step through all pipeline stages, seconds."""

    def stage_time(self, shape: BatchShape) -> float:
        """Slowest stage: the interval between micro-batches with the pipeline full."""

    def price(self, shape: BatchShape) -> StepCost:
        """Full breakdown; ``price(s).time_s == step_time(s)``."""

    def decode_step_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        """``step_time(BatchShape.decode(num_seqs, c))`` for every context ``c``."""

    def decode_stage_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        """Per-stage times ``[num_stages, len(contexts)]`` of those decode steps."""

    def describe(self) -> dict[str, object]:
        """What is priced and how (JSON-able), for reports."""


class StepTimeModelBase:
    """Defaults for an estimator that implements ``step_time``, ``stage_time`` and ``price``:
    decode curves priced one context at a time, one stage, the deployment's description."""

    deployment: Deployment | None = None

    @property
    def num_stages(self) -> int:
        return self.deployment.plan.pp if self.deployment is not None else 1

    def step_time(self, shape: BatchShape) -> float:
        raise NotImplementedError(f"{type(self).__name__} must price steps (step_time)")

    def stage_time(self, shape: BatchShape) -> float:
        if self.num_stages == 1:
            return self.step_time(shape)
        raise NotImplementedError(f"{type(self).__name__} has {self.num_stages} stages: it "
                                  "must price the slowest one (stage_time)")

    def decode_step_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        return np.array([self.step_time(BatchShape.decode(num_seqs, float(c)))
                         for c in np.asarray(context_per_seq, dtype=float)])

    def decode_stage_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        return np.array([[self.stage_time(BatchShape.decode(num_seqs, float(c)))
                          for c in np.asarray(context_per_seq, dtype=float)]])

    def describe(self) -> dict[str, object]:
        return self.deployment.describe() if self.deployment is not None else {}


class AnalyticStepTimeModel:
    """Roofline-with-calibration estimator over the model's per-device op lists."""

    def __init__(self, deployment: Deployment):
        self.deployment = deployment
        model, cluster, plan, precision = (deployment.model, deployment.cluster,
                                           deployment.plan, deployment.precision)
        prof = deployment.hardware_profile
        self.model, self.cluster, self.plan, self.precision = model, cluster, plan, precision
        self.profile: HardwareProfile = prof
        self.layout = Layout(model, cluster, plan, precision, prof)
        self._stages = plan.stage_layers(model)
        self._dense_cache: dict[int, tuple[float, ...]] = {}
        self._lm_cache: dict[int, float] = {}
        self._p2p_cache: dict[int, float] = {}
        # attention constants per template; per stage, identical attention blocks are grouped
        # so a step prices each distinct attention shape once: [(consts, layer count), ...]
        self._attn: list[tuple | None] = []
        for template in model.layers:
            attn = template.attention
            self._attn.append(None if attn is None else (
                attn, self.layout.heads(attn), self.layout.kv_bytes_per_token(attn),
                self.layout.attention_dims(attn, decode=False),
                self.layout.attention_dims(attn, decode=True),
            ))
        self._stage_attn: list[list[tuple[_AttentionPricer, int]]] = []
        pricers: dict[tuple, _AttentionPricer] = {}
        for counts in self._stages:
            groups: dict[_AttentionPricer, int] = {}
            for idx, count in counts:
                consts = self._attn[idx]
                if consts is None:
                    continue
                pricer = pricers.get(consts)
                if pricer is None:
                    pricer = pricers[consts] = self._attention_pricer(consts)
                groups[pricer] = groups.get(pricer, 0) + count
            self._stage_attn.append(list(groups.items()))
        # validate dtype support once, early, with a clear message
        hw = cluster.hardware
        kernels.gemm(1, 1, 1, hw, prof, precision.weight, precision.activation)

    @property
    def num_stages(self) -> int:
        return self.plan.pp

    # ------------------------------------------------------------------ estimator hooks
    # Another estimator (``costmodel/estimators``) subclasses this model and re-prices ops
    # through these three hooks; here they are the calibrated roofline as built.
    def _attention_pricer(self, consts: tuple) -> _AttentionPricer:
        """The attention-kernel pricer of one attention block's constants (``self._attn``)."""
        return _AttentionPricer(consts, self.cluster.hardware, self.profile,
                                self.precision.activation)

    def _priced(self, ops: list[OpCost], shape: BatchShape, attention: bool = True,
                template: int | None = None) -> list[OpCost]:
        """The ops of one layer (of layer template ``template``; None: embedding / LM head) as
        this estimator prices them (``attention``: also re-price the attention kernels; the
        memoised dense path leaves them out)."""
        return ops

    def _decode_attention_times(self, idx: int, num_seqs: int, ctx: np.ndarray) -> np.ndarray:
        """Attention-kernel time of template ``idx``'s attention in decode steps of
        ``num_seqs`` sequences at each context ``ctx`` (vectorised)."""
        attn, heads, kv_bpt, _, (qk_d, v_d) = self._attn[idx]
        c = np.minimum(ctx, attn.sliding_window) if attn.sliding_window else ctx
        return kernels.attention_decode_time(num_seqs, num_seqs * c, heads, kv_bpt, qk_d, v_d,
                                             self.cluster.hardware, self.profile,
                                             self.precision.activation)[0]

    # ------------------------------------------------------------------ full breakdown
    def price(self, shape: BatchShape) -> StepCost:
        layers: list[LayerRecord] = []
        last = self.plan.pp - 1
        stage_times = []
        for s, counts in enumerate(self._stages):
            stage_layers: list[LayerRecord] = []
            if s == 0:
                stage_layers.append(LayerRecord("embedding", "embedding", s, 1, tuple(
                    self._priced(embedding_ops(shape, self.layout), shape))))
            for idx, count in counts:
                template = self.model.layers[idx]
                stage_layers.append(LayerRecord(template.name, "decoder", s, count, tuple(
                    self._priced(template_ops(idx, shape, self.layout), shape, True, idx))))
            if s == last:
                stage_layers.append(LayerRecord("lm_head", "lm_head", s, 1, tuple(
                    self._priced(lm_head_ops(shape, self.layout), shape))))
            stage_times.append(sum(r.time_s * r.repeat for r in stage_layers))
            layers += stage_layers
            if s < last:
                layers.append(LayerRecord("pp_send", "comm", s, 1,
                                          (stage_p2p(shape, self.layout),)))
        p2p = (self.plan.pp - 1) * self._p2p(shape.num_tokens)
        overhead = self.profile.step_overhead_s
        return StepCost(sum(stage_times) + p2p + overhead, max(stage_times), tuple(layers),
                        overhead)

    # ------------------------------------------------------------------ fast path
    def _dense(self, num_tokens: int) -> tuple[float, ...]:
        """Per-stage time of everything that depends only on the token count (all ops but the
        attention kernels and the LM head's sampled rows), memoised by token count."""
        hit = self._dense_cache.get(num_tokens)
        if hit is not None:
            return hit
        probe = BatchShape(decode_seqs=num_tokens, logits_seqs=0)
        last = self.plan.pp - 1
        out = []
        for s, counts in enumerate(self._stages):
            total = 0.0
            if s == 0:
                total += _time(self._priced(embedding_ops(probe, self.layout), probe, False))
            for idx, count in counts:
                ops = self._priced(template_ops(idx, probe, self.layout), probe, False, idx)
                total += count * sum(o.time_s * o.count for o in ops
                                     if o.kind not in _ATTENTION_KINDS)
            if s == last:  # the final norm (no sampled rows: the LM head is priced apart)
                total += _time(self._priced(lm_head_ops(probe, self.layout), probe, False))
            out.append(total)
        result = tuple(out)
        if len(self._dense_cache) < 200_000:
            self._dense_cache[num_tokens] = result
        return result

    def _lm_head(self, num_logits: int) -> float:
        """LM head GEMM, logits gather and sampling of ``num_logits`` rows, memoised."""
        hit = self._lm_cache.get(num_logits)
        if hit is None:
            shape = BatchShape(logits_seqs=num_logits)
            hit = _time(self._priced(lm_head_ops(shape, self.layout), shape, False))
            self._lm_cache[num_logits] = hit
        return hit

    def _p2p(self, num_tokens: int) -> float:
        if self.plan.pp == 1:
            return 0.0
        t = self._p2p_cache.get(num_tokens)
        if t is None:
            t = stage_p2p(BatchShape(decode_seqs=num_tokens), self.layout).time_s
            self._p2p_cache[num_tokens] = t
        return t

    def _stage_times(self, shape: BatchShape) -> list[float]:
        dense = self._dense(shape.num_tokens)
        times = []
        for s, groups in enumerate(self._stage_attn):
            total = dense[s]
            for pricer, count in groups:
                total += count * pricer.time(shape)
            times.append(total)
        times[-1] += self._lm_head(shape.num_logits)
        return times

    def step_time(self, shape: BatchShape) -> float:
        t = shape.num_tokens
        if t == 0:
            return 0.0
        if self.plan.pp == 1:
            total = self._dense(t)[0] + self._lm_head(shape.num_logits)
            for pricer, count in self._stage_attn[0]:
                total += count * pricer.time(shape)
            return total + self.profile.step_overhead_s
        times = self._stage_times(shape)
        return sum(times) + (self.plan.pp - 1) * self._p2p(t) + self.profile.step_overhead_s

    def stage_time(self, shape: BatchShape) -> float:
        if shape.num_tokens == 0:
            return 0.0
        return max(self._stage_times(shape))

    def decode_stage_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        """Per-stage times ``[pp, len(context)]`` of decode steps of ``num_seqs`` sequences at
        each context length given (vectorised; row ``s`` is stage ``s``, the LM head on the
        last stage; no p2p or step overhead)."""
        ctx = np.asarray(context_per_seq, dtype=float)
        dense = self._dense(num_seqs)
        out = np.empty((self.plan.pp, ctx.size))
        for s, counts in enumerate(self._stages):
            total = np.full(ctx.size, dense[s])
            for idx, count in counts:
                if self._attn[idx] is None:
                    continue
                total = total + count * self._decode_attention_times(idx, num_seqs, ctx)
            out[s] = total
        out[-1] += self._lm_head(num_seqs)
        return out

    def decode_step_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        """Latencies of decode steps of ``num_seqs`` sequences at each context length given
        (vectorised; equals ``step_time(BatchShape.decode(num_seqs, c))`` for each ``c``)."""
        stages = self.decode_stage_times(num_seqs, context_per_seq)
        return (stages.sum(axis=0) + (self.plan.pp - 1) * self._p2p(num_seqs)
                + self.profile.step_overhead_s)

    def describe(self) -> dict[str, object]:
        return self.deployment.describe()


def _time(ops: list[OpCost]) -> float:
    return sum(o.time_s * o.count for o in ops)


class _AttentionPricer:
    """Attention-kernel time of one layer from a shape's running sums, without op records.

    The ``kernels.attention_*_work`` formulas are linear in their aggregate inputs (FLOPs in the
    causal pairs / keys, bytes in new tokens, keys and sequences); their coefficients are read
    once by probing those functions (so the formulas stay in ``kernels.py``), checked at one
    more point, and each step evaluates ``kernels.kernel_time`` on the sums: the same numbers
    ``price()`` gets through ``attention_ops`` (a test checks the two agree).
    """

    __slots__ = ("attn", "window", "hw_bw", "eff_p", "eff_d", "peak_p", "peak_d", "k_p", "k_d",
                 "f_pair", "r_new", "w_new", "r_ctx", "f_key", "b_key", "b_seq", "rows_per_seq",
                 "rho_p", "causal_p", "rho_d")

    def __init__(self, consts: tuple, hw, prof: HardwareProfile, act) -> None:
        attn, heads, kv_bpt, (qk_p, v_p), (qk_d, v_d) = consts
        self.attn = attn
        self.window = attn.sliding_window
        self.hw_bw = hw.memory_bandwidth_bytes_per_s
        self.eff_p = prof.kernel("attention_prefill")
        self.eff_d = prof.kernel("attention_decode")

        def pre(seqs, new, pairs, ctx):
            return kernels.attention_prefill_work(seqs, new, pairs, ctx, heads, kv_bpt, qk_p,
                                                  v_p, hw, act)

        def dec(seqs, keys):
            return kernels.attention_decode_work(seqs, keys, heads, kv_bpt, qk_d, v_d, hw, act)

        pair, new, ctx = pre(1, 0, 1, 0), pre(1, 1, 0, 0), pre(1, 0, 0, 1)
        self.peak_p, self.k_p = pair.peak_flops_per_s, pair.k
        self.rho_p, self.causal_p = pair.ramp_rho, pair.causal
        self.f_pair, self.r_new, self.w_new = pair.flops, new.bytes_read, new.bytes_written
        self.r_ctx = ctx.bytes_read
        key, seq = dec(0, 1), dec(1, 0)
        self.peak_d, self.k_d = key.peak_flops_per_s, key.k
        self.f_key, self.b_key, self.b_seq = key.flops, key.bytes, seq.bytes
        self.rows_per_seq = seq.m
        self.rho_d = key.ramp_rho  # the decode ramp's floors are in units of sequences
        # the linearity the sums rely on, checked once at another point
        p, d = pre(3, 5, 7, 11), dec(3, 11)
        assert abs(p.flops - 7 * self.f_pair) <= 1e-9 * p.flops
        assert abs(p.bytes - 5 * (self.r_new + self.w_new) - 11 * self.r_ctx) <= 1e-9 * p.bytes
        assert abs(d.bytes - 11 * self.b_key - 3 * self.b_seq) <= 1e-9 * d.bytes

    def prefill_work(self, shape: BatchShape) -> tuple[float, float, float, float, float]:
        """``(flops, bytes, sequences, new tokens, keys read)`` of the prefill chunks."""
        pairs, ctx = _windowed_prefill(self.attn, shape)
        new = shape.prefill_tokens
        return (self.f_pair * pairs, (self.r_new + self.w_new) * new + self.r_ctx * ctx,
                shape.prefill_seqs or 1e-9, new, ctx)

    def decode_work(self, shape: BatchShape) -> tuple[float, float, int, float]:
        """``(flops, bytes, sequences, keys)`` of the decode sequences."""
        seqs = shape.decode_seqs
        keys = shape.decode_ctx_tokens if not self.window else windowed_decode(self.attn, shape)
        return self.f_key * keys, self.b_key * keys + self.b_seq * seqs, seqs, keys

    def prefill_time(self, shape: BatchShape) -> float:
        flops, nbytes, seqs, new, ctx = self.prefill_work(shape)
        return kernels.kernel_time(flops, nbytes, self.peak_p, self.hw_bw, self.eff_p,
                                   new / seqs, ctx / seqs, self.k_p, self.rho_p, 1.0,
                                   self.causal_p)[0]

    def decode_time(self, shape: BatchShape) -> float:
        flops, nbytes, seqs, keys = self.decode_work(shape)
        return kernels.kernel_time(flops, nbytes, self.peak_d, self.hw_bw, self.eff_d,
                                   float(seqs) * self.rows_per_seq, keys / seqs, self.k_d,
                                   self.rho_d, float(seqs))[0]

    def time(self, shape: BatchShape) -> float:
        t = 0.0
        if shape.prefill_tokens:
            t += self.prefill_time(shape)
        if shape.decode_seqs:
            t += self.decode_time(shape)
        return t

