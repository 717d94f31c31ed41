"""``llmsim large-ep evaluate``: the large expert-parallelism playbook (one prefill and one
decode step per layer; the model is in ``llmsim.estimates.large_ep``)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmsim.cli.large_ep_options import (
    EpKernelOpt,
    ExpertSkewOpt,
    RedundantExpertsOpt,
    TwoBatchOverlapOpt,
)
from llmsim.cli.options import (
    ClusterOpt,
    DtypeOpt,
    Format,
    FormatOpt,
    HardwareOpt,
    MaybeDpOpt,
    ModelOpt,
    OutOpt,
    ProfileOpt,
    TpOpt,
)
from llmsim.cli.playbook import ScenarioArg, SeqOpt, playbook_target

app = typer.Typer(help="Large expert parallelism: EP over many GPUs with attention-DP, "
                       "routing skew, EPLB, DeepEP kernels.", no_args_is_help=True)

BatchOpt = Annotated[int, typer.Option("--batch", "-b", min=1,
                                       help="Sequences per attention-DP rank.")]
EpOpt = Annotated[int, typer.Option("--ep", min=1, help="Expert-parallel ways.")]


@app.command("evaluate")
def evaluate_cmd(
    scenario: ScenarioArg = None, model: ModelOpt = None, hardware: HardwareOpt = None,
    cluster: ClusterOpt = None, batch: BatchOpt = 4, seq: SeqOpt = 8192, ep: EpOpt = 8,
    dp: MaybeDpOpt = None, tp: TpOpt = 1, expert_skew: ExpertSkewOpt = None,
    redundant_experts: RedundantExpertsOpt = None, ep_kernel: EpKernelOpt = None,
    two_batch_overlap: TwoBatchOverlapOpt = None, dtype: DtypeOpt = None,
    profile: ProfileOpt = None, fmt: FormatOpt = Format.table, out: OutOpt = None,
) -> None:
    """Per-layer and end-to-end prefill / decode step of a large-EP deployment (--dp defaults
    to --ep: attention data-parallel)."""
    from llmsim.estimates.large_ep import evaluate_large_ep
    from llmsim.report.large_ep import write_large_ep

    target, hw = playbook_target(scenario, model, hardware)
    res = evaluate_large_ep(target, hw, batch=batch, seq=seq, ep=ep, dp=dp, tp=tp,
                            cluster=cluster, expert_skew=expert_skew or 0.0,
                            redundant_experts=redundant_experts or 0, ep_kernel=ep_kernel,
                            two_batch_overlap=bool(two_batch_overlap), dtype=dtype,
                            profile=profile)
    write_large_ep(res, fmt.value, out)


def register(root: typer.Typer) -> None:
    """Attach ``llmsim large-ep`` to the root app (called by ``llmsim.cli.app``)."""
    root.add_typer(app, name="large-ep")
