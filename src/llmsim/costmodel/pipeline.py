"""Pipeline-parallel timing of ``m`` micro-batches over ``pp`` stages: the one place these
formulas live (``estimate``'s TTFT / TPOT and the serving simulator's steps both call them).

With ``step`` the latency of one micro-batch through every stage and ``stage`` the slowest
stage's time (``StepTimeModel.step_time`` / ``stage_time`` of the micro-batch):

    fill  = step + (m - 1) * stage         the last of m micro-batches leaves an empty pipeline
    round = max(step, m * stage)            steady state: every micro-batch advances once

(GPipe, Huang et al. 2019; the round is bound by one trip through the pipeline or by the
slowest stage serving all m micro-batches, whichever is longer.) Both accept numpy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmsim.costmodel.shapes import BatchShape


def fill_s(step_s: Any, stage_s: Any, micro_batches: int) -> Any:
    """Time until the last of ``micro_batches`` leaves a pipeline that started empty."""
    if micro_batches <= 1:
        return step_s
    return step_s + (micro_batches - 1) * stage_s


def round_s(step_s: Any, stage_s: Any, micro_batches: int) -> Any:
    """One steady-state round: every micro-batch advances one step."""
    if micro_batches <= 1:
        return step_s
    return np.maximum(step_s, micro_batches * stage_s) if isinstance(step_s, np.ndarray) \
        else max(step_s, micro_batches * stage_s)


def micro_batch_shape(shape: BatchShape, m: int) -> BatchShape:
    """The largest of ``m`` micro-batches of ``shape``: counts rounded up, the decode keys those
    of ``ceil(seqs / m)`` sequences at the mean context, prefill pairs and keys split evenly."""
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
