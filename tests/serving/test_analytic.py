"""The simulator on the analytic cost model (Llama-3.1-8B on H100): closed form vs step by
step, prefix caching on the Mooncake sample, pipeline parallelism, swap pricing, memory."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.errors import DoesNotFitError
from llmsim.serving import simulate
from llmsim.serving.config import load_config
from llmsim.serving.setup import ServingSetup

MODEL = {"model": "llama-3.1-8b", "hardware": "h100-sxm"}


def cfg(**kw) -> dict:
    out = dict(MODEL)
    out.update(kw)
    return out


@pytest.mark.parametrize("scheduler", ["chunked", "continuous"])
def test_closed_form_matches_step_by_step_on_the_analytic_model(scheduler):
    c = cfg(scheduler={"name": scheduler},
            workload={"rate": 10.0, "num_requests": 150, "prompt": "lognormal:mean=800,cv=1",
                      "output": "lognormal:mean=150,cv=1", "seed": 2})
    a = simulate(c).requests
    b = simulate(c, closed_form=False).requests
    # decode steps are interpolated from the model on a grid verified to 1e-5 (relative)
    for key in ("ttft_s", "e2e_s", "tpot_s"):
        np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=2e-5, err_msg=key)


def test_prefix_caching_on_mooncake_sample(mooncake_sample):
    """500 long-context requests whose prompts share 512-token blocks (all start with the same
    system-prompt block; follow-up turns extend earlier prompts)."""
    base = {"trace": mooncake_sample}
    on = simulate(cfg(parallelism={"tp": 4}, scheduler={"prefix_caching": True},
                      workload=base))
    off = simulate(cfg(parallelism={"tp": 4}, scheduler={"prefix_caching": False},
                       workload=base))
    s_on, s_off = on.summary(), off.summary()
    assert 0.04 < s_on["prefix_cache_hit_rate"] < 0.17  # 0.164 with an unbounded cache
    assert s_off["prefix_cache_hit_rate"] == 0
    assert (on.requests.cached_tokens > 0).mean() > 0.9
    assert s_on["ttft_s"]["mean"] < s_off["ttft_s"]["mean"]
    assert s_on["num_completed"] == s_off["num_completed"] == 500


def test_synthetic_shared_prefix_hits():
    r = simulate(cfg(scheduler={"prefix_caching": True},
                     workload={"rate": 5.0, "num_requests": 100, "prompt": "fixed:2048",
                               "output": "fixed:16", "shared_prefix_tokens": 1024,
                               "prefix_groups": 2}))
    # every request but the first of each group reuses 1024 of its 2048 tokens
    assert r.summary()["prefix_cache_hit_rate"] == pytest.approx(0.5 * 98 / 100, rel=0.02)


def test_pipeline_parallel_runs_micro_batches():
    w = {"rate": 20.0, "num_requests": 300, "prompt": "fixed:512", "output": "fixed:128"}
    pp2 = simulate(cfg(parallelism={"pp": 2}, workload=w)).summary()
    tp2 = simulate(cfg(parallelism={"tp": 2}, workload=w)).summary()
    assert pp2["num_gpus"] == tp2["num_gpus"] == 2
    assert pp2["num_completed"] == 300
    # PP's latency per token is the full step (all stages), TP's is a shorter step
    assert pp2["tpot_s"]["p50"] > tp2["tpot_s"]["p50"]


def test_swap_time_priced_over_pcie():
    setup = ServingSetup(load_config(cfg(scheduler={"preemption": "swap"},
                                         workload={"rate": 1.0, "num_requests": 2})))
    from llmsim.serving.simulator import Simulation

    sim = Simulation(setup)
    link = setup.step_model.cluster.hardware.host_link
    tokens = 10_000
    expected = tokens * setup.kv_bytes_per_token / link.bandwidth_bytes_per_s + link.latency_s
    assert sim.pricer.swap_s(tokens) == pytest.approx(expected)
    assert setup.host_blocks == int(4 * 2**30 // (16 * setup.kv_bytes_per_token))


def test_kv_capacity_from_the_memory_analysis():
    from llmsim.memory import analyze_memory

    setup = ServingSetup(load_config(cfg(workload={"rate": 1.0, "num_requests": 2})))
    sm = setup.step_model
    mem = analyze_memory(sm.model, sm.cluster, sm.plan, sm.precision, max_tokens=8192,
                         max_logits=256)
    assert setup.kv_tokens == mem.max_kv_tokens
    assert setup.num_blocks == mem.max_kv_tokens // 16


def test_model_that_does_not_fit_raises_before_running():
    with pytest.raises(DoesNotFitError, match="try"):
        simulate({"model": "llama-3.1-70b", "hardware": "h100-sxm",
                  "workload": {"rate": 1.0, "num_requests": 3}})


def test_utilisation_metrics_are_sane():
    s = simulate(cfg(workload={"rate": 8.0, "num_requests": 400, "prompt": "fixed:1000",
                               "output": "fixed:200"})).summary()
    assert 0 < s["mfu"] < 1 and 0 < s["mbu"] < 1
    assert 0 < s["busy_frac"] <= 1
    assert 0 < s["kv_usage_mean_frac"] <= s["kv_usage_peak_frac"] <= 1


@pytest.mark.parametrize("workload", [
    {"arrival": "batch", "num_requests": 5, "prompt": "fixed:2048", "output": "fixed:1024"},
    {"rate": 30.0, "num_requests": 120, "prompt": "lognormal:mean=800,cv=1",
     "output": "lognormal:mean=150,cv=1", "seed": 3},
])
def test_closed_form_matches_step_by_step_with_pipeline_parallelism(workload):
    """With pp > 1 the closed-form decode runs and step-by-step rounds price a micro-batch the
    same way (the largest, ceil(seqs / m) sequences at the mean context)."""
    c = cfg(parallelism={"pp": 2}, workload=workload)
    a = simulate(c).requests
    b = simulate(c, closed_form=False).requests
    for key in ("ttft_s", "e2e_s", "tpot_s"):
        np.testing.assert_allclose(a[key], b[key], rtol=2e-4, atol=2e-5, err_msg=key)
