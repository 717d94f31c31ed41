"""``llmsim op``: what one kernel or collective costs, and why."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
import typer

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
from llmsim.report.render import as_json, emit, frame_table, frame_to_csv, op_table, output_console

IntOpt = Annotated[int | None, typer.Option(min=1)]


def op_cmd(
    kind: Annotated[str | None, typer.Option(
        "--kind", help="gemm, attention-prefill, attention-decode, moe, all-reduce, "
                       "all-gather, reduce-scatter, all-to-all, p2p")] = None,
    hardware: HardwareOpt = None,
    dtype: Annotated[str, typer.Option(
        "--dtype", help="Weight format (and the activation format unless --act-dtype).")] = "bf16",
    act_dtype: ActDtypeOpt = None,
    kv_dtype: KvDtypeOpt = None,
    m: IntOpt = None,
    n: IntOpt = None,
    k: IntOpt = None,
    batch: IntOpt = None,
    seq_len: Annotated[int | None, typer.Option("--seq-len", min=1)] = None,
    context_len: Annotated[int | None, typer.Option("--context-len", min=1)] = None,
    num_heads: Annotated[int | None, typer.Option("--num-heads", min=1)] = None,
    num_kv_heads: Annotated[int | None, typer.Option("--num-kv-heads", min=1)] = None,
    head_dim: Annotated[int | None, typer.Option("--head-dim", min=1)] = None,
    num_tokens: Annotated[int | None, typer.Option("--num-tokens", min=1)] = None,
    hidden_size: Annotated[int | None, typer.Option("--hidden-size", min=1)] = None,
    intermediate_size: Annotated[int | None, typer.Option("--intermediate-size", min=1)] = None,
    num_experts: Annotated[int | None, typer.Option("--num-experts", min=1)] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1)] = None,
    ep: Annotated[int, typer.Option("--ep", min=1)] = 1,
    message_bytes: Annotated[float | None, typer.Option("--message-bytes", min=1)] = None,
    num_gpus: Annotated[int | None, typer.Option("--num-gpus", min=2)] = None,
    inter_node: Annotated[bool, typer.Option(
        "--inter-node", help="p2p: the two GPUs sit on different nodes.")] = False,
    cluster: ClusterOpt = None,
    profile: ProfileOpt = None,
    efficiency: EfficiencyOpt = None,
    cases: Annotated[str | None, typer.Option(
        "--cases", help="CSV with kind,hardware,dtype + shape columns; one row per op.")] = None,
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """Price one op (FLOPs, bytes, time, bound) on a hardware."""
    from llmsim.costmodel import Profile
    from llmsim.estimates.op import price_op
    from llmsim.estimates.sweep import price_op_cases, read_table

    prof = Profile.load(profile)
    if cases:
        frame = read_table(cases)
        result = price_op_cases(frame, {"hardware": hardware, "dtype": dtype,
                                        "act_dtype": act_dtype, "kv_dtype": kv_dtype,
                                        "cluster": cluster, "profile": prof,
                                        "efficiency": efficiency})
        if fmt == Format.json:
            emit(as_json(result.to_dict(orient="records")), out)
        elif fmt == Format.csv or out:
            emit(frame_to_csv(result), out)
        else:
            with output_console(out) as con:
                con.print(frame_table(result, title=f"{len(result)} ops"))
        return
    if not kind or not hardware:
        raise ConfigError("give --kind and --hardware (or --cases FILE.csv)")
    shape = dict(m=m, n=n, k=k, batch=batch, seq_len=seq_len, context_len=context_len,
                 num_heads=num_heads, num_kv_heads=num_kv_heads, head_dim=head_dim,
                 num_tokens=num_tokens, hidden_size=hidden_size,
                 intermediate_size=intermediate_size, num_experts=num_experts, top_k=top_k,
                 ep=ep, message_bytes=message_bytes, num_gpus=num_gpus)
    cost = price_op(kind, hardware, dtype=dtype, act_dtype=act_dtype, kv_dtype=kv_dtype,
                    cluster=cluster, profile=prof, efficiency=efficiency, inter_node=inter_node,
                    **shape)
    data = {"kind": cost.kind.value, "hardware": hardware, "dtype": dtype,
            **({"act_dtype": act_dtype} if act_dtype else {}),
            **({"inter_node": True} if inter_node else {}),
            **{k2: v for k2, v in shape.items() if v is not None}, "time_s": cost.time_s,
            "flops": cost.flops, "bytes": cost.bytes, "comm_bytes": cost.comm_bytes,
            "bound": cost.bound.value,
            "compute_s": cost.compute_s, "memory_s": cost.memory_s, "comm_s": cost.comm_s,
            "overhead_s": cost.overhead_s}
    if fmt == Format.json:
        emit(as_json(data), out)
    elif fmt == Format.csv:
        emit(frame_to_csv(pd.DataFrame([data])), out)
    else:
        with output_console(out) as con:
            con.print(op_table(cost, hardware))
