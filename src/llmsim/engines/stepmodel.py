"""``EngineStepModel``: an engine profile laid over any ``StepTimeModel`` (the one seam).

Step time with an engine (formula of :mod:`llmsim.engines.profile`)::

    step_time(shape) = max(base.step_time(shape) x f + step_overhead_s,
                           host_per_seq_s x (prefill_seqs + decode_seqs)),
        f = prefill_step_factor x (mixed_step_factor if it also has decodes, else 1)
              for a step with prompt tokens, 1 for a decode-only step

``stage_time`` scales the same way (no overhead: it is the pipeline's issue interval of
kernels), the decode curves add ``step_overhead_s`` to every step and take the host floor,
``price(shape)`` scales the breakdown's total and adds the overhead (with any wait for the
host) as its own term. The base model's kernels, GEMMs at
``m = all tokens of the step`` and prefill / decode attention over their own contexts, are
what is scaled: the factor is fitted (``scripts/fit_engine_profile.py``), never hand-set.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import StepCost, StepTimeModel
from llmsim.engines.profile import EngineProfile


class EngineStepModel:
    """``base`` priced as the engine ``profile`` runs it (see the module docstring)."""

    def __init__(self, base: StepTimeModel, profile: EngineProfile, label: str = ""):
        self.base = base
        self.profile = profile
        self.label = label
        self._over = float(profile.step_overhead_s)
        self._prefill = float(profile.prefill_step_factor)
        self._mixed = float(profile.prefill_step_factor * profile.mixed_step_factor)
        self._host = float(profile.host_per_seq_s)

    @property
    def deployment(self) -> Any:
        return self.base.deployment

    @property
    def num_stages(self) -> int:
        return self.base.num_stages

    def _factor(self, shape: BatchShape) -> float:
        if not shape.prefill_tokens:
            return 1.0
        return self._mixed if shape.decode_seqs else self._prefill

    def step_time(self, shape: BatchShape) -> float:
        t = self.base.step_time(shape)
        if t == 0.0:
            return 0.0
        if shape.prefill_tokens:
            t *= self._mixed if shape.decode_seqs else self._prefill
        t += self._over
        if self._host:
            return max(t, self._host * (shape.prefill_seqs + shape.decode_seqs))
        return t

    def stage_time(self, shape: BatchShape) -> float:
        return self.base.stage_time(shape) * self._factor(shape)

    def price(self, shape: BatchShape) -> StepCost:
        cost = self.base.price(shape)
        if shape.num_tokens == 0:
            return cost
        f = self._factor(shape)
        time_s = cost.time_s * f + self._over
        wait_s = max(0.0, self._host * (shape.prefill_seqs + shape.decode_seqs) - time_s)
        return replace(cost, time_s=time_s + wait_s, stage_time_s=cost.stage_time_s * f,
                       overhead_s=cost.overhead_s * f + self._over + wait_s)

    def decode_step_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        t = np.asarray(self.base.decode_step_times(num_seqs, context_per_seq)) + self._over
        return np.maximum(t, self._host * num_seqs) if self._host else t

    def decode_stage_times(self, num_seqs: int, context_per_seq: np.ndarray) -> np.ndarray:
        return self.base.decode_stage_times(num_seqs, context_per_seq)

    def describe(self) -> dict[str, object]:
        return {**self.base.describe(), "engine": self.label,
                "engine_profile": self.profile.describe()}
