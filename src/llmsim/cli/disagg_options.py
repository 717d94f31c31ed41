"""Prefill/decode disaggregation flags of ``estimate`` (``--prefill-pool``, ``--decode-pool``,
``--kv-link``, ``--kv-layerwise``); the model is in ``llmsim.disagg``."""

from __future__ import annotations

from typing import Annotated

import typer

PrefillPoolOpt = Annotated[str | None, typer.Option(
    "--prefill-pool", help="Disaggregated prefill pool: workers=N,tp=..[,pp=..,ep=..,dp=..,"
                           "max_num_seqs=..,max_num_batched_tokens=..,hardware=..].")]
DecodePoolOpt = Annotated[str | None, typer.Option(
    "--decode-pool", help="Disaggregated decode pool (same keys as --prefill-pool); with both "
                          "pools --batch is the concurrency (requests in flight).")]
KvLinkOpt = Annotated[str, typer.Option(
    "--kv-link", help="Link the KV cache crosses: nvlink | rdma | ethernet[:BANDWIDTH].")]
KvLayerwiseOpt = Annotated[bool, typer.Option(
    "--kv-layerwise/--no-kv-layerwise",
    help="Send each layer's KV while the prefill runs (else after it).")]
