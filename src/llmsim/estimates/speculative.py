"""``estimate`` with speculative decoding: TTFT, TPOT and the verification-step ITL of a static
batch whose decode steps speculate (``costmodel.speculative``).

With ``m = E[tokens per step]`` (``expected_tokens_per_step``) the ``output - 1`` tokens after
the first take ``S = (output - 1) / m`` verification steps in expectation, step ``j`` at
``prompt + 1 + j m`` keys per sequence; each costs the draft pass plus the target's
``(k + 1)``-token step (``SpeculativeStepModel.step_time``). Then

    ITL (per verification step, as engines report it) = mean step time over the S steps
    TPOT = S x ITL / (output - 1) = ITL / m;   TTFT = target prefill + proposer prefill

and the speed-up is the same batch's TPOT without speculation over TPOT with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmsim.costmodel import BatchShape, StepTimeModel
from llmsim.costmodel.speculative import SpeculativeStepModel

_MAX_PRICED_STEPS = 4096


@dataclass(frozen=True)
class SpeculativeDecode:
    """The decode phase of a speculating static batch (times in seconds)."""

    tpot_s: float
    itl_s: float
    steps: float
    verify_shape: BatchShape
    baseline_tpot_s: float

    @property
    def speedup(self) -> float:
        return self.baseline_tpot_s / self.tpot_s if self.tpot_s > 0 else math.nan


def verification_contexts(prompt: int, decode_tokens: int, tokens_per_step: float
                          ) -> np.ndarray:
    """Keys per sequence at each of the ``ceil(decode_tokens / m)`` verification steps
    (an even sample when there are more than a few thousand)."""
    steps = max(math.ceil(decode_tokens / tokens_per_step), 1)
    j = np.arange(steps, dtype=float) if steps <= _MAX_PRICED_STEPS else np.linspace(
        0, steps - 1, _MAX_PRICED_STEPS)
    return prompt + 1 + j * tokens_per_step


def speculative_decode(base: StepTimeModel, spec_model: SpeculativeStepModel, seqs: int,
                       prompt: int, decode_tokens: int,
                       baseline_contexts: np.ndarray) -> SpeculativeDecode:
    """TPOT / ITL of ``decode_tokens`` tokens after the first (see the module docstring);
    ``baseline_contexts``: the contexts ``estimate`` prices plain decode steps at."""
    m = spec_model.spec.expected_tokens_per_step
    ctx = verification_contexts(prompt, decode_tokens, m)
    itl = float(np.mean(spec_model.decode_step_times(seqs, ctx)))
    steps = decode_tokens / m
    baseline = float(np.mean(base.decode_step_times(seqs, baseline_contexts)))
    mid = BatchShape.decode(seqs, float(ctx[len(ctx) // 2]))
    return SpeculativeDecode(steps * itl / decode_tokens, itl, steps, mid, baseline)
