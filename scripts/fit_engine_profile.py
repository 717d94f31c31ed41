"""Fit the engine profiles (src/llmsim/data/engines/profiles.yaml) to measured serving runs.

    python scripts/fit_engine_profile.py [--data CSV] [--rows-per-group N] [--iterations K]

Data: the aggregated rows (``mode=agg``) of
``../shared/data/e2e/aiconfigurator_silicon/silicon_h100_sxm.csv`` (aiperf closed loops on
H100-SXM; see its PROVENANCE.md), each rerun as its benchmark ran
(:mod:`llmsim.serving.reproduce`: 20c measured requests after 2c warm-up, closed loop c, the
generator's limits). Rows llmsim cannot reproduce are skipped and listed (models not in the
catalog: gpt-oss-120b, MiniMax-M2.5; attention data parallelism).

Parameters per engine ``theta = (request_overhead_s, step_overhead_s, prefill_step_factor)``
(the formula: :mod:`llmsim.engines.profile`); ``mixed_step_factor`` stays 1 (with in-flight
and chunked batching nearly every step with prompt tokens also holds decodes, so the data
cannot tell the two factors apart). Least squares on log ratios of mean TTFT and mean TPOT,
all rows of the engine weighted equally::

    minimise  sum_rows [ ln(TTFT(theta) / TTFT_meas) ]^2 + [ ln(TPOT(theta) / TPOT_meas) ]^2
    subject to  request_overhead_s >= 0, step_overhead_s >= 0, 0.5 <= prefill_step_factor <= 3

Log ratios, not relative errors: ``pred / meas - 1`` is bounded below by -1 and unbounded
above, so a few rows over-predicted several-fold (KV-bound reruns) outweighed dozens
under-predicted by 30-60% and pulled the first fit's factor to its 0.7 bound with both TTFT
and TPOT biased low (TTFT -34%, TPOT -20% for TensorRT-LLM); a factor-2 miss either way
costs the same in log space.

solved by Gauss-Newton in a trust region: the simulator is run at ``theta_k`` and at one
perturbation of each parameter (a forward-difference Jacobian per row), the linearised problem
is solved with bounds (``scipy.optimize.lsq_linear``; each step moves a parameter by at most
the trust radius, initially ``TRUST``) for ``theta_{k+1}``; a step that raises the loss is
undone and the radius halved (the closed-loop response is not smooth: without this the
TensorRT-LLM factor oscillated 1.52 / 1.36 / 1.52); ``--iterations`` simulator evaluations
from ``theta_0 = (0, 0, 1)`` (kernels only), the result is the evaluated point of least loss.
To keep the run short the rows are a stratified
subsample: at most ``--rows-per-group`` rows per (engine, model), drawn with a fixed seed.

Held-out split: leave-one-model-out within each engine. For every (engine, model) the same
linearised problem is solved without that model's rows; the parameters are written under
``fit.held_out`` so that ``benchmarks/serving_accuracy.py --held-out`` predicts each model's
rows with parameters that never saw it. Not fitted: ``jitter_s`` (client timing noise, no
measurement of it here): the documented constant ``JITTER_S`` (1 ms, the order of an HTTP
round trip on a local network). ``client_phase_spread`` is a discrete choice: the whole fit
runs once for each of ``PHASE_SPREADS`` (0: the measured phase enters as one cohort, 1: out
of phase) and the engine keeps the one of lower loss. An engine without rows gets the
fallback rule of ``llmsim.engines.profile`` (median of the fitted engines). Deterministic;
the packaged file: ``--rows-per-group 8 --iterations 5`` (48 rows), about 40 minutes on a
loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import lsq_linear

from llmsim.io import write_text
from llmsim.serving.reproduce import (
    Unsupported,
    base_step_model,
    load_rows,
    measured,
    row_config,
    run_row,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "e2e" / "aiconfigurator_silicon" / "silicon_h100_sxm.csv"
OUT = REPO / "src" / "llmsim" / "data" / "engines" / "profiles.yaml"
PARAMS = ("request_overhead_s", "step_overhead_s", "prefill_step_factor")
THETA0 = np.array([0.0, 0.0, 1.0])
STEPS = np.array([0.05, 0.002, 0.1])  # forward-difference steps of each parameter
LOWER, UPPER = np.array([0.0, 0.0, 0.5]), np.array([5.0, 0.05, 3.0])
#: trust region: the most one Gauss-Newton step moves each parameter (the closed-loop
#: response is far from linear; an unbounded step overshoots: a first run without this
#: moved vLLM's mixed-step factor from 1 to the 0.5 bound and left its TPOT 25% low)
TRUST = np.array([0.1, 0.002, 0.3])
JITTER_S = 0.001
#: client_phase_spread candidates, chosen per engine by the fitted loss (a discrete choice:
#: 0 = the measured phase starts as one cohort, 1 = out of phase over a request's duration)
PHASE_SPREADS = (0.0, 1.0)
SEED = 0


def sample_rows(rows: list[dict[str, Any]], per_group: int) -> tuple[list, list]:
    """(rows kept, [(row id, why skipped)]): supported rows, at most ``per_group`` per
    (engine, model), a fixed-seed draw."""
    groups: dict[tuple[str, str], list] = defaultdict(list)
    skipped = []
    for r in rows:
        try:
            row_config(r)
        except Unsupported as e:
            skipped.append((r["id"], str(e)))
            continue
        groups[(r["backend"], r["model_path"])].append(r)
    rng = random.Random(SEED)
    kept = []
    for key in sorted(groups):
        g = groups[key]
        kept += g if len(g) <= per_group else rng.sample(g, per_group)
    return kept, skipped


def overrides(theta: np.ndarray, spread: float) -> dict[str, float]:
    """The fitted parameters at ``theta`` and the phase spread; ``mixed_step_factor`` pinned
    to 1 (so that a rerun does not depend on the profile file it is about to replace)."""
    return {**{k: float(v) for k, v in zip(PARAMS, theta, strict=True)},
            "mixed_step_factor": 1.0, "client_phase_spread": float(spread)}


def simulate_row(row: dict[str, Any], theta: np.ndarray, sm: Any, spread: float
                 ) -> np.ndarray:
    cfg = row_config(row, overrides(theta, spread), with_version=False)
    cfg["workload"]["jitter_s"] = JITTER_S
    return np.array(run_row(cfg, sm))


def jacobian_rows(rows: list, theta: np.ndarray, spread: float, log: logging.Logger
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: predictions at theta (n, 2), their Jacobian (n, 2, 3), measurements (n, 2)."""
    preds, jacs, meas = [], [], []
    t0 = time.perf_counter()
    for i, row in enumerate(rows):
        sm = base_step_model(row_config(row))
        y = simulate_row(row, theta, sm, spread)
        jac = np.empty((2, len(theta)))
        for j in range(len(theta)):
            step = np.zeros(len(theta))
            step[j] = STEPS[j]
            jac[:, j] = (simulate_row(row, theta + step, sm, spread) - y) / STEPS[j]
        preds.append(y)
        jacs.append(jac)
        meas.append(np.array(measured(row)))
        if (i + 1) % 20 == 0:
            log.info("  %d/%d rows, %.0f s", i + 1, len(rows), time.perf_counter() - t0)
    return np.array(preds), np.array(jacs), np.array(meas)


def solve(theta: np.ndarray, preds: np.ndarray, jacs: np.ndarray, meas: np.ndarray,
          trust: np.ndarray = TRUST) -> np.ndarray:
    """The bounded linearised least-squares step (log-ratio residuals:
    d ln(pred) = d pred / pred)."""
    a = (jacs / preds[:, :, None]).reshape(-1, len(theta))
    b = np.log(meas / preds).reshape(-1)
    # unknown: theta_new = theta + d; bounds on theta_new
    lo = np.maximum(LOWER, theta - trust) - theta
    hi = np.minimum(UPPER, theta + trust) - theta
    res = lsq_linear(a, b, bounds=(lo, hi))
    return theta + res.x


def gauss_newton(rows: list, spread: float, iterations: int, log: logging.Logger) -> tuple:
    """(loss, theta, predictions, Jacobians, measurements) at the evaluated point of least
    loss of ``iterations`` safeguarded Gauss-Newton steps from ``THETA0``."""
    theta = THETA0.copy()
    best: tuple | None = None
    trust = TRUST.copy()
    for it in range(iterations):
        preds, jacs, meas = jacobian_rows(rows, theta, spread, log)
        loss = float(np.sum(np.log(preds / meas) ** 2))
        if best is None or loss < best[0]:
            best = (loss, theta, preds, jacs, meas)
        else:  # the step made it worse: back to the best point, half the region
            trust = trust / 2
        log.info("  iteration %d: loss %.4f at %s", it + 1, loss,
                 dict(zip(PARAMS, np.round(theta, 5), strict=True)))
        theta = solve(*best[1:], trust)
    assert best is not None
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--rows-per-group", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("llmsim").setLevel(logging.ERROR)
    log = logging.getLogger("fit_engine_profile")
    if not Path(args.data).is_file():
        print(f"error: measured data not found: {args.data}", file=sys.stderr)
        return 2
    rows, skipped = sample_rows(load_rows(args.data), args.rows_per_group)
    by_engine: dict[str, list] = defaultdict(list)
    for r in rows:
        by_engine[r["backend"]].append(r)
    engines: dict[str, Any] = {}
    held: dict[str, Any] = {}
    for name in sorted(by_engine):
        er = by_engine[name]
        models = sorted({r["model_path"] for r in er})
        log.info("%s: %d rows, models %s", name, len(er), ", ".join(models))
        fits = []
        for spread in PHASE_SPREADS:
            log.info(" client_phase_spread %g", spread)
            fits.append((*gauss_newton(er, spread, args.iterations, log), spread))
        loss, theta, preds, jacs, meas, spread = min(fits, key=lambda f: f[0])
        log.info(" %s: client_phase_spread %g (loss %s)", name, spread,
                 " / ".join(f"{f[0]:.4f}" for f in fits))
        engines[name] = {**overrides(theta, spread), "jitter_s": JITTER_S,
                         "fitted_on": f"{len(er)} aggregated H100-SXM rows ("
                                      f"{', '.join(models)}), silicon_h100_sxm.csv; loss "
                                      f"{loss:.4f}"}
        mask_models = np.array([r["model_path"] for r in er])
        for m in models:
            keep = mask_models != m
            if keep.sum() < 3:
                continue  # nothing left to fit on: the benchmark uses the fallback rule
            th = solve(theta, preds[keep], jacs[keep], meas[keep])
            held[f"{name}|{m}"] = overrides(th, spread)
    doc = {
        "source": "fitted by scripts/fit_engine_profile.py (least squares on mean TTFT and "
                  "TPOT, log ratios) from the aggregated rows of ../shared/data/e2e/"
                  "aiconfigurator_silicon/silicon_h100_sxm.csv; do not edit by hand",
        "fit": {"rows_per_group": args.rows_per_group, "iterations": args.iterations,
                "seed": SEED, "rows_used": len(rows), "rows_skipped": len(skipped),
                "skipped_reasons": sorted({why for _i, why in skipped}),
                "held_out": held},
        "fallback": "median",
        "engines": engines,
    }
    write_text(args.out, yaml.safe_dump(doc, sort_keys=False))
    print(yaml.safe_dump({"engines": engines}, sort_keys=False))
    print(f"{len(rows)} rows used, {len(skipped)} skipped; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
