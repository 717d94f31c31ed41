"""Golden end-to-end tests: ``llmsim.estimate`` vs Splitwise's measured Llama-2-70B and
BLOOM-176B serving.

Data: ``tests/golden/calib_splitwise.csv`` = every Llama-2-70B (TP 2/4/8) and BLOOM-176B (TP 8)
row of Splitwise's
``data/perf_model.csv`` (Mutinifni/splitwise-sim@8f99e7dc, MIT) on DGX-A100 (``a100-80gb`` ->
``a100-sxm-80gb``) and DGX-H100 (``h100-80gb`` -> ``h100-sxm``; the power-capped ``-pcap`` rows
are not used), TP 2/4/8, median over the ~5 repeats of each configuration. ``prompt_time`` is
the prefill (TTFT) and ``token_time`` the per-token decode time (TPOT).

OUT-OF-SAMPLE: nothing in the shipped profile is fitted to Splitwise (its kernels come from
AIConfigurator's vLLM tables; it carries no per-step framework overhead). Rows llmsim's memory
model rejects (prompt + output beyond Llama-2's 4096-token context; TP 2 x batch 64) are left
out, as in the benchmark.

Tolerances: the calibrated errors ``benchmarks/accuracy.py`` measured on this same table
(``tests/golden/calib_accuracy.json``, block ``e2e``): the median must stay below the measured
p90, at least 80% of rows within it, and no row worse than the measured maximum. The errors are
large (Splitwise's serving stack adds 10-30 ms per step that isolated-kernel timings do not
contain; docs/calibration.md), so these tests guard against regressions, they do not certify
accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import llmsim
from llmsim.calibration import e2e
from llmsim.calibration.measurements import ape_pct

GOLDEN = Path(__file__).resolve().parent / "golden"
TABLE = pd.read_csv(GOLDEN / "calib_splitwise.csv")
ACCURACY = json.loads((GOLDEN / "calib_accuracy.json").read_text())
MEASURED = {(r["model"], r["hardware"], r["metric"]): r for r in ACCURACY["e2e"]}
MIN_WITHIN_P90 = 0.8
# the golden CSV stores measured times to 6 significant digits: |APE shift| <= ~1e-4 points
ROUNDING_PCT = 1e-3


@pytest.fixture(scope="module")
def predicted() -> pd.DataFrame:
    return e2e.predict(TABLE)


@pytest.mark.parametrize("model", ["llama-2-70b", "bloom-176b"])
@pytest.mark.parametrize("hardware", ["a100-sxm-80gb", "h100-sxm"])
@pytest.mark.parametrize("metric", ["ttft", "tpot"])
def test_splitwise_error_within_measured(predicted, model, hardware, metric):
    """Splitwise TTFT / TPOT per model and hardware: median below the benchmark's p90, >= 80% of
    rows within it, every row within the benchmark's max (calib_accuracy.json, e2e block)."""
    ref = MEASURED[(model, hardware, metric)]["calibrated"]
    rows = predicted[(predicted["hardware"] == hardware) & (predicted["model"] == model)
                     & predicted["fits"]]
    assert len(rows) == ref["n"]
    ape = ape_pct(rows[f"pred_{metric}_s"], rows[f"{metric}_s"])
    assert np.median(ape) <= ref["p90_ape_pct"]
    assert np.mean(ape <= ref["p90_ape_pct"]) >= MIN_WITHIN_P90
    assert np.max(ape) <= ref["max_ape_pct"] + ROUNDING_PCT


def test_calibration_beats_datasheet_roofline_out_of_sample():
    """Out-of-sample evidence that the kernel calibration helps end to end: the calibrated
    median error is below the datasheet roofline's on every model, hardware and metric but at
    most one, and over all of them (both measured by benchmarks/accuracy.py on the full
    Splitwise table). The one: BLOOM-176B TPOT on H100 (calibrated 49.0%, datasheet 47.6%,
    both too fast): the calibrated step runs the engines' custom all-reduce, while Splitwise's
    stack spends 17.5 ms per step beyond the kernels."""
    cal = [r["calibrated"]["median_ape_pct"] for r in ACCURACY["e2e"]]
    raw = [r["uncalibrated"]["median_ape_pct"] for r in ACCURACY["e2e"]]
    assert sum(c < u for c, u in zip(cal, raw, strict=True)) >= len(cal) - 1
    assert np.median(cal) < np.median(raw)


GRID_CENTRE = TABLE[(TABLE["batch"] == 1) & (TABLE["prompt"] == 512) & (TABLE["output"] == 128)]


@pytest.mark.parametrize("row", [pytest.param(r, id=f"{r.model}-{r.hardware}-tp{r.tp}")
                                 for r in GRID_CENTRE.itertuples(index=False)])
def test_grid_centre_through_public_api(row):
    """Splitwise's grid centre (batch 1, prompt 512, output 128) per hardware and TP through
    ``llmsim.estimate``: TTFT and TPOT within the benchmark's max error for that hardware, and
    the prediction never slower than measured (isolated-kernel calibration has no framework
    overhead, so llmsim is a lower bound for this stack)."""
    r = llmsim.estimate(row.model, row.hardware, tp=row.tp, batch=row.batch,
                        prompt=row.prompt, output=row.output)
    for metric, pred, meas in (("ttft", r.ttft_s, row.ttft_s), ("tpot", r.tpot_s, row.tpot_s)):
        tol = MEASURED[(row.model, row.hardware, metric)]["calibrated"]["max_ape_pct"]
        assert abs(pred / meas - 1) * 100 <= tol + ROUNDING_PCT
        assert pred <= meas
