"""Pricing glue between the simulator and the one ``StepTimeModel`` (nothing here invents time).

**Steps.** A step's latency is ``step_time(shape)``. With ``pp`` pipeline stages the running
batch is split into ``m = min(micro_batches, sequences)`` micro-batches in flight; one engine
iteration (every sequence of the step advances once) then takes

    round = max(step_time(shape / m), m * stage_time(shape / m))

(latency bound by the full step through all stages, throughput by the slowest stage); a
prefill that starts with the pipeline empty (nothing decoding) pays the fill instead,
``step_time(shape / m) + (m - 1) * stage_time(shape / m)``, as ``llmsim estimate``'s TTFT does.

**Decode runs** are priced in closed form from a tabulated decode curve per batch size
(:mod:`llmsim.serving.decoderuns`); with PP the curve tabulates the round time itself,
``max(step_time(mb), m * stage_time(mb))``, of the largest micro-batch at each context.

**Swap** (preemption by swapping KV to host): ``tokens * kv_bytes_per_token / host_bandwidth +
latency`` per device, all devices of the replica in parallel over their own PCIe links.

**Work** (for MFU / MBU): FLOPs and bytes of a step are a linear function of the step's
aggregates (tokens, sampled rows, prefill attention pairs, keys read); the coefficients are
fitted by least squares to ``price(shape).flops / .bytes`` of probe shapes (exact for dense
models; MoE's expert-touch curve and sliding windows are approximated).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmsim.costmodel.shapes import BatchShape
from llmsim.serving.decoderuns import DecodeCurve, LinearRun, PiecewiseRun


def scale_shape(shape: BatchShape, m: int) -> BatchShape:
    """The largest of ``m`` micro-batches of ``shape``: counts rounded up, the decode keys those
    of ``ceil(seqs / m)`` sequences at the mean context (as the closed-form decode runs price a
    micro-batch), prefill pairs and keys split evenly."""
    if m <= 1:
        return shape
    dseqs = -(-shape.decode_seqs // m)
    dctx = shape.decode_ctx_tokens / shape.decode_seqs * dseqs if shape.decode_seqs else 0.0
    return BatchShape(
        prefill_seqs=-(-shape.prefill_seqs // m), prefill_tokens=-(-shape.prefill_tokens // m),
        prefill_attn_pairs=shape.prefill_attn_pairs / m,
        prefill_ctx_tokens=shape.prefill_ctx_tokens / m,
        decode_seqs=dseqs, decode_ctx_tokens=dctx,
        logits_seqs=-(-shape.num_logits // m),
    )


class StepPricer:
    """Prices steps, decode runs and swaps for one replica through its ``StepTimeModel``."""

    def __init__(self, step_model: Any, max_context_tokens: int, micro_batches: int = 1,
                 kv_bytes_per_token: float = 0.0, host_bandwidth_bytes_per_s: float = 0.0,
                 host_latency_s: float = 0.0):
        self.model = step_model
        self.max_context = max(int(max_context_tokens), 2)
        self.micro = max(int(micro_batches), 1)
        self.kv_bytes_per_token = kv_bytes_per_token
        self.host_bw = host_bandwidth_bytes_per_s
        self.host_latency_s = host_latency_s
        self._curves: dict[int, DecodeCurve] = {}
        self._pp_curves: dict[tuple[int, int], DecodeCurve] = {}
        self._vector = getattr(step_model, "decode_step_times", None)
        self._stages = getattr(step_model, "decode_stage_times", None)
        self.num_priced = 0

    # ------------------------------------------------------------------ single steps
    def step_s(self, shape: BatchShape, num_seqs: int, fill: bool = False) -> float:
        """One engine round of ``shape``. With PP and ``fill`` (the pipeline starts empty: a
        prefill with nothing decoding) the last micro-batch leaves after
        ``step_time(mb) + (m - 1) * stage_time(mb)``; in steady state a round takes
        ``max(step_time(mb), m * stage_time(mb))``."""
        self.num_priced += 1
        m = min(self.micro, num_seqs)
        if m <= 1:
            return self.model.step_time(shape)
        mb = scale_shape(shape, m)
        if fill:
            return self.model.step_time(mb) + (m - 1) * self.model.stage_time(mb)
        return max(self.model.step_time(mb), m * self.model.stage_time(mb))

    def swap_s(self, tokens: int) -> float:
        if tokens <= 0 or self.host_bw <= 0:
            return 0.0
        return tokens * self.kv_bytes_per_token / self.host_bw + self.host_latency_s

    # ------------------------------------------------------------------ decode runs
    def _decode_times(self, seqs: int, ctx_per_seq: np.ndarray) -> np.ndarray:
        if self._vector is not None:
            return np.asarray(self._vector(seqs, ctx_per_seq), dtype=np.float64)
        st = self.model.step_time
        return np.array([st(BatchShape.decode(seqs, float(c))) for c in ctx_per_seq])

    def curve(self, seqs: int) -> DecodeCurve:
        c = self._curves.get(seqs)
        if c is None:
            c = DecodeCurve(self._decode_times, seqs, self.max_context)
            self._curves[seqs] = c
        return c

    def _round_times(self, m: int, seqs: int, ctx_per_seq: np.ndarray) -> np.ndarray:
        """Steady-state PP round times of ``m`` micro-batches of ``seqs`` sequences each:
        ``max(step_time(mb), m * stage_time(mb))`` at every context (as :meth:`step_s`)."""
        if self._stages is not None:
            step = self._decode_times(seqs, ctx_per_seq)
            stage = np.asarray(self._stages(seqs, ctx_per_seq), dtype=np.float64).max(axis=0)
            return np.maximum(step, m * stage)
        mt = self.model
        return np.array([max(mt.step_time(s), m * mt.stage_time(s))
                         for s in (BatchShape.decode(seqs, float(c)) for c in ctx_per_seq)])

    def pp_curve(self, m: int, seqs: int) -> DecodeCurve:
        """The decode curve of a PP round of ``m`` micro-batches of ``seqs`` sequences."""
        c = self._pp_curves.get((m, seqs))
        if c is None:
            c = DecodeCurve(lambda s, x: self._round_times(m, s, x), seqs, self.max_context)
            self._pp_curves[(m, seqs)] = c
        return c

    def decode_run(self, seqs: int, ctx_total: float, max_steps: int) -> LinearRun | PiecewiseRun:
        """A run of up to ``max_steps`` decode steps of ``seqs`` sequences whose total context
        (keys read, incl. the new token) is ``ctx_total`` at the first step; the context per
        sequence grows by one per step."""
        if self.micro > 1:
            m = min(self.micro, seqs)
            if m > 1:
                return self.pp_curve(m, -(-seqs // m)).run(ctx_total / seqs, max_steps)
        curve = self._curves.get(seqs)
        if curve is None:
            curve = self.curve(seqs)
        return curve.run(ctx_total / seqs, max_steps)


class WorkFit:
    """Linear fit of a step's FLOPs and bytes (per device, summed over stages) to its
    aggregates ``[1, tokens, logits, prefill pairs, prefill keys, decode keys]``."""

    def __init__(self, step_model: Any, max_tokens: int, max_seqs: int, max_context: int):
        self.ok = hasattr(step_model, "price")
        self.flops_coef = np.zeros(6)
        self.bytes_coef = np.zeros(6)
        if not self.ok:
            return
        rows, flops, nbytes = [], [], []
        ctx = max(min(max_context, 4096), 64)
        probes = []
        for b in (1, 8, max(max_seqs, 16)):
            for c in (64, ctx):
                probes.append(BatchShape.decode(b, float(c)))
        for p in (32, 512, max(max_tokens, 1024)):
            for past in (0, 1024):
                probes.append(BatchShape.prefill(1, p, past))
        probes.append(BatchShape.prefill(2, 256) + BatchShape.decode(16, 2000.0))
        for s in probes:
            cost = step_model.price(s)
            rows.append(self.features(s))
            flops.append(cost.flops)
            nbytes.append(cost.bytes)
        x = np.array(rows)
        self.flops_coef = np.linalg.lstsq(x, np.array(flops), rcond=None)[0]
        self.bytes_coef = np.linalg.lstsq(x, np.array(nbytes), rcond=None)[0]

    @staticmethod
    def features(s: BatchShape) -> list[float]:
        return [1.0, float(s.num_tokens), float(s.num_logits), s.prefill_attn_pairs,
                s.prefill_ctx_tokens, s.decode_ctx_tokens]

    def totals(self, sums: np.ndarray) -> tuple[float, float]:
        """(FLOPs, bytes) of all steps given the summed feature vector."""
        return float(self.flops_coef @ sums), float(self.bytes_coef @ sums)
