"""``SearchConfig``: one search as a validated YAML/dict (the CLI flags build the same).

::

    model: {name: llama-3.1-70b}                   # or `model: llama-3.1-70b`
    workload: {trace: azure-conv, rate: 10, num_requests: 300}
    slo: {ttft_p99: 1s, tpot_p99: 50ms}
    space: {gpus: [h100-sxm, h200-sxm, mi300x], max_gpus: 64, tp: [1, 2, 4, 8]}
    scheduler: {name: chunked}                       # engine knobs other than the searched limits
    hardware: {memory_utilization: 0.9}
    search: {objective: goodput_per_gpu, tolerance: 0.05, estimator: calibrated}

The workload needs a load: ``rate`` (open loop) or ``concurrency`` (closed loop).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from llmsim.catalog._base import Spec, validate_spec
from llmsim.errors import ConfigError
from llmsim.search.slo import SloTarget, parse_slo
from llmsim.search.space import SearchSpace
from llmsim.serving.config import HardwareSection, ModelSection, SchedulerSection
from llmsim.workload.spec import WorkloadSection

OBJECTIVES = ("goodput_per_gpu", "goodput_per_dollar")
DEFAULT_NUM_REQUESTS = 300


class SearchOptions(Spec):
    objective: str = "goodput_per_gpu"
    tolerance: float = Field(default=0.05, gt=0, le=1.0,
                             description="bisection stops when hi / lo <= 1 + tolerance")
    estimator: str = "calibrated"
    estimator_model: str | None = None
    prices: str | None = Field(default=None, description="price file (default: shipped)")
    idle_power_frac: float = Field(default=0.0, ge=0, le=1)
    prune: bool = Field(default=True, description="false: simulate every plan (brute force)")
    disagg_serving: bool = Field(default=True, description=(
        "confirm the xPyD layouts the static estimate accepts in the serving simulation "
        "(false: static estimate only, ranked on their own)"))
    intervals: bool = True
    interval_draws: int = Field(default=8, ge=2, le=200)
    interval_level: float = Field(default=0.8, gt=0, lt=1)
    runners_up: int = Field(default=5, ge=0)

    @model_validator(mode="after")
    def _known(self) -> SearchOptions:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective {self.objective!r} is not one of "
                              f"{', '.join(OBJECTIVES)}")
        return self


class SearchConfig(Spec):
    model: ModelSection
    workload: WorkloadSection
    slo: str | dict[str, Any]
    space: SearchSpace = SearchSpace()
    scheduler: SchedulerSection = SchedulerSection()
    hardware: HardwareSection = HardwareSection()
    search: SearchOptions = SearchOptions()

    @model_validator(mode="before")
    @classmethod
    def _names_as_strings(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("model"), str):
            data = {**data, "model": {"name": data["model"]}}
        return data

    @model_validator(mode="after")
    def _check(self) -> SearchConfig:
        parse_slo(self.slo)
        wl = self.workload
        if (wl.rate is None) == (wl.concurrency is None):
            raise ConfigError("search needs one load: --rate R (open loop, requests/s) or "
                              "--concurrency C (closed loop), not both and not neither")
        if self.hardware.name or self.hardware.cluster or self.hardware.num_gpus:
            raise ConfigError("the hardware is searched: give GPU types in space.gpus "
                              "(--gpus), not hardware.name / cluster / num_gpus")
        if self.model.weight_dtype or self.model.kv_dtype:
            raise ConfigError("weight and KV formats are searched: give them in "
                              "space.weight_dtype / space.kv_dtype (--weight-dtype, --kv-dtype)")
        return self

    @property
    def targets(self) -> tuple[SloTarget, ...]:
        return parse_slo(self.slo)

    @property
    def mode(self) -> str:
        return "rate" if self.workload.rate is not None else "concurrency"

    @property
    def load(self) -> float:
        wl = self.workload
        return float(wl.rate if wl.rate is not None else wl.concurrency)  # type: ignore[arg-type]

    def base_simulation(self) -> dict[str, Any]:
        """The simulation config every layout starts from (JSON-able; the plan fills in
        hardware, parallelism, formats, engine limits and the load)."""
        wl = self.workload.model_dump(mode="json")
        wl["num_requests"] = wl.get("num_requests") or DEFAULT_NUM_REQUESTS
        wl["rate"], wl["concurrency"] = None, None
        slo = {"ttft_s": None, "tpot_s": None}
        for t in self.targets:  # the simulator's goodput counter: the same limits, per request
            if t.metric in ("ttft", "tpot"):
                slo[f"{t.metric}_s"] = t.limit_s
        return {"model": self.model.model_dump(mode="json"),
                "hardware": self.hardware.model_dump(mode="json"),
                # only the keys given: an engine fills in its own scheduler and defaults
                "scheduler": self.scheduler.model_dump(mode="json", exclude_unset=True),
                "workload": wl, "slo": slo}

    def deployment_args(self) -> dict[str, Any]:
        return {"model": self.model.name, "dtype": self.model.dtype,
                "act_dtype": self.model.act_dtype, "profile": self.hardware.profile,
                "efficiency": self.hardware.efficiency, "estimator": self.search.estimator,
                "estimator_model": self.search.estimator_model}


def load_search_config(source: str | Path | dict[str, Any] | SearchConfig) -> SearchConfig:
    """A ``SearchConfig`` from itself, a dict or a YAML file (paths relative to its folder)."""
    if isinstance(source, SearchConfig):
        return source
    if isinstance(source, dict):
        return validate_spec(SearchConfig, source, "search config")  # type: ignore[return-value]
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"search config file not found: {source}")
    from llmsim.catalog.files import read_yaml_file
    from llmsim.serving.config import paths_relative_to

    data = read_yaml_file(path, str(path))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a search config is a mapping (model, workload, slo, space)")
    data = paths_relative_to(data, path.parent)
    return validate_spec(SearchConfig, data, str(path))  # type: ignore[return-value]
