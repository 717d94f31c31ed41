"""Batch shapes: what one engine step asks the hardware to do, as running aggregates.

A step hands out tokens to sequences (vLLM v1 style: no separate prefill/decode modes). The
cost of a step depends only on these sums, so a simulator can keep them up to date in O(1):

- ``prefill_tokens``: new prompt tokens in this step (chunks), over ``prefill_seqs`` sequences;
- ``prefill_attn_pairs``: causal (query, key) pairs of those chunks: for a chunk of ``c`` tokens
  after ``p`` cached tokens, ``c * p + c * (c + 1) / 2``;
- ``prefill_ctx_tokens``: keys those chunks read: ``sum(p + c)``;
- ``decode_seqs`` sequences each adding one token, attending to ``decode_ctx_tokens`` keys in all;
- ``logits_seqs``: sequences that sample a token this step (defaults to decode seqs plus the
  prefill chunks that finish their prompt).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from llmsim.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BatchShape:
    prefill_seqs: int = 0
    prefill_tokens: int = 0
    prefill_attn_pairs: float = 0.0
    prefill_ctx_tokens: float = 0.0
    decode_seqs: int = 0
    decode_ctx_tokens: float = 0.0
    logits_seqs: int = -1

    @property
    def num_tokens(self) -> int:
        """New tokens processed by the step (rows of every GEMM)."""
        return self.prefill_tokens + self.decode_seqs

    @property
    def num_logits(self) -> int:
        return self.logits_seqs if self.logits_seqs >= 0 else self.decode_seqs + self.prefill_seqs

    @staticmethod
    def chunk_pairs(chunk: int, past: int) -> float:
        """Causal (query, key) pairs of a chunk of ``chunk`` tokens after ``past`` cached ones."""
        return chunk * past + chunk * (chunk + 1) / 2.0

    @classmethod
    def prefill(cls, batch: int, prompt: int, past: int = 0) -> BatchShape:
        """``batch`` sequences each prefilling ``prompt`` tokens after ``past`` cached tokens."""
        _counts(("batch", batch, 1), ("prompt", prompt, 1), ("past", past, 0))
        return cls(
            prefill_seqs=batch,
            prefill_tokens=batch * prompt,
            prefill_attn_pairs=batch * cls.chunk_pairs(prompt, past),
            prefill_ctx_tokens=float(batch * (past + prompt)),
        )

    @classmethod
    def decode(cls, batch: int, context: float) -> BatchShape:
        """``batch`` sequences each decoding one token against ``context`` keys (incl. itself)."""
        _counts(("batch", batch, 1))
        if isinstance(context, bool) or not isinstance(context, numbers.Real) or not (
                0 <= context < math.inf):
            raise ConfigError(f"BatchShape.decode: context must be a finite number of keys >= 0,"
                              f" got {context!r}")
        return cls(decode_seqs=batch, decode_ctx_tokens=float(batch * context))

    def __add__(self, other: BatchShape) -> BatchShape:
        logits = -1
        if self.logits_seqs >= 0 or other.logits_seqs >= 0:
            logits = self.num_logits + other.num_logits
        return BatchShape(
            self.prefill_seqs + other.prefill_seqs,
            self.prefill_tokens + other.prefill_tokens,
            self.prefill_attn_pairs + other.prefill_attn_pairs,
            self.prefill_ctx_tokens + other.prefill_ctx_tokens,
            self.decode_seqs + other.decode_seqs,
            self.decode_ctx_tokens + other.decode_ctx_tokens,
            logits,
        )


def _counts(*items: tuple[str, object, int]) -> None:
    """The constructors' counts: whole numbers (numpy ints too), not bools, >= their minimum.
    (The dataclass itself stays unchecked: the schedulers build one per step.)"""
    for name, value, low in items:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise ConfigError(f"BatchShape: {name} must be a whole number >= {low}, got "
                              f"{value!r}")
