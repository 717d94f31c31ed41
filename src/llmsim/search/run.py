"""``run_search``: the analytic stage, then the simulation stage as branch and bound.

1. Every layout of the space gets the analytic verdict (``search/analytic.py``): does not fit,
   SLO certainly missed, or survives with a per-replica capacity bound ``ub``.
2. The surviving *plans* (one replica's deployment and engine limits; their replica counts
   ride along) are simulated in decreasing order of their objective's upper bound (``ub`` per
   GPU, or per dollar). A plan whose bound is below the best objective already confirmed is
   *dominated* and not simulated: the bisection never reports more than ``ub``, so the prune
   is exact (``prune=False`` simulates every plan: the brute force the tests compare with).
3. Ranking of the layouts that meet the SLO at the requested load: objective (goodput per GPU
   or per dollar), then fewer GPUs, then less energy per token, then the layout's name.

Every finished plan is appended to the results JSONL file as it arrives (with a fingerprint of
the search settings); ``resume=True`` reads the file back and simulates only the plans it
lacks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmsim.search import analytic as an
from llmsim.search.backends import run_tasks
from llmsim.search.config import SearchConfig, load_search_config
from llmsim.search.evaluate import confirm_intervals, evaluate_plan
from llmsim.search.pareto import frontier
from llmsim.search.prices import load_prices
from llmsim.search.space import Layout, Plan, layouts

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]


@dataclass
class SearchResult:
    """What a search found: ``best`` (None when no layout meets the SLO), every layout in
    ``candidates`` with its status and why it lost, the Pareto ``frontier`` (throughput per GPU
    against tokens/s per user), counts and timings."""

    settings: dict[str, Any]
    best: dict[str, Any] | None
    candidates: list[dict[str, Any]]
    frontier: list[dict[str, Any]]
    counts: dict[str, int]
    timing: dict[str, float]
    intervals: dict[str, Any] | None = None
    plans: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "best": self.best, "intervals": self.intervals,
                "counts": self.counts, "timing": self.timing, "pareto": self.frontier,
                "candidates": self.candidates}

    @property
    def runners_up(self) -> list[dict[str, Any]]:
        n = self.settings.get("runners_up", 5)
        return [c for c in self.candidates if c.get("rank", 0) > 1][:n]


def _fingerprint(cfg: SearchConfig) -> str:
    data = cfg.model_dump(mode="json")
    data["search"].pop("runners_up", None)
    data["search"].pop("intervals", None)
    data["search"].pop("interval_draws", None)
    data["search"].pop("interval_level", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _read_results(path: Path, fingerprint: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the interrupt
                continue
            if isinstance(row, dict) and row.get("fingerprint") == fingerprint:
                out[row["plan_key"]] = row
    return out


def _objective(cfg: SearchConfig, per_gpu_rps: float, price: float | None) -> float:
    if cfg.search.objective == "goodput_per_dollar":
        return per_gpu_rps * 3600.0 / price if price else math.nan
    return per_gpu_rps


def run_search(config: SearchConfig | dict[str, Any] | str | Path, *, backend: str = "local",
               workers: int | None = None, address: str | None = None,
               results_path: str | Path | None = None, resume: bool = False,
               progress: ProgressFn | None = None) -> SearchResult:
    """Search the layouts of ``config`` (module docstring). ``results_path``: the JSONL file
    each finished plan is appended to (``resume`` reads it back first)."""
    from llmsim.catalog import get_hardware, get_model
    from llmsim.serving.schedulers import SCHEDULERS
    from llmsim.workload.stream import build_workload

    cfg = load_search_config(config)
    t_start = time.perf_counter()
    spec = get_model(cfg.model.name)
    max_len = int(cfg.model.max_model_len or spec.max_position_embeddings)
    wl_section = cfg.workload.model_copy(update={"num_requests": cfg.base_simulation()
                                                 ["workload"]["num_requests"]})
    wl = build_workload(wl_section)
    lengths = an.Lengths.of(wl.input_tokens, wl.output_tokens, max_len)
    sched = SCHEDULERS.get(cfg.scheduler.name)
    prices = load_prices(cfg.search.prices)
    if cfg.search.objective == "goodput_per_dollar":
        missing = [g for g in cfg.space.gpus if get_hardware(g).name not in prices["prices"]]
        if missing:
            _raise_missing(missing, prices)
    stage = an.AnalyticStage(cfg.deployment_args(), lengths, cfg.targets,
                             rate=cfg.load if cfg.mode == "rate" else None,
                             memory_utilization=cfg.hardware.memory_utilization,
                             block_size=cfg.scheduler.block_size,
                             chunks_prompts=sched.chunks_prompts,
                             uses_watermark=sched.uses_watermark,
                             watermark_frac=cfg.scheduler.watermark_frac)
    space = cfg.space.model_copy(update={"gpus": tuple(get_hardware(g).name
                                                        for g in cfg.space.gpus)})
    all_layouts = layouts(space, spec.is_moe)
    t0 = time.perf_counter()
    verdicts = stage.verdicts(all_layouts, cfg.search.prune)
    analytic_s = time.perf_counter() - t0

    by_plan: dict[Plan, list[an.Verdict]] = {}
    for v in verdicts:
        if v.survives:
            by_plan.setdefault(v.layout.plan, []).append(v)
    base = cfg.base_simulation()
    tasks = []
    for plan, vs in by_plan.items():
        hw = get_hardware(plan.gpu)
        price = prices["prices"].get(hw.name)
        ub_obj = _objective(cfg, vs[0].ub_rps_per_replica / plan.gpus_per_replica, price)
        tasks.append({
            "plan_key": plan.key, "plan": plan.as_dict(), "base": base,
            "deployment_args": cfg.deployment_args(),
            "targets": [t.as_dict() for t in cfg.targets], "mode": cfg.mode,
            "load": cfg.load, "replica_options": sorted(v.layout.replicas for v in vs),
            "ub_rps": vs[0].ub_rps_per_replica, "max_batch": vs[0].max_batch,
            "tolerance": cfg.search.tolerance, "tdp_w": hw.tdp_w,
            "idle_power_frac": cfg.search.idle_power_frac, "ub_objective": ub_obj,
            "price_per_gpu_hour": price})
    tasks.sort(key=lambda t: (-t["ub_objective"] if math.isfinite(t["ub_objective"])
                              else math.inf, t["plan_key"]))

    fingerprint = _fingerprint(cfg)
    results: dict[str, dict[str, Any]] = {}
    path = Path(results_path) if results_path is not None else None
    if path is not None and resume:
        known = {t["plan_key"] for t in tasks}
        results = {k: v for k, v in _read_results(path, fingerprint).items() if k in known}
        log.info("resuming: %d of %d plans already simulated", len(results), len(tasks))
    elif path is not None and path.exists():
        path.unlink()
    best = [max((_row_objective(cfg, r) for r in results.values()), default=-math.inf)]
    pruned: dict[str, float] = {}
    done = [len(results)]
    fh = open(path, "a", encoding="utf-8") if path is not None else None  # noqa: SIM115

    def skip(task: dict[str, Any]) -> bool:
        if task["plan_key"] in results:
            return True
        if cfg.search.prune and task["ub_objective"] < best[0]:
            pruned[task["plan_key"]] = best[0]
            done[0] += 1
            _tick()
            return True
        if cfg.search.prune and cfg.mode == "rate" and math.isfinite(best[0]):
            # the per-replica load at which this plan would tie the best (the task starts its
            # bisection just above it: one failing simulation shows it dominated)
            task["beat"] = best[0] * task["plan"]["tp"] * task["plan"]["pp"] * (
                task["price_per_gpu_hour"] / 3600.0
                if cfg.search.objective == "goodput_per_dollar" else 1.0)
        return False

    def on_result(row: dict[str, Any]) -> None:
        row["fingerprint"] = fingerprint
        results[row["plan_key"]] = row
        if fh is not None:
            fh.write(json.dumps(row, allow_nan=True) + "\n")
            fh.flush()
        value = _row_objective(cfg, row)
        if value > best[0]:
            best[0] = value
        done[0] += 1
        _tick()

    def _tick() -> None:
        if progress is not None:
            progress(done[0], len(tasks))

    t1 = time.perf_counter()
    try:
        _tick()
        run_tasks(tasks, evaluate_plan, skip=skip, on_result=on_result, backend=backend,
                  workers=workers, address=address)
    finally:
        if fh is not None:
            fh.close()
    simulate_s = time.perf_counter() - t1

    candidates = _candidates(cfg, verdicts, results, pruned, prices)
    ok = [c for c in candidates if c["status"] == "ok"]
    best_row = ok[0] if ok else None
    intervals = None
    if best_row is not None and cfg.search.intervals:
        task = next(t for t in tasks if t["plan_key"] == best_row["plan_key"])
        intervals = confirm_intervals(task, best_row["replicas"], cfg.search.interval_draws,
                                      cfg.search.interval_level)
    plan_rows = [r for r in results.values() if r.get("status") == "ok"]
    counts: dict[str, int] = {"layouts": len(candidates), "plans": len(tasks)}
    for c in candidates:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    counts["plans_simulated"] = len(results)
    counts["plans_pruned_by_bound"] = len(pruned)
    counts["simulations"] = sum(int(r.get("simulations", 0)) for r in results.values())
    settings = {"model": spec.name, "mode": cfg.mode, "load": cfg.load,
                "slo": [t.as_dict() for t in cfg.targets], "objective": cfg.search.objective,
                "num_requests": base["workload"]["num_requests"],
                "workload": wl.info, "estimator": cfg.search.estimator,
                "prices": {"source": prices["source"], "date": prices["date"],
                           "per_gpu_hour": prices["prices"]},
                "idle_power_frac": cfg.search.idle_power_frac,
                "prune": cfg.search.prune, "backend": backend,
                "runners_up": cfg.search.runners_up, "fingerprint": fingerprint,
                "searched_kinds": ["aggregated"]}
    timing = {"analytic_wall_s": analytic_s, "analytic_layouts_per_wall_s":
              len(all_layouts) / analytic_s if analytic_s > 0 else math.inf,
              "simulate_wall_s": simulate_s, "total_wall_s": time.perf_counter() - t_start}
    return SearchResult(settings, best_row, candidates, frontier(plan_rows), counts, timing,
                        intervals, plan_rows)


def _raise_missing(missing: list[str], prices: dict[str, Any]) -> None:
    from llmsim.errors import ConfigError

    raise ConfigError(f"--objective goodput_per_dollar needs a price for {', '.join(missing)} "
                      f"(the table has {', '.join(sorted(prices['prices']))}); add them with "
                      "--prices FILE")


def _row_objective(cfg: SearchConfig, row: dict[str, Any]) -> float:
    if row.get("status") != "ok":
        return -math.inf
    v = _objective(cfg, row["goodput_rps_per_gpu"], row.get("price_per_gpu_hour"))
    return v if math.isfinite(v) else -math.inf


def _layout_row(layout: Layout, status: str, reason: str) -> dict[str, Any]:
    p = layout.plan
    return {"layout": layout.key, "plan_key": p.key, "kind": layout.kind, "gpu": p.gpu,
            "tp": p.tp, "pp": p.pp, "ep": p.ep, "replicas": layout.replicas,
            "num_gpus": layout.num_gpus, "weight_dtype": p.weight_dtype,
            "kv_dtype": p.kv_dtype, "max_num_seqs": p.max_num_seqs,
            "max_num_batched_tokens": p.max_num_batched_tokens, "status": status,
            "reason": reason}


def _candidates(cfg: SearchConfig, verdicts: list[an.Verdict],
                results: dict[str, dict[str, Any]], pruned: dict[str, float],
                prices: dict[str, Any]) -> list[dict[str, Any]]:
    unit = "req/s per GPU" if cfg.search.objective == "goodput_per_gpu" else "req per USD"
    rows = []
    for v in verdicts:
        lay = v.layout
        key = lay.plan.key
        if not v.survives:
            row = _layout_row(lay, v.status, v.reason)
        elif key in results:
            row = _simulated_row(cfg, lay, results[key], prices)
        elif key in pruned:
            price = prices["prices"].get(lay.plan.gpu)
            ub = _objective(cfg, v.ub_rps_per_replica / lay.plan.gpus_per_replica, price)
            row = _layout_row(lay, an.DOMINATED, f"upper bound {ub:.3g} {unit} < the best "
                                                 f"found {pruned[key]:.3g} (not simulated)")
        else:
            row = _layout_row(lay, "not_run", "interrupted before it was simulated")
        row["ub_rps_per_replica"] = v.ub_rps_per_replica
        for name, lb in v.lower_bounds_s.items():
            row[f"{name}_lower_bound_s"] = lb
        rows.append(row)
    ok = [r for r in rows if r["status"] == "ok"]
    ok.sort(key=lambda r: (-r["objective"], r["num_gpus"],
                           r.get("energy_per_token_j") if _finite(r.get("energy_per_token_j"))
                           else math.inf, r["layout"]))
    for i, r in enumerate(ok, 1):
        r["rank"] = i
        if i > 1:
            r["lost_because"] = an.DOMINATED
            r["reason"] = (f"objective {r['objective']:.4g} {unit} < the best's "
                           f"{ok[0]['objective']:.4g}" if r["objective"] < ok[0]["objective"]
                           else "ties the best on the objective; loses on GPUs / energy")
    order = {"ok": 0, an.DOMINATED: 1, an.SLO_MISSED: 2, an.DOES_NOT_FIT: 3, an.INVALID: 4}
    rest = [r for r in rows if r["status"] != "ok"]
    rest.sort(key=lambda r: (order.get(r["status"], 5), r["layout"]))
    return ok + rest


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _simulated_row(cfg: SearchConfig, lay: Layout, res: dict[str, Any],
                   prices: dict[str, Any]) -> dict[str, Any]:
    status = res.get("status")
    if status != "ok":
        return _layout_row(lay, status or an.INVALID, res.get("reason", ""))
    rstar = res["replicas"]
    g = res["goodput_rps_per_replica"]
    if lay.replicas < rstar:
        return _layout_row(lay, an.SLO_MISSED,
                           f"{lay.replicas} replicas x goodput {g:.3g} req/s < requested load "
                           f"{cfg.load:g}" if lay.replicas * res["goodput_load_per_replica"]
                           < cfg.load else f"the layout misses the SLO at the requested load "
                                           f"(confirmed with {rstar} replicas instead)")
    if lay.replicas > rstar:
        return _layout_row(lay, an.DOMINATED, f"the same plan meets the SLO with {rstar} "
                                              f"replicas ({rstar * lay.plan.gpus_per_replica} "
                                              "GPUs)")
    row = _layout_row(lay, "ok", "")
    price = prices["prices"].get(lay.plan.gpu)
    req = res["at_requested"]
    total_tps = (req.get("output_tokens_per_s_per_gpu") or 0.0) * lay.num_gpus
    row.update({
        "objective": _objective(cfg, res["goodput_rps_per_gpu"], price),
        "goodput_rps_per_replica": g, "goodput_rps_per_gpu": res["goodput_rps_per_gpu"],
        "goodput_output_tokens_per_s_per_gpu":
            res["at_goodput"].get("output_tokens_per_s_per_gpu"),
        "tokens_per_s_per_user_at_goodput": res["at_goodput"].get("tokens_per_s_per_user"),
        "output_tokens_per_s_per_gpu": req.get("output_tokens_per_s_per_gpu"),
        "tokens_per_s_per_user": req.get("tokens_per_s_per_user"),
        "busy_frac": req.get("busy_frac"),
        "energy_per_token_j": res.get("energy_per_token_j"),
        "price_per_gpu_hour": price,
        "usd_per_hour": price * lay.num_gpus if price else None,
        "usd_per_million_output_tokens": (price * lay.num_gpus / 3600.0 / total_tps * 1e6
                                          if price and total_tps > 0 else None),
        "simulations": res.get("simulations"),
    })
    for name, value in (res.get("slo_values") or {}).items():
        row[name + "_s"] = value
    return row
