"""The decoding flags of ``simulate`` that ``estimate`` shares: speculation, the same on both
(docs/speculative.md), and ``--beam``."""

from __future__ import annotations

from typing import Annotated

import typer

SpecMethodOpt = Annotated[str | None, typer.Option(
    "--spec-method", help="Speculative decoding: mtp (the model's own MTP layers) | draft "
                          "(--draft-model) | ngram (free prompt-lookup drafts).")]
SpecTokensOpt = Annotated[int | None, typer.Option(
    "--spec-tokens", min=1, max=64, help="Draft tokens per step k (default: 1 for mtp, 3 "
                                         "otherwise).")]
SpecAcceptanceOpt = Annotated[str | None, typer.Option(
    "--spec-acceptance", help="Per-token acceptance rate (0.8), or one per draft position "
                              "(0.9,0.8,0.7).")]
BeamOpt = Annotated[int | None, typer.Option(
    "--beam", min=1, max=1024, help="Beam width (beam search: beams share the prompt's KV).")]
DraftModelOpt = Annotated[str | None, typer.Option(
    "--draft-model", help="Draft model for --spec-method draft (catalog name, HF id or "
                          "config.json).")]


def speculation_of(method: str | None, tokens: int | None, acceptance: str | None,
                   draft_model: str | None):  # -> Speculation | None
    """The checked speculation the flags ask for (None: no --spec-method and no spec flag)."""
    from llmsim.serving.config import DecodingSection

    return DecodingSection(spec_method=method, spec_tokens=tokens, spec_acceptance=acceptance,
                           draft_model=draft_model).speculation()
