"""Pricing glue between the simulator and the one ``StepTimeModel`` (nothing here invents time).

**Steps.** A step's latency is ``step_time(shape)``. With ``pp`` pipeline stages the running
batch is split into ``m = min(micro_batches, sequences)`` micro-batches in flight; one engine
iteration (every sequence of the step advances once) then takes the steady-state round of
``costmodel.pipeline`` (``max(step, m x stage)`` of the largest micro-batch); a prefill that
starts with the pipeline empty (nothing decoding) pays the fill instead
(``step + (m - 1) x stage``), as ``llmsim estimate``'s TTFT does.

**Decode runs** are priced in closed form from a tabulated decode curve per batch size
(:mod:`llmsim.serving.decoderuns`); with PP the curve tabulates the round time itself,
``max(step_time(mb), m * stage_time(mb))``, of the largest micro-batch at each context.

**Swap** (preemption by swapping KV to host): one host-link copy of ``tokens *
kv_bytes_per_token`` bytes per device (``costmodel.host.transfer_time_s``), all devices of the
replica in parallel over their own PCIe links.

**Work** (for MFU / MBU): FLOPs and bytes of a step are a linear function of the step's
aggregates (tokens, sampled rows, prefill attention pairs, keys read); the coefficients are
fitted by least squares to ``price(shape).flops / .bytes`` of probe shapes (exact for dense
models; MoE's expert-touch curve and sliding windows are approximated).
"""

from __future__ import annotations

import numpy as np

from llmsim.costmodel import host, pipeline
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import StepTimeModel
from llmsim.serving.decoderuns import DecodeCurve, LinearRun, PiecewiseRun


class StepPricer:
    """Prices steps, decode runs and swaps for one replica through its ``StepTimeModel``."""

    def __init__(self, step_model: StepTimeModel, max_context_tokens: int,
                 micro_batches: int = 1, kv_bytes_per_token: float = 0.0,
                 host_bandwidth_bytes_per_s: float = 0.0, host_latency_s: float = 0.0):
        self.model = step_model
        self.max_context = max(int(max_context_tokens), 2)
        self.micro = max(int(micro_batches), 1)
        self.kv_bytes_per_token = kv_bytes_per_token
        self.host_bw = host_bandwidth_bytes_per_s
        self.host_latency_s = host_latency_s
        self._curves: dict[int, DecodeCurve] = {}
        self._pp_curves: dict[tuple[int, int], DecodeCurve] = {}
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
        mb = pipeline.micro_batch_shape(shape, m)
        step, stage = self.model.step_time(mb), self.model.stage_time(mb)
        return pipeline.fill_s(step, stage, m) if fill else pipeline.round_s(step, stage, m)

    def swap_s(self, tokens: int) -> float:
        """Moving ``tokens`` tokens' KV between device and host (``costmodel.host``)."""
        if tokens <= 0 or self.host_bw <= 0:
            return 0.0
        return host.transfer_time_s(tokens * self.kv_bytes_per_token, self.host_bw,
                                    latency_s=self.host_latency_s)

    # ------------------------------------------------------------------ decode runs
    def _decode_times(self, seqs: int, ctx_per_seq: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.decode_step_times(seqs, ctx_per_seq), dtype=np.float64)

    def curve(self, seqs: int) -> DecodeCurve:
        c = self._curves.get(seqs)
        if c is None:
            c = DecodeCurve(self._decode_times, seqs, self.max_context)
            self._curves[seqs] = c
        return c

    def _round_times(self, m: int, seqs: int, ctx_per_seq: np.ndarray) -> np.ndarray:
        """Steady-state PP round times of ``m`` micro-batches of ``seqs`` sequences each:
        ``max(step_time(mb), m * stage_time(mb))`` at every context (as :meth:`step_s`)."""
        step = self._decode_times(seqs, ctx_per_seq)
        stage = np.asarray(self.model.decode_stage_times(seqs, ctx_per_seq),
                           dtype=np.float64).max(axis=0)
        return pipeline.round_s(step, stage, m)

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

    def __init__(self, step_model: StepTimeModel, max_tokens: int, max_seqs: int,
                 max_context: int):
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
