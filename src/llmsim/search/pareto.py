"""The Pareto frontier of throughput per GPU against per-user speed.

A point is a simulated plan at its goodput load: ``output_tokens_per_s_per_gpu`` (what the
operator gets) and ``tokens_per_s_per_user`` (1 / mean TPOT: what each user sees). A point is on
the frontier when no other point is at least as good on both and better on one."""

from __future__ import annotations

import math
from typing import Any


def frontier(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Frontier points, by increasing tokens/s per user (each: plan key and both figures)."""
    pts = []
    for r in rows:
        at = r.get("at_goodput") or {}
        x, y = at.get("tokens_per_s_per_user"), at.get("output_tokens_per_s_per_gpu")
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        pts.append({"plan_key": r["plan_key"], "tokens_per_s_per_user": float(x),
                    "output_tokens_per_s_per_gpu": float(y)})
    out = []
    for p in pts:
        dominated = any(q["tokens_per_s_per_user"] >= p["tokens_per_s_per_user"]
                        and q["output_tokens_per_s_per_gpu"] >= p["output_tokens_per_s_per_gpu"]
                        and (q["tokens_per_s_per_user"] > p["tokens_per_s_per_user"]
                             or q["output_tokens_per_s_per_gpu"]
                             > p["output_tokens_per_s_per_gpu"]) for q in pts)
        if not dominated:
            out.append(p)
    return sorted(out, key=lambda p: (p["tokens_per_s_per_user"], p["plan_key"]))
