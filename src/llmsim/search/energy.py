"""Energy per output token of a simulated run, from the parts' power figures.

Model: each GPU draws its board power (``HardwareSpec.tdp_w``, datasheet TDP / TBP) while its
replica runs a step and ``idle_frac x tdp_w`` while idle; the replica's busy fraction is the
simulator's ``busy_frac`` (time with a step in flight over the run's duration). So

    energy_j = num_gpus * tdp_w * (idle_frac + (1 - idle_frac) * busy_frac) * duration_s
    energy_per_token_j = energy_j / output_tokens

Assumptions (an upper estimate of the GPU share only): a busy GPU draws its full TDP (real
draw under decode is often below it: memory-bound kernels do not reach TDP); host CPUs, NICs,
cooling (PUE) are not counted. ``idle_frac`` defaults to 0 (idle time costs nothing, i.e. the
energy of the work itself); give e.g. 0.15 for a part that idles at 15 % of TDP.
"""

from __future__ import annotations

import math
from typing import Any


def energy_per_token_j(summary: dict[str, Any], tdp_w: float | None, idle_frac: float = 0.0
                       ) -> float:
    """Joules per output token of a run's ``summary`` (NaN without a power figure)."""
    if not tdp_w:
        return math.nan
    duration = float(summary.get("duration_s") or 0.0)
    tokens = float(summary.get("output_tokens_per_s") or 0.0) * duration
    busy = float(summary.get("busy_frac") or 0.0)
    if tokens <= 0:
        return math.nan
    gpus = int(summary.get("num_gpus") or 0)
    watts = gpus * tdp_w * (idle_frac + (1.0 - idle_frac) * busy)
    return watts * duration / tokens


def pools_energy_per_token_j(pools: list[tuple[int, float | None, float]],
                             output_tokens_per_s: float, idle_frac: float = 0.0) -> float:
    """Joules per output token of a disaggregated layout at a steady state: the same model per
    pool, ``pools`` = ``(gpus, tdp_w, busy_frac)`` each (the xPyD estimate's prefill
    utilisation for the prefill pool; 1 for the decode pool, whose workers step continuously
    while any request decodes), over ``output_tokens_per_s``. NaN without every power figure."""
    if output_tokens_per_s <= 0 or any(not tdp for _, tdp, _ in pools):
        return math.nan
    watts = sum(gpus * tdp * (idle_frac + (1.0 - idle_frac) * min(1.0, max(0.0, busy)))
                for gpus, tdp, busy in pools)
    return watts / output_tokens_per_s
