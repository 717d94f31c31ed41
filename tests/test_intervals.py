"""Error bars: factor draws, the factor-scaled step model, estimate's intervals (neutral draws
reproduce the point values; one family's factor moves only its share) and the shipped file."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from llmsim.costmodel import BatchShape, Deployment, build_step_model
from llmsim.costmodel.estimators import intervals as ci
from llmsim.errors import ConfigError
from llmsim.estimates import estimate
from llmsim.estimates import intervals as ei


def _flat(sigma=0.0, q=(0.0, 0.0), mu=0.0):
    return {"mu": mu, "sigma": sigma, "q": list(q)}


def residuals(sigma=0.0, engine=None, q=(0.0, 0.0), mu=0.0):
    fams = ["gemm", "moe", "attention_prefill", "attention_decode", "elementwise",
            "comm_intra"]
    block = {"centred": True, "transfer": {f: _flat(sigma, q, mu) for f in fams}, "own": {}}
    data = {"version": 1, "estimators": {e: block for e in ("calibrated", "table", "analytic",
                                                             "learned")},
            "engine": {"calibrated": engine} if engine else {}}
    return ci.ResidualData(data, "test")


@pytest.mark.parametrize("kw", [dict(), dict(tp=2, pp=2, micro_batches=2, num_gpus=4)])
def test_neutral_draws_reproduce_the_point_values(kw):
    r = estimate("llama-3.1-8b", "h100-sxm", batch=8, prompt=700, output=300,
                 intervals=ei.IntervalOptions(residuals=residuals(), draws=4), **kw)
    for metric, (lo, hi) in r.intervals.items():
        point = getattr(r, metric)
        assert lo == pytest.approx(point, rel=1e-9) and hi == pytest.approx(point, rel=1e-9), \
            metric
    assert r.interval_level == 0.8
    out = r.as_dict(layers=False)
    assert out["intervals"]["ttft_s"] == r.intervals["ttft_s"] and out["interval_level"] == 0.8


def test_default_estimate_has_no_interval_keys():
    out = estimate("llama-3.1-8b", "h100-sxm").as_dict(layers=False)
    assert "intervals" not in out and "interval_level" not in out


def test_spread_grows_with_sigma_and_engine_factor_shifts():
    wide = estimate("llama-3.1-8b", "h100-sxm", batch=4,
                    intervals=ei.IntervalOptions(residuals=residuals(sigma=0.3)))
    narrow = estimate("llama-3.1-8b", "h100-sxm", batch=4,
                      intervals=ei.IntervalOptions(residuals=residuals(sigma=0.05)))
    for m in ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s"):
        lo, hi = wide.intervals[m]
        nlo, nhi = narrow.intervals[m]
        assert lo < nlo <= nhi < hi, m
        assert lo < getattr(wide, m) < hi
    # throughput falls where latency grows: the interval is the same draws
    e2e_lo, e2e_hi = wide.intervals["e2e_s"]
    tps_lo, tps_hi = wide.intervals["output_tokens_per_s"]
    assert tps_hi == pytest.approx(4 * 128 / e2e_lo, rel=1e-6)
    slow = estimate("llama-3.1-8b", "h100-sxm", batch=4, intervals=ei.IntervalOptions(
        residuals=residuals(engine={"own": {"a100-sxm-80gb": {"ttft": [0.5] * 3,
                                                             "tpot": [0.25] * 3}}})))
    assert slow.intervals["ttft_s"][0] == pytest.approx(slow.ttft_s * np.exp(0.5))
    assert slow.intervals["tpot_s"][0] == pytest.approx(slow.tpot_s * np.exp(0.25))
    assert "a100-sxm-80gb" in slow.interval_basis["engine"]
    off = estimate("llama-3.1-8b", "h100-sxm", batch=4, intervals=ei.IntervalOptions(
        engine=False, residuals=residuals(engine={"own": {"x": {"ttft": [0.5],
                                                                "tpot": [0.5]}}})))
    assert off.intervals["ttft_s"][0] == pytest.approx(off.ttft_s)


@pytest.mark.parametrize("kw", [dict(), dict(tp=2, pp=2, micro_batches=2, num_gpus=4)])
@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_engine_fixed_costs_are_added_to_both_ends_of_a_kernel_interval(engine, kw):
    from llmsim.engines import resolve_engine

    prof = resolve_engine(engine).profile
    step_s, request_s = prof.step_overhead_s, prof.request_overhead_s
    factor = prof.prefill_step_factor  # the engine's prompt steps: kernel time x factor
    # engine factors that would double the figures: with an engine they are not drawn
    eng = {"own": {"a100-sxm-80gb": {"ttft": [np.log(2.0)] * 3, "tpot": [np.log(2.0)] * 3}}}
    neutral = estimate("llama-3.1-8b", "h100-sxm", batch=8, prompt=700, output=300,
                       engine=engine, intervals=ei.IntervalOptions(
                           residuals=residuals(engine=eng), draws=4), **kw)
    for metric, (lo, hi) in neutral.intervals.items():  # unit kernel factors: the point
        point = getattr(neutral, metric)
        assert lo == pytest.approx(point, rel=1e-9) and hi == pytest.approx(point, rel=1e-9), \
            metric
    assert f"{engine} fitted fixed costs" in neutral.interval_basis["engine"]
    # kernel spread: the engine's interval is the engine-less kernel interval (the prefill's
    # scaled by the engine's prefill_step_factor) moved by the fixed costs (request once, a
    # step's overhead per step), not scaled with it
    opts = {"residuals": residuals(sigma=0.3, engine=eng), "draws": 50}
    with_engine = estimate("llama-3.1-8b", "h100-sxm", batch=8, prompt=700, output=300,
                           engine=engine, intervals=ei.IntervalOptions(**opts), **kw)
    kernel_only = estimate("llama-3.1-8b", "h100-sxm", batch=8, prompt=700, output=300,
                           intervals=ei.IntervalOptions(engine=False, **opts), **kw)
    for end in (0, 1):
        assert with_engine.intervals["ttft_s"][end] == pytest.approx(
            kernel_only.intervals["ttft_s"][end] * factor + step_s + request_s, rel=1e-9)
        if not kw:  # one stage: the overhead is outside the pipeline's max
            assert with_engine.intervals["tpot_s"][end] == pytest.approx(
                kernel_only.intervals["tpot_s"][end] + step_s, rel=1e-9)
    for m in ("ttft_s", "tpot_s", "e2e_s"):
        lo, hi = with_engine.intervals[m]
        assert lo < getattr(with_engine, m) < hi, m


def test_scaled_step_model_scales_its_family_only():
    base = build_step_model(Deployment.resolve("llama-3.1-8b", "h100-sxm", tp=2))
    shape = BatchShape.prefill(2, 512) + BatchShape.decode(4, 900)
    t, p2p = ci.family_stage_times(base.price(shape), 1)
    assert t.sum() + p2p == pytest.approx(base.step_time(shape), rel=1e-12)
    for fam in ci.FAMILIES:
        sm = ci.ScaledStepTimeModel(base, {fam: 3.0})
        j = ci.FAMILIES.index(fam)
        assert sm.step_time(shape) == pytest.approx(base.step_time(shape) + 2 * t[j].sum())
        assert sm.price(shape).time_s == pytest.approx(sm.step_time(shape))
    sm = ci.ScaledStepTimeModel(base, {"attention_decode": 2.0, "gemm": 1.5})
    ctx = np.array([100.0, 5000.0])
    np.testing.assert_allclose(sm.decode_step_times(4, ctx),
                               [sm.step_time(BatchShape.decode(4, c)) for c in ctx], rtol=1e-9)
    models = ci.scaled_step_models(base, ci.FactorDraws.neutral(3))
    assert len(models) == 3 and models[0].step_time(shape) == pytest.approx(
        base.step_time(shape))
    with pytest.raises(ConfigError, match="unknown interval families"):
        ci.ScaledStepTimeModel(base, {"gemmm": 1.0})


def test_draws_are_seeded_and_use_own_pools_first():
    data = residuals(sigma=0.2)
    data.data["estimators"]["calibrated"]["own"] = {"h100-sxm": {"gemm": _flat(0.0)}}
    a = data.draws("calibrated", "h100-sxm", k=50, seed=3)
    b = data.draws("calibrated", "h100-sxm", k=50, seed=3)
    np.testing.assert_array_equal(a.kernel, b.kernel)
    gemm = ci.FAMILIES.index("gemm")
    assert np.allclose(a.kernel[:, gemm], 1.0) and a.kernel[:, 0].std() == 0
    assert a.kernel[:, ci.FAMILIES.index("moe")].std() > 0.1
    assert a.basis["gemm"].startswith("calibrated own")
    assert a.basis["moe"].startswith("calibrated transfer")
    with pytest.raises(ConfigError, match="interval level"):
        ei.IntervalOptions(level=1.2)
    with pytest.raises(ConfigError, match="no validation residuals"):
        ci.ResidualData({"version": 1, "estimators": {}}, "x").draws("table", "h100-sxm")


def test_fp8_deployments_draw_from_the_fp8_pools():
    """fp8 GEMM math draws gemm / moe factors from gemm_fp8 / moe_fp8 where the file has them
    (here only gemm_fp8, wide); bf16 math, and moe without an fp8 pool, keep the base pools."""
    data = residuals(sigma=0.0)
    data.data["estimators"]["calibrated"]["transfer"]["gemm_fp8"] = _flat(0.5)
    gemm, moe = ci.FAMILIES.index("gemm"), ci.FAMILIES.index("moe")
    fp8 = ci.deployment_draws(Deployment.resolve("llama-3.1-8b", "h100-sxm", dtype="fp8"),
                              k=50, residuals=data)
    bf16 = ci.deployment_draws(Deployment.resolve("llama-3.1-8b", "h100-sxm"), k=50,
                               residuals=data)
    assert fp8.kernel[:, gemm].std() > 0.2 and np.allclose(fp8.kernel[:, moe], 1.0)
    assert fp8.basis["gemm"].endswith("(gemm_fp8)") and "fp8" not in fp8.basis["moe"]
    assert np.allclose(bf16.kernel[:, gemm], 1.0) and "fp8" not in bf16.basis["gemm"]


def test_custom_all_reduces_draw_their_own_pool():
    """An all-reduce the engines' custom kernel priced (decode sizes) counts as comm_custom and
    draws that pool; NCCL's (a 16 MiB prefill all-reduce on tp 8) stays comm."""
    base = build_step_model(Deployment.resolve("llama-3.1-70b", "h100-sxm", tp=8))
    comm, custom = ci.FAMILIES.index("comm"), ci.FAMILIES.index("comm_custom")
    t_dec, _ = ci.family_stage_times(base.price(BatchShape.decode(8, 1000)), 1)
    t_pre, _ = ci.family_stage_times(base.price(BatchShape.prefill(1, 1024)), 1)
    assert t_dec[custom].sum() > 0 and t_dec[comm].sum() < 0.05 * t_dec[custom].sum()
    assert t_pre[comm].sum() > 10 * t_pre[custom].sum()
    data = residuals(sigma=0.0)
    data.data["estimators"]["calibrated"]["transfer"]["comm_custom"] = _flat(0.5)
    d = data.draws("calibrated", "h100-sxm", k=50)
    assert d.kernel[:, custom].std() > 0.2 and np.allclose(d.kernel[:, comm], 1.0)
    sm = ci.ScaledStepTimeModel(base, {"comm_custom": 2.0})
    shape = BatchShape.decode(8, 1000)
    assert sm.step_time(shape) == pytest.approx(base.step_time(shape) + t_dec[custom].sum())


def test_shipped_residual_file_is_small_attributed_and_complete():
    ref = resources.files("llmsim.data").joinpath("estimators", ci.RESIDUALS_FILE)
    text = ref.read_text(encoding="utf-8")
    assert len(text) < 400_000
    data = json.loads(text)
    assert set(data["estimators"]) == {"analytic", "calibrated", "table", "learned"}
    for block in data["estimators"].values():
        assert {"gemm", "attention_decode", "attention_prefill"} <= set(block["transfer"])
        for pool in block["transfer"].values():
            assert len(pool["q"]) == data["quantiles"] and pool["sigma"] >= 0
    for mode in ("own", "transfer"):
        assert set(data["engine"]["calibrated"][mode]) == {"a100-sxm-80gb", "h100-sxm"}
    attribution = resources.files("llmsim.data").joinpath("estimators", "ATTRIBUTION.md")
    assert "residuals.json" in attribution.read_text(encoding="utf-8")
    r = estimate("llama-3.1-8b", "b200-sxm", batch=8, intervals=True)
    lo, hi = r.intervals["ttft_s"]
    assert lo < hi and r.interval_basis["gemm"].startswith("calibrated transfer")
