"""``llmsim op``: what one kernel or collective costs, and why; ``--cases FILE --features``
exports the learned estimator's feature rows of a case (or measurement) file."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmsim.cli.estimator_options import EstimatorModelOpt, EstimatorOpt
from llmsim.cli.options import (
    ActDtypeOpt,
    ClusterOpt,
    EfficiencyOpt,
    Format,
    FormatOpt,
    HardwareOpt,
    KvDtypeOpt,
    OutOpt,
    ProfileOpt,
)
from llmsim.errors import ConfigError

KindOpt = Annotated[str | None, typer.Option(
    "--kind", help="gemm, attention-prefill, attention-decode, moe, all-reduce, "
                   "all-gather, reduce-scatter, all-to-all, p2p")]
OpDtypeOpt = Annotated[str, typer.Option(
    "--dtype", "--weight-dtype",
    help="Weight format (and the activation format unless --act-dtype).")]
IntOpt = Annotated[int | None, typer.Option(min=1)]
SeqLenOpt = Annotated[int | None, typer.Option("--seq-len", min=1)]
ContextLenOpt = Annotated[int | None, typer.Option("--context-len", min=1)]
NumHeadsOpt = Annotated[int | None, typer.Option("--num-heads", min=1)]
NumKvHeadsOpt = Annotated[int | None, typer.Option("--num-kv-heads", min=1)]
HeadDimOpt = Annotated[int | None, typer.Option("--head-dim", min=1)]
NumTokensOpt = Annotated[int | None, typer.Option("--num-tokens", min=1)]
HiddenSizeOpt = Annotated[int | None, typer.Option("--hidden-size", min=1)]
IntermediateSizeOpt = Annotated[int | None, typer.Option("--intermediate-size", min=1)]
NumExpertsOpt = Annotated[int | None, typer.Option("--num-experts", min=1)]
TopKOpt = Annotated[int | None, typer.Option("--top-k", min=1)]
OpEpOpt = Annotated[int, typer.Option("--ep", min=1)]
MessageBytesOpt = Annotated[float | None, typer.Option("--message-bytes", min=1)]
OpNumGpusOpt = Annotated[int | None, typer.Option("--num-gpus", min=2)]
InterNodeOpt = Annotated[bool, typer.Option(
    "--inter-node", help="p2p: the two GPUs sit on different nodes.")]
LibraryOpt = Annotated[str, typer.Option(
    "--library", help="Collectives: auto (an intra-node all-reduce as engines run it: the "
                      "faster of NCCL and their custom all-reduce), nccl, or custom.")]
RoutingOpt = Annotated[str, typer.Option(
    "--routing", help="MoE: uniform (each token's experts at random, as a served model is "
                      "priced) or balanced (assignments dealt evenly, as AIConfigurator's "
                      "balanced tables).")]
OpCasesOpt = Annotated[str | None, typer.Option(
    "--cases", help="CSV with kind,hardware,dtype + shape columns; one row per op.")]
FeaturesOpt = Annotated[bool, typer.Option(
    "--features", help="With --cases: write the learned estimator's feature rows (CSV, one "
                       "per case, in order, with sol_s; measured_time_s kept) instead of "
                       "prices.")]
OpModelOpt = Annotated[str | None, typer.Option(
    "--model", hidden=True, help="The source design's name of --estimator-model (`op` prices "
                                 "no LLM).")]


#: the shape flags of an op, by parameter name, in the order its record lists them
SHAPE_FLAGS = ("m", "n", "k", "batch", "seq_len", "context_len", "num_heads", "num_kv_heads",
               "head_dim", "num_tokens", "hidden_size", "intermediate_size", "num_experts",
               "top_k", "ep", "message_bytes", "num_gpus")


def op_cmd(
    ctx: typer.Context,
    kind: KindOpt = None,
    hardware: HardwareOpt = None,
    dtype: OpDtypeOpt = "bf16",
    act_dtype: ActDtypeOpt = None,
    kv_dtype: KvDtypeOpt = None,
    m: IntOpt = None, n: IntOpt = None, k: IntOpt = None, batch: IntOpt = None,
    seq_len: SeqLenOpt = None, context_len: ContextLenOpt = None,
    num_heads: NumHeadsOpt = None, num_kv_heads: NumKvHeadsOpt = None,
    head_dim: HeadDimOpt = None, num_tokens: NumTokensOpt = None,
    hidden_size: HiddenSizeOpt = None, intermediate_size: IntermediateSizeOpt = None,
    num_experts: NumExpertsOpt = None, top_k: TopKOpt = None, ep: OpEpOpt = 1,
    message_bytes: MessageBytesOpt = None, num_gpus: OpNumGpusOpt = None,
    inter_node: InterNodeOpt = False,
    library: LibraryOpt = "auto",
    routing: RoutingOpt = "uniform",
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
    efficiency: EfficiencyOpt = None,
    estimator: EstimatorOpt = None,
    estimator_model: EstimatorModelOpt = None,
    model: OpModelOpt = None,
    cases: OpCasesOpt = None,
    features: FeaturesOpt = False,
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """Price one op (FLOPs, bytes, time, bound) on a hardware."""
    from llmsim.cli.estimator_options import resolve_estimator
    from llmsim.costmodel import Profile
    from llmsim.estimates.op import price_op
    from llmsim.report.estimate import op_record, write_op

    if features:
        if not cases:
            raise ConfigError("--features exports the rows of a case file: add --cases FILE")
        _features(cases, hardware, fmt, out)
        return
    if model and estimator_model:
        raise ConfigError("give the estimator's model once: --estimator-model PATH")
    name, data = resolve_estimator(estimator, estimator_model or model)
    name = name or "calibrated"
    prof = None if name == "analytic" and profile is None else Profile.load(profile)
    how = {"profile": prof, "efficiency": efficiency, "estimator": name,
           "estimator_model": data}
    if cases:
        _op_cases(cases, {"hardware": hardware, "dtype": dtype, "act_dtype": act_dtype,
                          "kv_dtype": kv_dtype, "cluster": cluster, **how}, fmt, out)
        return
    if not kind or not hardware:
        raise ConfigError("give --kind and --hardware (or --cases FILE.csv)")
    shape = {k2: ctx.params[k2] for k2 in SHAPE_FLAGS}
    cost = price_op(kind, hardware, dtype=dtype, act_dtype=act_dtype, kv_dtype=kv_dtype,
                    cluster=cluster, inter_node=inter_node, library=library, routing=routing,
                    **how, **shape)
    write_op(op_record(cost, hardware, dtype, act_dtype, inter_node, shape), cost, fmt, out)


def _op_cases(path: str, defaults: dict[str, Any], fmt: Format, out: str | None) -> None:
    """``--cases``: one op per row of the file (the flags are the defaults of its columns)."""
    from llmsim.estimates.sweep import price_op_cases, read_table
    from llmsim.report.estimate import write_op_cases

    write_op_cases(price_op_cases(read_table(path), defaults), fmt, out)


def _features(path: str, hardware: str | None, fmt: Format, out: str | None) -> None:
    """``--cases FILE --features``: the file's rows with the learned estimator's features."""
    from llmsim.calibration.feature_export import case_features
    from llmsim.estimates.sweep import read_table
    from llmsim.report.estimate import write_features

    write_features(case_features(read_table(path), hardware, origin=path), fmt, out)
