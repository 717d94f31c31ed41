"""The simulation stage's task: one plan, simulated (the same function on every backend).

For a plan (one replica's deployment and engine limits) the task

1. finds the highest per-replica load at which the SLO still holds: open loop, the arrival
   rate, by binary search over a geometric grid (ratio ``1 + tolerance``) between
   ``rate / R_max`` (the least one replica must carry when the most replicas the budget allows
   share the requested rate) and the analytic capacity bound ``ub`` (``search/analytic.py``;
   never more than it); closed loop, the number of clients over a grid of integers. Given the
   branch-and-bound threshold (``beat``), the first simulation is at the least grid load that
   would beat the best plan found so far: a plan failing there is dominated after one run.
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
SERVING_STAGE = "serving simulation"


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
    requests/s, or a client count in closed loop). A disaggregated task's layout is one
    "replica": :func:`disagg_layout_config`."""
    from llmsim.catalog._base import validate_spec
    from llmsim.serving.config import SimulationConfig

    if task.get("kind") == "disaggregated":
        return disagg_layout_config(task, load)
    plan = task["plan"]
    data = {k: dict(v) for k, v in task["base"].items()}
    data["model"].update(weight_dtype=plan["weight_dtype"], kv_dtype=plan["kv_dtype"])
    data["hardware"].update(name=plan["gpu"], num_gpus=None, cluster=None)
    data["parallelism"] = {**data.get("parallelism", {}), "tp": plan["tp"], "pp": plan["pp"],
                           "ep": plan["ep"], "replicas": replicas}
    data["scheduler"].update(max_num_seqs=plan["max_num_seqs"],
                             max_num_batched_tokens=plan["max_num_batched_tokens"])
    if plan.get("engine"):  # its scheduler (unless the config names one), limits, fixed costs
        data["engine"] = {"name": plan["engine"]}
    if task["mode"] == "rate":
        data["workload"]["rate"] = float(load)
    else:
        data["workload"]["concurrency"] = int(load)
    return validate_spec(SimulationConfig, data, "search layout")


def _run(task: dict[str, Any], replicas: int, load: float, step_model: Any = None
         ) -> dict[str, Any]:
    from llmsim.serving.run import simulate

    cfg = layout_config(task, replicas, load)
    if task.get("kind") == "disaggregated":  # one step model per pool, built by the run
        return simulate(cfg).summary()
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


def load_grid(task: dict[str, Any]) -> list[float]:
    """The loads the bisection may report, ascending. Open loop: ``ub / (1 + tolerance)^k``
    down to ``rate / R_max`` (and that lowest load itself); closed loop: the client counts from
    ``ceil(C / R_max)`` to twice the largest batch, spaced by ``tolerance``. The grid depends on
    the plan only, so a search that starts the bisection elsewhere (the branch-and-bound
    threshold) lands on the same grid point as the brute force."""
    rmax = max(task["replica_options"])
    tol = 1.0 + task["tolerance"]
    if task["mode"] == "rate":
        lo, hi = task["load"] / rmax, task["ub_rps"]
        lo = min(lo, hi)
        k = int(math.floor(math.log(hi / lo) / math.log(tol) + 1e-9)) if hi > lo else 0
        pts = [hi / tol**i for i in range(k + 1)]
        if pts[-1] > lo * (1 + 1e-12):
            pts.append(lo)
        return sorted(pts)
    lo = max(1, math.ceil(task["load"] / rmax))
    pp = task["plan"]["pp"] if "plan" in task else 1
    hi = max(lo, 2 * int(task["max_batch"]) * max(1, pp))
    pts, x = [], float(lo)
    while x < hi:
        pts.append(int(x))
        x = max(x + 1, x * tol)
    pts.append(hi)
    return [float(p) for p in sorted(set(pts))]


def bisect_goodput(task: dict[str, Any]) -> tuple[float, dict[str, Any] | None, int, str]:
    """(highest grid load meeting the SLO, its summary, simulations run, why none).

    Binary search over :func:`load_grid`, assuming the SLO holds below a load once it holds at
    it. With ``task["beat"]`` (the per-replica load the plan must exceed to beat the best found
    so far), the first simulation is at the lowest grid load above it: failing there, the plan
    is dominated after one simulation (reason starts with ``dominated``)."""
    targets = _targets(task)
    grid = load_grid(task)
    runs = 0

    def ok(i: int) -> tuple[bool, dict[str, Any], str]:
        nonlocal runs
        runs += 1
        s = _run(task, 1, grid[i])
        met, why = check(s, targets)
        return met, s, why

    lo_i, best_s = -1, None  # highest index known to pass
    hi_i = len(grid)  # lowest index known to fail
    beat = task.get("beat")
    if beat is not None and beat >= grid[0]:
        first = next((i for i, x in enumerate(grid) if x > beat), None)
        if first is None:
            return 0.0, None, runs, "dominated: its capacity bound is below the best's goodput"
        met, s, why = ok(first)
        if not met:
            return 0.0, None, runs, (f"dominated: misses the SLO at {grid[first]:.3g} per "
                                     f"replica, the least load that would beat the best "
                                     f"found ({why})")
        lo_i, best_s = first, s
    else:
        met, s, why = ok(0)
        if not met:
            unit = "req/s" if task["mode"] == "rate" else "clients"
            where = ("(the requested load)" if task.get("kind") == "disaggregated"
                     else "per replica (the requested load over the most replicas)")
            return 0.0, None, runs, f"misses the SLO at {grid[0]:.3g} {unit} {where}: {why}"
        lo_i, best_s = 0, s
    while hi_i - lo_i > 1:
        mid = (lo_i + hi_i) // 2
        met, s, _ = ok(mid)
        if met:
            lo_i, best_s = mid, s
        else:
            hi_i = mid
    return grid[lo_i], best_s, runs, ""


def evaluate_plan(task: dict[str, Any]) -> dict[str, Any]:
    """The simulation stage for one plan (module docstring). Never raises for a layout that
    cannot run: the row says why (``status``, ``reason``)."""
    t0 = time.perf_counter()
    row: dict[str, Any] = {"plan_key": task["plan_key"], "plan": task["plan"],
                           "kind": "aggregated", "stage": SERVING_STAGE,
                           "ub_rps_per_replica": task["ub_rps"],
                           "price_per_gpu_hour": task.get("price_per_gpu_hour")}
    gpr = task["plan"]["tp"] * task["plan"]["pp"]
    try:
        g, s_g, runs, why = bisect_goodput(task)
        row["simulations"] = runs
        if s_g is None:
            dominated = why.startswith("dominated: ")
            row.update(status="dominated" if dominated else "slo_missed",
                       reason=why.removeprefix("dominated: "))
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
    log.info("%s: %s in %.2f s", row["plan_key"], row.get("status"), time.perf_counter() - t0)
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


def disagg_layout_config(task: dict[str, Any], load: float) -> Any:
    """The disaggregated ``SimulationConfig`` of ``task["layout"]`` at ``load`` (a rate in
    requests/s, or a client count in closed loop): the search's base config (model, formats,
    scheduler, workload, SLO counters: exactly the aggregated tasks'), a ``disagg`` section with
    both pools (worker counts, tp / ep, engine limits, GPU type) and the KV link the static
    estimate assumes (RDMA, layer-wise), the search's estimator for both pools' step models."""
    from llmsim.catalog._base import validate_spec
    from llmsim.serving.config import SimulationConfig

    lay = task["layout"]
    pre, dec = lay["prefill"], lay["decode"]
    args = task["deployment_args"]
    data = {k: dict(v) for k, v in task["base"].items()}
    data["model"].update(weight_dtype=pre["weight_dtype"], kv_dtype=pre["kv_dtype"])
    data["hardware"].update(name=pre["gpu"], num_gpus=None, cluster=None,
                            estimator=args.get("estimator", "calibrated"),
                            estimator_model=args.get("estimator_model"))

    def pool(plan: dict[str, Any], workers: int) -> dict[str, Any]:
        return {"workers": workers, "tp": plan["tp"], "pp": plan["pp"], "ep": plan["ep"],
                "max_num_seqs": plan["max_num_seqs"],
                "max_num_batched_tokens": plan["max_num_batched_tokens"],
                "hardware": plan["gpu"]}

    data["disagg"] = {"prefill_pool": pool(pre, lay["prefill_workers"]),
                      "decode_pool": pool(dec, lay["decode_workers"]),
                      "kv_link": "rdma", "kv_layerwise": True}
    if task["mode"] == "rate":
        data["workload"]["rate"] = float(load)
    else:
        data["workload"]["concurrency"] = int(load)
    return validate_spec(SimulationConfig, data, "search xPyD layout")
