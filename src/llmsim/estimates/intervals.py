"""Intervals of a static-batch estimate: every figure re-derived under each factor draw.

``estimate`` prices one prefill step, the decode curve and the mid-context decode step once.
Their per-family times (:func:`~llmsim.costmodel.estimators.intervals.family_stage_times`) give,
for draw ``k`` with kernel factors ``phi`` and engine factors ``g``::

    stage_k[s]    = F x sum_f phi_f T_f[s]                (prefill; per pipeline stage; F: the
                                                           engine's prefill_step_factor, else 1)
    TTFT_k        = g_ttft x fill(sum_s stage_k + phi_comm p2p + overhead, max_s stage_k, m)
                    + E_step + E_request
    decode_k(c)   = sum_{f != attn} phi_f C_f[s] + phi_attn A[s](c)   (A: attention curve)
    TPOT_k        = g_tpot x mean_c round(sum_s decode_k + phi_comm p2p + overhead
                                          + E_step, ..., m)
    E2E_k = TTFT_k + (output - 1) TPOT_k,   tokens/s_k = batch x output / E2E_k, ...

and each figure's interval is the central ``level`` quantile range of its draws; with every
factor 1 the draws reproduce the point values exactly (tested). What an interval covers is
what the residuals behind the draws contain (``intervals.basis``): kernel and collective
errors of the estimator (own or leave-one-GPU-out), and the framework time of a measured
serving stack (Splitwise), as one of two terms:

- without ``estimate --engine``: the engine factors ``g`` (uncentred end-to-end residuals:
  the framework time no kernel table holds), and ``E_step = E_request = 0``;
- with an engine (``llmsim.engines``): its fitted fixed costs, ``E_step`` per step
  (``step_overhead_s``) and ``E_request`` once per request (``request_overhead_s``), which are
  the framework time the factors ``g`` stand for. They are added unscaled to both ends and
  ``g = 1``: the factors apply to the kernel part only (drawing ``g`` as well would count the
  framework time twice, and scale a fixed cost by a kernel error).

``overhead`` is the base step model's own per-step cost (``StepCost.overhead_s`` less
``E_step``). Not covered: memory (the fit is exact), scheduling beyond a static batch, the
error of the engine's fitted costs, and stacks unlike the measured ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmsim.costmodel import pipeline
from llmsim.costmodel.estimators.intervals import (
    DEFAULT_DRAWS,
    DEFAULT_LEVEL,
    FAMILIES,
    FactorDraws,
    ResidualData,
    deployment_draws,
    family_stage_times,
    quantile_interval,
)
from llmsim.costmodel.shapes import BatchShape
from llmsim.costmodel.step import StepCost, StepTimeModel
from llmsim.errors import ConfigError

#: the figures that get an interval (time- and throughput-derived fields of EstimateResult)
METRICS = ("ttft_s", "tpot_s", "e2e_s", "prefill_s", "decode_s", "output_tokens_per_s",
           "output_tokens_per_s_per_gpu", "input_tokens_per_s", "prefill_mfu", "decode_mbu",
           "decode_mfu")
_ATTN = FAMILIES.index("attention_decode")
_COMM = FAMILIES.index("comm")
_CHUNK = 25


@dataclass(frozen=True)
class IntervalOptions:
    """How to draw an estimate's intervals: nominal ``level``, number of ``draws``, ``seed``,
    whether to include the ``engine`` (framework) term, and the residual file (None: shipped)."""

    level: float = DEFAULT_LEVEL
    draws: int = DEFAULT_DRAWS
    seed: int = 0
    engine: bool = True
    residuals: str | ResidualData | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ConfigError(f"interval level {self.level} must be in (0, 1), e.g. 0.8")
        if self.draws < 2:
            raise ConfigError(f"interval draws {self.draws} must be >= 2")


@dataclass(frozen=True)
class StaticRun:
    """What ``estimate`` priced, for re-deriving its figures under factor draws; with an engine
    (``engine``: its label) the engine's fixed costs, ``engine_step_s`` per step (included in
    the steps' ``overhead_s``) and ``engine_request_s`` once per request (in the TTFT)."""

    prefill: StepCost
    micro: int
    seqs: int
    contexts: np.ndarray
    decode_mid: StepCost
    steps: int
    batch: int
    prompt: int
    output: int
    gpus: int
    engine: str | None = None
    engine_step_s: float = 0.0
    engine_request_s: float = 0.0
    #: the engine's ``prefill_step_factor`` (its prompt steps run that much slower than the
    #: kernels; ``price()`` scales the total, not the per-op records the draws start from)
    engine_prefill_factor: float = 1.0


def draw_figures(sm: StepTimeModel, run: StaticRun, draws: FactorDraws) -> dict[str, np.ndarray]:
    """Every figure of :data:`METRICS` (up to its constant: MFU/MBU as ratios to the point
    value's time) for every draw: ``{metric: array[k]}`` of times and rates."""
    pp = sm.num_stages
    phi, g = draws.kernel, draws.engine
    fixed = run.engine_step_s
    t_p, p2p_p = family_stage_times(run.prefill, pp)
    f = run.engine_prefill_factor
    stages = (phi @ t_p) * f  # [k, pp]
    step = stages.sum(axis=1) + f * phi[:, _COMM] * p2p_p + (run.prefill.overhead_s - fixed)
    ttft = pipeline.fill_s(step, stages.max(axis=1), run.micro) * g[:, 0] + fixed \
        + run.engine_request_s
    out = {"ttft_s": ttft}
    t_mid, p2p_d = family_stage_times(run.decode_mid, pp)
    const = t_mid.copy()
    const[_ATTN] = 0.0
    mid = ((phi @ t_mid).sum(axis=1) + phi[:, _COMM] * p2p_d
           + (run.decode_mid.overhead_s - fixed)) * g[:, 1] + fixed
    if run.steps > 0:
        base = np.atleast_2d(sm.decode_stage_times(run.seqs, run.contexts))  # [pp, n]
        attn = base - const.sum(axis=0)[:, None]
        tpot = np.empty(draws.k)
        for a in range(0, draws.k, _CHUNK):
            p = phi[a:a + _CHUNK]
            st = (p @ const)[:, :, None] + p[:, _ATTN, None, None] * attn[None]  # [c, pp, n]
            lat = st.sum(axis=1) + p[:, _COMM, None] * p2p_d + run.decode_mid.overhead_s
            if run.micro > 1:
                lat = pipeline.round_s(lat, st.max(axis=1), run.micro)
            tpot[a:a + _CHUNK] = lat.mean(axis=1)
        tpot = tpot * g[:, 1]
    else:
        tpot = np.full(draws.k, np.nan)
    decode = run.steps * tpot if run.steps > 0 else np.zeros(draws.k)
    e2e = ttft + decode
    out.update(tpot_s=tpot, e2e_s=e2e, prefill_s=ttft, decode_s=decode,
               output_tokens_per_s=run.batch * run.output / e2e,
               input_tokens_per_s=run.batch * run.prompt / ttft)
    out["output_tokens_per_s_per_gpu"] = out["output_tokens_per_s"] / run.gpus
    out["_mid_s"] = mid
    return out


def intervals(sm: StepTimeModel, run: StaticRun, points: dict[str, float],
              options: IntervalOptions) -> tuple[dict[str, list[float]], dict[str, str]]:
    """``({metric: [lo, hi]}, basis)`` of an estimate (module docstring)."""
    if sm.deployment is None:
        raise ConfigError("intervals need a step model of a deployment (its estimator's "
                          "validation residuals)")
    data = (options.residuals if isinstance(options.residuals, ResidualData)
            else ResidualData.load(options.residuals))
    # with an engine its fixed costs are the framework term: no engine factors (docstring)
    draws = deployment_draws(sm.deployment, options.draws, options.seed, options.level,
                             options.engine and run.engine is None, data)
    if run.engine is not None:
        draws = replace(draws, basis={**draws.basis, "engine": (
            f"{run.engine} fitted fixed costs (step {run.engine_step_s:.4g} s, request "
            f"{run.engine_request_s:.4g} s), added to both ends; no engine factors")})
    figs = draw_figures(sm, run, draws)
    out = {m: quantile_interval(figs[m], options.level) for m in METRICS if m in figs}
    # utilisation scales as 1 / time: ratio of the draws' times to the point value's
    for metric, time_key, point_time in (("prefill_mfu", "ttft_s", points["ttft_s"]),
                                         ("decode_mbu", "_mid_s", points["_mid_s"]),
                                         ("decode_mfu", "_mid_s", points["_mid_s"])):
        out[metric] = quantile_interval(points[metric] * point_time / figs[time_key],
                                        options.level)
    basis = dict(draws.basis)
    basis["residuals"] = data.origin
    return out, basis


def decode_contexts(prompt: int, steps: int, max_priced: int) -> np.ndarray:
    """The contexts ``estimate`` prices the decode steps at (all, or an even sample)."""
    if steps <= max_priced:
        return prompt + 1 + np.arange(steps, dtype=float)
    return np.linspace(prompt + 1, prompt + steps, max_priced)


def decode_shape(seqs: int, prompt: int, steps: int) -> BatchShape:
    """The mid-context decode step (``estimate``'s breakdown and MBU / MFU)."""
    return BatchShape.decode(seqs, prompt + 1 + steps // 2)
