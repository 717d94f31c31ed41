"""``SimulationConfig``: every knob of a serving simulation, as a validated YAML/dict.

::

    model: {name: llama-3.1-8b, dtype: bf16}        # or just `model: llama-3.1-8b`
    hardware: {name: h100-sxm, memory_utilization: 0.9}
    parallelism: {tp: 1, pp: 1, replicas: 1, router: round-robin}
    scheduler: {name: chunked, max_num_seqs: 256, max_num_batched_tokens: 8192,
                block_size: 16, order: fcfs, preemption: recompute, prefix_caching: false}
    workload: {trace: conv.csv, rate_scale: 1.0}   # or arrival/rate/prompt/output
    slo: {ttft_s: 2.0, tpot_s: 0.1}
    metrics: {sample_interval_s: null, chrome_trace: false}

Unknown keys are rejected with a did-you-mean (``llmsim.catalog._base.validate_spec``).
"""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from llmsim.catalog._base import Bytes, Seconds, Spec, validate_spec
from llmsim.errors import ConfigError
from llmsim.serving.schedulers.base import Order

log = logging.getLogger(__name__)


class Preemption(str, Enum):
    RECOMPUTE = "recompute"
    SWAP = "swap"


class ModelSection(Spec):
    name: str
    dtype: str | None = None
    weight_dtype: str | None = None
    act_dtype: str | None = None
    kv_dtype: str | None = None
    max_model_len: int | None = Field(default=None, gt=1)


class HardwareSection(Spec):
    name: str | None = None
    cluster: str | None = None
    num_gpus: int | None = Field(default=None, gt=0)
    profile: str | None = None
    efficiency: float | None = None
    memory_utilization: float = Field(default=0.9, ge=0.05, le=1.0)


class ParallelismSection(Spec):
    tp: int = Field(default=1, gt=0)
    pp: int = Field(default=1, gt=0)
    ep: int = Field(default=1, gt=0)
    replicas: int = Field(default=1, gt=0, description="data-parallel replicas behind the router")
    micro_batches: int = Field(default=0, ge=0, description="PP micro-batches (0: one per stage)")
    router: str = "round-robin"


class SchedulerSection(Spec):
    name: str = "chunked"
    max_num_seqs: int = Field(default=256, gt=0)
    max_num_batched_tokens: int | None = Field(default=None, gt=0)
    block_size: int = Field(default=16, gt=0)
    order: Order = Order.FCFS
    preemption: Preemption = Preemption.RECOMPUTE
    swap_space_bytes: Bytes = Field(default=4 * 2**30, ge=0,
                                    description="host memory for swapped KV, per GPU")
    prefix_caching: bool = False
    batch_window_s: Seconds = Field(default=0.05, ge=0)
    watermark_frac: float = Field(default=0.01, ge=0, lt=1)
    kv_capacity_tokens: int | None = Field(
        default=None, gt=0, description="override the KV capacity from the memory analysis")


class WorkloadSection(Spec):
    trace: str | None = None
    trace_format: str = "auto"
    rate_scale: float = Field(default=1.0, gt=0)
    num_requests: int | None = Field(default=None, gt=0)
    arrival: str | None = None
    rate: float | None = Field(default=None, gt=0)
    cv: float | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, gt=0)
    think_time_s: Seconds = Field(default=0.0, ge=0)
    prompt: str | int | dict[str, Any] = "fixed:1024"
    output: str | int | dict[str, Any] = "fixed:128"
    seed: int = 0
    shared_prefix_tokens: int = Field(default=0, ge=0)
    prefix_groups: int = Field(default=1, gt=0)
    priority_levels: int = Field(default=1, gt=0)


class SLOSection(Spec):
    ttft_s: Seconds | None = 2.0
    tpot_s: Seconds | None = 0.1


class MetricsSection(Spec):
    sample_interval_s: Seconds | None = Field(default=None, gt=0)
    max_timeseries_points: int = Field(default=4000, ge=16)
    chrome_trace: bool = False
    max_trace_steps: int = Field(default=200_000, gt=0)


class SimulationConfig(Spec):
    model: ModelSection
    hardware: HardwareSection = HardwareSection()
    parallelism: ParallelismSection = ParallelismSection()
    scheduler: SchedulerSection = SchedulerSection()
    workload: WorkloadSection = WorkloadSection()
    slo: SLOSection = SLOSection()
    metrics: MetricsSection = MetricsSection()

    @model_validator(mode="before")
    @classmethod
    def _names_as_strings(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("model", "hardware", "scheduler"):
                if isinstance(data.get(key), str):
                    data[key] = {"name": data[key]}
        return data

    @model_validator(mode="after")
    def _check(self) -> SimulationConfig:
        if self.hardware.name is None and self.hardware.cluster is None:
            raise ValueError("hardware: give name (e.g. h100-sxm) or cluster")
        if self.workload.priority_levels > 1 and self.scheduler.order != Order.PRIORITY:
            log.warning("priorities are drawn (%d levels) but the fcfs order ignores them; "
                        "add --order priority to schedule by them",
                        self.workload.priority_levels)
        return self


def load_config(source: str | Path | dict[str, Any] | SimulationConfig) -> SimulationConfig:
    """A ``SimulationConfig`` from itself, a dict, or a YAML file path."""
    if isinstance(source, SimulationConfig):
        return source
    if isinstance(source, dict):
        return validate_spec(SimulationConfig, source, "simulation config")  # type: ignore
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    from llmsim.catalog.loader import read_yaml_file

    data = read_yaml_file(path, str(path))
    return validate_spec(SimulationConfig, data, str(path))  # type: ignore[return-value]


def merge(config: SimulationConfig, overrides: dict[str, dict[str, Any]]) -> SimulationConfig:
    """Override section fields (``{"scheduler": {"name": "static"}}``); None values skipped."""
    data = config.model_dump()
    for section, values in overrides.items():
        for k, v in values.items():
            if v is not None:
                data.setdefault(section, {})[k] = v
    return validate_spec(SimulationConfig, data, "simulation config")  # type: ignore
