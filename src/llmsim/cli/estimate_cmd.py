"""``llmsim estimate``: one static batch, a sweep (``--cases``) or per-request predictions."""

from __future__ import annotations

from typing import Annotated

import typer

from llmsim.cli.conventions import take_lists
from llmsim.cli.deployment import BatchShape, DeploymentFlags, deployment_and_shape
from llmsim.cli.disagg_options import DecodePoolOpt, KvLayerwiseOpt, KvLinkOpt, PrefillPoolOpt
from llmsim.cli.estimator_options import (
    EstimatorModelOpt,
    EstimatorOpt,
    IntervalLevelOpt,
    IntervalsOpt,
    PlotDirOpt,
    interval_options,
)
from llmsim.cli.large_ep_options import (
    EpKernelOpt,
    ExpertSkewOpt,
    RedundantExpertsOpt,
    TwoBatchOverlapOpt,
)
from llmsim.cli.options import (
    ActDtypeOpt,
    ClusterOpt,
    DtypeOpt,
    EfficiencyOpt,
    Format,
    FormatOpt,
    HardwareOpt,
    KvDtypeOpt,
    MaxModelLenOpt,
    MaybeDpOpt,
    MaybeEpOpt,
    MaybeMicroOpt,
    MaybePpOpt,
    MaybeTpOpt,
    MemoryUtilizationOpt,
    ModelOpt,
    NumGpusOpt,
    OutOpt,
    ProfileOpt,
    ScenarioOpt,
    WeightDtypeOpt,
)
from llmsim.cli.simulate_options import EngineOpt
from llmsim.cli.spec_options import (
    DraftModelOpt,
    SpecAcceptanceOpt,
    SpecMethodOpt,
    SpecTokensOpt,
    speculation_of,
)
from llmsim.errors import ConfigError

BatchOpt = Annotated[int | None, typer.Option("--batch", "-b", min=1,
                                              help="Requests in the batch.")]
PromptOpt = Annotated[int | None, typer.Option("--input-len", min=1,
                                               help="Input tokens per request.")]
OutputOpt = Annotated[int | None, typer.Option("--output-len", min=1,
                                               help="Output tokens per request.")]
BeamOpt = Annotated[int | None, typer.Option("--beam", min=1, help="Beam width.")]
AllowOverflowOpt = Annotated[bool, typer.Option(
    "--allow-overflow", help="Report fits=false instead of failing when it does not fit.")]
CasesOpt = Annotated[str | None, typer.Option(
    "--cases", help="CSV of cases (columns named as flags) or of requests "
                    "(input_tokens,output_tokens[,ttft_s,tpot_s,e2e_s]).")]
OpsOpt = Annotated[bool, typer.Option("--ops", help="JSON: include every op of every layer.")]


def estimate_cmd(  # grouped as the help shows them
    ctx: typer.Context, model: ModelOpt = None, hardware: HardwareOpt = None,
    cluster: ClusterOpt = None, num_gpus: NumGpusOpt = None, tp: MaybeTpOpt = None,
    pp: MaybePpOpt = None, ep: MaybeEpOpt = None, dp: MaybeDpOpt = None,
    micro_batches: MaybeMicroOpt = None, expert_skew: ExpertSkewOpt = None,
    redundant_experts: RedundantExpertsOpt = None, ep_kernel: EpKernelOpt = None,
    two_batch_overlap: TwoBatchOverlapOpt = None, prefill_pool: PrefillPoolOpt = None,
    decode_pool: DecodePoolOpt = None, kv_link: KvLinkOpt = "rdma",
    kv_layerwise: KvLayerwiseOpt = True, batch: BatchOpt = None, prompt: PromptOpt = None,
    output: OutputOpt = None, beam: BeamOpt = None, dtype: DtypeOpt = None,
    weight_dtype: WeightDtypeOpt = None, act_dtype: ActDtypeOpt = None,
    kv_dtype: KvDtypeOpt = None, profile: ProfileOpt = None, efficiency: EfficiencyOpt = None,
    estimator: EstimatorOpt = None, estimator_model: EstimatorModelOpt = None,
    memory_utilization: MemoryUtilizationOpt = 0.9, allow_overflow: AllowOverflowOpt = False,
    max_model_len: MaxModelLenOpt = None, scenario: ScenarioOpt = None, cases: CasesOpt = None,
    ops: OpsOpt = False, engine: EngineOpt = None, spec_method: SpecMethodOpt = None,
    spec_tokens: SpecTokensOpt = None, spec_acceptance: SpecAcceptanceOpt = None,
    draft_model: DraftModelOpt = None, intervals: IntervalsOpt = None,
    interval_level: IntervalLevelOpt = 0.8, plot: PlotDirOpt = None, fmt: FormatOpt = Format.table,
    out: OutOpt = None,
) -> None:
    """Estimate TTFT, TPOT, E2E, throughput and memory of a static batch (with error bars)."""
    _check_disagg_flags(ctx)
    flags, shape = deployment_and_shape(ctx.params)
    _estimate_one_way(ctx.params, flags, shape)


#: estimate's parameters the disaggregated (xPyD) estimate does not take
_NOT_DISAGG = ("beam", "estimator", "estimator_model", "memory_utilization", "allow_overflow",
               "max_model_len", "scenario", "cases", "ops", "engine", "spec_method",
               "spec_tokens", "spec_acceptance", "draft_model", "intervals", "interval_level",
               "plot", "expert_skew", "redundant_experts", "ep_kernel", "two_batch_overlap")
#: the disaggregated estimate's own parameters (nothing without the pools)
_DISAGG_ONLY = ("kv_link", "kv_layerwise")


def _check_disagg_flags(ctx: typer.Context) -> None:
    """A flag given that the estimate asked for does not use is an error, never ignored: the
    KV link without the pools, or a single-estimate flag with them."""
    def given(name: str) -> bool:
        source = ctx.get_parameter_source(name)
        return source is not None and source.name == "COMMANDLINE"

    def flag(name: str) -> str:
        option = next(o for o in ctx.command.params if o.name == name)
        return " / ".join([max(option.opts, key=len), *option.secondary_opts])

    pools = ctx.params["prefill_pool"] is not None or ctx.params["decode_pool"] is not None
    for name in (_NOT_DISAGG if pools else _DISAGG_ONLY):
        if given(name):
            raise ConfigError(
                f"{flag(name)} does not apply to a disaggregated estimate (--prefill-pool / "
                "--decode-pool); drop it" if pools else
                f"{flag(name)} is the KV link of a disaggregated estimate: add --prefill-pool "
                "and --decode-pool, or drop it")


def _estimate_one_way(p: dict, flags: DeploymentFlags, shape: BatchShape) -> None:
    """The one estimate the flags ``p`` ask for: disaggregated pools, a comparison of comma
    lists, a ``--cases`` file, or one static batch."""
    from llmsim.estimates.static_batch import estimate
    from llmsim.report.estimate import write_estimate

    fmt, out, mem_util, max_len = p["fmt"], p["out"], p["memory_utilization"], p["max_model_len"]
    if p["prefill_pool"] is not None or p["decode_pool"] is not None:
        _estimate_disagg(flags, shape, p["prefill_pool"], p["decode_pool"], p["kv_link"],
                         p["kv_layerwise"], fmt, out)
        return
    lists = take_lists()
    if lists:  # comma lists: every combination, one table
        from llmsim.cli.comparison import estimate_comparison

        estimate_comparison(lists, {**flags.given(), **shape.given(),
                                    "memory_utilization": mem_util,
                                    **({"max_model_len": max_len} if max_len else {})}, fmt, out)
        return
    speculative = speculation_of(p["spec_method"], p["spec_tokens"], p["spec_acceptance"],
                                 p["draft_model"])
    if p["cases"]:
        for flag, given in (("--spec-method", speculative), ("--engine", p["engine"])):
            if given is not None:
                raise ConfigError(f"{flag} applies to one estimate, not to --cases")
        _estimate_cases(p["cases"], flags, shape, mem_util, fmt, out,
                        interval_options(p["intervals"], p["interval_level"], default=False),
                        p["plot"], max_len)
        return
    if p["plot"]:
        raise ConfigError("--plot draws predicted vs measured: give --cases REQUESTS.csv "
                          "with measured ttft_s / tpot_s / e2e_s columns")
    if not p["scenario"] and not flags.names_a_target:
        raise ConfigError("give --model and --hardware (or --cluster, or --scenario)")
    res = estimate(**flags.given(), **shape.given(), memory_utilization=mem_util,
                   allow_overflow=p["allow_overflow"], engine=p["engine"], max_model_len=max_len,
                   # intervals by default, except under speculation (not combined yet)
                   intervals=interval_options(p["intervals"], p["interval_level"],
                                              default=speculative is None) or False,
                   **({"speculative": speculative} if speculative is not None else {}))
    write_estimate(res, fmt, out, ops=p["ops"])


def _estimate_disagg(flags: DeploymentFlags, shape: BatchShape, prefill_pool: str | None,
                     decode_pool: str | None, kv_link: str, kv_layerwise: bool, fmt: Format,
                     out: str | None) -> None:
    """``--prefill-pool`` and ``--decode-pool``: a disaggregated (xPyD) estimate."""
    from llmsim.disagg import estimate_disagg, parse_kv_link, parse_pool
    from llmsim.report.disagg import write_disagg

    if prefill_pool is None or decode_pool is None:
        missing = "--decode-pool" if decode_pool is None else "--prefill-pool"
        raise ConfigError(f"a disaggregated estimate needs both pools; add {missing}")
    plan = [f for f in ("tp", "pp", "ep", "dp", "micro_batches", "num_gpus", "cluster")
            if getattr(flags, f) is not None]
    if plan:
        raise ConfigError(f"--{plan[0].replace('_', '-')} is set per pool with "
                          "--prefill-pool / --decode-pool (e.g. workers=2,tp=4)")
    if not isinstance(flags.model, str):
        raise ConfigError("give --model (a catalog name, HF id or config.json path)")
    formats = {k: getattr(flags, k) for k in ("dtype", "weight_dtype", "act_dtype", "kv_dtype",
                                              "profile", "efficiency")
               if getattr(flags, k) is not None}
    res = estimate_disagg(flags.model, flags.hardware, parse_pool(prefill_pool, "prefill"),
                          parse_pool(decode_pool, "decode"), prompt=shape.prompt or 1024,
                          output=shape.output or 128, concurrency=shape.batch,
                          link=parse_kv_link(kv_link, kv_layerwise), **formats)
    write_disagg(res, fmt.value if hasattr(fmt, "value") else fmt, out)


def _estimate_cases(path: str, flags: DeploymentFlags, shape: BatchShape,
                    memory_utilization: float, fmt: Format, out: str | None,
                    intervals, plot: str | None, max_model_len: int | None = None) -> None:
    """``--cases``: a request file (per-request predictions of the deployment ``flags`` name,
    each request a batch of ``shape.batch``; ``plot``: predicted-vs-measured PNGs) or a sweep
    (one estimate per row; the flags and shape are the defaults of the columns a row leaves
    out)."""
    from llmsim.estimates.sweep import (
        estimate_cases,
        is_request_table,
        predict_requests,
        read_table,
    )
    from llmsim.report.estimate import write_cases, write_requests

    large = [f for f in ("expert_skew", "redundant_experts", "ep_kernel", "two_batch_overlap")
             if getattr(flags, f) is not None]
    if large:
        raise ConfigError(f"--cases does not take --{large[0].replace('_', '-')}; "
                          "estimate one case at a time")
    frame = read_table(path)
    if is_request_table(frame):
        if flags.model is None:
            raise ConfigError("a request file needs --model and --hardware")
        result, stats = predict_requests(frame, batch=shape.batch or 1, intervals=intervals,
                                         **flags.given())
        if plot:
            _request_plots(plot, result)
        write_requests(result, stats, fmt, out)
        return
    if plot:
        raise ConfigError("--plot needs a request file (input_tokens,output_tokens plus measured "
                          "ttft_s / tpot_s / e2e_s), not a sweep")
    # a sweep prices every row with the shipped profile (estimate_cases takes no profile)
    defaults = {k: v for k, v in flags.given().items() if k != "profile"}
    result = estimate_cases(frame, {**defaults, **shape.given(),
                                    "memory_utilization": memory_utilization,
                                    **({"max_model_len": max_model_len} if max_model_len else {})},
                            intervals)
    write_cases(result, fmt, out, title=f"{len(result)} cases")


def _request_plots(plot: str, result) -> None:
    """Predicted-vs-measured PNGs of the measured figures of a request file."""
    from llmsim.estimates.sweep import MEASURED
    from llmsim.report.accuracy_plots import write_accuracy_plots

    series = {m: (result[f"pred_{m}"], result[m]) for m in MEASURED if m in result.columns}
    if not series:
        raise ConfigError("--plot needs measured columns in the request file: ttft_s, tpot_s "
                          "or e2e_s")
    write_accuracy_plots(plot, series, title="request")
