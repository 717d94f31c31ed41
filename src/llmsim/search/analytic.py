"""The analytic stage: which layouts can be dropped before any simulation, and why.

Three verdicts, each *certain* under the cost model the simulation prices with (the same step
model), so pruning never removes a layout the simulation would have kept:

- **does not fit**: the weights do not fit the GPUs (``memory.check_weights_fit``), no KV block is
  left, or the longest request's KV alone exceeds a replica's capacity (the simulator refuses it
  at arrival, and a refused request misses the SLO);
- **SLO certainly missed**, latency: every request's TTFT is at least its prompt prefilled alone
  in one step at batch 1, ``t1(p_i) = step_time(prefill(1, p_i))``, and every decode step of it
  takes at least a batch-1 decode step at its prompt's context, ``d1(p_i + 1)`` (step times are
  monotone in every dimension, ``costmodel/kernels.py``, and splitting a prompt into chunks only
  adds weight reads: ``sum max(c_k, m_k) >= max(sum c_k, sum m_k)``). So
  ``TPOT_i >= d1(p_i + 1)`` and ``E2E_i >= t1(p_i) + (o_i - 1) d1(p_i + 1)``; a percentile is
  monotone in its values, so the percentile of the bounds over the workload's requests bounds
  the simulated percentile from below. If that bound exceeds the SLO, the SLO is missed;
- **SLO certainly missed**, capacity (open-loop ``--rate`` only): a replica's busy time is at
  least every step's slowest pipeline stage, and a step with ``n`` new tokens takes at least
  ``f(n)`` = the stage time of ``n`` tokens without attention, logits or context (a lower bound
  of any step with ``n`` tokens); decode steps of ``b`` sequences at least ``g(b)`` = a decode
  stage at the shortest context. With ``f``, ``g`` nondecreasing, on a geometric grid
  ``n_k``: ``f(n)/n >= f(n_k)/n_{k+1}`` for ``n`` in ``[n_k, n_{k+1}]``, so
  ``c_tok = min_k f(n_k)/n_{k+1}`` (and ``c_dec`` from ``g``) are per-token lower bounds and one
  replica serves at most ``ub = 1 / max(E[p + o - 1] c_tok, E[o - 1] c_dec)`` requests/s
  (``n`` up to the token budget, ``b`` up to ``max_num_seqs`` and the KV capacity). ``R``
  replicas below the requested rate (``R ub < rate``) cannot keep up: the queue grows.

With an engine (``plan.engine``; ``engines.EngineStepModel``: every step takes
``kernel x f + step_overhead_s``, ``f`` the mixed-step factor for a step holding prompt chunks
and decodes, else 1; a request reaches the engine ``request_overhead_s`` after it was sent) the
bounds are the engine-neutral ones with ``low = min(1, f)``: ``TTFT >= low t1 + step_overhead_s
+ request_overhead_s``, ``TPOT >= low d1 + step_overhead_s``, ``E2E >= low e2e_1 + step +
request overhead`` (affine maps with positive slope commute with a percentile), and the
capacity bound ``ub / low``; the scheduler traits (chunking, watermark, block size) are the
engine's unless the config names a scheduler.

``ub`` is also the upper end of the goodput bisection (``search/evaluate.py``), which therefore
never reports more than it: the *dominated* prune of the search (``ub`` per GPU below the best
goodput per GPU found) is exact. Everything is cached per step model (GPU, tp, pp, ep, formats)
and per engine limits, so a layout costs a few dictionary look-ups once its plan is known.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmsim import units
from llmsim.costmodel import BatchShape, Deployment, StepTimeModel, build_step_model
from llmsim.errors import DoesNotFitError, LLMSimError
from llmsim.search.slo import SloTarget
from llmsim.search.space import Layout, Plan

log = logging.getLogger(__name__)

#: ratio of the geometric grid of the capacity bound (its looseness is at most this factor)
GRID_RATIO = 1.25

FITS = "fits"
DOES_NOT_FIT = "does_not_fit"
SLO_MISSED = "slo_missed"
INVALID = "invalid"
DOMINATED = "dominated"


@dataclass(frozen=True)
class Lengths:
    """The workload's request lengths that the simulations replay (the same at every rate:
    the lengths are drawn from their own seeded stream)."""

    prompts: np.ndarray
    outputs: np.ndarray

    @classmethod
    def of(cls, input_tokens: np.ndarray, output_tokens: np.ndarray, max_model_len: int
           ) -> Lengths:
        ok = (input_tokens + output_tokens) <= max_model_len  # others are refused by any layout
        return cls(np.asarray(input_tokens[ok], dtype=np.int64),
                   np.asarray(output_tokens[ok], dtype=np.int64))

    @property
    def mean_tokens(self) -> float:
        return float(np.mean(self.prompts + self.outputs - 1)) if len(self.prompts) else 0.0

    @property
    def mean_decode_tokens(self) -> float:
        return float(np.mean(self.outputs - 1)) if len(self.prompts) else 0.0


def stat_of(values: np.ndarray, stat: str) -> float:
    """The statistic the serving summary reports (``metrics.dist_stats``) of ``values``."""
    v = values[np.isfinite(values)]
    if not len(v):
        return math.nan
    if stat == "mean":
        return float(v.mean())
    if stat == "max":
        return float(v.max())
    return float(np.percentile(v, float(stat[1:])))


def monotone_stat(fn, xs: np.ndarray, stat: str) -> float:
    """``stat_of(fn(xs), stat)`` for a nondecreasing ``fn``, evaluating ``fn`` at two points
    (a percentile: the sorted values keep the order of ``xs``, so numpy's linear interpolation
    between order statistics is ``fn`` at the two neighbouring ``xs``); the mean needs all."""
    if not len(xs):
        return math.nan
    if stat == "mean":
        uniq, inv = np.unique(xs, return_inverse=True)
        return float(np.mean(fn(uniq)[inv]))
    v = np.sort(xs)
    if stat == "max":
        return float(fn(v[-1:])[0])
    pos = float(stat[1:]) / 100.0 * (len(v) - 1)
    k = int(math.floor(pos))
    w = pos - k
    a, b = fn(np.array([v[k], v[min(k + 1, len(v) - 1)]]))
    return float(a + w * (b - a))


@dataclass
class StepInfo:
    """Per step model: the model itself (or why it cannot be built) and the latency bounds."""

    step_model: StepTimeModel | None
    error: str = ""
    status: str = FITS
    lower_bounds_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineTerms:
    """What one engine (or none, ``""``) changes in the bounds (module docstring)."""

    request_overhead_s: float = 0.0
    step_overhead_s: float = 0.0
    mixed_step_factor: float = 1.0
    chunks_prompts: bool = True
    uses_watermark: bool = False
    block_size: int = 16

    @property
    def low(self) -> float:
        return min(1.0, float(self.mixed_step_factor))

    def latency_bound(self, metric: str, engine_neutral_s: float) -> float:
        lb = self.low * engine_neutral_s + self.step_overhead_s
        return lb + self.request_overhead_s if metric in ("ttft", "e2e") else lb


@dataclass(frozen=True)
class Capacity:
    kv_tokens: int
    max_batch: int
    ub_rps: float  # requests/s one replica can serve at most


@dataclass(frozen=True)
class Verdict:
    """The analytic stage's word on one layout."""

    layout: Any  # Layout | DisaggLayout
    status: str
    reason: str = ""
    ub_rps_per_replica: float = math.nan
    max_batch: int = 0
    lower_bounds_s: dict[str, float] = field(default_factory=dict)

    @property
    def survives(self) -> bool:
        return self.status == FITS


class AnalyticStage:
    """Verdicts for layouts of one model and workload (see module docstring).

    ``deployment_args``: the keyword arguments of ``Deployment.resolve`` that the search does not
    vary (``model``, ``dtype``, ``act_dtype``, ``profile``, ``efficiency``, ``estimator``...).
    ``rate``: the requested open-loop rate (None for a closed loop)."""

    def __init__(self, deployment_args: dict[str, Any], lengths: Lengths,
                 targets: tuple[SloTarget, ...], *, rate: float | None,
                 memory_utilization: float = 0.9, block_size: int = 16,
                 chunks_prompts: bool = True, uses_watermark: bool = False,
                 watermark_frac: float = 0.01, step_models: dict | None = None,
                 engines: dict[str, EngineTerms] | None = None):
        self.args = deployment_args
        self.lengths = lengths
        self.targets = targets
        self.rate = rate
        self.memory_utilization = memory_utilization
        self.block_size = block_size
        self.chunks_prompts = chunks_prompts
        self.watermark_frac = watermark_frac
        self.engines = {"": EngineTerms(chunks_prompts=chunks_prompts,
                                        uses_watermark=uses_watermark, block_size=block_size),
                        **(engines or {})}
        self._bounds: dict[tuple, dict[str, float]] = {}
        #: per pool plan of a disaggregated layout: its bounds (``search/disagg.py``)
        self.pool_terms: dict[tuple, dict[str, Any]] = {}
        self._steps: dict[tuple, StepInfo] = {}
        self._caps: dict[tuple, Capacity | str] = {}
        self._costs: dict[tuple, dict[tuple, float]] = {}  # per step model: f(n), g(b)
        self._models = step_models if step_models is not None else {}
        self.longest_kv = int((lengths.prompts + lengths.outputs - 1).max()) \
            if len(lengths.prompts) else 1
        self.shortest_kv = int((lengths.prompts + 1).min()) if len(lengths.prompts) else 1
        self.longest_prompt = int(lengths.prompts.max()) if len(lengths.prompts) else 1

    # ------------------------------------------------------------------ step models
    def deployment(self, plan: Plan) -> Deployment:
        return plan_deployment(self.args, plan)

    def step_model(self, plan: Plan) -> StepTimeModel:
        sm = self._models.get(plan.step_key)
        if sm is None:
            sm = build_step_model(self.deployment(plan))
            self._models[plan.step_key] = sm
        return sm

    def step_info(self, plan: Plan) -> StepInfo:
        info = self._steps.get(plan.step_key)
        if info is None:
            info = self._build_step_info(plan)
            self._steps[plan.step_key] = info
        return info

    def _build_step_info(self, plan: Plan) -> StepInfo:
        try:
            sm = self.step_model(plan)
            dep = sm.deployment
            from llmsim.memory import check_weights_fit

            check_weights_fit(dep.model, dep.cluster, dep.plan, dep.precision,
                              self.memory_utilization)
        except DoesNotFitError as exc:
            return StepInfo(None, str(exc), DOES_NOT_FIT)
        except LLMSimError as exc:
            return StepInfo(None, str(exc), INVALID)
        return StepInfo(sm, "", FITS, self._latency_bounds(sm))

    def _latency_bounds(self, sm: StepTimeModel) -> dict[str, float]:
        p, o = self.lengths.prompts, self.lengths.outputs
        if not len(p):
            return {}

        def t1(x: np.ndarray) -> np.ndarray:
            return np.array([sm.step_time(BatchShape.prefill(1, int(v))) for v in x])

        def d1(x: np.ndarray) -> np.ndarray:
            return np.asarray(sm.decode_step_times(1, (np.asarray(x) + 1).astype(float)))

        out = {}
        for t in self.targets:
            if t.metric == "ttft":
                out[t.name] = monotone_stat(t1, p, t.stat)
            elif t.metric == "tpot":
                out[t.name] = monotone_stat(d1, p[o > 1], t.stat)
            elif t.metric == "e2e":
                uniq, inv = np.unique(p, return_inverse=True)
                e2e = t1(uniq)[inv] + np.maximum(o - 1, 0) * d1(uniq)[inv]
                out[t.name] = stat_of(e2e, t.stat)
        return out

    def lower_bounds(self, plan: Plan) -> dict[str, float]:
        """The latency lower bounds of ``plan`` with its engine's terms (cached)."""
        key = (plan.step_key, plan.engine)
        out = self._bounds.get(key)
        if out is None:
            base = self.step_info(plan).lower_bounds_s
            terms = self.engines[plan.engine]
            metric = {t.name: t.metric for t in self.targets}
            out = base if not plan.engine else {
                name: terms.latency_bound(metric[name], lb) for name, lb in base.items()}
            self._bounds[key] = out
        return out

    # ------------------------------------------------------------------ capacity
    def capacity(self, plan: Plan) -> Capacity | str:
        """KV capacity, the largest batch and the requests/s bound of one replica, or why the
        plan cannot serve the workload (a ``does_not_fit`` / ``invalid`` reason)."""
        key = (plan.step_key, plan.max_num_seqs, plan.max_num_batched_tokens, plan.engine)
        cap = self._caps.get(key)
        if cap is None:
            cap = self._build_capacity(plan)
            self._caps[key] = cap
        return cap

    def _build_capacity(self, plan: Plan) -> Capacity | str:
        from llmsim.memory import analyze_memory

        sm = self.step_model(plan)
        dep = sm.deployment
        seqs, tok = plan.max_num_seqs, plan.max_num_batched_tokens
        terms = self.engines[plan.engine]
        if terms.chunks_prompts and tok < seqs:
            return (f"{INVALID}: max_num_batched_tokens {tok} < max_num_seqs {seqs} (chunked "
                    "prefill needs a token per running sequence)")
        if not terms.chunks_prompts and self.longest_prompt > tok:
            return (f"{DOES_NOT_FIT}: the longest prompt ({self.longest_prompt} tokens) exceeds "
                    f"the token budget {tok} of a scheduler that does not chunk prompts")
        mem = analyze_memory(dep.model, dep.cluster, dep.plan, dep.precision, max_tokens=tok,
                             max_logits=seqs, memory_utilization=self.memory_utilization)
        bs = terms.block_size
        blocks = int(mem.max_kv_tokens) // bs
        usable = blocks - int((self.watermark_frac if terms.uses_watermark else 0.0) * blocks)
        need = -(-self.longest_kv // bs)
        if blocks < 1 or need > usable:
            return (f"{DOES_NOT_FIT}: KV cache of {units.fmt_bytes(mem.kv_budget_bytes)} per GPU "
                    f"holds {blocks * bs:,} tokens; the longest request needs "
                    f"{self.longest_kv:,}")
        kv_tokens = blocks * bs
        max_batch = max(1, min(seqs, kv_tokens // max(self.shortest_kv, 1)))
        n_max = max(tok, seqs)
        c_tok = _per_unit_lower_bound(self.unit_cost(plan, "tok"), n_max)
        c_dec = _per_unit_lower_bound(self.unit_cost(plan, "dec"), max_batch)
        work_s = terms.low * max(self.lengths.mean_tokens * c_tok,
                                 self.lengths.mean_decode_tokens * c_dec)
        ub = 1.0 / work_s if work_s > 0 else math.inf
        return Capacity(kv_tokens, max_batch, ub)

    def unit_cost(self, plan: Plan, kind: str):
        """The engine-neutral stage-time lower bound of a step, memoised per step model:
        ``"tok"``: ``f(n)``, ``n`` new tokens without attention, logits or context;
        ``"dec"``: ``g(b)``, a decode stage of ``b`` sequences at the shortest context."""
        sm = self.step_model(plan)
        memo = self._costs.setdefault(plan.step_key, {})
        ctx = float(max(self.shortest_kv, 1))

        def token_cost(n: int) -> float:
            key = ("tok", n)
            if key not in memo:
                memo[key] = sm.stage_time(BatchShape(prefill_seqs=1, prefill_tokens=n,
                                                     logits_seqs=0))
            return memo[key]

        def decode_cost(b: int) -> float:
            key = ("dec", b)
            if key not in memo:
                memo[key] = float(np.max(sm.decode_stage_times(b, np.array([ctx]))))
            return memo[key]

        return token_cost if kind == "tok" else decode_cost

    # ------------------------------------------------------------------ verdicts
    def verdict(self, layout: Layout, prune: bool = True) -> Verdict:
        """The layout's verdict; ``prune=False`` (brute force) skips the two SLO bounds and
        keeps only what cannot run (does not fit, invalid)."""
        plan = layout.plan
        info = self.step_info(plan)
        if info.status != FITS:
            return Verdict(layout, info.status, info.error)
        bounds = self.lower_bounds(plan)
        for t in self.targets if prune else ():
            lb = bounds.get(t.name)
            if lb is not None and lb > t.limit_s:
                return Verdict(layout, SLO_MISSED,
                               f"{t.name} is at least {units.fmt_ms(lb, 1)} ms (batch-1 bound) > "
                               f"{units.fmt_ms(t.limit_s, 1)} ms",
                               lower_bounds_s=bounds)
        cap = self.capacity(plan)
        if isinstance(cap, str):
            status, _, why = cap.partition(": ")
            return Verdict(layout, status, why, lower_bounds_s=bounds)
        if prune and self.rate is not None and layout.replicas * cap.ub_rps < self.rate:
            return Verdict(layout, SLO_MISSED,
                           f"{layout.replicas} replicas serve at most "
                           f"{layout.replicas * cap.ub_rps:.3g} req/s (capacity bound) < "
                           f"requested {self.rate:g}", cap.ub_rps, cap.max_batch, bounds)
        return Verdict(layout, FITS, "", cap.ub_rps, cap.max_batch, bounds)


def plan_deployment(args: dict[str, Any], plan: Plan) -> Deployment:
    """One replica's deployment of ``plan``; ``args``: the ``Deployment.resolve`` arguments the
    search does not vary (model, dtype, act_dtype, profile, efficiency, estimator...)."""
    return Deployment.resolve(
        args["model"], plan.gpu, None, plan.gpus_per_replica, tp=plan.tp, pp=plan.pp,
        ep=plan.ep, dp=1, micro_batches=args.get("micro_batches", 0), dtype=args.get("dtype"),
        weight_dtype=plan.weight_dtype, act_dtype=args.get("act_dtype"),
        kv_dtype=plan.kv_dtype, profile=args.get("profile"), efficiency=args.get("efficiency"),
        estimator=args.get("estimator", "calibrated"),
        estimator_model=args.get("estimator_model"))


def _grid(n_max: int) -> list[int]:
    out, x = [1], 1.0
    while out[-1] < n_max:
        x *= GRID_RATIO
        nxt = min(n_max, max(out[-1] + 1, int(math.floor(x))))
        out.append(nxt)
    return out


def _per_unit_lower_bound(cost, n_max: int) -> float:
    """``min over 1 <= n <= n_max of cost(n) / n`` from below, for nondecreasing ``cost``:
    ``min_k cost(n_k) / n_{k+1}`` over a geometric grid, and ``cost(n_max) / n_max``."""
    grid = _grid(max(1, int(n_max)))
    costs = [cost(n) for n in grid]
    best = costs[-1] / grid[-1]
    for k in range(len(grid) - 1):
        best = min(best, costs[k] / grid[k + 1])
    return best
