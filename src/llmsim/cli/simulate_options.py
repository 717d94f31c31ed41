"""``llmsim simulate``'s own flags, and where each goes in a :class:`SimulationConfig`.

:data:`CONFIG_KEYS` is the one map from a flag (its parameter name) to ``section.key`` of the
config, with the conversion from the flag's unit to the config's (``--swap-space`` is GiB,
``scheduler.swap_space_bytes`` bytes); :func:`config_overrides` turns the flags given into the
overrides that :func:`llmsim.serving.config.merge` lays over a config file or the defaults.
The deployment flags (``llmsim.cli.deployment``) go through the same map, ``dp`` being the
replicas behind the router.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmsim import units
from llmsim.cli.options import non_empty_path
from llmsim.errors import ConfigError

if TYPE_CHECKING:
    from llmsim.serving.config import SimulationConfig

ReplicasOpt = Annotated[int | None, typer.Option(
    "--replicas", min=1,
    help="Independent data-parallel replicas behind the router (each tp x pp GPUs; "
         "unlike estimate's --dp, MoE experts are not shared across replicas).")]
InFlightMicroOpt = Annotated[int | None, typer.Option(
    "--micro-batches", min=0, help="Pipeline micro-batches in flight (0: one per stage).")]
ConfigFileOpt = Annotated[str | None, typer.Option(
    "--config", "-c", callback=non_empty_path,
    help="Simulation config YAML (sections model, hardware, "
         "parallelism, scheduler, workload, slo, metrics).")]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", "-s", help="static | dynamic | continuous | chunked.")]
MaxNumSeqsOpt = Annotated[int | None, typer.Option(
    "--max-num-seqs", min=1, help="Most sequences in a batch (default 256).")]
MaxNumBatchedTokensOpt = Annotated[int | None, typer.Option(
    "--max-num-batched-tokens", min=1,
    help="Token budget per step (chunked default 8192).")]
BlockSizeOpt = Annotated[int | None, typer.Option(
    "--block-size", min=1, help="KV-cache block size in tokens (default 16).")]
OrderOpt = Annotated[str | None, typer.Option(
    "--order", help="Queue order: fcfs | priority.")]
PreemptionOpt = Annotated[str | None, typer.Option(
    "--preemption",
    help="recompute | swap (KV to host over PCIe) | none (admission reserves prompt + output "
         "KV; TensorRT-LLM's GUARANTEED_NO_EVICT, its default).")]
SwapSpaceOpt = Annotated[float | None, typer.Option(
    "--swap-space", min=0.0, help="Host memory for swapped KV per GPU, GB (default 4 GiB).")]
PrefixCachingOpt = Annotated[bool | None, typer.Option(
    "--prefix-caching/--no-prefix-caching", help="Reuse KV blocks of shared prefixes.")]
BatchWindowOpt = Annotated[float | None, typer.Option(
    "--batch-window", min=0.0, help="Dynamic batching window, seconds.")]
MaxModelLenOpt = Annotated[int | None, typer.Option(
    "--max-model-len", min=2, help="Longest input+output served (default: model's).")]
KvCapacityTokensOpt = Annotated[int | None, typer.Option(
    "--kv-capacity-tokens", min=1,
    help="KV-cache capacity per replica in tokens (default: from the memory analysis).")]
RouterOpt = Annotated[str | None, typer.Option(
    "--router", help="round-robin | least-outstanding | least-kv | random.")]
TraceOpt = Annotated[str | None, typer.Option(
    "--trace", "-t", help="Trace CSV/JSONL (Azure 2023, Mooncake, Vidur or "
                          "input_tokens,output_tokens[,arrival_time_s]).")]
TraceFormatOpt = Annotated[str | None, typer.Option(
    "--trace-format", help="auto | azure | mooncake | vidur | plain.")]
RateScaleOpt = Annotated[float | None, typer.Option(
    "--rate-scale", min=1e-9, help="Replay the trace this many times faster (2 = 2x rate).")]
NumRequestsOpt = Annotated[int | None, typer.Option(
    "--num-requests", "-n", min=1, help="Requests to simulate (a trace is tiled if short).")]
ArrivalOpt = Annotated[str | None, typer.Option(
    "--arrival", help="poisson | gamma | deterministic | batch (all at once).")]
RateOpt = Annotated[float | None, typer.Option(
    "--rate", "-r", "--request-rate", min=1e-12,
    help="Arrival rate, requests/s (Poisson unless --arrival / --burstiness).")]
BurstinessOpt = Annotated[float | None, typer.Option(
    "--burstiness", min=1e-9, help="Gamma arrivals of shape B as vllm bench serve "
                                   "(1 = Poisson, < 1 burstier); needs --request-rate.")]
WarmupRequestsOpt = Annotated[int | None, typer.Option(
    "--warmup-requests", min=0, help="Run the first N requests unmeasured (aiperf "
                                     "--warmup-request-count); closed loops measure after "
                                     "they finish.")]
ClientJitterOpt = Annotated[float | None, typer.Option(
    "--client-jitter", min=0.0, help="Delay each send by a seeded U(0, S) seconds "
                                     "(default: the engine profile's, else 0).")]
EngineOpt = Annotated[str | None, typer.Option(
    "--engine", help="Serving engine model: vllm | sglang | trtllm (NAME@VERSION): its "
                     "scheduler, default limits and fitted overheads.")]
EngineProfileOpt = Annotated[str | None, typer.Option(
    "--engine-profile", help="Engine profiles YAML to use instead of the packaged fit.")]
ChunkSizeOpt = Annotated[int | None, typer.Option(
    "--chunk-size", min=1, help="prefill-first (sglang): largest prompt chunk "
                                "(chunked_prefill_size).")]
MixDecodesOpt = Annotated[bool | None, typer.Option(
    "--mix-decodes/--no-mix-decodes", help="prefill-first (sglang): decodes run inside "
                                           "prefill steps (--enable-mixed-chunk).")]
CvOpt = Annotated[float | None, typer.Option(
    "--cv", min=1e-9, help="Gamma arrivals: coefficient of variation of the gaps.")]
ConcurrencyOpt = Annotated[int | None, typer.Option(
    "--concurrency", min=1, help="Closed loop: at most C requests in flight.")]
ThinkTimeOpt = Annotated[float | None, typer.Option(
    "--think-time", min=0.0, help="Closed loop: seconds between a reply and the next send.")]
PromptDistOpt = Annotated[str | None, typer.Option(
    "--input-len", help="Input lengths, e.g. 1024, uniform:128,2048, "
                          "lognormal:mean=1024,cv=1, zipf:a=1.2,high=8192, "
                          "empirical:path=trace.csv.")]
OutputDistOpt = Annotated[str | None, typer.Option(
    "--output-len", help="Output lengths (same syntax as --input-len).")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed.")]
SharedPrefixOpt = Annotated[int | None, typer.Option(
    "--shared-prefix", min=0, help="Synthetic: tokens of a prompt prefix shared by a group.")]
PrefixGroupsOpt = Annotated[int | None, typer.Option(
    "--prefix-groups", min=1, help="Synthetic: number of distinct shared prefixes.")]
PriorityLevelsOpt = Annotated[int | None, typer.Option(
    "--priority-levels", min=1, help="Synthetic: random priorities 0..K-1 (with --order "
                                     "priority).")]
SloTtftOpt = Annotated[float | None, typer.Option(
    "--slo-ttft", min=0.0, help="Goodput SLO on TTFT, seconds (default 2).")]
SloTpotOpt = Annotated[float | None, typer.Option(
    "--slo-tpot", min=0.0, help="Goodput SLO on TPOT, seconds (default 0.1).")]
SampleIntervalOpt = Annotated[float | None, typer.Option(
    "--sample-interval", min=1e-6, help="Time-series sampling interval, seconds.")]
OutDirOpt = Annotated[str | None, typer.Option(
    "--out-dir", callback=non_empty_path,
    help="Write the bundle (summary.json, requests, time series, config, plots) to this folder "
         "(`--out DIR` still works, deprecated).")]
RequestsOpt = Annotated[bool, typer.Option(
    "--requests", help="--format csv / json / parquet: the per-request rows instead of the "
                       "summary.")]
RequestsFormatOpt = Annotated[str, typer.Option(
    "--requests-format", help="Per-request table format in --out-dir: csv | parquet.")]
ChromeTraceOpt = Annotated[bool, typer.Option(
    "--chrome-trace", help="Also write trace.json (Chrome trace of the steps) to --out-dir.")]
SaveItlsOpt = Annotated[bool, typer.Option(
    "--save-itls", help="Also write every inter-token latency to --out-dir (itls.csv or "
                        ".parquet: request_id, token_index, itl_s; one row per token).")]
PlotsOpt = Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG plots to --out-dir.")]
MetricsOpt = Annotated[str, typer.Option(
    "--metrics", help="llmsim | vllm: the metrics under vLLM's benchmark names and definitions "
                      "(mean/median/std/pNN_{ttft,tpot,itl,e2el}_ms, request_throughput, ...).")]
PercentilesOpt = Annotated[str, typer.Option(
    "--percentiles", help="--metrics vllm: the pNN keys, as vLLM's --metric-percentiles "
                          "(e.g. 50,90,99).")]
ProgressOpt = Annotated[bool | None, typer.Option(
    "--progress/--no-progress", help="Progress on stderr (default: a bar when stderr is a "
                                     "TTY; --progress elsewhere prints a line per 10%).")]


# prefill/decode disaggregation: the pools as estimate takes them (cli/disagg_options.py)
MaybeKvLinkOpt = Annotated[str | None, typer.Option(
    "--kv-link", help="With --prefill-pool/--decode-pool: the link the KV cache crosses, "
                      "nvlink | rdma | ethernet[:BANDWIDTH] (default rdma).")]
MaybeKvLayerwiseOpt = Annotated[bool | None, typer.Option(
    "--kv-layerwise/--no-kv-layerwise",
    help="With the pools: send each layer's KV while the prefill runs (default on).")]


def _same(value: Any) -> Any:
    return value


def _true_or_unset(on: bool) -> bool | None:
    """An on/off flag that is off by default: on sets the key, off leaves the file's value."""
    return True if on else None


@dataclass(frozen=True)
class ConfigKey:
    """Where a flag's value goes: ``section.key`` of a :class:`SimulationConfig`, after
    ``convert`` (the flag's unit to the config's; None: leave the key as it is)."""

    path: str
    convert: Callable[[Any], Any] = _same

    @property
    def section(self) -> str:
        return self.path.partition(".")[0]

    @property
    def key(self) -> str:
        return self.path.partition(".")[2]


#: flag (parameter name) -> config key; the flags not here (--config, --scenario, --out,
#: --out-dir, --requests, --requests-format, --plots, --progress, --format, --metrics,
#: --percentiles, --interval-draws, --interval-level) steer the command, not the simulation
CONFIG_KEYS: Mapping[str, ConfigKey] = {
    # deployment (DeploymentFlags)
    "model": ConfigKey("model.name"),
    "dtype": ConfigKey("model.dtype"),
    "weight_dtype": ConfigKey("model.weight_dtype"),
    "act_dtype": ConfigKey("model.act_dtype"),
    "kv_dtype": ConfigKey("model.kv_dtype"),
    "hardware": ConfigKey("hardware.name"),
    "cluster": ConfigKey("hardware.cluster"),
    "num_gpus": ConfigKey("hardware.num_gpus"),
    "profile": ConfigKey("hardware.profile"),
    "efficiency": ConfigKey("hardware.efficiency"),
    "estimator": ConfigKey("hardware.estimator"),
    "estimator_model": ConfigKey("hardware.estimator_model"),
    "tp": ConfigKey("parallelism.tp"),
    "expert_skew": ConfigKey("parallelism.expert_skew"),
    "redundant_experts": ConfigKey("parallelism.redundant_experts"),
    "afd": ConfigKey("parallelism.afd"),
    "pp": ConfigKey("parallelism.pp"),
    "ep": ConfigKey("parallelism.ep"),
    "dp": ConfigKey("parallelism.replicas"),
    "micro_batches": ConfigKey("parallelism.micro_batches"),
    # the rest of the model, hardware and parallelism sections
    "max_model_len": ConfigKey("model.max_model_len"),
    "memory_utilization": ConfigKey("hardware.memory_utilization"),
    "router": ConfigKey("parallelism.router"),
    # scheduler
    "scheduler": ConfigKey("scheduler.name"),
    "max_num_seqs": ConfigKey("scheduler.max_num_seqs"),
    "max_num_batched_tokens": ConfigKey("scheduler.max_num_batched_tokens"),
    "block_size": ConfigKey("scheduler.block_size"),
    "order": ConfigKey("scheduler.order"),
    "preemption": ConfigKey("scheduler.preemption"),
    "swap_space_gib": ConfigKey("scheduler.swap_space_bytes", units.gib_to_bytes),
    "prefix_caching": ConfigKey("scheduler.prefix_caching"),
    "batch_window": ConfigKey("scheduler.batch_window_s"),
    "kv_capacity_tokens": ConfigKey("scheduler.kv_capacity_tokens"),
    "chunk_size": ConfigKey("scheduler.chunk_size_tokens"),
    "mix_decodes": ConfigKey("scheduler.mix_decodes"),
    # engine
    "engine": ConfigKey("engine.name"),
    "engine_profile": ConfigKey("engine.profile"),
    # workload
    "trace": ConfigKey("workload.trace"),
    "trace_format": ConfigKey("workload.trace_format"),
    "rate_scale": ConfigKey("workload.rate_scale"),
    "num_requests": ConfigKey("workload.num_requests"),
    "arrival": ConfigKey("workload.arrival"),
    "rate": ConfigKey("workload.rate"),
    "cv": ConfigKey("workload.cv"),
    "concurrency": ConfigKey("workload.concurrency"),
    "think_time": ConfigKey("workload.think_time_s"),
    "prompt_dist": ConfigKey("workload.prompt"),
    "output_dist": ConfigKey("workload.output"),
    "seed": ConfigKey("workload.seed"),
    "shared_prefix": ConfigKey("workload.shared_prefix_tokens"),
    "prefix_groups": ConfigKey("workload.prefix_groups"),
    "priority_levels": ConfigKey("workload.priority_levels"),
    "warmup_requests": ConfigKey("workload.warmup_requests"),
    "burstiness": ConfigKey("workload.burstiness"),
    "client_jitter": ConfigKey("workload.jitter_s"),
    # slo, metrics
    "slo_ttft": ConfigKey("slo.ttft_s"),
    "slo_tpot": ConfigKey("slo.tpot_s"),
    "sample_interval": ConfigKey("metrics.sample_interval_s"),
    "chrome_trace": ConfigKey("metrics.chrome_trace", _true_or_unset),
    "save_itls": ConfigKey("metrics.save_itls", _true_or_unset),
    # decoding (speculation: cli/spec_options.py)
    "spec_method": ConfigKey("decoding.spec_method"),
    "spec_tokens": ConfigKey("decoding.spec_tokens"),
    "spec_acceptance": ConfigKey("decoding.spec_acceptance"),
    "draft_model": ConfigKey("decoding.draft_model"),
    "beam": ConfigKey("decoding.beam"),
    # prefill/decode disaggregation (serving/disagg_config.py)
    "prefill_pool": ConfigKey("disagg.prefill_pool"),
    "decode_pool": ConfigKey("disagg.decode_pool"),
    "kv_link": ConfigKey("disagg.kv_link"),
    "kv_layerwise": ConfigKey("disagg.kv_layerwise"),
    # expert offload (cli/expert_offload_options.py)
    "expert_cache_experts": ConfigKey("expert_offload.cache_experts"),
    "expert_cache_gb": ConfigKey("expert_offload.cache_gb"),
    "expert_policy": ConfigKey("expert_offload.policy"),
    "expert_prefetch": ConfigKey("expert_offload.prefetch"),
    "expert_prefetch_accuracy": ConfigKey("expert_offload.prefetch_accuracy"),
    "expert_miss": ConfigKey("expert_offload.miss"),
    "expert_routing": ConfigKey("expert_offload.routing"),
    "expert_host": ConfigKey("expert_offload.host"),
    "expert_cpu_efficiency": ConfigKey("expert_offload.cpu_efficiency"),
}


def config_overrides(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{section: {key: value}}`` of every flag in :data:`CONFIG_KEYS` (its value converted;
    None where the flag was not given, which :func:`llmsim.serving.config.merge` skips)."""
    out: dict[str, dict[str, Any]] = {}
    for flag, where in CONFIG_KEYS.items():
        value = values.get(flag)
        out.setdefault(where.section, {})[where.key] = (
            None if value is None else where.convert(value))
    return out


def simulation_config(config_file: str | None,
                      overrides: dict[str, dict[str, Any]]) -> SimulationConfig:
    """The config a run simulates: ``overrides`` (:func:`config_overrides`) over the config
    file, or over the defaults (then a model and a hardware part or cluster must be given)."""
    from llmsim.serving.config import SimulationConfig, load_config, merge

    if config_file:
        return merge(load_config(config_file), overrides)
    model, hardware = overrides["model"]["name"], overrides["hardware"]
    if not model:
        raise ConfigError("give --model and --hardware (or --config FILE.yaml)")
    if not hardware["name"] and not hardware["cluster"]:
        raise ConfigError("give --hardware (or --cluster, or --config FILE.yaml)")
    return merge(SimulationConfig(model={"name": model}, hardware={
        "name": hardware["name"], "cluster": hardware["cluster"]}), overrides)
