"""``llmsim afd simulate``: the attention-FFN disaggregation playbook (one AFD unit per layer
and end to end, or the A:F x micro-batch search under ``--tpot-target``; the model is in
``llmsim.costmodel.afd`` and ``llmsim.disagg.afd``)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmsim.cli.large_ep_options import ExpertSkewOpt, RedundantExpertsOpt
from llmsim.cli.options import (
    ClusterOpt,
    DtypeOpt,
    Format,
    FormatOpt,
    HardwareOpt,
    ModelOpt,
    OutOpt,
    ProfileOpt,
    TpOpt,
)
from llmsim.cli.playbook import ScenarioArg, SeqOpt, playbook_target

app = typer.Typer(help="Attention-FFN disaggregation: attention instances with the KV cache, "
                       "FFN/expert instances, micro-batches ping-ponging between them.",
                  no_args_is_help=True)

BatchOpt = Annotated[int, typer.Option("--batch", "-b", min=1,
                                       help="Decode sequences per attention instance.")]
AttentionOpt = Annotated[int | None, typer.Option(
    "--attention-instances", min=1, help="Attention instances (each --tp GPUs; default 1, "
                                         "searched under --tpot-target).")]
FfnOpt = Annotated[int | None, typer.Option(
    "--ffn-instances", min=1, help="FFN/expert instances, one GPU each (default: the fewest "
                                   "whose weights fit; searched under --tpot-target).")]
MicroOpt = Annotated[int | None, typer.Option(
    "--microbatches", min=1, help="Micro-batches per step (default 3; searched under "
                                  "--tpot-target).")]
LinkOpt = Annotated[str, typer.Option(
    "--link", help="Attention<->FFN link: nvlink | rdma | ethernet[:BANDWIDTH].")]
TpotOpt = Annotated[str | None, typer.Option(
    "--tpot-target", help="Search the A:F ratio and micro-batches for the most decode "
                          "tokens/s per GPU with TPOT under this (e.g. 50ms).")]


@app.command("simulate")
def simulate_cmd(
    scenario: ScenarioArg = None, model: ModelOpt = None, hardware: HardwareOpt = None,
    cluster: ClusterOpt = None, batch: BatchOpt = 8, seq: SeqOpt = 4096,
    attention_instances: AttentionOpt = None, ffn_instances: FfnOpt = None,
    microbatches: MicroOpt = None, tp: TpOpt = 1, link: LinkOpt = "rdma",
    tpot_target: TpotOpt = None,
    max_attention: Annotated[int, typer.Option(
        "--max-attention", min=1, max=4096,
        help="Search: attention instances 1..N.")] = 16,
    max_ffn: Annotated[int, typer.Option(
        "--max-ffn", min=1, max=4096, help="Search: FFN instances up to N.")] = 64,
    max_microbatches: Annotated[int, typer.Option(
        "--max-microbatches", min=1, max=1024, help="Search: micro-batches 1..N.")] = 4,
    expert_skew: ExpertSkewOpt = None,
    redundant_experts: RedundantExpertsOpt = None, dtype: DtypeOpt = None,
    profile: ProfileOpt = None, fmt: FormatOpt = Format.table, out: OutOpt = None,
) -> None:
    """Per-layer stage times, TPOT, tokens/s per GPU and the bottleneck stage of an AFD unit
    (with --tpot-target: the best A:F ratio and micro-batch count)."""
    from llmsim.disagg.afd import afd_playbook
    from llmsim.report.afd import write_afd, write_afd_search

    target, hw = playbook_target(scenario, model, hardware)
    res = afd_playbook(target, hw, batch=batch, seq=seq, attention=attention_instances,
                       ffn=ffn_instances, microbatches=microbatches, link=link,
                       tpot_target=tpot_target, tp=tp, cluster=cluster,
                       search_range=(max_attention, max_ffn, max_microbatches),
                       expert_skew=expert_skew or 0.0, redundant_experts=redundant_experts or 0,
                       dtype=dtype, profile=profile)
    writer = write_afd_search if tpot_target is not None else write_afd
    writer(res, fmt.value, out)


def register(root: typer.Typer) -> None:
    """Attach ``llmsim afd`` to the root app (called by ``llmsim.cli.app``)."""
    root.add_typer(app, name="afd")
