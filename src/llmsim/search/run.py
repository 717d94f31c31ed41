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

Disaggregated layouts (``space.disagg``, ``search/disagg.py``) are tasks of their own (one per
layout: the goodput depends on the x:y ratio), evaluated by the xPyD static estimate and, for
the layouts it accepts, confirmed in the xPyD serving simulation
(``search/disagg.py:confirm_disagg_serving``; ``search.disagg_serving``, default on). A row's
*comparison group* (:func:`comparison_group`) follows its stage: serving-confirmed xPyD rows
are ranked with the aggregated plans (same SLO check, same load grid, one branch-and-bound
threshold); static-only rows (``disagg_serving: false``, or a layout the simulation refuses)
are ranked among themselves (``best_disaggregated``), never against serving-simulated rows (a
per-request static figure and a simulated p99 are not the same measure).
``disagg="only"``: they are the search, and ``best`` is their best (a static-only one when
none is serving-confirmed).

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
from llmsim.search.disagg import STATIC_STAGE, typical_lengths
from llmsim.search.disagg import verdicts as layout_verdicts
from llmsim.search.evaluate import SERVING_STAGE, confirm_intervals
from llmsim.search.pareto import frontier
from llmsim.search.prices import load_prices
from llmsim.search.space import DisaggLayout, Layout, Plan, disagg_layouts, layouts
from llmsim.search.tasks import evaluate_task

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
    #: the best of the disaggregated comparison group (static estimate), when it is not
    #: ``best`` itself; its frontier and its evaluated layouts
    best_disaggregated: dict[str, Any] | None = None
    frontier_disaggregated: list[dict[str, Any]] = field(default_factory=list)
    disagg_rows: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"settings": self.settings, "best": self.best, "intervals": self.intervals,
                "best_disaggregated": self.best_disaggregated,
                "counts": self.counts, "timing": self.timing, "pareto": self.frontier,
                "pareto_disaggregated": self.frontier_disaggregated,
                "candidates": self.candidates}

    @property
    def runners_up(self) -> list[dict[str, Any]]:
        n = self.settings.get("runners_up", 5)
        group = self.best.get("group") if self.best else None
        return [c for c in self.candidates
                if c.get("rank", 0) > 1 and c.get("group") == group][:n]


def comparison_group(stage: str) -> str:
    """Rows are ranked against rows of the same group: ``serving`` (confirmed by the serving
    simulation, aggregated or xPyD) or ``static`` (the xPyD static estimate alone)."""
    return "serving" if stage == SERVING_STAGE else "static"


def engine_terms(cfg: SearchConfig) -> dict[str, an.EngineTerms]:
    """Per searched engine: its fitted fixed costs and the scheduler traits it runs with (its
    own scheduler and block size unless the config gives them)."""
    from llmsim.engines import resolve_engine
    from llmsim.serving.schedulers import SCHEDULERS

    out = {}
    given = cfg.scheduler.model_fields_set
    for name in cfg.space.engine or ():
        eng = resolve_engine(name)
        sched = SCHEDULERS.get(cfg.scheduler.name if "name" in given else eng.spec.scheduler)
        bs = cfg.scheduler.block_size if "block_size" in given else int(
            eng.spec.defaults.get("block_size", cfg.scheduler.block_size))
        prof = eng.profile
        out[name] = an.EngineTerms(float(prof.request_overhead_s), float(prof.step_overhead_s),
                                   float(prof.mixed_step_factor), sched.chunks_prompts,
                                   sched.uses_watermark, bs)
    return out


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
                             watermark_frac=cfg.scheduler.watermark_frac,
                             engines=engine_terms(cfg))
    space = cfg.space.model_copy(update={"gpus": tuple(get_hardware(g).name
                                                        for g in cfg.space.gpus)})
    all_layouts: list[Layout | DisaggLayout] = [*layouts(space, spec.is_moe),
                                                *disagg_layouts(space, spec.is_moe)]
    t0 = time.perf_counter()
    verdicts = layout_verdicts(stage, all_layouts, cfg.search.prune)
    analytic_s = time.perf_counter() - t0
    n_disagg = sum(1 for lay in all_layouts if lay.kind == "disaggregated")

    base = cfg.base_simulation()
    prompt, output = typical_lengths(lengths)
    tasks = _serving_tasks(cfg, verdicts, prices, base, prompt, output)

    fingerprint = _fingerprint(cfg)
    results: dict[str, dict[str, Any]] = {}
    path = Path(results_path) if results_path is not None else None
    if path is not None and resume:
        known = {t["plan_key"] for t in tasks}
        results = {k: v for k, v in _read_results(path, fingerprint).items() if k in known}
        log.info("resuming: %d of %d plans already simulated", len(results), len(tasks))
    elif path is not None and path.exists():
        path.unlink()
    best: dict[str, float] = {}
    for r in results.values():
        g = comparison_group(r.get("stage", SERVING_STAGE))
        best[g] = max(best.get(g, -math.inf), _row_objective(cfg, r))
    pruned: dict[str, float] = {}
    done = [len(results)]
    fh = open(path, "a", encoding="utf-8") if path is not None else None  # noqa: SIM115

    def skip(task: dict[str, Any]) -> bool:
        if task["plan_key"] in results:
            return True
        threshold = best.get(task["group"], -math.inf)
        if cfg.search.prune and task["ub_objective"] < threshold:
            pruned[task["plan_key"]] = threshold
            done[0] += 1
            _tick()
            return True
        if cfg.search.prune and cfg.mode == "rate" and math.isfinite(threshold) \
                and task["kind"] == "aggregated":
            # the per-replica load at which this plan would tie the best (the task starts its
            # bisection just above it: one failing simulation shows it dominated)
            task["beat"] = threshold * task["plan"]["tp"] * task["plan"]["pp"] * (
                task["price_per_gpu_hour"] / 3600.0
                if cfg.search.objective == "goodput_per_dollar" else 1.0)
        return False

    def on_result(row: dict[str, Any]) -> None:
        row["fingerprint"] = fingerprint
        results[row["plan_key"]] = row
        if fh is not None:
            fh.write(json.dumps(row, allow_nan=True) + "\n")
            fh.flush()
        g = comparison_group(row.get("stage", SERVING_STAGE))
        best[g] = max(best.get(g, -math.inf), _row_objective(cfg, row))
        done[0] += 1
        _tick()

    def _tick() -> None:
        if progress is not None:
            progress(done[0], len(tasks))

    t1 = time.perf_counter()
    try:
        _tick()
        run_tasks(tasks, evaluate_task, skip=skip, on_result=on_result, backend=backend,
                  workers=workers, address=address)
    finally:
        if fh is not None:
            fh.close()
    simulate_s = time.perf_counter() - t1

    candidates = _candidates(cfg, verdicts, results, pruned, prices)
    best_row, best_disagg = _best_rows(cfg, candidates)
    intervals = None
    if best_row is not None and best_row["kind"] == "aggregated" and cfg.search.intervals:
        task = next(t for t in tasks if t["plan_key"] == best_row["plan_key"])
        intervals = confirm_intervals(task, best_row["replicas"], cfg.search.interval_draws,
                                      cfg.search.interval_level)
    # serving-confirmed rows of both kinds share a frontier; static-only xPyD rows have their own
    plan_rows = [r for r in results.values() if r.get("status") == "ok"
                 and comparison_group(r.get("stage", SERVING_STAGE)) == "serving"]
    disagg_rows = [r for r in results.values() if r.get("status") == "ok"
                   and comparison_group(r.get("stage", SERVING_STAGE)) == "static"]
    counts = _counts(candidates, tasks, results, pruned)
    settings = _settings(cfg, spec.name, base, wl.info, prices, backend, fingerprint,
                         prompt, output)
    timing = {"analytic_wall_s": analytic_s, "analytic_layouts_per_wall_s":
              len(all_layouts) / analytic_s if analytic_s > 0 else math.inf,
              "simulate_wall_s": simulate_s, "total_wall_s": time.perf_counter() - t_start,
              # summed over tasks (in the workers): what each layout kind cost
              "task_s": {kind: sum(float(r.get("wall_s") or 0.0) for r in results.values()
                                   if r.get("kind", "aggregated") == kind)
                         for kind in ("aggregated", "disaggregated")},
              "analytic_layouts": {"aggregated": len(all_layouts) - n_disagg,
                                   "disaggregated": n_disagg}}
    front = frontier(plan_rows)
    front_d = frontier(disagg_rows)
    if cfg.space.disagg == "only" and not plan_rows:
        front, front_d, plan_rows = front_d, [], disagg_rows
    return SearchResult(settings, best_row, candidates, front, counts, timing,
                        intervals, plan_rows, best_disagg, front_d, disagg_rows)



def _best_rows(cfg: SearchConfig, candidates: list[dict[str, Any]]
               ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the answer: the first serving-confirmed row, or with ``disagg: only`` the first
    static one; the first static-only disaggregated row when it is not the answer)."""
    firsts = {c["group"]: c for c in candidates if c.get("rank") == 1}
    best_row = firsts.get("serving")
    if best_row is None and cfg.space.disagg == "only":
        best_row = firsts.get("static")
    return best_row, firsts.get("static") if firsts.get("static") is not best_row else None


def _serving_tasks(cfg: SearchConfig, verdicts: list[an.Verdict], prices: dict[str, Any],
                   base: dict[str, Any], prompt: int, output: int) -> list[dict[str, Any]]:
    """One task per surviving aggregated plan (its replica counts to try) and per surviving
    disaggregated layout, best analytic bound first."""
    from llmsim.catalog import get_hardware

    by_plan: dict[Plan, list[an.Verdict]] = {}
    disagg_survivors: list[an.Verdict] = []
    for v in verdicts:
        if v.survives and v.layout.kind == "aggregated":
            by_plan.setdefault(v.layout.plan, []).append(v)
        elif v.survives:
            disagg_survivors.append(v)
    tasks = []
    for plan, vs in by_plan.items():
        hw = get_hardware(plan.gpu)
        price = prices["prices"].get(hw.name)
        ub_obj = _objective(cfg, vs[0].ub_rps_per_replica / plan.gpus_per_replica, price)
        tasks.append({
            "plan_key": plan.key, "plan": plan.as_dict(), "base": base, "kind": "aggregated",
            "group": comparison_group(SERVING_STAGE),
            "deployment_args": cfg.deployment_args(),
            "targets": [t.as_dict() for t in cfg.targets], "mode": cfg.mode,
            "load": cfg.load, "replica_options": sorted(v.layout.replicas for v in vs),
            "ub_rps": vs[0].ub_rps_per_replica, "max_batch": vs[0].max_batch,
            "tolerance": cfg.search.tolerance, "tdp_w": hw.tdp_w,
            "idle_power_frac": cfg.search.idle_power_frac, "ub_objective": ub_obj,
            "price_per_gpu_hour": price})
    for v in disagg_survivors:
        tasks.append(_disagg_task(cfg, v, prices, prompt, output, base))
    tasks.sort(key=lambda t: (-t["ub_objective"] if math.isfinite(t["ub_objective"])
                              else math.inf, t["plan_key"]))
    return tasks


def _counts(candidates: list[dict[str, Any]], tasks: list[dict[str, Any]],
            results: dict[str, dict[str, Any]], pruned: dict[str, float]) -> dict[str, int]:
    """How many layouts, plans and simulations the search saw, ran and pruned, per kind."""
    agg_keys = {t["plan_key"] for t in tasks if t["kind"] == "aggregated"}
    counts: dict[str, int] = {"layouts": len(candidates), "plans": len(agg_keys)}
    for c in candidates:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    counts["plans_simulated"] = len([k for k in results if k in agg_keys])
    counts["plans_pruned_by_bound"] = len([k for k in pruned if k in agg_keys])
    counts["simulations"] = sum(int(r.get("simulations", 0)) for k, r in results.items()
                                if k in agg_keys)
    counts["disaggregated_layouts"] = sum(1 for c in candidates
                                          if c["kind"] == "disaggregated")
    counts["disaggregated_estimated"] = len([r for r in results.values()
                                             if r.get("kind") == "disaggregated"])
    counts["disaggregated_simulated"] = len([
        r for k, r in results.items() if k not in agg_keys
        and r.get("stage") == SERVING_STAGE])
    counts["disaggregated_simulations"] = sum(int(r.get("simulations", 0))
                                              for k, r in results.items() if k not in agg_keys)
    counts["static_estimates"] = sum(int(r.get("estimates", 0)) for r in results.values())
    counts["disaggregated_survivors"] = len(tasks) - len(agg_keys)
    counts["disaggregated_pruned_by_bound"] = len(pruned) - counts["plans_pruned_by_bound"]
    return counts


def _settings(cfg: SearchConfig, model: str, base: dict[str, Any], workload_info: Any,
              prices: dict[str, Any], backend: str, fingerprint: str, prompt: int,
              output: int) -> dict[str, Any]:
    """What the search was asked (the report's settings block)."""
    return {"model": model, "mode": cfg.mode, "load": cfg.load,
            "slo": [t.as_dict() for t in cfg.targets], "objective": cfg.search.objective,
            "num_requests": base["workload"]["num_requests"],
            "workload": workload_info, "estimator": cfg.search.estimator,
            "prices": {"source": prices["source"], "date": prices["date"],
                       "per_gpu_hour": prices["prices"]},
            "idle_power_frac": cfg.search.idle_power_frac,
            "prune": cfg.search.prune, "backend": backend,
            "runners_up": cfg.search.runners_up, "fingerprint": fingerprint,
            "engines": list(cfg.space.engine or []), "disagg": cfg.space.disagg,
            "disagg_serving": cfg.search.disagg_serving,
            "searched_kinds": [k for k, on in (("aggregated", cfg.space.disagg != "only"),
                                               ("disaggregated", cfg.space.disagg != "off"))
                               if on],
            "stages": {"aggregated": SERVING_STAGE, "disaggregated": (
                f"{STATIC_STAGE}, then {SERVING_STAGE}" if cfg.search.disagg_serving
                else STATIC_STAGE)},
            "disaggregated_typical_request": {"prompt": prompt, "output": output}}


def _disagg_task(cfg: SearchConfig, v: an.Verdict, prices: dict[str, Any], prompt: int,
                 output: int, base: dict[str, Any]) -> dict[str, Any]:
    """The task of one disaggregated layout (``search/disagg.py:evaluate_disagg_layout``): the
    static estimate's inputs and, with ``search.disagg_serving``, the serving confirmation's
    (the aggregated tasks' base config, targets and load; the layout is one "replica")."""
    from llmsim.catalog import get_hardware

    lay: DisaggLayout = v.layout
    usd = _usd_per_hour(lay, prices)
    price = usd / lay.num_gpus if usd else None  # per GPU-hour, averaged over the pools
    return {
        "plan_key": lay.key, "kind": "disaggregated",
        "group": comparison_group(SERVING_STAGE if cfg.search.disagg_serving else STATIC_STAGE),
        "serving": cfg.search.disagg_serving, "base": base,
        "deployment_args": cfg.deployment_args(), "replica_options": [1],
        "max_batch": lay.decode.max_num_seqs * lay.decode_workers,
        "layout": lay.as_dict(), "model": cfg.model.name, "formats": cfg.deployment_args(),
        "prompt": prompt, "output": output, "targets": [t.as_dict() for t in cfg.targets],
        "mode": cfg.mode, "load": cfg.load, "tolerance": cfg.search.tolerance,
        "ub_rps": v.ub_rps_per_replica,
        "ub_objective": _objective(cfg, v.ub_rps_per_replica / lay.num_gpus, price),
        "price_per_gpu_hour": price, "idle_power_frac": cfg.search.idle_power_frac,
        "tdp_w": {"prefill": get_hardware(lay.prefill.gpu).tdp_w,
                  "decode": get_hardware(lay.decode.gpu).tdp_w}}


def _usd_per_hour(lay: DisaggLayout, prices: dict[str, Any]) -> float | None:
    pp, pd_ = prices["prices"].get(lay.prefill.gpu), prices["prices"].get(lay.decode.gpu)
    if not pp or not pd_:
        return None
    return (lay.prefill_workers * lay.prefill.gpus_per_replica * pp
            + lay.decode_workers * lay.decode.gpus_per_replica * pd_)


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


def _layout_row(layout: Layout | DisaggLayout, status: str, reason: str) -> dict[str, Any]:
    if isinstance(layout, DisaggLayout):
        return _disagg_layout_row(layout, status, reason)
    p = layout.plan
    row = {"layout": layout.key, "plan_key": p.key, "kind": layout.kind, "gpu": p.gpu,
           "tp": p.tp, "pp": p.pp, "ep": p.ep, "replicas": layout.replicas,
           "num_gpus": layout.num_gpus, "weight_dtype": p.weight_dtype,
           "kv_dtype": p.kv_dtype, "max_num_seqs": p.max_num_seqs,
           "max_num_batched_tokens": p.max_num_batched_tokens, "status": status,
           "reason": reason, "stage": SERVING_STAGE, "group": comparison_group(SERVING_STAGE)}
    if p.engine:
        row["engine"] = p.engine
    return row


def _disagg_layout_row(lay: DisaggLayout, status: str, reason: str) -> dict[str, Any]:
    p, d = lay.prefill, lay.decode
    return {"layout": lay.key, "plan_key": lay.key, "kind": lay.kind,
            "gpu": p.gpu if not lay.heterogeneous else f"{p.gpu}+{d.gpu}",
            "tp": p.tp, "pp": 1, "ep": p.ep, "replicas": lay.prefill_workers + lay.decode_workers,
            "num_gpus": lay.num_gpus, "weight_dtype": p.weight_dtype, "kv_dtype": p.kv_dtype,
            "max_num_seqs": d.max_num_seqs, "max_num_batched_tokens": p.max_num_batched_tokens,
            "status": status, "reason": reason, "stage": STATIC_STAGE,
            "group": comparison_group(STATIC_STAGE), "ratio": lay.ratio,
            "heterogeneous": lay.heterogeneous,
            "prefill_gpu": p.gpu, "prefill_tp": p.tp, "prefill_ep": p.ep,
            "prefill_workers": lay.prefill_workers, "decode_gpu": d.gpu, "decode_tp": d.tp,
            "decode_ep": d.ep, "decode_workers": lay.decode_workers}


def _candidates(cfg: SearchConfig, verdicts: list[an.Verdict],
                results: dict[str, dict[str, Any]], pruned: dict[str, float],
                prices: dict[str, Any]) -> list[dict[str, Any]]:
    unit = "req/s per GPU" if cfg.search.objective == "goodput_per_gpu" else "req per USD"
    rows = []
    for v in verdicts:
        lay = v.layout
        key = lay.plan_key
        disagg = isinstance(lay, DisaggLayout)
        if not v.survives:
            row = _layout_row(lay, v.status, v.reason)
        elif key in results:
            row = (_disagg_result_row(cfg, lay, results[key], prices) if disagg
                   else _simulated_row(cfg, lay, results[key], prices))
        elif key in pruned:
            if disagg:
                usd = _usd_per_hour(lay, prices)
                ub = _objective(cfg, v.ub_rps_per_replica / lay.num_gpus,
                                usd / lay.num_gpus if usd else None)
            else:
                price = prices["prices"].get(lay.plan.gpu)
                ub = _objective(cfg, v.ub_rps_per_replica / lay.plan.gpus_per_replica, price)
            row = _layout_row(lay, an.DOMINATED, f"upper bound {ub:.3g} {unit} < the best "
                                                 f"found {pruned[key]:.3g} (not "
                                                 f"{'estimated' if disagg else 'simulated'})")
        else:
            row = _layout_row(lay, "not_run", "interrupted before it was simulated")
        row["ub_rps_per_replica"] = v.ub_rps_per_replica
        for name, lb in v.lower_bounds_s.items():
            row[f"{name}_lower_bound_s"] = lb
        rows.append(row)
    ok = [r for r in rows if r["status"] == "ok"]
    ok.sort(key=lambda r: (r["group"] != "serving", -r["objective"], r["num_gpus"],
                           r.get("energy_per_token_j") if _finite(r.get("energy_per_token_j"))
                           else math.inf, r["layout"]))
    for group in ("serving", "static"):
        mine = [r for r in ok if r["group"] == group]
        if mine and group == "static" and cfg.space.disagg != "only":
            mine[0]["reason"] = ("the best disaggregated layout by the xPyD static estimate; "
                                 "ranked on its own, not against serving-simulated layouts "
                                 "(not serving-confirmed)")
        for i, r in enumerate(mine, 1):
            r["rank"] = i
            if i > 1:
                r["lost_because"] = an.DOMINATED
                r["reason"] = (f"objective {r['objective']:.4g} {unit} < the best's "
                               f"{mine[0]['objective']:.4g}"
                               if r["objective"] < mine[0]["objective"]
                               else "ties the best on the objective; loses on GPUs / energy")
    order = {"ok": 0, an.DOMINATED: 1, an.SLO_MISSED: 2, an.DOES_NOT_FIT: 3, an.INVALID: 4}
    rest = [r for r in rows if r["status"] != "ok"]
    rest.sort(key=lambda r: (order.get(r["status"], 5), r["layout"]))
    return ok + rest


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _disagg_result_row(cfg: SearchConfig, lay: DisaggLayout, res: dict[str, Any],
                       prices: dict[str, Any]) -> dict[str, Any]:
    """The candidate row of an evaluated disaggregated layout (``search/disagg.py``)."""
    row = _layout_row(lay, res.get("status") or an.INVALID, res.get("reason", ""))
    row["stage"] = res.get("stage", STATIC_STAGE)
    row["group"] = comparison_group(row["stage"])
    row["estimates"] = res.get("estimates")
    for key in ("simulations", "serving_refused"):
        if res.get(key) is not None:
            row[key] = res[key]
    if row["status"] != "ok":
        return row
    usd = _usd_per_hour(lay, prices)
    req, at_g = res["at_requested"], res["at_goodput"]
    total_tps = (req.get("output_tokens_per_s_per_gpu") or 0.0) * lay.num_gpus
    row.update({
        "objective": _objective(cfg, res["goodput_rps_per_gpu"],
                                usd / lay.num_gpus if usd else None),
        "goodput_rps_per_replica": res["goodput_rps"],
        "goodput_rps_per_gpu": res["goodput_rps_per_gpu"],
        "goodput_output_tokens_per_s_per_gpu": at_g.get("output_tokens_per_s_per_gpu"),
        "tokens_per_s_per_user_at_goodput": at_g.get("tokens_per_s_per_user"),
        "output_tokens_per_s_per_gpu": req.get("output_tokens_per_s_per_gpu"),
        "tokens_per_s_per_user": req.get("tokens_per_s_per_user"),
        "energy_per_token_j": res.get("energy_per_token_j"),
        "price_per_gpu_hour": usd / lay.num_gpus if usd else None,
        "usd_per_hour": usd,
        "usd_per_million_output_tokens": (usd / 3600.0 / total_tps * 1e6
                                          if usd and total_tps > 0 else None),
        "slo_basis": res.get("slo_basis"),
        "prefill_utilization": req.get("prefill_utilization"),
        "decode_batch_per_worker": req.get("decode_batch_per_worker"),
        "bottleneck": req.get("bottleneck"),
        "suggested_xpyd": req.get("suggested_xpyd"),
    })
    for name, value in (res.get("slo_values") or {}).items():
        row[name + "_s"] = value
    return row


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
