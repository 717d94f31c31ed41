"""``llmsim estimate``: one static batch, a sweep (``--cases``) or per-request predictions."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
import typer

from llmsim.cli.options import (
    ActDtypeOpt,
    ClusterOpt,
    DtypeOpt,
    EfficiencyOpt,
    Format,
    FormatOpt,
    HardwareOpt,
    KvDtypeOpt,
    ModelOpt,
    NumGpusOpt,
    OutOpt,
    ProfileOpt,
    WeightDtypeOpt,
)
from llmsim.errors import ConfigError
from llmsim.report.render import (
    as_json,
    console,
    emit,
    estimate_tables,
    frame_table,
    frame_to_csv,
    output_console,
)


def resolve_common(scenario: str | None, **given: Any) -> dict[str, Any]:
    """Merge CLI values over a scenario file's values (CLI wins when given)."""
    merged: dict[str, Any] = {}
    if scenario:
        from llmsim.catalog.scenario import load_scenario

        sc = load_scenario(scenario)
        s = sc.spec
        merged.update(model=sc.model, hardware=s.hardware, cluster=s.cluster,
                      num_gpus=s.num_gpus, tp=s.parallel.tp, pp=s.parallel.pp,
                      ep=s.parallel.ep, dp=s.parallel.dp, micro_batches=s.parallel.micro_batches)
        d = s.defaults
        for key in ("batch", "prompt", "output", "beam"):
            if getattr(d, key) is not None:
                merged[key] = getattr(d, key)
        for key, field in (("dtype", "dtype"), ("kv_dtype", "kv_dtype"),
                           ("act_dtype", "act_dtype")):
            if getattr(d, field) is not None:
                merged[key] = getattr(d, field).value
    for k, v in given.items():
        if v is not None:
            merged[k] = v
    return merged


def estimate_cmd(
    model: ModelOpt = None,
    hardware: HardwareOpt = None,
    cluster: ClusterOpt = None,
    num_gpus: NumGpusOpt = None,
    tp: Annotated[int | None, typer.Option("--tp", min=1, help="Tensor-parallel ways.")] = None,
    pp: Annotated[int | None, typer.Option("--pp", min=1, help="Pipeline stages.")] = None,
    ep: Annotated[int | None, typer.Option("--ep", min=1, help="Expert-parallel ways.")] = None,
    dp: Annotated[int | None, typer.Option("--dp", min=1, help="Data-parallel replicas.")] = None,
    micro_batches: Annotated[int | None, typer.Option(
        "--micro-batches", min=0, help="Pipeline micro-batches (0: one per stage).")] = None,
    batch: Annotated[int | None, typer.Option("--batch", "-b", min=1,
                                              help="Requests in the batch.")] = None,
    prompt: Annotated[int | None, typer.Option("--prompt", min=1,
                                               help="Input tokens per request.")] = None,
    output: Annotated[int | None, typer.Option("--output", min=1,
                                               help="Output tokens per request.")] = None,
    beam: Annotated[int | None, typer.Option("--beam", min=1, help="Beam width.")] = None,
    dtype: DtypeOpt = None,
    weight_dtype: WeightDtypeOpt = None,
    act_dtype: ActDtypeOpt = None,
    kv_dtype: KvDtypeOpt = None,
    profile: ProfileOpt = None,
    efficiency: EfficiencyOpt = None,
    memory_utilization: Annotated[float, typer.Option(
        "--memory-utilization", min=0.05, max=1.0,
        help="Fraction of GPU memory the engine may use (vLLM gpu_memory_utilization).")] = 0.9,
    allow_overflow: Annotated[bool, typer.Option(
        "--allow-overflow", help="Report fits=false instead of failing when it does not fit.")
    ] = False,
    scenario: Annotated[str | None, typer.Option(
        "--scenario", help="Scenario YAML: hardware + layer templates + defaults.")] = None,
    cases: Annotated[str | None, typer.Option(
        "--cases", help="CSV of cases (columns named as flags) or of requests "
                        "(input_tokens,output_tokens[,ttft_s,tpot_s,e2e_s]).")] = None,
    ops: Annotated[bool, typer.Option("--ops", help="JSON: include every op of every layer.")
                   ] = False,
    fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """Estimate TTFT, TPOT, E2E, throughput and memory of a static batch."""
    from llmsim.estimates.static_batch import estimate
    from llmsim.estimates.sweep import (
        estimate_cases,
        is_request_table,
        predict_requests,
        read_table,
    )

    args = resolve_common(
        scenario, model=model, hardware=hardware, cluster=cluster, num_gpus=num_gpus, tp=tp,
        pp=pp, ep=ep, dp=dp, micro_batches=micro_batches, batch=batch, prompt=prompt,
        output=output, beam=beam, dtype=dtype, weight_dtype=weight_dtype, act_dtype=act_dtype,
        kv_dtype=kv_dtype, efficiency=efficiency,
    )
    if profile:
        args["profile"] = profile
    if cases:
        frame = read_table(cases)
        if is_request_table(frame):
            step_keys = ("model", "hardware", "cluster", "num_gpus", "tp", "pp", "ep", "dp",
                         "micro_batches", "dtype", "weight_dtype", "act_dtype", "kv_dtype",
                         "profile", "efficiency")
            if "model" not in args:
                raise ConfigError("a request file needs --model and --hardware")
            result, stats = predict_requests(frame, batch=args.get("batch", 1),
                                             **{k: args[k] for k in step_keys if k in args})
            _emit_frame(result, fmt, out, title="per-request predictions",
                        extra={"error_stats": stats})
            if fmt == Format.table and stats and not out:
                rows = pd.DataFrame([{"metric": k, **v} for k, v in stats.items()])
                console().print(frame_table(rows, title="prediction error vs measured"))
            return
        args["memory_utilization"] = memory_utilization
        result = estimate_cases(frame, {k: v for k, v in args.items() if k != "profile"})
        _emit_frame(result, fmt, out, title=f"{len(result)} cases")
        return
    if "model" not in args or ("hardware" not in args and "cluster" not in args):
        raise ConfigError("give --model and --hardware (or --cluster, or --scenario)")
    res = estimate(args.pop("model"), args.pop("hardware", None),
                   memory_utilization=memory_utilization, allow_overflow=allow_overflow, **args)
    if fmt == Format.json:
        emit(as_json(res.as_dict(layers=True, ops=ops)), out)
    elif fmt == Format.csv:
        emit(frame_to_csv(pd.DataFrame([res.summary_row()])), out)
    else:
        with output_console(out) as con:
            for t in estimate_tables(res):
                con.print(t)


def _emit_frame(frame: pd.DataFrame, fmt: Format, out: str | None, title: str,
                extra: dict[str, Any] | None = None) -> None:
    if fmt == Format.json:
        payload: dict[str, Any] = {"rows": frame.to_dict(orient="records")}
        payload.update(extra or {})
        emit(as_json(payload), out)
    elif fmt == Format.csv or out:
        emit(frame_to_csv(frame), out)
    else:
        cols = [c for c in frame.columns if c in (
            "model", "hardware", "tp", "pp", "ep", "dp", "batch", "prompt", "output", "dtype",
            "input_tokens", "output_tokens", "ttft_s", "tpot_s", "e2e_s",
            "output_tokens_per_s", "pred_ttft_s", "pred_tpot_s", "pred_e2e_s", "fits", "error")]
        console().print(frame_table(frame, title=title, columns=cols))
