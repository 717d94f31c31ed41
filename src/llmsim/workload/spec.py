"""``WorkloadSection``: the request stream of a run as a validated YAML/dict section.

Either a trace (``trace``, ``trace_format``, ``rate_scale``, ``num_requests``) or a synthetic
stream (``arrival``, ``rate``, ``cv``, ``prompt`` / ``output`` length distributions), optionally
closed loop (``concurrency``, ``think_time_s``); ``seed`` seeds every draw. The serving config
embeds it as its ``workload:`` section; :func:`llmsim.workload.build_workload` turns it into a
:class:`~llmsim.workload.Workload`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from llmsim.catalog._base import Seconds, Spec
from llmsim.seeds import check_seed

DEFAULT_PROMPT = "fixed:1024"  # synthetic workloads (a trace keeps its own lengths)
DEFAULT_OUTPUT = "fixed:128"


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
    prompt: str | int | dict[str, Any] | None = Field(
        default=None, description="synthetic input lengths (default fixed:1024)")
    output: str | int | dict[str, Any] | None = Field(
        default=None, description="synthetic output lengths (default fixed:128)")
    seed: int = 0
    shared_prefix_tokens: int = Field(default=0, ge=0)
    prefix_groups: int = Field(default=1, gt=0)
    priority_levels: int = Field(default=1, gt=0)

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_range(cls, v: Any) -> Any:
        return check_seed(v)
