"""Disaggregated (xPyD) layouts in the search: their analytic bounds and their task function.

**Evaluation** (:func:`evaluate_disagg_layout`, the task every backend runs for a
``kind="disaggregated"`` layout): the xPyD static estimate, ``disagg.estimate_disagg``, of a
*typical request* -- the workload's mean prompt and output lengths, rounded -- with the pools'
plans and worker counts, KV over RDMA with layer-wise transfer (``disagg.kv_transfer``). That
estimate is a closed loop at a concurrency ``c``; its rate ``lambda(c)`` grows with ``c``. So

- at the requested load: open loop (``--rate R``), the least ``c`` with ``lambda(c) >= R``
  (integer bisection; none up to every decode slot busy: the layout cannot carry ``R``); closed
  loop, ``c`` = the client count. The SLO holds there when each target's figure of the estimate
  (TTFT, TPOT, E2E; ITL is TPOT) is within its limit. The estimate gives one figure per request,
  not a distribution, so a target's statistic (p99...) is read as that figure: the rows say so
  (``slo_basis``);
- goodput: the highest ``lambda(c)`` over a geometric grid of ``c`` (ratio ``1 + tolerance``)
  at which the SLO still holds (binary search, assuming it holds below a load once it holds
  at it, as the aggregated bisection does).

A layout the estimate accepts is then confirmed in the xPyD serving simulation
(:func:`confirm_disagg_serving`, ``search.disagg_serving``, default on): its row's figures
become the simulation's (``stage = "serving simulation"``) and it is ranked with the aggregated
plans. A row the simulation does not confirm keeps ``stage = STATIC_STAGE``: confirmation off,
or the simulation refused the layout (``serving_refused``).

**Bounds** (:func:`disagg_verdict`), never above what the estimate reports (so pruning by them
never removes the estimate's best; ``tests/test_search_disagg.py`` checks best == brute force):

- does not fit: either pool's weights (``memory.check_weights_fit``), or a decode worker's KV
  cache cannot hold the workload's longest request (a real engine would refuse it);
- latency: the estimate's TTFT is its prefill step ``t_p`` of ``n_p >= 1`` prompts plus
  queueing and exposed KV transfer, so ``TTFT >= t_p >= t1(p)``, a batch-1 prefill of the mean
  prompt on the prefill plan; its TPOT is a decode step of ``b >= 1`` sequences at contexts
  ``>= p + 1``, so ``TPOT >= d1(p + 1)``; ``E2E >= t1 + (o - 1) d1`` (step times are monotone,
  ``costmodel/kernels.py``);
- capacity: wherever the SLO holds, the estimate's rate is at most the prefill pool's
  ``x rho_L n_p / t_p`` (``n_p``, ``t_p``: the estimate's own prefill step, one static
  estimate per prefill plan, :func:`prefill_step`; ``rho_L = 2k / (1 + 2k)``, ``k = L / t_p -
  1``, the utilisation at which its M/D/1 wait alone fills a TTFT limit ``L``) and the decode
  pool's ``y b / ((o - 1) TPOT(b)) <= y / ((o - 1) c_dec)`` (the estimate clamps its rate
  there), ``c_dec`` the aggregated stage's per-sequence lower bound (``search/analytic.py``)
  over ``b`` up to ``max_num_seqs`` -- or up to the largest batch whose decode-stage lower
  bound stays within a TPOT limit. That bound ``ub`` caps the goodput (open loop: below the
  requested rate, ``slo_missed``), so the branch-and-bound's dominance prune is exact too.

Engines: ``disagg.estimate_disagg`` takes no engine, so disaggregated layouts are
engine-neutral (no fixed costs); their bounds are therefore the engine-neutral ones.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from llmsim import units
from llmsim.costmodel import BatchShape
from llmsim.errors import DoesNotFitError, LLMSimError
from llmsim.search import analytic as an
from llmsim.search.space import DisaggLayout, Plan

log = logging.getLogger(__name__)

STATIC_STAGE = "analytic (xPyD static estimate; not serving-confirmed)"
SLO_BASIS = ("xPyD static estimate of a typical request (mean prompt and output lengths): one "
             "figure per request, compared with each target's limit whatever its statistic")
#: the estimate's figure each SLO metric is read from
_FIGURE = {"ttft": "ttft_s", "tpot": "tpot_s", "itl": "tpot_s", "e2e": "e2e_s"}


def typical_lengths(lengths: an.Lengths) -> tuple[int, int]:
    """(prompt, output) of the typical request: the means, rounded, at least 1."""
    if not len(lengths.prompts):
        return 1, 1
    return (max(1, int(round(float(np.mean(lengths.prompts))))),
            max(1, int(round(float(np.mean(lengths.outputs))))))


# ----------------------------------------------------------------------------- bounds
def _pool_terms(stage: an.AnalyticStage, plan: Plan, role: str) -> dict[str, Any]:
    """Per pool plan (cached on the stage): the latency bound of its part and the requests/s
    one worker serves at most, or why it cannot serve (``error``)."""
    cache = stage.pool_terms
    key = (role, plan.step_key, plan.max_num_seqs, plan.max_num_batched_tokens)
    if key in cache:
        return cache[key]
    info = stage.step_info(plan)
    if info.status != an.FITS:
        out: dict[str, Any] = {"status": info.status, "error": f"{role} pool: {info.error}"}
    else:
        out = (_prefill_terms(stage, plan) if role == "prefill"
               else _decode_terms(stage, plan))
    cache[key] = out
    return out


def pool_formats(args: dict[str, Any], plan: dict[str, Any] | Plan) -> dict[str, Any]:
    """The ``estimate_disagg`` / ``estimate`` format keywords of a pool: the search's fixed
    ``Deployment.resolve`` arguments and the plan's weight and KV formats."""
    get = plan.get if isinstance(plan, dict) else (lambda k: getattr(plan, k))
    return {k: v for k, v in {
        "dtype": args.get("dtype"), "act_dtype": args.get("act_dtype"),
        "weight_dtype": get("weight_dtype"), "kv_dtype": get("kv_dtype"),
        "profile": args.get("profile"), "efficiency": args.get("efficiency"),
        "estimator": args.get("estimator", "calibrated"),
        "estimator_model": args.get("estimator_model")}.items() if v is not None}


def prefill_step(args: dict[str, Any], plan: Plan, prompt: int) -> tuple[int, float]:
    """``(n_p, t_p)``: the prompts one prefill worker prefills a step and that step's time,
    exactly as ``disagg.estimate_disagg`` prices them (its static ``estimate`` of the prefill
    pool at batch ``n_p``; a thin mirror, ``disagg/`` itself is not changed)."""
    from llmsim.estimates.static_batch import estimate

    n_p = max(1, min(plan.max_num_seqs, plan.max_num_batched_tokens // prompt))
    pre = estimate(args["model"], plan.gpu, num_gpus=plan.tp * plan.pp, tp=plan.tp, pp=plan.pp,
                   ep=plan.ep, dp=1, batch=n_p, prompt=prompt, output=1,
                   **pool_formats(args, plan))
    return n_p, float(pre.ttft_s)


def _prefill_terms(stage: an.AnalyticStage, plan: Plan) -> dict[str, Any]:
    p, _ = typical_lengths(stage.lengths)
    sm = stage.step_model(plan)
    t1 = sm.step_time(BatchShape.prefill(1, p))
    try:
        n_p, t_p = prefill_step(stage.args, plan, p)
    except DoesNotFitError as exc:
        return {"status": an.DOES_NOT_FIT, "error": f"prefill pool: {exc}"}
    except LLMSimError as exc:
        return {"status": an.INVALID, "error": f"prefill pool: {exc}"}
    mu = n_p / t_p
    # TTFT >= t_p + W(rho), W = t_p rho / (2 (1 - rho)) (the estimate's M/D/1 wait): a TTFT
    # limit L caps rho at 2k / (1 + 2k), k = L / t_p - 1
    limits = [t.limit_s for t in stage.targets if t.metric == "ttft"]
    rho = 1.0
    if limits:
        k = min(limits) / t_p - 1.0
        rho = 0.0 if k <= 0 else min(1.0, 2 * k / (1 + 2 * k))
    return {"status": an.FITS, "t1_s": max(t1, t_p), "ub_rps_per_worker": mu * rho}


def _decode_terms(stage: an.AnalyticStage, plan: Plan) -> dict[str, Any]:
    from llmsim.memory import analyze_memory

    p, o = typical_lengths(stage.lengths)
    sm = stage.step_model(plan)
    dep = sm.deployment
    mem = analyze_memory(dep.model, dep.cluster, dep.plan, dep.precision,
                         max_tokens=plan.max_num_batched_tokens, max_logits=plan.max_num_seqs,
                         memory_utilization=stage.memory_utilization)
    kv_tokens = int(mem.max_kv_tokens)
    if kv_tokens < stage.longest_kv:
        return {"status": an.DOES_NOT_FIT,
                "error": (f"decode pool: KV cache of {units.fmt_bytes(mem.kv_budget_bytes)} per "
                          f"GPU holds {max(kv_tokens, 0):,} tokens; the longest request needs "
                          f"{stage.longest_kv:,}")}
    d1 = float(np.asarray(sm.decode_step_times(1, np.array([float(p + 1)])))[0])
    g = stage.unit_cost(plan, "dec")
    # a TPOT limit L caps the decode batch at b_L, the largest b with g(b) <= L (g <= TPOT(b))
    b_max = plan.max_num_seqs
    limits = [t.limit_s for t in stage.targets if t.metric in ("tpot", "itl")]
    if limits and g(b_max) > min(limits):
        lo, hi = 0, b_max  # g(hi) > L; g(lo) <= L (lo = 0: none)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if g(mid) <= min(limits) else (lo, mid)
        b_max = max(lo, 1)
    c_dec = an._per_unit_lower_bound(g, b_max)
    work = (o - 1) * c_dec
    return {"status": an.FITS, "d1_s": d1,
            "ub_rps_per_worker": 1.0 / work if work > 0 else math.inf}


def disagg_verdict(stage: an.AnalyticStage, layout: DisaggLayout, prune: bool = True
                   ) -> an.Verdict:
    """The analytic verdict of a disaggregated layout (module docstring); ``prune=False``
    keeps only what cannot run. ``ub_rps_per_replica`` is the whole layout's bound."""
    pre = _pool_terms(stage, layout.prefill, "prefill")
    if pre["status"] != an.FITS:
        return an.Verdict(layout, pre["status"], pre["error"])
    dec = _pool_terms(stage, layout.decode, "decode")
    if dec["status"] != an.FITS:
        return an.Verdict(layout, dec["status"], dec["error"])
    _, o = typical_lengths(stage.lengths)
    bounds = {}
    for t in stage.targets:
        bounds[t.name] = {"ttft": pre["t1_s"], "tpot": dec["d1_s"], "itl": dec["d1_s"],
                          "e2e": pre["t1_s"] + (o - 1) * dec["d1_s"]}[t.metric]
    ub = min(layout.prefill_workers * pre["ub_rps_per_worker"],
             layout.decode_workers * dec["ub_rps_per_worker"]) * (1 + 1e-6)  # its clamp's slack
    for t in stage.targets if prune else ():
        if bounds[t.name] > t.limit_s:
            return an.Verdict(layout, an.SLO_MISSED,
                              f"{t.name} is at least {units.fmt_ms(bounds[t.name], 1)} ms "
                              f"(lower bound of the typical request) > "
                              f"{units.fmt_ms(t.limit_s, 1)} ms", ub, 0, bounds)
    if prune and stage.rate is not None and ub < stage.rate:
        return an.Verdict(layout, an.SLO_MISSED,
                          f"{layout.ratio} serves at most {ub:.3g} req/s (capacity bound) < "
                          f"requested {stage.rate:g}", ub, 0, bounds)
    return an.Verdict(layout, an.FITS, "", ub, layout.decode.max_num_seqs, bounds)


# ----------------------------------------------------------------------------- task
def verdicts(stage: an.AnalyticStage, layouts: list, prune: bool = True) -> list[an.Verdict]:
    """Verdicts of aggregated layouts (``stage.verdict``) and disaggregated ones
    (:func:`disagg_verdict`), in order."""
    return [stage.verdict(lay, prune) if lay.kind == "aggregated"
            else disagg_verdict(stage, lay, prune) for lay in layouts]


def _pool(plan: dict[str, Any], workers: int) -> Any:
    from llmsim.disagg import PoolSpec

    return PoolSpec(workers=workers, tp=plan["tp"], pp=plan["pp"], ep=plan["ep"],
                    max_num_seqs=plan["max_num_seqs"],
                    max_num_batched_tokens=plan["max_num_batched_tokens"], hardware=plan["gpu"])


class StaticPoints:
    """``disagg.estimate_disagg`` of one layout at concurrencies, memoised (the thin wrapper
    the search uses: the layout's pools, the typical request, the config's formats)."""

    def __init__(self, task: dict[str, Any]):
        lay = task["layout"]
        self.task = task
        self.prefill = _pool(lay["prefill"], lay["prefill_workers"])
        self.decode = _pool(lay["decode"], lay["decode_workers"])
        self.formats = pool_formats(task["formats"], lay["prefill"])
        self._memo: dict[int | None, Any] = {}
        self.calls = 0

    def at(self, concurrency: int | None) -> Any:
        if concurrency not in self._memo:
            from llmsim.disagg import estimate_disagg

            self.calls += 1
            self._memo[concurrency] = estimate_disagg(
                self.task["model"], None, self.prefill, self.decode, prompt=self.task["prompt"],
                output=self.task["output"], concurrency=concurrency, **self.formats)
        return self._memo[concurrency]


def _figures(r: Any) -> dict[str, float]:
    return {"ttft_s": r.ttft_s, "tpot_s": r.tpot_s, "e2e_s": r.e2e_s}


def _meets(r: Any, targets: list[dict[str, Any]]) -> tuple[bool, str]:
    for t in targets:
        v = getattr(r, _FIGURE[t["metric"]])
        if not v <= t["limit_s"]:
            return False, (f"{t['metric']}_{t['stat']} {units.fmt_ms(v, 1)} ms > "
                           f"{units.fmt_ms(t['limit_s'], 1)} ms (static estimate)")
    return True, ""


def _point(r: Any) -> dict[str, Any]:
    """The operating point of an estimate: the aggregated rows' fields and the pools'."""
    return {"requests_per_s": r.requests_per_s,
            "output_tokens_per_s_per_gpu": r.output_tokens_per_s_per_gpu,
            "tokens_per_s_per_user": 1.0 / r.tpot_s if r.tpot_s > 0 else math.nan,
            "ttft_p99_s": r.ttft_s, "tpot_p99_s": r.tpot_s, "concurrency": r.concurrency,
            "prefill_utilization": r.prefill_utilization,
            "decode_batch_per_worker": r.decode_batch_per_worker,
            "kv_exposed_s": r.kv_exposed_s, "bottleneck": r.bottleneck,
            "balanced_prefill_per_decode": r.balanced_prefill_per_decode,
            "suggested_xpyd": r.suggested_xpyd}


def concurrency_grid(c_max: int, tolerance: float) -> list[int]:
    """Client counts 1 .. ``c_max`` spaced by ``1 + tolerance`` (the goodput bisection's)."""
    pts, x = [], 1.0
    while x < c_max:
        pts.append(int(x))
        x = max(x + 1, x * (1.0 + tolerance))
    pts.append(int(c_max))
    return sorted(set(pts))


def _requested_concurrency(pts: StaticPoints, rate: float, c_max: int) -> int | None:
    """The least concurrency whose estimated rate reaches ``rate`` (None: not up to
    ``c_max``): false position on the bracket ``lambda(lo) < rate <= lambda(hi)`` (Illinois
    step), which lands on the same integer as bisection in a few estimates."""
    target = rate * (1 - 1e-9)
    f_hi = pts.at(c_max).requests_per_s - target
    if f_hi < 0:
        return None
    lo, f_lo, hi, side = 0, -target, c_max, 0
    while hi - lo > 1:
        x = lo + (hi - lo) * (-f_lo) / (f_hi - f_lo) if f_hi > f_lo else (lo + hi) / 2
        mid = min(hi - 1, max(lo + 1, int(math.ceil(x))))
        f = pts.at(mid).requests_per_s - target
        if f >= 0:
            hi, f_hi = mid, f
            if side == 1:
                f_lo /= 2
            side = 1
        else:
            lo, f_lo = mid, f
            if side == -1:
                f_hi /= 2
            side = -1
    return hi


def static_goodput(pts: StaticPoints, c_req: int, c_max: int, tolerance: float,
                   targets: list[dict[str, Any]]) -> tuple[float, Any]:
    """(highest rate of a grid concurrency >= ``c_req`` meeting the SLO, its estimate); the
    SLO holds at ``c_req``."""
    grid = [c for c in concurrency_grid(max(c_max, c_req), tolerance) if c > c_req]
    best = pts.at(c_req)
    lo, hi = -1, len(grid)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _meets(pts.at(grid[mid]), targets)[0]:
            lo = mid
        else:
            hi = mid
    if lo >= 0 and pts.at(grid[lo]).requests_per_s > best.requests_per_s:
        best = pts.at(grid[lo])
    return best.requests_per_s, best


def evaluate_disagg_layout(task: dict[str, Any]) -> dict[str, Any]:
    """The evaluation of one disaggregated layout (module docstring): the static estimate,
    then :func:`confirm_disagg_serving` for a layout it accepts. Never raises for a layout
    that cannot run: the row says why."""
    t0 = time.perf_counter()
    row = static_evaluation(task)
    if row["status"] == "ok":
        row = confirm_disagg_serving(task, row)
    row["wall_s"] = time.perf_counter() - t0
    log.info("%s: %s in %.2f s", row["plan_key"], row.get("status"), time.perf_counter() - t0)
    return row


def static_evaluation(task: dict[str, Any]) -> dict[str, Any]:
    """The row of the xPyD static estimate of the task's layout (module docstring)."""
    row: dict[str, Any] = {"plan_key": task["plan_key"], "kind": "disaggregated",
                           "layout": task["layout"], "ub_rps_per_replica": task["ub_rps"],
                           "price_per_gpu_hour": task.get("price_per_gpu_hour"),
                           "stage": STATIC_STAGE, "slo_basis": SLO_BASIS}
    pts = StaticPoints(task)
    try:
        c_max = int(pts.at(None).concurrency)
        if task["mode"] == "rate":
            c_req = _requested_concurrency(pts, task["load"], c_max)
            if c_req is None:
                row.update(status=an.SLO_MISSED,
                           reason=(f"the static estimate serves at most "
                                   f"{pts.at(c_max).requests_per_s:.3g} req/s with every "
                                   f"decode slot busy < requested {task['load']:g}"))
                return {**row, "estimates": pts.calls}
        else:
            c_req = int(task["load"])
        at_req = pts.at(c_req)
        met, why = _meets(at_req, task["targets"])
        if not met:
            row.update(status=an.SLO_MISSED,
                       reason=f"misses the SLO at the requested load: {why}")
            return {**row, "estimates": pts.calls}
        g, at_g = static_goodput(pts, c_req, c_max, task["tolerance"], task["targets"])
        gpus = at_req.prefill_gpus + at_req.decode_gpus
        row.update(status="ok", num_gpus=gpus, goodput_rps=g, goodput_rps_per_gpu=g / gpus,
                   at_goodput=_point(at_g), at_requested=_point(at_req),
                   energy_per_token_j=_energy_per_token_j(task, at_req),
                   slo_values={f"{t['metric']}_{t['stat']}":
                               getattr(at_req, _FIGURE[t["metric"]]) for t in task["targets"]})
    except DoesNotFitError as exc:
        row.update(status=an.DOES_NOT_FIT, reason=str(exc))
    except LLMSimError as exc:
        row.update(status=an.INVALID, reason=str(exc))
    return {**row, "estimates": pts.calls}


#: row figures the static estimate set that a serving confirmation replaces
_STATIC_FIGURES = ("goodput_rps", "goodput_rps_per_gpu", "at_goodput", "at_requested",
                   "slo_values")


def confirm_disagg_serving(task: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """The serving confirmation of a disaggregated layout the static estimate accepts.

    With ``task["serving"]`` (``search.disagg_serving``, default on) the layout
    (``task["layout"]``: both pools, worker counts, GPU types, limits;
    ``search/evaluate.py:disagg_layout_config``) is simulated as the aggregated plans are
    (``search/evaluate.py:bisect_goodput``, the layout being one "replica"): the goodput is the
    highest load of the same grid (``load_grid``: the requested load up to the analytic bound
    ``ub``) at which the SLO holds (``search.slo.check``: each target's statistic of the
    simulated distribution, no request refused or unfinished), then one run at the requested
    load gives the row's figures (p99s, tokens/s per user = 1 / mean TPOT, output tokens/s per
    GPU). The row's ``stage`` becomes ``"serving simulation"``: ``run.py`` ranks it with the
    aggregated plans (``comparison_group``). The static figures stay under ``static``; the pool
    diagnostics (``prefill_utilization``, ``bottleneck``, ``suggested_xpyd``) and the energy per
    token remain the static estimate's.

    Without ``task["serving"]``, or when the simulation refuses the layout (an
    ``LLMSimError``), the static row is returned (``serving_refused``: why)."""
    if not task.get("serving"):
        return row
    from llmsim.search.evaluate import SERVING_STAGE, _run, _targets, bisect_goodput
    from llmsim.search.evaluate import _point as sim_point
    from llmsim.search.slo import check

    static = {k: row[k] for k in _STATIC_FIGURES if k in row}
    try:
        g, s_g, runs, why = bisect_goodput(task)
        out = {k: v for k, v in row.items() if k not in _STATIC_FIGURES and k != "slo_basis"}
        out.update(stage=SERVING_STAGE, simulations=runs, static=static)
        if s_g is None:
            dominated = why.startswith("dominated: ")
            out.update(status=an.DOMINATED if dominated else an.SLO_MISSED,
                       reason="serving simulation: " + why.removeprefix("dominated: "))
            return out
        targets = _targets(task)
        s_req = _run(task, 1, task["load"])
        out["simulations"] += 1
        met, why = check(s_req, targets)
        if not met:
            out.update(status=an.SLO_MISSED, reason=("serving simulation misses the SLO at "
                                                     f"the requested load: {why}"))
            return out
    except LLMSimError as exc:
        return {**row, "serving_refused": f"the serving simulation refused the layout: {exc}"}
    goodput_rps = g if task["mode"] == "rate" else float(s_g.get("requests_per_s") or 0.0)
    gpus = int(row["num_gpus"])
    diag = {k: v for k, v in static.get("at_requested", {}).items()
            if k in ("prefill_utilization", "decode_batch_per_worker", "bottleneck",
                     "suggested_xpyd", "balanced_prefill_per_decode")}
    out.update(status="ok", goodput_load=g, goodput_rps=goodput_rps,
               goodput_rps_per_replica=goodput_rps,  # the layout is one "replica"
               goodput_rps_per_gpu=goodput_rps / gpus, at_goodput=sim_point(s_g),
               at_requested={**diag, **sim_point(s_req)},
               slo_values={t.name: t.value(s_req) for t in targets})
    return out


def _energy_per_token_j(task: dict[str, Any], r: Any) -> float:
    from llmsim.search.energy import pools_energy_per_token_j

    tdp = task.get("tdp_w") or {}
    return pools_energy_per_token_j(
        [(r.prefill_gpus, tdp.get("prefill"), r.prefill_utilization),
         (r.decode_gpus, tdp.get("decode"), 1.0)],
        r.output_tokens_per_s, task.get("idle_power_frac", 0.0))
