"""The placement LP of one candidate, solved with scipy's HiGHS (``linprog(method="highs")``).

For fixed batching and flags, FlexGen's policy search (section 4.3) is a linear program over
the six fractions: the per-layer ``staging + max`` of the five streams becomes one epigraph
variable per unit and stage (``t >= staging + stream`` for every stream, ``t >= sum`` of all
without overlap)::

    minimise    sum_u repeat_u (t_u^prefill + (n - 1) t_u^decode)       (= T; T / b per token)
    subject to  staging_{u,stage}(f) + stream_{u,stage,i}(f) <= t_u^stage
                                                     for every unit, stage, stream
                peak_{tier,stage}(f) <= alpha_tier x capacity_tier     (prefill and decode)
                wg + wc <= 1,  cg + cc <= 1,  hg + hc <= 1,  0 <= f <= 1,  t >= 0

Memory rows are scaled to GB for conditioning. When no candidate is feasible,
:func:`shortfall` solves the same constraints with a slack per tier (weighted so that the GPU
is blamed only when nothing else can absorb the excess, then the CPU, then the disk) to say
which tier is short and by how much (a tier of zero capacity, e.g. ``--nvme-mem 0``, counts as
switched off and is blamed only if nothing else can hold the data).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from llmsim import units
from llmsim.errors import LLMSimError
from llmsim.placement.lp_costs import NUM_VARS, STAGES, STAGING, TIERS, CandidateModel
from llmsim.placement.system import OffloadSystem

log = logging.getLogger(__name__)

_MEM_SCALE = 1.0 / units.GB
# Slack weights: the GPU is the hardest tier to grow, the disk the easiest.
_SLACK_WEIGHT = {"gpu": 1e6, "cpu": 1e3, "disk": 1.0}


@dataclass(frozen=True)
class LPSolution:
    fractions: tuple[float, float, float, float, float, float]
    total_time_s: float  # T = prefill + (n - 1) decode steps, excluding step overheads


def _simplex_rows(num_cols: int) -> tuple[list[np.ndarray], list[float]]:
    rows, rhs = [], []
    for i in (0, 2, 4):
        r = np.zeros(num_cols)
        r[i] = r[i + 1] = 1.0
        rows.append(r)
        rhs.append(1.0)
    return rows, rhs


def _time_rows(cm: CandidateModel, num_cols: int) -> tuple[list[np.ndarray], list[float],
                                                          np.ndarray]:
    """Epigraph rows ``stream(f) - t <= 0`` and the objective over the t columns."""
    rows, rhs = [], []
    cost = np.zeros(num_cols)
    col = NUM_VARS
    for stage in STAGES:
        weight = cm.stage_weight(stage)
        for us in cm.units[stage]:
            serial = us.streams.get(STAGING, 0.0)
            exprs = [e for name, e in us.streams.items() if name != STAGING]
            exprs = [serial + e for e in exprs] if cm.policy.overlap else [serial + sum(exprs)]
            for expr in exprs:
                r = np.zeros(num_cols)
                r[:NUM_VARS] = expr[1:]
                r[col] = -1.0
                rows.append(r)
                rhs.append(-expr[0])
            cost[col] = us.repeat * weight
            col += 1
    return rows, rhs, cost


def _num_time_cols(cm: CandidateModel) -> int:
    return sum(len(cm.units[stage]) for stage in STAGES)


def _constraints(cm: CandidateModel, system: OffloadSystem
                 ) -> tuple[list[np.ndarray], list[float], np.ndarray, int]:
    num_cols = NUM_VARS + _num_time_cols(cm)
    rows, rhs = _simplex_rows(num_cols)
    t_rows, t_rhs, cost = _time_rows(cm, num_cols)
    rows += t_rows
    rhs += t_rhs
    limits = system.limits()
    for stage in STAGES:
        for tier in TIERS:
            expr = cm.memory[stage][tier]
            r = np.zeros(num_cols)
            r[:NUM_VARS] = expr[1:] * _MEM_SCALE
            rows.append(r)
            rhs.append((limits[tier] - expr[0]) * _MEM_SCALE)
    return rows, rhs, cost, num_cols


def _linprog(cost: np.ndarray, rows: list[np.ndarray], rhs: list[float], num_cols: int):
    bounds = [(0.0, 1.0)] * NUM_VARS + [(0.0, None)] * (num_cols - NUM_VARS)
    return linprog(cost, A_ub=np.vstack(rows), b_ub=np.asarray(rhs), bounds=bounds,
                   method="highs")


def solve_candidate(cm: CandidateModel, system: OffloadSystem) -> LPSolution | None:
    """Best fractions for one candidate, or None when its memory limits cannot be met."""
    rows, rhs, cost, num_cols = _constraints(cm, system)
    res = _linprog(cost, rows, rhs, num_cols)
    if res.status == 2:
        return None
    if res.status != 0:
        raise LLMSimError(f"the placement LP failed for {cm.policy.describe()}: {res.message}")
    f = tuple(float(v) for v in res.x[:NUM_VARS])
    return LPSolution(f, float(res.fun))  # type: ignore[arg-type]


def refine(cm: CandidateModel, system: OffloadSystem, best: LPSolution,
           rel_tol: float = 1e-7) -> LPSolution:
    """Among placements as fast as ``best`` (within ``rel_tol``), the one that moves the least:
    minimise the sum of all stream times (each stream's seconds over every layer and step).

    The time objective is often flat (a stream that never bounds a layer can take any value
    below the bound); this second lexicographic LP keeps data on the faster tier when it costs
    nothing, e.g. activations on the GPU rather than the disk.
    """
    rows, rhs, cost, num_cols = _constraints(cm, system)
    rows.append(cost)
    rhs.append(best.total_time_s * (1.0 + rel_tol) + 1e-12)
    io = np.zeros(num_cols)
    for stage in STAGES:
        weight = cm.stage_weight(stage)
        for us in cm.units[stage]:
            for name, expr in us.streams.items():
                if name != "compute":
                    io[:NUM_VARS] += us.repeat * weight * expr[1:]
    res = _linprog(io, rows, rhs, num_cols)
    if res.status != 0:
        log.debug("refinement LP did not solve (%s); keeping the first solution", res.message)
        return best
    f = tuple(float(v) for v in res.x[:NUM_VARS])
    return LPSolution(f, float(cost @ res.x))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Shortfall:
    """Bytes each tier lacks (at the least-demanding candidate), and what was needed."""

    short_bytes: dict[str, float]
    need_bytes: dict[str, float]  # peak the relaxed placement puts on each tier
    fractions: tuple[float, ...]

    def worst(self) -> tuple[str, float]:
        tier = max(self.short_bytes, key=self.short_bytes.get)
        return tier, self.short_bytes[tier]


def shortfall(cm: CandidateModel, system: OffloadSystem) -> Shortfall:
    """Relax every tier's limit by a slack variable and minimise the weighted slack."""
    num_cols = NUM_VARS + len(TIERS)
    rows, rhs = _simplex_rows(num_cols)
    limits = system.limits()
    for stage in STAGES:
        for j, tier in enumerate(TIERS):
            expr = cm.memory[stage][tier]
            r = np.zeros(num_cols)
            r[:NUM_VARS] = expr[1:] * _MEM_SCALE
            r[NUM_VARS + j] = -1.0
            rows.append(r)
            rhs.append((limits[tier] - expr[0]) * _MEM_SCALE)
    cost = np.zeros(num_cols)
    capacities = system.capacities()
    for j, tier in enumerate(TIERS):
        # a tier given zero capacity (no disk) is switched off, not "short": blame it last
        cost[NUM_VARS + j] = _SLACK_WEIGHT[tier] if capacities[tier] > 0 else 1e9
    bounds = [(0.0, 1.0)] * NUM_VARS + [(0.0, None)] * len(TIERS)
    res = linprog(cost, A_ub=np.vstack(rows), b_ub=np.asarray(rhs), bounds=bounds,
                  method="highs")
    if res.status != 0:  # cannot happen: slack makes every instance feasible
        raise LLMSimError(f"shortfall LP failed: {res.message}")
    f = tuple(float(v) for v in res.x[:NUM_VARS])
    short = {tier: max(0.0, float(res.x[NUM_VARS + j]) / _MEM_SCALE)
             for j, tier in enumerate(TIERS)}
    need = {tier: max(float(cm.memory[st][tier][0] + cm.memory[st][tier][1:] @ np.asarray(f))
                      for st in STAGES) for tier in TIERS}
    return Shortfall(short, need, f)
