"""``llmsim simulate``: event-driven serving simulation (see ``docs/serving.md``).

Takes the same model / hardware / parallel-plan / dtype flags as ``estimate``; the workload is a
trace (``--trace``) or synthetic (``--arrival``, ``--rate``, ``--prompt-dist``,
``--output-dist``); ``--config FILE.yaml`` gives every knob in one file (flags override it).
Where each flag goes in the config: ``llmsim.cli.simulate_options.CONFIG_KEYS``.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import typer

from llmsim.cli.deployment import DeploymentFlags, deployment_flags, model_spec
from llmsim.cli.disagg_options import DecodePoolOpt, PrefillPoolOpt
from llmsim.cli.estimator_options import (
    EstimatorModelOpt,
    EstimatorOpt,
    IntervalDrawsOpt,
    IntervalLevelOpt,
)
from llmsim.cli.expert_offload_options import (
    ExpertCacheExpertsOpt,
    ExpertCacheGbOpt,
    ExpertCpuEfficiencyOpt,
    ExpertHostOpt,
    ExpertMissOpt,
    ExpertPolicyOpt,
    ExpertPrefetchAccuracyOpt,
    ExpertPrefetchOpt,
    ExpertRoutingOpt,
)
from llmsim.cli.large_ep_options import AfdOpt, ExpertSkewOpt, RedundantExpertsOpt
from llmsim.cli.options import (
    ActDtypeOpt,
    ClusterOpt,
    DtypeOpt,
    EfficiencyOpt,
    Format,
    FormatOpt,
    HardwareOpt,
    KvDtypeOpt,
    MaybeEpOpt,
    MaybeMemoryUtilizationOpt,
    MaybePpOpt,
    MaybeTpOpt,
    ModelOpt,
    NumGpusOpt,
    OutOpt,
    ProfileOpt,
    ScenarioOpt,
    WeightDtypeOpt,
)
from llmsim.cli.simulate_options import (
    ArrivalOpt,
    BatchWindowOpt,
    BlockSizeOpt,
    BurstinessOpt,
    ChromeTraceOpt,
    ChunkSizeOpt,
    ClientJitterOpt,
    ConcurrencyOpt,
    ConfigFileOpt,
    CvOpt,
    EngineOpt,
    EngineProfileOpt,
    InFlightMicroOpt,
    KvCapacityTokensOpt,
    MaxModelLenOpt,
    MaxNumBatchedTokensOpt,
    MaxNumSeqsOpt,
    MaybeKvLayerwiseOpt,
    MaybeKvLinkOpt,
    MetricsOpt,
    MixDecodesOpt,
    NumRequestsOpt,
    OrderOpt,
    OutDirOpt,
    OutputDistOpt,
    PercentilesOpt,
    PlotsOpt,
    PreemptionOpt,
    PrefixCachingOpt,
    PrefixGroupsOpt,
    PriorityLevelsOpt,
    ProgressOpt,
    PromptDistOpt,
    RateOpt,
    RateScaleOpt,
    ReplicasOpt,
    RequestsFormatOpt,
    RequestsOpt,
    RouterOpt,
    SampleIntervalOpt,
    SaveItlsOpt,
    SchedulerOpt,
    SeedOpt,
    SharedPrefixOpt,
    SloTpotOpt,
    SloTtftOpt,
    SwapSpaceOpt,
    ThinkTimeOpt,
    TraceFormatOpt,
    TraceOpt,
    WarmupRequestsOpt,
    config_overrides,
    simulation_config,
)
from llmsim.cli.spec_options import (
    BeamOpt,
    DraftModelOpt,
    SpecAcceptanceOpt,
    SpecMethodOpt,
    SpecTokensOpt,
)
from llmsim.errors import ConfigError

if TYPE_CHECKING:
    from llmsim.costmodel import StepTimeModel
    from llmsim.serving.config import SimulationConfig
    from llmsim.serving.results import SimulationReport


def simulate_cmd(  # grouped by config section; CONFIG_KEYS says where each flag goes
    ctx: typer.Context, model: ModelOpt = None, hardware: HardwareOpt = None,
    cluster: ClusterOpt = None, num_gpus: NumGpusOpt = None, tp: MaybeTpOpt = None,
    pp: MaybePpOpt = None, ep: MaybeEpOpt = None, expert_skew: ExpertSkewOpt = None,
    redundant_experts: RedundantExpertsOpt = None, afd: AfdOpt = None,
    replicas: ReplicasOpt = None, micro_batches: InFlightMicroOpt = None, dtype: DtypeOpt = None,
    weight_dtype: WeightDtypeOpt = None, act_dtype: ActDtypeOpt = None,
    kv_dtype: KvDtypeOpt = None, profile: ProfileOpt = None, efficiency: EfficiencyOpt = None,
    estimator: EstimatorOpt = None, estimator_model: EstimatorModelOpt = None,
    memory_utilization: MaybeMemoryUtilizationOpt = None, scenario: ScenarioOpt = None,
    config: ConfigFileOpt = None, engine: EngineOpt = None,
    engine_profile: EngineProfileOpt = None, scheduler: SchedulerOpt = None,
    max_num_seqs: MaxNumSeqsOpt = None, max_num_batched_tokens: MaxNumBatchedTokensOpt = None,
    block_size: BlockSizeOpt = None, order: OrderOpt = None, preemption: PreemptionOpt = None,
    swap_space_gib: SwapSpaceOpt = None, prefix_caching: PrefixCachingOpt = None,
    batch_window: BatchWindowOpt = None, max_model_len: MaxModelLenOpt = None,
    kv_capacity_tokens: KvCapacityTokensOpt = None, chunk_size: ChunkSizeOpt = None,
    mix_decodes: MixDecodesOpt = None, router: RouterOpt = None,
    prefill_pool: PrefillPoolOpt = None, decode_pool: DecodePoolOpt = None,
    kv_link: MaybeKvLinkOpt = None, kv_layerwise: MaybeKvLayerwiseOpt = None,
    trace: TraceOpt = None, trace_format: TraceFormatOpt = None, rate_scale: RateScaleOpt = None,
    num_requests: NumRequestsOpt = None, arrival: ArrivalOpt = None, rate: RateOpt = None,
    cv: CvOpt = None, concurrency: ConcurrencyOpt = None, think_time: ThinkTimeOpt = None,
    prompt_dist: PromptDistOpt = None, output_dist: OutputDistOpt = None, seed: SeedOpt = None,
    shared_prefix: SharedPrefixOpt = None, prefix_groups: PrefixGroupsOpt = None,
    priority_levels: PriorityLevelsOpt = None, warmup_requests: WarmupRequestsOpt = None,
    burstiness: BurstinessOpt = None, client_jitter: ClientJitterOpt = None,
    slo_ttft: SloTtftOpt = None, slo_tpot: SloTpotOpt = None,
    sample_interval: SampleIntervalOpt = None, beam: BeamOpt = None,
    spec_method: SpecMethodOpt = None, spec_tokens: SpecTokensOpt = None,
    spec_acceptance: SpecAcceptanceOpt = None, draft_model: DraftModelOpt = None,
    expert_cache_experts: ExpertCacheExpertsOpt = None, expert_cache_gb: ExpertCacheGbOpt = None,
    expert_policy: ExpertPolicyOpt = None, expert_prefetch: ExpertPrefetchOpt = None,
    expert_prefetch_accuracy: ExpertPrefetchAccuracyOpt = None, expert_miss: ExpertMissOpt = None,
    expert_routing: ExpertRoutingOpt = None, expert_host: ExpertHostOpt = None,
    expert_cpu_efficiency: ExpertCpuEfficiencyOpt = None, out_dir: OutDirOpt = None,
    requests_format: RequestsFormatOpt = "csv", chrome_trace: ChromeTraceOpt = False,
    save_itls: SaveItlsOpt = False, plots: PlotsOpt = True, progress: ProgressOpt = None,
    interval_draws: IntervalDrawsOpt = 0, interval_level: IntervalLevelOpt = 0.8,
    fmt: FormatOpt = Format.table, out: OutOpt = None, requests: RequestsOpt = False,
    metrics: MetricsOpt = "llmsim", percentiles: PercentilesOpt = "99",
) -> None:
    """Simulate serving a request stream: TTFT/TPOT/ITL/E2E percentiles, throughput, goodput."""
    from llmsim.cli.comparison import simulate_comparison
    from llmsim.cli.conventions import take_lists
    from llmsim.report.serving import write_simulation

    source = ctx.get_parameter_source("percentiles")
    if str(metrics).strip().lower() != "vllm" and source is not None \
            and source.name == "COMMANDLINE":
        raise ConfigError("--percentiles picks the pNN keys of --metrics vllm; add --metrics "
                          "vllm (llmsim's own metrics always report p50, p90, p95, p99)")
    if lists := take_lists():  # comma lists: every combination, one table
        return simulate_comparison(ctx.params, lists, fmt, out, run_simulation)
    report = run_simulation(ctx.params)
    write_simulation(report, fmt, out_dir, out=out, requests=requests,
                     metrics=metrics, percentiles=percentiles)
    warn_pathologies(report)


def warn_pathologies(report: SimulationReport) -> None:
    """Log what the run's summary shows but does not say (printed after the output)."""
    import logging

    from llmsim.serving.diagnosis import diagnose

    for message in diagnose(report):
        logging.getLogger("llmsim.serving").warning(message)


def run_simulation(params: dict[str, Any]) -> SimulationReport:
    """The simulation ``simulate``'s parameters describe, run (its bundle written to
    ``--out-dir`` when given); ``llmsim compare`` runs the same."""
    from llmsim.report.progress import progress as progress_callback
    from llmsim.serving.run import simulate

    requests_format, out_dir = params.get("requests_format", "csv"), params.get("out_dir")
    progress, config = params.get("progress"), params.get("config")
    if requests_format not in ("csv", "parquet"):
        raise ConfigError(f"--requests-format must be csv or parquet, got {requests_format!r}")
    flags = deployment_flags({**params, "dp": params.get("replicas")})
    spec, step_model = model_spec(flags), None
    if spec is not None:  # a scenario's model: the config names it, the step model prices it
        step_model = _replica_step_model(flags)
        flags = replace(flags, model=spec.name)
    cfg = simulation_config(config, config_overrides({**params, **flags.as_dict()}))
    if cfg.disagg is not None:
        _check_disagg_flags(params, step_model)
    _check_out_dir(cfg, out_dir)
    with progress_callback(sys.stderr.isatty() if progress is None else progress) as tick:
        report = simulate(cfg, step_model=step_model, progress=tick)
    interval_draws = params.get("interval_draws") or 0
    if interval_draws:
        from llmsim.serving.intervals import simulate_intervals

        report.add_intervals(simulate_intervals(cfg, step_model, interval_draws,
                                                params.get("interval_level", 0.8)))
    if out_dir:
        report.write(out_dir, requests_format, plots=params.get("plots", True))
    return report


def _replica_step_model(flags: DeploymentFlags) -> StepTimeModel:
    """The step model of one replica of the deployment ``flags`` name (after checking that a
    GPU count given is what the plan uses)."""
    from llmsim.costmodel import build_step_model
    from llmsim.serving.config import check_gpu_count

    check_gpu_count(flags.num_gpus, flags.tp or 1, flags.pp or 1, flags.dp or 1)
    return build_step_model(flags.replica().deployment())


def _check_disagg_flags(params: dict[str, Any], step_model: Any) -> None:
    """What a disaggregated run cannot take besides the config's own checks (one line)."""
    if step_model is not None:
        raise ConfigError("--scenario's model with --prefill-pool/--decode-pool is not "
                          "supported; name a catalog model or a config.json with --model")
    if params.get("interval_draws"):
        raise ConfigError("--interval-draws does not apply to a disaggregated run (the pools' "
                          "error draws are not modelled); drop it")


def _check_out_dir(cfg: SimulationConfig, out_dir: str | None) -> None:
    """Outputs that need ``--out-dir`` have it, and its folder can be written (checked now, not
    after the run; nothing is created until the bundle is complete)."""
    from llmsim.serving.results import prepare_out_dir

    if out_dir:
        prepare_out_dir(out_dir)
        return
    for flag, on in (("--chrome-trace (metrics.chrome_trace)", cfg.metrics.chrome_trace),
                     ("--save-itls (metrics.save_itls)", cfg.metrics.save_itls)):
        if on:
            raise ConfigError(f"{flag} writes a file into the --out-dir folder; add --out-dir DIR")


def register(app: typer.Typer) -> None:
    """Attach ``llmsim simulate`` to the root app (called by ``llmsim.cli.app``)."""
    app.command("simulate")(simulate_cmd)
