"""``WorkloadSection``: the request stream of a run as a validated YAML/dict section.

Either a trace (``trace``, ``trace_format``, ``rate_scale``, ``num_requests``) or a synthetic
stream (``arrival``, ``rate``, ``cv``, ``prompt`` / ``output`` length distributions), optionally
closed loop (``concurrency``, ``think_time_s``); ``seed`` seeds every draw.

Benchmark semantics (as the clients real measurements come from):

- ``warmup_requests = N``: the first N requests run but are left out of every metric
  (aiperf ``--warmup-request-count``, ``vllm bench serve --num-warmups``); with closed-loop
  clients the measured requests are sent only once every warm-up request has finished (aiperf
  runs its warm-up phase to completion before the profiling phase starts);
- ``burstiness = B`` (``vllm bench serve --burstiness``): gamma inter-arrival gaps of shape
  ``B`` and mean ``1 / rate``, i.e. a coefficient of variation ``1 / sqrt(B)``; ``B = 1`` is
  Poisson, ``B < 1`` burstier, ``B > 1`` smoother;
- ``jitter_s = J``: each request is sent a seeded uniform ``U(0, J)`` later than its client
  would send it (client / network timing noise; it breaks the perfectly synchronised cohorts
  that identical requests otherwise form); ``null``: the engine profile's value with
  ``--engine``, else 0. The serving config
embeds it as its ``workload:`` section; :func:`llmsim.workload.build_workload` turns it into a
:class:`~llmsim.workload.Workload`.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator, model_validator

from llmsim.catalog._base import Seconds, Spec
from llmsim.errors import ConfigError
from llmsim.seeds import check_seed

DEFAULT_PROMPT = "fixed:1024"  # synthetic workloads (a trace keeps its own lengths)
DEFAULT_OUTPUT = "fixed:128"
#: most requests one run may ask for (a run holds a few arrays of this length)
MAX_REQUESTS = 100_000_000
#: the flag of each field, for messages
_FLAGS = {"rate": "--rate", "cv": "--cv", "rate_scale": "--rate-scale",
          "think_time_s": "--think-time", "burstiness": "--burstiness",
          "jitter_s": "--client-jitter"}


class WorkloadSection(Spec):
    trace: str | None = None
    trace_format: str = "auto"
    rate_scale: float = Field(default=1.0, gt=0)
    num_requests: int | None = Field(default=None, gt=0, le=MAX_REQUESTS)
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
    warmup_requests: int = Field(default=0, ge=0, le=MAX_REQUESTS, description=(
        "requests run first and left out of every metric"))
    burstiness: float | None = Field(default=None, gt=0, description=(
        "gamma arrivals of shape B (vllm bench serve --burstiness; 1 = Poisson)"))
    jitter_s: Seconds | None = Field(default=None, ge=0, description=(
        "each send delayed by a seeded U(0, J) (null: the engine profile's, else 0)"))

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_range(cls, v: Any) -> Any:
        return check_seed(v)

    @field_validator("num_requests", mode="before")
    @classmethod
    def _request_count(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > MAX_REQUESTS:
            raise ValueError(f"--num-requests {v:g} (workload.num_requests) is more than "
                             f"{MAX_REQUESTS:,} requests one run holds")
        return v

    @field_validator("rate", "cv", "rate_scale", "think_time_s", "burstiness", "jitter_s")
    @classmethod
    def _finite(cls, v: float | None, info: Any) -> float | None:
        if v is not None and not math.isfinite(v):
            fix = ("; for every request at once use --arrival batch"
                   if info.field_name == "rate" else "")
            raise ValueError(f"{_FLAGS[info.field_name]} (workload.{info.field_name}) must be "
                             f"a finite number, got {v}{fix}")
        return v

    @model_validator(mode="after")
    def _knobs_used(self) -> WorkloadSection:
        """Knobs the stream would silently ignore are errors (each names flag and key)."""
        if self.trace_format.strip().lower() not in ("", "auto"):
            from llmsim.workload.traces import TRACE_FORMATS

            TRACE_FORMATS.get(self.trace_format.strip().lower())  # unknown: did-you-mean
            if not self.trace:
                raise ConfigError(f"--trace-format {self.trace_format} (workload.trace_format) "
                                  "reads a trace; without --trace it is ignored: add one or "
                                  "drop it")
        if self.burstiness is not None:
            name = (self.arrival or "").partition(":")[0].strip().lower()
            if name not in ("", "gamma", "bursty", "poisson", "exponential"):
                raise ConfigError(f"--burstiness (workload.burstiness) shapes gamma arrivals, "
                                  f"not --arrival {self.arrival}; drop one of them")
            if self.cv is not None:
                raise ConfigError("--burstiness B and --cv C both set the gamma gaps' spread "
                                  "(cv = 1 / sqrt(B)); give one of them")
            if self.rate is None:
                raise ConfigError("--burstiness (workload.burstiness) needs --request-rate R "
                                  "(workload.rate)")
        replaced = self.arrival is not None or self.rate is not None
        if self.rate_scale != 1.0 and (not self.trace or replaced):
            why = ("there is no trace" if not self.trace else
                   "--rate / --arrival replace the trace's timestamps")
            raise ConfigError(f"--rate-scale {self.rate_scale:g} (workload.rate_scale) scales a "
                              f"trace's timestamps, but {why}; set the rate with --rate "
                              "instead (or drop --rate-scale)")
        if self.prefix_groups != 1 and not self.shared_prefix_tokens:
            raise ConfigError(f"--prefix-groups {self.prefix_groups} (workload.prefix_groups) "
                              "needs --shared-prefix N (workload.shared_prefix_tokens): without "
                              "a shared prefix there is nothing to group; add it or drop "
                              "--prefix-groups")
        return self
