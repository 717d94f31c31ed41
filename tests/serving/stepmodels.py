"""Tiny ``StepTimeModel`` implementations for tests (no catalog, no roofline)."""

from __future__ import annotations

import numpy as np

from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import StepCost, StepTimeModelBase


class FixedStepModel(StepTimeModelBase):
    """Constant-time steps: ``prefill_s`` if the step has any prompt tokens, else ``decode_s``
    (plus ``per_token_s`` per new token and ``per_ctx_s`` per decode key, both 0 by default).
    Implements the ``StepTimeModel`` protocol with a vectorised decode curve; no deployment
    (so no memory analysis: runs give ``kv_capacity_tokens``)."""

    def __init__(self, prefill_s: float = 0.05, decode_s: float = 0.01,
                 per_token_s: float = 0.0, per_ctx_s: float = 0.0):
        self.prefill_s, self.decode_s = prefill_s, decode_s
        self.per_token_s, self.per_ctx_s = per_token_s, per_ctx_s

    def step_time(self, shape: BatchShape) -> float:
        if shape.num_tokens == 0:
            return 0.0
        base = self.prefill_s if shape.prefill_tokens else self.decode_s
        return base + self.per_token_s * shape.num_tokens \
            + self.per_ctx_s * shape.decode_ctx_tokens

    def price(self, shape: BatchShape) -> StepCost:
        t = self.step_time(shape)
        return StepCost(t, t, (), 0.0)

    def decode_step_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        c = np.asarray(context_per_seq, dtype=float)
        return self.decode_s + self.per_token_s * num_seqs + self.per_ctx_s * num_seqs * c


class NoVectorStepModel(FixedStepModel):
    """The same with the base class's decode curve (one ``step_time`` per context)."""

    decode_step_times = StepTimeModelBase.decode_step_times
