"""Large expert-parallelism flags of ``estimate`` and ``simulate`` (``--expert-skew``,
``--redundant-experts``, ``--ep-kernel``, ``--two-batch-overlap``): parsed here, checked by
``ParallelSpec`` (``costmodel/expert_routing.py``, ``costmodel/ep_comm.py`` hold the model)."""

from __future__ import annotations

from typing import Annotated

import typer

ExpertSkewOpt = Annotated[float | None, typer.Option(
    "--expert-skew", min=0.0, max=8.0,
    help="Zipf exponent of expert popularity (0 = balanced routing); the most loaded EP rank "
         "sets the step.")]
RedundantExpertsOpt = Annotated[int | None, typer.Option(
    "--redundant-experts", min=0,
    help="Extra expert instances per MoE layer that an EPLB places on hot experts.")]
EpKernelOpt = Annotated[str | None, typer.Option(
    "--ep-kernel", help="DeepEP dispatch/combine kernels with attention-DP: normal "
                        "(NVLink forwarding) or low_latency (pure RDMA).")]
TwoBatchOverlapOpt = Annotated[bool | None, typer.Option(
    "--two-batch-overlap/--no-two-batch-overlap",
    help="Run each step as two micro-batches whose EP dispatch/combine overlaps compute.")]
AfdOpt = Annotated[str | None, typer.Option(
    "--afd", help="Attention-FFN disaggregation: attention=N,ffn=M[,microbatches=K,link=rdma"
                  "[:BANDWIDTH],skew=S,redundant=R]; --tp is each attention instance's.")]
