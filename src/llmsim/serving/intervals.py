"""Intervals of a serving simulation: the run repeated under error-factor draws.

Each draw ``k`` scales every op of family ``f`` by ``phi_kf`` (one factor per family, drawn
from the estimator's validation residuals on the part: ``costmodel.estimators.intervals``)
through :class:`~llmsim.costmodel.estimators.intervals.ScaledStepTimeModel` and simulates the
same request stream again (same seed: the same arrivals and lengths). A figure's interval is
the central ``level`` range of its values over the draws, e.g. for the mean TTFT::

    interval(ttft_s.mean) = [q_{(1-level)/2}, q_{(1+level)/2}] of {mean TTFT under draw k}

Every latency block (``ttft_s``, ``tpot_s``, ``itl_s``, ``e2e_s``, ``queueing_delay_s``) gets
``interval`` (of its mean) and ``intervals`` (of each statistic: p50, p90, ...); the
throughput figures get ``intervals`` at the top level. The draws carry kernel and collective
errors only: the engine factor of ``estimate`` scales whole TTFT / TPOT figures, which a
scheduled mix of prefill and decode steps has no place for, so a framework's time outside the
kernels is not in these intervals (docs/estimators.md). Cost: one simulation per draw.
"""

from __future__ import annotations

import numpy as np

from llmsim.costmodel import StepTimeModel, build_step_model
from llmsim.costmodel.estimators.intervals import (
    DEFAULT_LEVEL,
    deployment_draws,
    quantile_interval,
    scaled_step_models,
)
from llmsim.errors import ConfigError
from llmsim.serving.config import SimulationConfig, deployment_of, load_config

#: fewest draws of a simulation interval (below this an 80% interval is the draws' extremes)
MIN_DRAWS = 5
#: the latency blocks of a summary that get intervals
BLOCKS = ("ttft_s", "tpot_s", "itl_s", "e2e_s", "queueing_delay_s")
#: the top-level throughput figures that get intervals
FIGURES = ("requests_per_s", "output_tokens_per_s", "input_tokens_per_s",
           "output_tokens_per_s_per_gpu", "goodput_requests_per_s", "slo_attainment_frac")


def draw_summaries(cfg: SimulationConfig, step_model: StepTimeModel | None, draws: int,
                   level: float = DEFAULT_LEVEL, seed: int = 0) -> tuple[list[dict], dict]:
    """``(summaries, basis)``: the summary of one simulation per factor draw."""
    from llmsim.serving.run import simulate

    if draws < MIN_DRAWS:
        raise ConfigError(f"--interval-draws {draws}: give at least {MIN_DRAWS} (or 0 for "
                          "none); the interval of fewer draws is their extremes, and the "
                          "residual pools have long tails")
    base = step_model if step_model is not None else build_step_model(deployment_of(cfg))
    if base.deployment is None:
        raise ConfigError("intervals need a step model of a deployment (its estimator's "
                          "validation residuals)")
    factors = deployment_draws(base.deployment, draws, seed, level, engine=False)
    runs = [simulate(cfg, step_model=sm).summary() for sm in scaled_step_models(base, factors)]
    return runs, dict(factors.basis)


def summary_intervals(summaries: list[dict], level: float) -> dict:
    """The intervals of :data:`BLOCKS` (every statistic) and :data:`FIGURES` over draws."""
    out: dict = {"blocks": {}, "figures": {}}
    for block in BLOCKS:
        stats = {k for s in summaries for k in (s.get(block) or {})}
        out["blocks"][block] = {
            k: quantile_interval(np.array([_num((s.get(block) or {}).get(k))
                                           for s in summaries]), level) for k in sorted(stats)}
    for fig in FIGURES:
        out["figures"][fig] = quantile_interval(
            np.array([_num(s.get(fig)) for s in summaries]), level)
    return out


def _num(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan


def simulate_intervals(config, step_model: StepTimeModel | None = None, draws: int = 10,
                       level: float = DEFAULT_LEVEL, seed: int = 0) -> dict:
    """What a report gains (:meth:`SimulationReport.add_intervals`): ``interval_level``,
    ``interval_draws``, ``interval_basis`` and the intervals of :func:`summary_intervals`."""
    cfg = load_config(config)
    summaries, basis = draw_summaries(cfg, step_model, draws, level, seed)
    return {"level": level, "draws": draws, "basis": basis,
            **summary_intervals(summaries, level)}
