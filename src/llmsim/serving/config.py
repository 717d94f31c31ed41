"""``SimulationConfig``: every knob of a serving simulation, as a validated YAML/dict.

::

    model: {name: llama-3.1-8b, dtype: bf16}        # or just `model: llama-3.1-8b`
    hardware: {name: h100-sxm, memory_utilization: 0.9}
    parallelism: {tp: 1, pp: 1, replicas: 1, router: round-robin}
    scheduler: {name: chunked, max_num_seqs: 256, max_num_batched_tokens: 8192,
                block_size: 16, order: fcfs, preemption: recompute, prefix_caching: false}
    workload: {trace: conv.csv, rate_scale: 1.0}   # or arrival/rate/prompt/output
    slo: {ttft_s: 2.0, tpot_s: 0.1}
    metrics: {sample_interval_s: null, chrome_trace: false, save_itls: false}

Unknown keys are rejected with a did-you-mean (``llmsim.catalog._base.validate_spec``).
Knobs that would be silently ignored are errors (a trace with length distributions, a rate
with all-at-once arrivals, a batch window without the dynamic scheduler, swap space without
swap preemption, a GPU count that is not ``tp x pp x replicas``; in the workload section a rate
scale without trace timestamps, prefix groups without a shared prefix, a trace format without a
trace). Numbers are finite (``--rate inf``, ``--cv inf``, ``--batch-window inf`` are errors) and
counts bounded (``num_requests`` at most 100,000,000, KV capacity at most 2**40 tokens).
Relative paths in a YAML file (the trace, ``empirical:path=...`` lengths, a model
``config.json``, a profile) are relative to the file's folder.
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_serializer, model_validator

from llmsim.catalog._base import Bytes, Seconds, Spec, validate_spec
from llmsim.costmodel.deployment import Deployment
from llmsim.errors import ConfigError
from llmsim.io import check_path_name, path_name_problem, shown
from llmsim.serving.disagg_config import DisaggSection, check_disagg
from llmsim.serving.expert_offload_config import ExpertOffloadSection
from llmsim.serving.schedulers.base import Order
from llmsim.workload.spec import WorkloadSection

log = logging.getLogger(__name__)

DEFAULT_SWAP_SPACE_BYTES = 4 * 2**30  # per GPU, as vLLM (preemption: swap)
DEFAULT_BATCH_WINDOW_S = 0.05  # the dynamic scheduler's window
#: bounds beyond which a count is a typo (and block counts would overflow int64)
MAX_TOKENS = 2**31 - 1
MAX_KV_TOKENS = 2**40


class Preemption(str, Enum):
    """What happens when the running requests' KV outgrows the cache: ``recompute`` (free a
    request's blocks, recompute its prompt later; vLLM V1), ``swap`` (move its blocks to host
    memory), or ``none``: never preempt -- admission reserves each request's whole KV
    (prompt + output tokens) up front, so a started request always finishes (TensorRT-LLM's
    default capacity policy ``GUARANTEED_NO_EVICT``)."""

    RECOMPUTE = "recompute"
    SWAP = "swap"
    NONE = "none"


class ModelSection(Spec):
    name: str
    dtype: str | None = None
    weight_dtype: str | None = None
    act_dtype: str | None = None
    kv_dtype: str | None = None
    max_model_len: int | None = Field(default=None, gt=1, le=MAX_TOKENS)


class HardwareSection(Spec):
    name: str | None = None
    cluster: str | None = None
    num_gpus: int | None = Field(default=None, gt=0)
    profile: str | None = None
    efficiency: float | None = None
    memory_utilization: float = Field(default=0.9, ge=0.05, le=1.0)
    #: the step-time estimator (``costmodel/estimators``) and its data (table / model file)
    estimator: str = "calibrated"
    estimator_model: str | None = None


class ParallelismSection(Spec):
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    ep: int = Field(default=1, gt=0)
    replicas: int = Field(default=1, gt=0, description="data-parallel replicas behind the router")
    micro_batches: int = Field(default=0, ge=0, description="PP micro-batches (0: one per stage)")
    router: str = "round-robin"
    expert_skew: float = Field(default=0.0, ge=0.0, le=8.0,
                               description="Zipf exponent of expert popularity (0: balanced)")
    redundant_experts: int = Field(default=0, ge=0, description="EPLB extra expert instances")
    #: attention-FFN disaggregation (``costmodel/afd.py``): ``attention=2,ffn=4,microbatches=3
    #: [,link=rdma:200Gbps]`` or a mapping of those keys; ``tp`` is each attention instance's
    afd: str | dict[str, Any] | None = None

    @field_validator("afd")
    @classmethod
    def _afd(cls, value: Any) -> Any:
        from llmsim.costmodel.afd_spec import afd_from_value

        afd_from_value(value)  # checked here: a bad spec fails when the config is read
        return value

    @model_serializer(mode="wrap")
    def _large_ep_only_when_set(self, handler):
        """The large-EP keys are written only when set (configs without them read the same)."""
        data = handler(self)
        for key in ("expert_skew", "redundant_experts", "afd"):
            if not data.get(key, 1):
                data.pop(key, None)
        return data


class SchedulerSection(Spec):
    name: str = "chunked"
    max_num_seqs: int = Field(default=256, gt=0, le=MAX_TOKENS)
    max_num_batched_tokens: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    block_size: int = Field(default=16, gt=0, le=2**20)
    order: Order = Order.FCFS
    preemption: Preemption = Preemption.RECOMPUTE
    swap_space_bytes: Bytes | None = Field(
        default=None, ge=0, description="host memory for swapped KV, per GPU (swap only; "
                                        "default 4 GiB)")
    prefix_caching: bool = False
    batch_window_s: Seconds | None = Field(
        default=None, ge=0, description="dynamic scheduler only (default 50 ms)")
    watermark_frac: float = Field(default=0.01, ge=0, lt=1)
    kv_capacity_tokens: int | None = Field(
        default=None, gt=0, le=MAX_KV_TOKENS,
        description="override the KV capacity from the memory analysis")
    chunk_size_tokens: int | None = Field(
        default=None, gt=0, le=MAX_TOKENS,
        description="prefill-first: largest prompt chunk (SGLang chunked_prefill_size)")
    mix_decodes: bool | None = Field(
        default=None, description="prefill-first: decodes run inside prefill steps "
                                  "(SGLang --enable-mixed-chunk; default true)")


class EngineSection(Spec):
    """``engine: trtllm`` or ``{name: vllm@0.12.0, profile: my_profiles.yaml,
    request_overhead_s: .., step_overhead_s: .., prefill_step_factor: ..,
    mixed_step_factor: .., client_phase_spread: .., host_per_seq_s: ..}``: the engine's
    scheduler and default limits (``llmsim.engines``) and its fitted profile, each profile
    parameter overridable here."""

    name: str
    profile: str | None = None
    request_overhead_s: Seconds | None = Field(default=None, ge=0)
    step_overhead_s: Seconds | None = Field(default=None, ge=0)
    prefill_step_factor: float | None = Field(default=None, ge=0.5, le=3.0)
    mixed_step_factor: float | None = Field(default=None, ge=0.5, le=3.0)
    client_phase_spread: float | None = Field(default=None, ge=0, le=10)
    host_per_seq_s: Seconds | None = Field(default=None, ge=0)


class SLOSection(Spec):
    ttft_s: Seconds | None = Field(default=2.0, gt=0, description="null: no TTFT SLO")
    tpot_s: Seconds | None = Field(default=0.1, gt=0, description="null: no TPOT SLO")


class MetricsSection(Spec):
    sample_interval_s: Seconds | None = Field(default=None, gt=0)
    max_timeseries_points: int = Field(default=4000, ge=16)
    chrome_trace: bool = False
    max_trace_steps: int = Field(default=200_000, gt=0)
    save_itls: bool = Field(default=False, description="keep every inter-token latency")


class DecodingSection(Spec):
    """How tokens are decoded: speculation (``spec_method``: mtp | draft | ngram, with
    ``spec_tokens`` drafts per step accepted at ``spec_acceptance``, one rate or a comma list
    per position; ``draft_model`` for draft) -- see docs/speculative.md; ``beam``: beam search
    with that many beams per request (docs/serving.md)."""

    spec_method: str | None = None
    spec_tokens: int | None = Field(default=None, gt=0, le=64)
    spec_acceptance: str | float | None = None
    draft_model: str | None = None
    beam: int = Field(default=1, ge=1, le=1024, description="beams per request (beam search)")

    def speculation(self) -> Any:
        """The checked :class:`~llmsim.costmodel.speculative.Speculation`, or None."""
        if self.spec_method is None:
            if self.spec_tokens is not None or self.spec_acceptance is not None \
                    or self.draft_model is not None:
                raise ConfigError("--spec-tokens / --spec-acceptance / --draft-model "
                                  "(decoding.*) need --spec-method mtp|draft|ngram")
            return None
        from llmsim.costmodel.speculative import Speculation

        return Speculation.build(self.spec_method, self.spec_tokens, self.spec_acceptance,
                                 self.draft_model)


class SimulationConfig(Spec):
    model: ModelSection
    hardware: HardwareSection = HardwareSection()
    parallelism: ParallelismSection = ParallelismSection()
    scheduler: SchedulerSection = SchedulerSection()
    workload: WorkloadSection = WorkloadSection()
    slo: SLOSection = SLOSection()
    metrics: MetricsSection = MetricsSection()
    engine: EngineSection | None = None
    decoding: DecodingSection = DecodingSection()
    disagg: DisaggSection | None = None  # prefill/decode pools (serving/disagg_config.py)
    #: a GPU expert cache per replica, the other experts in host memory (MoE models)
    expert_offload: ExpertOffloadSection | None = None

    @model_serializer(mode="wrap")
    def _without_default_decoding(self, handler: Any) -> Any:
        """The decoding section is left out of dumps while it is the default (plain
        decoding), and the expert-offload section while there is none, so configs written
        before they existed read and write the same."""
        data = handler(self)
        if isinstance(data, dict) and self.decoding == DecodingSection():
            data.pop("decoding", None)
        if isinstance(data, dict) and self.disagg is None:
            data.pop("disagg", None)
        if isinstance(data, dict) and self.expert_offload is None:
            data.pop("expert_offload", None)
        return data

    @model_validator(mode="before")
    @classmethod
    def _names_as_strings(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("model", "hardware", "scheduler", "engine"):
                if isinstance(data.get(key), str):
                    data[key] = {"name": data[key]}
        return data

    @model_validator(mode="after")
    def _check(self) -> SimulationConfig:
        if self.hardware.name is None and self.hardware.cluster is None:
            raise ValueError("hardware: give name (e.g. h100-sxm) or cluster")
        par = self.parallelism
        if self.disagg is not None:
            check_disagg(self)
        check_gpu_count(self.hardware.num_gpus, par.tp, par.pp, par.replicas)
        _check_ignored_knobs(self)
        self.decoding.speculation()  # its flags checked now
        if self.decoding.beam > 1:
            if self.decoding.spec_method is not None:
                raise ConfigError("--beam and --spec-method (decoding.beam, spec_method) are "
                                  "not modelled together; drop one")
            if self.scheduler.preemption == Preemption.SWAP:
                raise ConfigError("--beam with --preemption swap is not modelled; use "
                                  "--preemption recompute")
        if self.workload.priority_levels > 1 and self.scheduler.order != Order.PRIORITY:
            log.warning("priorities are drawn (%d levels) but the fcfs order ignores them; "
                        "add --order priority to schedule by them",
                        self.workload.priority_levels)
        return self


def check_gpu_count(num_gpus: int | None, tp: int, pp: int, replicas: int) -> None:
    """An explicit GPU count must be what the plan uses: ``tp x pp x replicas``."""
    need = tp * pp * replicas
    if num_gpus is None or num_gpus == need:
        return
    if num_gpus < tp * pp:
        fix = f"one replica alone needs tp x pp = {tp * pp}: lower --tp or --pp,"
    elif num_gpus % (tp * pp) == 0:
        fix = f"use --replicas {num_gpus // (tp * pp)}"
    else:
        fix = "change --tp / --pp / --replicas to multiply to it"
    fix += f" or --num-gpus {need}" if num_gpus < need else " or drop --num-gpus"
    raise ConfigError(f"--num-gpus {num_gpus} (hardware.num_gpus) but the plan needs tp {tp} "
                      f"x pp {pp} x replicas {replicas} = {need} GPUs; {fix}")


def _check_ignored_knobs(cfg: SimulationConfig) -> None:
    """Knobs the run would silently ignore are errors (each names the flag and the key)."""
    wl, sc = cfg.workload, cfg.scheduler
    if wl.trace and (wl.prompt is not None or wl.output is not None):
        raise ConfigError("--prompt-dist / --output-dist (workload.prompt / output) are not "
                          "used with a trace (--trace, workload.trace): its own lengths are "
                          "replayed; drop one or the other")
    arrival = (wl.arrival or "").partition(":")[0].strip().lower()
    if arrival == "batch" and wl.rate is not None:
        raise ConfigError("--rate (workload.rate) is ignored by --arrival batch (every request "
                          "at time 0); drop --rate or use --arrival poisson")
    if wl.cv is not None and arrival != "gamma":
        raise ConfigError("--cv (workload.cv) applies to gamma arrivals only; add --arrival "
                          "gamma or drop --cv")
    if sc.batch_window_s is not None:
        from llmsim.serving.schedulers import SCHEDULERS

        if not SCHEDULERS.get(sc.name).uses_batch_window:
            raise ConfigError(f"--batch-window (scheduler.batch_window_s) applies to the "
                              f"dynamic scheduler only, not {sc.name}; drop it or use "
                              "--scheduler dynamic")
    if sc.chunk_size_tokens is not None or sc.mix_decodes is not None:
        engine_sets_it = (cfg.engine is not None and "name" not in sc.model_fields_set
                          and cfg.engine.name.strip().lower().startswith("sglang"))
        if not engine_sets_it and sc.name.lower() not in ("prefill-first", "sglang",
                                                          "mixed-chunk"):
            raise ConfigError("--chunk-size / --mix-decodes (scheduler.chunk_size_tokens / "
                              "mix_decodes) apply to the prefill-first scheduler (--engine "
                              "sglang) only; drop them or use --scheduler prefill-first")
    if sc.swap_space_bytes is not None and sc.preemption != Preemption.SWAP:
        raise ConfigError("--swap-space (scheduler.swap_space_bytes) is only used with "
                          "--preemption swap; add it or drop --swap-space")


def with_engine_defaults(cfg: SimulationConfig, defaults: dict[str, Any],
                         scheduler: str) -> SimulationConfig:
    """``cfg`` with an engine's scheduler and default limits for the scheduler keys the config
    does not give (a key given by a flag or the YAML always wins)."""
    given = cfg.scheduler.model_fields_set
    values = {k: v for k, v in {"name": scheduler, **defaults}.items() if k not in given}
    if "scheduler" in cfg.model_fields_set and "name" in given:
        log.info("--scheduler %s replaces engine %s's own scheduler", cfg.scheduler.name,
                 cfg.engine.name if cfg.engine else "")
    data = cfg.model_dump(exclude_unset=True)
    data["scheduler"] = {**data.get("scheduler", {}), **values}
    return validate_spec(SimulationConfig, data, "simulation config")  # type: ignore


def deployment_of(cfg: SimulationConfig) -> Deployment:
    """The deployment one replica of ``cfg`` runs: its model, hardware (a cluster of
    ``tp x pp`` GPUs unless ``num_gpus``), plan (replicas are separate deployments), formats
    and profile."""
    m, h, p = cfg.model, cfg.hardware, cfg.parallelism
    return Deployment.resolve(
        m.name, h.name, h.cluster, h.num_gpus or (None if p.afd else p.tp * p.pp), tp=p.tp,
        pp=p.pp, ep=p.ep, dp=1, micro_batches=p.micro_batches, dtype=m.dtype,
        weight_dtype=m.weight_dtype, act_dtype=m.act_dtype, kv_dtype=m.kv_dtype,
        profile=h.profile, efficiency=h.efficiency,
        expert_skew=p.expert_skew, redundant_experts=p.redundant_experts,
        estimator=h.estimator, estimator_model=h.estimator_model, afd=p.afd)


def load_config(source: str | Path | dict[str, Any] | SimulationConfig) -> SimulationConfig:
    """A ``SimulationConfig`` from itself, a dict, or a YAML file path (whose relative paths
    are relative to the file's folder)."""
    if isinstance(source, SimulationConfig):
        return source
    if isinstance(source, dict):
        return validate_spec(SimulationConfig, source, "simulation config")  # type: ignore
    if not isinstance(source, (str, Path)):
        raise ConfigError(f"a simulation config is a YAML path, a dict or a SimulationConfig, "
                          f"got {type(source).__name__} {source!r}")
    path = Path(source)
    check_path_name(path, ConfigError, "cannot read the config file")
    if not path.exists():
        raise ConfigError(f"config file not found: {shown(path)}")
    from llmsim.catalog.files import read_yaml_file

    data = read_yaml_file(path, str(path))
    if isinstance(data, dict):
        data = paths_relative_to(data, path.parent)
    return validate_spec(SimulationConfig, data, str(path))  # type: ignore[return-value]


def _relative_path(value: Any, base: Path, builtin_ok: bool = False,
                   must_exist: bool = False) -> Any:
    """``value`` resolved against ``base`` if it is a relative path (built-in trace names
    and, with ``must_exist``, values that are no file there are kept as they are)."""
    if not isinstance(value, str) or not value.strip() or Path(value).is_absolute():
        return value
    here = base / value
    if path_name_problem(here):
        return value  # reported as the value it is where it is used
    found = here.is_file() if must_exist else here.exists()
    if found:
        return str(here)
    if must_exist:
        return value
    if builtin_ok:
        from llmsim.workload.traces import BUILTIN_TRACES

        if value.strip().lower() in BUILTIN_TRACES:
            return value
    return str(here)


def paths_relative_to(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """The file paths of a YAML config made relative to its folder ``base``."""
    from llmsim.workload.lengths import parse_length_spec

    data = dict(data)
    for section, key in (("model", "name"), ("hardware", "profile"),
                         ("hardware", "estimator_model"), ("expert_offload", "routing")):
        if isinstance(data.get(section), dict) and key in data[section]:
            data[section] = {**data[section], key: _relative_path(
                data[section][key], base, must_exist=True)}
    if isinstance(data.get("model"), str):
        data["model"] = _relative_path(data["model"], base, must_exist=True)
    wl = data.get("workload")
    if not isinstance(wl, dict):
        return data
    wl = dict(wl)
    if "trace" in wl:
        wl["trace"] = _relative_path(wl["trace"], base, builtin_ok=True)
    for key in ("prompt", "output"):
        if not isinstance(wl.get(key), (str, dict)):
            continue
        try:
            spec = parse_length_spec(wl[key])
        except ConfigError:
            continue  # reported when the workload is built
        if str(spec.get("dist", "")).lower() in ("empirical", "trace") and "path" in spec:
            resolved = _relative_path(spec["path"], base, builtin_ok=True)
            if resolved != spec["path"]:
                wl[key] = {**spec, "path": resolved}
    data["workload"] = wl
    return data


def merge(config: SimulationConfig, overrides: dict[str, dict[str, Any]]) -> SimulationConfig:
    """Override section fields (``{"scheduler": {"name": "static"}}``); None values skipped."""
    data = config.model_dump(exclude_unset=True)  # keeps which keys were given (engines)
    for section, values in overrides.items():
        for k, v in values.items():
            if v is not None:
                data.setdefault(section, {})[k] = v
    return validate_spec(SimulationConfig, data, "simulation config")  # type: ignore
