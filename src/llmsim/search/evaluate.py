"""The simulation stage's task: one plan, simulated (the same function on every backend).

For a plan (one replica's deployment and engine limits) the task

1. finds the highest per-replica load at which the SLO still holds: open loop, the arrival
   rate, bisected in log space between ``rate / R_max`` (the least one replica must carry when
   the most replicas the budget allows share the requested rate) and the analytic capacity
   bound ``ub`` (``search/analytic.py``; the bisection never reports more than it), until
   ``hi / lo <= 1 + tolerance``; closed loop, the number of clients, bisected over integers.
   The *goodput* of the plan is that load (requests/s; closed loop: the completed requests/s
   at that concurrency). One replica alone is simulated, at Poisson arrivals of ``rate / R``:
   a round-robin router hands each of ``R`` replicas a smoother stream than that, so the
   per-replica figure is on the safe side;
2. takes the fewest replicas ``R*`` of the space with ``R* x goodput >= requested load`` and
   *confirms* the layout: the whole layout (``R*`` replicas behind the router) simulated at the
   requested load must meet the SLO (else the next replica count, up to two more).

The result row is JSON-able (it is streamed to the search's JSONL file): the goodput per
replica and per GPU, the operating point at goodput (output tokens/s per GPU, tokens/s per
user = 1 / mean TPOT), the confirmed layout's summary figures, energy per token.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from llmsim.errors import LLMSimError
from llmsim.search import energy
from llmsim.search.slo import SloTarget, check

log = logging.getLogger(__name__)

#: step models of this process, by (model, plan step key, estimator): reused across tasks
_STEP_MODELS: dict[tuple, Any] = {}
MAX_EXTRA_REPLICAS = 2


def _step_model(task: dict[str, Any]) -> Any:
    from llmsim.costmodel import build_step_model
    from llmsim.search.analytic import plan_deployment
    from llmsim.search.space import Plan

    plan = Plan.from_dict(task["plan"])
    args = task["deployment_args"]
    key = (repr(sorted(args.items())), plan.step_key)
    sm = _STEP_MODELS.get(key)
    if sm is None:
        sm = build_step_model(plan_deployment(args, plan))
        _STEP_MODELS[key] = sm
    return sm


def layout_config(task: dict[str, Any], replicas: int, load: float) -> Any:
    """The ``SimulationConfig`` of the plan with ``replicas`` replicas at ``load`` (a rate in
    requests/s, or a client count in closed loop)."""
    from llmsim.catalog._base import validate_spec
    from llmsim.serving.config import SimulationConfig

    plan = task["plan"]
    data = {k: dict(v) for k, v in task["base"].items()}
    data["model"].update(weight_dtype=plan["weight_dtype"], kv_dtype=plan["kv_dtype"])
    data["hardware"].update(name=plan["gpu"], num_gpus=None, cluster=None)
    data["parallelism"] = {**data.get("parallelism", {}), "tp": plan["tp"], "pp": plan["pp"],
                           "ep": plan["ep"], "replicas": replicas}
    data["scheduler"].update(max_num_seqs=plan["max_num_seqs"],
                             max_num_batched_tokens=plan["max_num_batched_tokens"])
    if task["mode"] == "rate":
        data["workload"]["rate"] = float(load)
    else:
        data["workload"]["concurrency"] = int(load)
    return validate_spec(SimulationConfig, data, "search layout")


def _run(task: dict[str, Any], replicas: int, load: float, step_model: Any = None
         ) -> dict[str, Any]:
    from llmsim.serving.simulator import simulate

    cfg = layout_config(task, replicas, load)
    return simulate(cfg, step_model=step_model or _step_model(task)).summary()


def _targets(task: dict[str, Any]) -> tuple[SloTarget, ...]:
    return tuple(SloTarget(**t) for t in task["targets"])


def _point(summary: dict[str, Any]) -> dict[str, float]:
    """The operating point of a run: throughput per GPU and speed per user."""
    tpot = (summary.get("tpot_s") or {}).get("mean")
    return {
        "requests_per_s": summary.get("requests_per_s"),
        "output_tokens_per_s_per_gpu": summary.get("output_tokens_per_s_per_gpu"),
        "tokens_per_s_per_user": 1.0 / tpot if tpot else math.nan,
        "ttft_p99_s": (summary.get("ttft_s") or {}).get("p99"),
        "tpot_p99_s": (summary.get("tpot_s") or {}).get("p99"),
        "busy_frac": summary.get("busy_frac"),
    }


def bisect_goodput(task: dict[str, Any]) -> tuple[float, dict[str, Any] | None, int, str]:
    """(best per-replica load meeting the SLO, its summary, simulations run, why none)."""
    targets = _targets(task)
    rmax = max(task["replica_options"])
    runs = 0

    def ok(x: float) -> tuple[bool, dict[str, Any], str]:
        nonlocal runs
        runs += 1
        s = _run(task, 1, x)
        met, why = check(s, targets)
        return met, s, why

    if task["mode"] == "rate":
        lo, hi = task["load"] / rmax, task["ub_rps"]
        lo = min(lo, hi)
        met, s_hi, _ = ok(hi)
        if met:
            return hi, s_hi, runs, ""
        met, s_lo, why = ok(lo)
        if not met:
            return 0.0, None, runs, (f"misses the SLO at {lo:.3g} req/s per replica (the "
                                     f"requested rate over {rmax} replicas): {why}")
        best, best_s = lo, s_lo
        tol = 1.0 + task["tolerance"]
        while hi / best > tol:
            mid = math.sqrt(best * hi)
            met, s, _ = ok(mid)
            if met:
                best, best_s = mid, s
            else:
                hi = mid
        return best, best_s, runs, ""
    lo = max(1, math.ceil(task["load"] / rmax))
    hi = max(lo, 2 * int(task["max_batch"]) * max(1, task["plan"]["pp"]))
    met, s_lo, why = ok(lo)
    if not met:
        return 0.0, None, runs, (f"misses the SLO with {lo} clients per replica: {why}")
    best, best_s = lo, s_lo
    met, s_hi, _ = ok(hi)
    if met:
        return hi, s_hi, runs, ""
    while hi - best > max(1, int(best * task["tolerance"])):
        mid = (best + hi) // 2
        met, s, _ = ok(mid)
        if met:
            best, best_s = mid, s
        else:
            hi = mid
    return float(best), best_s, runs, ""


def evaluate_plan(task: dict[str, Any]) -> dict[str, Any]:
    """The simulation stage for one plan (module docstring). Never raises for a layout that
    cannot run: the row says why (``status``, ``reason``)."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {"plan_key": task["plan_key"], "plan": task["plan"],
                           "ub_rps_per_replica": task["ub_rps"]}
    gpr = task["plan"]["tp"] * task["plan"]["pp"]
    try:
        g, s_g, runs, why = bisect_goodput(task)
        row["simulations"] = runs
        if s_g is None:
            row.update(status="slo_missed", reason=why)
            return _done(row, t0)
        goodput_rps = g if task["mode"] == "rate" else float(s_g.get("requests_per_s") or 0.0)
        row.update(goodput_load_per_replica=g, goodput_rps_per_replica=goodput_rps,
                   goodput_rps_per_gpu=goodput_rps / gpr, at_goodput=_point(s_g))
        targets = _targets(task)
        need = [r for r in sorted(task["replica_options"]) if r * g >= task["load"] * (1 - 1e-9)]
        for replicas in need[:1 + MAX_EXTRA_REPLICAS]:
            s = _run(task, replicas, task["load"])
            row["simulations"] += 1
            met, why = check(s, targets)
            if met:
                row.update(status="ok", replicas=replicas, num_gpus=replicas * gpr,
                           at_requested=_point(s),
                           energy_per_token_j=energy.energy_per_token_j(
                               s, task.get("tdp_w"), task.get("idle_power_frac", 0.0)),
                           slo_values={t.name: t.value(s) for t in targets})
                return _done(row, t0)
        row.update(status="slo_missed",
                   reason=(f"no replica count of the space within the GPU budget meets the "
                           f"SLO at the requested load (goodput {goodput_rps:.3g} req/s per "
                           f"replica)" if not need else
                           f"the whole layout ({need[0]} replicas) misses the SLO at the "
                           f"requested load: {why}"))
    except LLMSimError as exc:
        row.update(status="invalid", reason=str(exc))
    return _done(row, t0)


def _done(row: dict[str, Any], t0: float) -> dict[str, Any]:
    row["wall_s"] = time.perf_counter() - t0
    return row


def confirm_intervals(task: dict[str, Any], replicas: int, draws: int = 8, level: float = 0.8,
                      seed: int = 0) -> dict[str, Any]:
    """The confirmed layout re-simulated at the requested load under ``draws`` step models
    whose per-family times are scaled by draws from the estimator's validation residuals
    (``costmodel/estimators/intervals.py``): ``[lo, hi]`` at ``level`` for the SLO figures and
    the throughput, and the fraction of draws meeting the SLO."""
    import numpy as np

    from llmsim.costmodel.estimators.intervals import (
        deployment_draws,
        quantile_interval,
        scaled_step_models,
    )

    base = _step_model(task)
    fd = deployment_draws(base.deployment, k=draws, seed=seed, level=level)
    targets = _targets(task)
    figures: dict[str, list[float]] = {t.name: [] for t in targets}
    figures["output_tokens_per_s_per_gpu"] = []
    met_count = 0
    for sm in scaled_step_models(base, fd):
        s = _run(task, replicas, task["load"], step_model=sm)
        met_count += check(s, targets)[0]
        for t in targets:
            figures[t.name].append(t.value(s))
        figures["output_tokens_per_s_per_gpu"].append(
            float(s.get("output_tokens_per_s_per_gpu") or math.nan))
    return {"level": level, "draws": draws,
            "intervals": {k: quantile_interval(np.asarray(v, dtype=float), level)
                          for k, v in figures.items()},
            "slo_met_frac": met_count / draws}
