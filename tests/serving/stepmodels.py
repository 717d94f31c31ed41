"""Tiny ``StepTimeModel`` implementations for tests (no catalog, no roofline)."""

from __future__ import annotations

import numpy as np

from llmsim.costmodel.shapes import BatchShape


class FixedStepModel:
    """Constant-time steps: ``prefill_s`` if the step has any prompt tokens, else ``decode_s``
    (plus ``per_token_s`` per new token and ``per_ctx_s`` per decode key, both 0 by default).
    Implements the ``StepTimeModel`` protocol (and the optional vectorised decode path)."""

    num_stages = 1

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

    def stage_time(self, shape: BatchShape) -> float:
        return self.step_time(shape)

    def decode_step_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        c = np.asarray(context_per_seq, dtype=float)
        return self.decode_s + self.per_token_s * num_seqs + self.per_ctx_s * num_seqs * c


class NoVectorStepModel(FixedStepModel):
    """The same without ``decode_step_times`` (exercises the scalar fallback)."""

    decode_step_times = None  # type: ignore[assignment]
