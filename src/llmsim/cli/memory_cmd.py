"""``llmsim memory``: the memory breakdown per GPU and what fits."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer

from llmsim.cli.deployment import DeploymentFlags
from llmsim.cli.options import (
    ActDtypeOpt,
    ClusterOpt,
    DpOpt,
    DtypeOpt,
    EpOpt,
    Format,
    FormatOpt,
    HardwareOpt,
    KvDtypeOpt,
    MaxModelLenOpt,
    ModelOpt,
    NumGpusOpt,
    OutOpt,
    PpOpt,
    TpOpt,
    WeightDtypeOpt,
)
from llmsim.errors import ConfigError, DoesNotFitError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from llmsim.costmodel import Deployment
    from llmsim.memory import MemoryReport

SequencesOpt = Annotated[int, typer.Option("--batch", "-b", min=0,
                                           help="Sequences to hold (per DP replica).")]
SeqLenOpt = Annotated[int, typer.Option("--seq-len", min=1,
                                        help="Tokens per sequence (prompt + output).")]
MaxTokensOpt = Annotated[int | None, typer.Option(
    "--max-num-batched-tokens", min=1,
    help="Largest forward pass, tokens (default: batch x seq-len).")]
UtilizationOpt = Annotated[float, typer.Option("--memory-utilization", min=0.05, max=1.0)]


def memory_cmd(
    ctx: typer.Context,
    model: ModelOpt = None,
    hardware: HardwareOpt = None,
    cluster: ClusterOpt = None,
    num_gpus: NumGpusOpt = None,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    ep: EpOpt = 1,
    dp: DpOpt = 1,
    batch: SequencesOpt = 1,
    seq_len: SeqLenOpt = 2048,
    max_model_len: MaxModelLenOpt = None,
    max_tokens: MaxTokensOpt = None,
    dtype: DtypeOpt = None,
    weight_dtype: WeightDtypeOpt = None,
    act_dtype: ActDtypeOpt = None,
    kv_dtype: KvDtypeOpt = None,
    memory_utilization: UtilizationOpt = 0.9,
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """Memory per GPU: weights, KV cache, activations, max batch and KV tokens that fit."""
    from llmsim.checks import unused_gpus
    from llmsim.memory import analyze_memory, max_sequences
    from llmsim.report.memory import write_memory

    dep = _deployment(DeploymentFlags.from_params(ctx.params), seq_len, max_model_len)
    spec, cl, plan, precision = dep.model, dep.cluster, dep.plan, dep.precision
    rep = analyze_memory(spec, cl, plan, precision, kv_tokens=batch * seq_len,
                         max_tokens=max_tokens or max(1, batch * seq_len),
                         max_logits=max(batch, 1), memory_utilization=memory_utilization)
    max_batch = max_sequences(spec, cl, plan, precision, seq_len, max_tokens, memory_utilization)
    record = {"model": spec.name, "hardware": cl.hardware.name, "tp": tp, "pp": pp, "ep": ep,
              "dp": dp, "precision": precision.describe(), "batch": batch, "seq_len": seq_len,
              **rep.as_dict(), "max_batch_at_seq_len": int(max_batch)}
    title = (f"{spec.name} on {cl.hardware.name} (tp {tp}, pp {pp}, ep {ep}; "
             f"{precision.describe()}) per GPU")
    write_memory(record, rep, title, max_batch, max_tokens, fmt, out)
    unused = unused_gpus(num_gpus, tp, pp, dp)
    if unused:  # more GPUs than the plan: the figures are per GPU of the plan (docs/memory.md)
        log.warning("%s; replicas (--dp) hold the same memory per GPU, a larger --tp or --pp "
                    "spreads the weights", unused)
    if not rep.fits:  # the breakdown above shows where it goes; the error says what to change
        raise _does_not_fit(dep, rep, max_batch, batch, seq_len, memory_utilization)


def _deployment(flags: DeploymentFlags, seq_len: int, max_model_len: int | None = None
                ) -> Deployment:
    """The deployment the flags name, once ``seq_len`` tokens are within the context served
    (the model's, or ``--max-model-len``)."""
    from llmsim import checks
    from llmsim.catalog import get_model

    if not flags.names_a_target:
        raise ConfigError("give --model and --hardware (or --cluster)")
    spec = get_model(flags.model)
    checks.context(seq_len, spec.name, spec.max_position_embeddings, max_model_len,
                   "--seq-len", "--seq-len")
    return replace(flags, model=spec).deployment()


def _does_not_fit(dep: Deployment, rep: MemoryReport, max_batch: int, batch: int, seq_len: int,
                  memory_utilization: float) -> DoesNotFitError:
    """What does not fit and what to change: the weights alone (raised here), else the batch."""
    from llmsim.memory import check_weights_fit
    from llmsim.memory.footprint import batch_fix
    from llmsim.units import fmt_bytes

    spec, cl, plan, precision = dep.model, dep.cluster, dep.plan, dep.precision
    check_weights_fit(spec, cl, plan, precision, memory_utilization)
    hint = batch_fix(max_batch, spec, cl, plan, precision, rep.peak_bytes)
    return DoesNotFitError(
        f"batch {batch} x {seq_len} tokens needs {fmt_bytes(rep.peak_bytes)} per GPU but one "
        f"{cl.hardware.name} gives {fmt_bytes(rep.usable_bytes)} usable (short by "
        f"{fmt_bytes(rep.peak_bytes - rep.usable_bytes)}); try {hint}",
        need_bytes=rep.peak_bytes, have_bytes=rep.usable_bytes)
