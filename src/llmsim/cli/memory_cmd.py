"""``llmsim memory``: the memory breakdown per GPU and what fits."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer

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
    ModelOpt,
    NumGpusOpt,
    OutOpt,
    PpOpt,
    TpOpt,
    WeightDtypeOpt,
)
from llmsim.errors import ConfigError, DoesNotFitError
from llmsim.report.render import as_json, emit, frame_to_csv, memory_table, output_console


def memory_cmd(
    model: ModelOpt = None,
    hardware: HardwareOpt = None,
    cluster: ClusterOpt = None,
    num_gpus: NumGpusOpt = None,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    ep: EpOpt = 1,
    dp: DpOpt = 1,
    batch: Annotated[int, typer.Option("--batch", "-b", min=0,
                                       help="Sequences to hold (per DP replica).")] = 1,
    seq_len: Annotated[int, typer.Option("--seq-len", min=1,
                                         help="Tokens per sequence (prompt + output).")] = 2048,
    max_tokens: Annotated[int | None, typer.Option(
        "--max-num-batched-tokens", min=1,
        help="Largest forward pass, tokens (default: batch x seq-len).")] = None,
    dtype: DtypeOpt = None,
    weight_dtype: WeightDtypeOpt = None,
    act_dtype: ActDtypeOpt = None,
    kv_dtype: KvDtypeOpt = None,
    memory_utilization: Annotated[float, typer.Option("--memory-utilization", min=0.05,
                                                      max=1.0)] = 0.9,
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """Memory per GPU: weights, KV cache, activations, max batch and KV tokens that fit."""
    from llmsim.catalog import ParallelSpec, get_cluster, get_model
    from llmsim.costmodel import Precision
    from llmsim.memory import analyze_memory, check_weights_fit, max_sequences

    if not model or not (hardware or cluster):
        raise ConfigError("give --model and --hardware (or --cluster)")
    spec = get_model(model)
    if seq_len > spec.max_position_embeddings:
        raise ConfigError(f"--seq-len {seq_len} exceeds {spec.name}'s context of "
                          f"{spec.max_position_embeddings} tokens")
    plan = ParallelSpec(tp=tp, pp=pp, ep=ep, dp=dp)
    plan.validate_for(spec)
    cl = get_cluster(cluster, hardware, num_gpus or plan.num_gpus)
    precision = Precision.resolve(spec.weight_dtype, dtype, weight_dtype, act_dtype, kv_dtype,
                                  supported=cl.hardware.supported_dtypes)
    tokens = max_tokens or max(1, batch * seq_len)
    rep = analyze_memory(spec, cl, plan, precision, kv_tokens=batch * seq_len,
                         max_tokens=tokens, max_logits=max(batch, 1),
                         memory_utilization=memory_utilization)
    max_batch = max_sequences(spec, cl, plan, precision, seq_len, max_tokens, memory_utilization)
    data = {"model": spec.name, "hardware": cl.hardware.name, "tp": tp, "pp": pp, "ep": ep,
            "dp": dp, "precision": precision.describe(), "batch": batch, "seq_len": seq_len,
            **rep.as_dict(), "max_batch_at_seq_len": int(max_batch)}
    if fmt == Format.json:
        emit(as_json(data), out)
    elif fmt == Format.csv:
        emit(frame_to_csv(pd.DataFrame([data])), out)
    else:
        with output_console(out) as con:
            con.print(memory_table(rep, f"{spec.name} on {cl.hardware.name} (tp {tp}, pp {pp}, "
                                        f"ep {ep}; {precision.describe()}) per GPU"))
            basis = (f"forward passes of up to {max_tokens:,} tokens" if max_tokens else
                     "the whole batch in one forward pass; --max-num-batched-tokens sets an "
                     "engine's budget")
            con.print(f"max batch at {seq_len} tokens per sequence: {max_batch:,} ({basis})")
    if not rep.fits:  # the breakdown above shows where it goes; the error says what to change
        check_weights_fit(spec, cl, plan, precision, memory_utilization)
        from llmsim.memory.footprint import batch_fix
        from llmsim.units import fmt_bytes

        hint = batch_fix(max_batch, spec, cl, plan, precision, rep.peak_bytes)
        raise DoesNotFitError(
            f"batch {batch} x {seq_len} tokens needs {fmt_bytes(rep.peak_bytes)} per GPU but one "
            f"{cl.hardware.name} gives {fmt_bytes(rep.usable_bytes)} usable (short by "
            f"{fmt_bytes(rep.peak_bytes - rep.usable_bytes)}); try {hint}",
            need_bytes=rep.peak_bytes, have_bytes=rep.usable_bytes)
