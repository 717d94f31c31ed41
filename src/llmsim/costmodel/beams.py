"""Beam search through the one seam: every decode sequence of a step carries ``beam`` beams.

A request searching ``N`` beams prefills its prompt once; from then on each decode step
advances ``N`` sequences that share the prompt's KV and each read its whole context. The
step model prices the step the scheduler planned with its decode part widened:
``decode_seqs x N`` sequences reading ``decode_ctx_tokens x N`` keys and sampling ``N`` rows
each (prefill chunks unchanged), as ``estimate --beam`` prices its decode steps
(``batch x beam`` sequences).
"""

from __future__ import annotations

import numpy as np

from llmsim.costmodel.deployment import Deployment
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import StepCost, StepTimeModel
from llmsim.errors import ConfigError


class BeamStepModel:
    """``target`` with each decode sequence widened to ``beam`` beams (see module docstring)."""

    def __init__(self, target: StepTimeModel, beam: int):
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise ConfigError(f"--beam must be a whole number >= 1, got {beam!r}")
        self.target, self.beam = target, beam

    @property
    def deployment(self) -> Deployment | None:
        return self.target.deployment

    @property
    def num_stages(self) -> int:
        return self.target.num_stages

    def beam_shape(self, shape: BatchShape) -> BatchShape:
        """The step the hardware runs: decode sequences times ``beam``."""
        n, b = self.beam, shape.decode_seqs
        if n == 1 or not b:
            return shape
        return BatchShape(shape.prefill_seqs, shape.prefill_tokens, shape.prefill_attn_pairs,
                          shape.prefill_ctx_tokens, b * n, shape.decode_ctx_tokens * n,
                          shape.num_logits + b * (n - 1))

    def step_time(self, shape: BatchShape) -> float:
        return self.target.step_time(self.beam_shape(shape))

    def stage_time(self, shape: BatchShape) -> float:
        return self.target.stage_time(self.beam_shape(shape))

    def price(self, shape: BatchShape) -> StepCost:
        return self.target.price(self.beam_shape(shape))

    def decode_step_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        return self.target.decode_step_times(num_seqs * self.beam, context_per_seq)

    def decode_stage_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        return self.target.decode_stage_times(num_seqs * self.beam, context_per_seq)

    def describe(self) -> dict[str, object]:
        return {**self.target.describe(), "beam": self.beam}
