"""Percentile SLOs of a search: ``ttft_p99=1s,tpot_p99=50ms``.

One target is a metric of the serving summary (``ttft``, ``tpot``, ``e2e``, ``itl``), a
statistic of its distribution (``mean``, ``p50``, ``p90``, ``p95``, ``p99``, ``max``) and a
bound in seconds. A layout meets the SLO at a load when every target holds in the simulation's
summary and no request was refused for capacity (a refused request has no latency; counting it
as met would reward a layout for dropping work).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmsim import units
from llmsim.errors import ConfigError

METRICS = ("ttft", "tpot", "e2e", "itl")
STATS = ("mean", "p50", "p90", "p95", "p99", "max")


@dataclass(frozen=True)
class SloTarget:
    """``summary[f"{metric}_s"][stat] <= limit_s``."""

    metric: str
    stat: str
    limit_s: float

    @property
    def name(self) -> str:
        return f"{self.metric}_{self.stat}"

    def value(self, summary: dict[str, Any]) -> float:
        v = (summary.get(f"{self.metric}_s") or {}).get(self.stat)
        return float("nan") if v is None else float(v)

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "stat": self.stat, "limit_s": self.limit_s}


def parse_target(name: str, limit: object) -> SloTarget:
    metric, _, stat = str(name).strip().lower().partition("_")
    if metric not in METRICS or stat not in STATS:
        raise ConfigError(f"SLO target {name!r} is not metric_stat with metric in "
                          f"{', '.join(METRICS)} and stat in {', '.join(STATS)} "
                          "(e.g. ttft_p99=1s)")
    limit_s = units.parse_time(limit, f"SLO {name}")
    if not limit_s > 0:
        raise ConfigError(f"SLO {name} must be a positive time, got {limit!r}")
    return SloTarget(metric, stat, float(limit_s))


def parse_slo(text: str | dict[str, Any] | None) -> tuple[SloTarget, ...]:
    """``"ttft_p99=1s,tpot_p99=50ms"`` or ``{"ttft_p99": "1s", ...}`` as targets."""
    if text is None or text == "" or text == {}:
        raise ConfigError("search needs an SLO, e.g. --slo ttft_p99=1s,tpot_p99=50ms")
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in str(text).split(","):
            name, eq, limit = part.partition("=")
            if not eq:
                raise ConfigError(f"--slo part {part.strip()!r} is not name=limit "
                                  "(e.g. ttft_p99=1s,tpot_p99=50ms)")
            items.append((name.strip(), limit.strip()))
    targets = tuple(parse_target(n, v) for n, v in items)
    if len({t.name for t in targets}) != len(targets):
        raise ConfigError("--slo names one target twice")
    return targets


def rejected_for_capacity(summary: dict[str, Any]) -> int:
    """Requests refused by the layout (KV capacity, batch tokens), not by the model's context
    (that refusal is the workload's and the same for every layout)."""
    by = summary.get("rejected_by_reason") or {}
    return int(by.get("kv_capacity", 0)) + int(by.get("batch_tokens", 0))


def check(summary: dict[str, Any], targets: tuple[SloTarget, ...]) -> tuple[bool, str]:
    """(met, why not): every target within its limit and nothing refused for capacity."""
    refused = rejected_for_capacity(summary)
    if refused:
        return False, f"{refused} requests refused (KV capacity / batch tokens)"
    unfinished = summary.get("num_requests", 0) - summary.get("num_completed", 0) \
        - summary.get("num_rejected", 0)
    if unfinished:
        return False, f"{unfinished} requests unfinished"
    for t in targets:
        v = t.value(summary)
        if not v <= t.limit_s:
            return False, f"{t.name} {units.fmt_ms(v, 1)} ms > {units.fmt_ms(t.limit_s, 1)} ms"
    return True, ""
