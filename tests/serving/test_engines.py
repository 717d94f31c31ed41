"""Engine models (``--engine``), benchmark semantics (warm-up, burstiness, jitter) and the
issue's command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from serving_helpers import base_config
from stepmodels import FixedStepModel
from typer.testing import CliRunner

from llmsim.cli.app import app
from llmsim.engines import ENGINES, EngineProfile, EngineStepModel, resolve_engine
from llmsim.engines.spec import parse_engine
from llmsim.errors import ConfigError, LLMSimError, UnknownNameError
from llmsim.serving import simulate
from llmsim.workload.spec import WorkloadSection
from llmsim.workload.stream import build_workload


def _closed(c: int, warm: int, n: int, **extra) -> dict:
    return {"concurrency": c, "num_requests": n, "warmup_requests": warm,
            "prompt": "fixed:100", "output": "fixed:10", **extra}


def test_issue_command_line(tmp_path):
    """The interface of issue 10, on a small generated requests.csv (22c rows)."""
    c = 4
    trace = tmp_path / "requests.csv"
    trace.write_text("input_tokens,output_tokens\n" + "1024,128\n" * (22 * c))
    res = CliRunner().invoke(app, [
        "simulate", "--model", "meta-llama/Llama-3.1-70B", "--hardware", "h200-sxm",
        "--tp", "2", "--dtype", "fp8", "--engine", "trtllm", "--trace", str(trace),
        "--concurrency", str(c), "--warmup-requests", str(2 * c),
        "--max-num-batched-tokens", str(c + 1024 + 1500), "--max-num-seqs", str(c),
        "--seed", "1", "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["ttft_s"]["mean"] > 0 and out["tpot_s"]["mean"] > 0
    assert out["num_warmup_requests"] == 2 * c and out["num_requests"] == 20 * c
    assert out["num_completed"] == 20 * c
    assert out["scheduler"] == "inflight" and out["max_num_seqs"] == c
    assert out["max_num_batched_tokens"] == c + 1024 + 1500
    assert out["engine"]["name"] == "trtllm"


def test_warmup_excluded_and_measured_phase_starts_after_it():
    cfg = base_config(workload=_closed(8, 16, 96, prompt="uniform:50,900",
                                       output="uniform:5,40", seed=2))
    del cfg["workload"]["rate"]
    r = simulate(cfg, step_model=FixedStepModel(0.05, 0.01, 2e-5, 1e-7))
    s, req = r.summary(), r.requests
    warm, meas = req[req.warmup], req[~req.warmup]
    assert len(warm) == 16 and s["num_requests"] == 80 == s["num_completed"]
    assert s["num_warmup_requests"] == 16 == s["num_warmup_completed"]
    assert meas.arrival_s.min() >= warm.finish_s.max()  # aiperf: phases do not overlap
    assert s["ttft_s"]["mean"] == pytest.approx(meas.ttft_s.mean())
    assert s["ttft_s"]["mean"] != pytest.approx(req.ttft_s.mean())  # the warm-up differs
    assert (warm.status == "finished").all()
    assert s["duration_s"] == pytest.approx(meas.finish_s.max() - meas.arrival_s.min())


def test_no_warmup_keeps_the_summary_keys():
    cfg = base_config(workload={"num_requests": 20})
    s = simulate(cfg, step_model=FixedStepModel(0.05, 0.01)).summary()
    assert "num_warmup_requests" not in s and "engine" not in s


def test_warmup_needs_requests_left():
    with pytest.raises(ConfigError, match="leaves none"):
        build_workload(WorkloadSection(concurrency=2, num_requests=4, warmup_requests=4))


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_burstiness_is_gamma_shape(burstiness):
    wl = build_workload(WorkloadSection(rate=10.0, burstiness=burstiness,
                                        num_requests=40_000, seed=3))
    gaps = np.diff(wl.arrival_s)
    assert gaps.mean() == pytest.approx(0.1, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / np.sqrt(burstiness), rel=0.05)


def test_burstiness_conflicts():
    with pytest.raises(LLMSimError, match="cv"):
        WorkloadSection(rate=1.0, burstiness=2.0, arrival="gamma", cv=2.0)
    with pytest.raises(LLMSimError, match="request-rate"):
        WorkloadSection(burstiness=2.0, concurrency=3)
    with pytest.raises(LLMSimError, match="deterministic"):
        WorkloadSection(rate=1.0, burstiness=2.0, arrival="deterministic")


def test_jitter_breaks_lock_step_cohorts():
    """Identical requests from a closed loop of 16 clients, 8 prompts per step: without
    jitter they move in cohorts of exactly 8 (one first-token time per cohort, 3 distinct
    TTFTs); a seeded jitter of 5 ms splits the cohorts and spreads the TTFTs (and the same
    seed repeats the run exactly)."""
    sm = FixedStepModel(0.05, 0.01, 2e-5, 1e-7)
    cfg = base_config(scheduler={"name": "chunked", "max_num_batched_tokens": 8192},
                      workload=_closed(16, 32, 352, prompt="fixed:1000", output="fixed:100"))
    del cfg["workload"]["rate"]
    plain = simulate(cfg, step_model=sm).requests
    cfg["workload"]["jitter_s"] = 0.005
    jit = simulate(cfg, step_model=sm).requests
    again = simulate(cfg, step_model=sm).requests
    meas = ~plain.warmup
    cohorts = plain.first_token_s[meas].round(9).nunique()
    assert cohorts == meas.sum() // 8 and plain.ttft_s[meas].round(9).nunique() <= 4
    assert jit.first_token_s[meas].round(9).nunique() > 1.3 * cohorts
    assert jit.ttft_s[meas].round(9).nunique() > 0.9 * meas.sum()
    assert jit.equals(again)


def test_client_phase_spread_breaks_the_compressed_cohort():
    """In-flight batching, 2 whole prompts a step, a closed loop of 16 identical requests:
    entered as one cohort the measured phase keeps a queue every cycle (prefills bunched,
    little decode interference); entered out of phase (spread 1) the mean TTFT falls and the
    TPOT rises, the first measured sends are spread over about one warm-up request's E2E,
    and spread 0 is the cohort run exactly."""
    sm = FixedStepModel(0.02, 0.005, 1e-5)
    wl = _closed(16, 32, 352, prompt="fixed:1000", output="fixed:200", jitter_s=0.0)
    cfg = base_config(engine={"name": "trtllm", "request_overhead_s": 0.0,
                              "step_overhead_s": 0.0, "client_phase_spread": 0.0},
                      scheduler={"max_num_batched_tokens": 2100}, workload=wl)
    del cfg["workload"]["rate"]
    cohort = simulate(cfg, step_model=sm)
    cfg["engine"] = {**cfg["engine"], "client_phase_spread": 1.0}
    spread = simulate(cfg, step_model=sm)
    a, b = cohort.summary(), spread.summary()
    assert b["ttft_s"]["mean"] < 0.7 * a["ttft_s"]["mean"]
    assert b["tpot_s"]["mean"] > a["tpot_s"]["mean"]
    req = spread.requests
    warm_e2e = req.e2e_s[req.warmup].mean()
    first = req.arrival_s.iloc[32:48]
    assert 0.3 * warm_e2e < first.max() - first.min() <= warm_e2e
    cfg["engine"] = {**cfg["engine"], "client_phase_spread": 0.0}
    assert simulate(cfg, step_model=sm).requests.equals(cohort.requests)


def test_engine_registry_and_version_parse():
    assert {"vllm", "sglang", "trtllm"} <= set(ENGINES.names())
    assert parse_engine("trtllm@1.0.0rc3") == ("trtllm", "1.0.0rc3")
    assert parse_engine("TensorRT-LLM") == ("trtllm", None)
    with pytest.raises(UnknownNameError):
        parse_engine("vlm")
    with pytest.raises(ConfigError, match="version"):
        parse_engine("vllm@")


@pytest.mark.parametrize("engine, scheduler, seqs", [
    ("vllm", "chunked", 1024), ("sglang", "prefill-first", 2048), ("trtllm", "inflight", 2048)])
def test_engine_defaults_and_flags_win(engine, scheduler, seqs):
    cfg = base_config(engine=engine, workload={"num_requests": 30})
    s = simulate(cfg, step_model=FixedStepModel(0.05, 0.01)).summary()
    assert s["scheduler"] == scheduler and s["max_num_seqs"] == seqs
    assert s["max_num_batched_tokens"] == ENGINES.get(engine).defaults["max_num_batched_tokens"]
    cfg["scheduler"] = {**cfg["scheduler"], "max_num_seqs": 7, "max_num_batched_tokens": 900}
    s = simulate(cfg, step_model=FixedStepModel(0.05, 0.01)).summary()
    assert s["max_num_seqs"] == 7 and s["max_num_batched_tokens"] == 900


def test_engine_profile_costs_enter_ttft_and_tpot():
    """Batch 1: TTFT = request overhead + prefill step + step overhead; TPOT = decode step +
    step overhead (the profile's formula)."""
    sm = FixedStepModel(0.05, 0.01)
    cfg = base_config(engine={"name": "vllm", "request_overhead_s": 0.1,
                              "step_overhead_s": 0.002, "mixed_step_factor": 1.0},
                      workload={"concurrency": 1, "num_requests": 3, "prompt": "fixed:100",
                                "output": "fixed:10", "jitter_s": 0.0})
    del cfg["workload"]["rate"]
    base = dict(cfg, engine={"name": "vllm", "request_overhead_s": 0.0,
                             "step_overhead_s": 0.0})
    a = simulate(cfg, step_model=sm).requests
    b = simulate(base, step_model=sm).requests
    np.testing.assert_allclose(a.ttft_s - b.ttft_s, 0.1 + 0.002, rtol=1e-9)
    np.testing.assert_allclose(a.tpot_s - b.tpot_s, 0.002, rtol=1e-9)


def test_engine_step_model_prices_mixed_steps_with_the_factor():
    from llmsim.costmodel.shapes import BatchShape

    sm = FixedStepModel(0.05, 0.01, 2e-5, 1e-7)
    em = EngineStepModel(sm, EngineProfile(step_overhead_s=0.001, mixed_step_factor=1.2))
    mixed = BatchShape.prefill(1, 256) + BatchShape.decode(8, 500.0)
    pre = BatchShape.prefill(1, 256)
    assert em.step_time(mixed) == pytest.approx(sm.step_time(mixed) * 1.2 + 0.001)
    assert em.step_time(pre) == pytest.approx(sm.step_time(pre) + 0.001)
    assert em.price(mixed).time_s == pytest.approx(em.step_time(mixed))
    np.testing.assert_allclose(em.decode_step_times(8, np.array([100.0, 900.0])),
                               [em.step_time(BatchShape.decode(8, c)) for c in (100, 900)])


def test_prefill_step_factor_prices_every_step_with_prompt_tokens():
    """prefill_step_factor scales prefill-only and mixed steps (times mixed_step_factor for
    the mixed ones), never a decode-only step."""
    from llmsim.costmodel.shapes import BatchShape

    sm = FixedStepModel(0.05, 0.01, 2e-5, 1e-7)
    em = EngineStepModel(sm, EngineProfile(step_overhead_s=0.001, prefill_step_factor=1.5,
                                           mixed_step_factor=1.2))
    pre = BatchShape.prefill(1, 256)
    mixed = pre + BatchShape.decode(8, 500.0)
    dec = BatchShape.decode(8, 500.0)
    assert em.step_time(pre) == pytest.approx(sm.step_time(pre) * 1.5 + 0.001)
    assert em.step_time(mixed) == pytest.approx(sm.step_time(mixed) * 1.5 * 1.2 + 0.001)
    assert em.step_time(dec) == pytest.approx(sm.step_time(dec) + 0.001)
    assert em.price(pre).time_s == pytest.approx(em.step_time(pre))
    assert em.stage_time(mixed) == pytest.approx(sm.stage_time(mixed) * 1.8)


def test_host_per_seq_floors_every_step_at_the_hosts_time():
    """step = max(kernels x f + step_overhead_s, host_per_seq_s x seqs): a small batch is
    the GPU's, a large one waits for the host (prefill and decode sequences alike)."""
    from llmsim.costmodel.shapes import BatchShape

    sm = FixedStepModel(0.05, 0.01)
    em = EngineStepModel(sm, EngineProfile(step_overhead_s=0.001, host_per_seq_s=0.001))
    small, large = BatchShape.decode(8, 500.0), BatchShape.decode(32, 500.0)
    assert em.step_time(small) == pytest.approx(0.011)
    assert em.step_time(large) == pytest.approx(0.032)
    mixed = BatchShape.prefill(2, 256) + BatchShape.decode(60, 500.0)
    assert em.step_time(mixed) == pytest.approx(0.062)
    cost = em.price(large)
    assert cost.time_s == pytest.approx(0.032) and cost.overhead_s == pytest.approx(0.022)
    np.testing.assert_allclose(em.decode_step_times(32, np.array([100.0, 900.0])), 0.032)
    np.testing.assert_allclose(em.decode_step_times(8, np.array([100.0])), 0.011)


def test_host_per_seq_bad_value_is_a_config_error():
    cfg = base_config(engine={"name": "trtllm", "host_per_seq_s": -1e-5})
    with pytest.raises(LLMSimError, match="host_per_seq_s"):
        simulate(cfg, step_model=FixedStepModel(0.05, 0.01))


def test_host_per_seq_caps_a_closed_loops_throughput():
    """With the host floor binding, TPOT follows the running sequences, not the kernels."""
    sm = FixedStepModel(0.02, 0.002)
    wl = {"concurrency": 32, "num_requests": 96, "warmup_requests": 32, "prompt": "fixed:64",
          "output": "fixed:64", "jitter_s": 0.0}
    runs = {}
    for host in (0.0, 0.0005):
        cfg = base_config(engine={"name": "trtllm", "request_overhead_s": 0.0,
                                  "step_overhead_s": 0.0, "host_per_seq_s": host},
                          workload=dict(wl))
        del cfg["workload"]["rate"]
        runs[host] = simulate(cfg, step_model=sm).summary()["tpot_s"]["mean"]
    assert runs[0.0] < 0.004
    assert runs[0.0005] == pytest.approx(32 * 0.0005, rel=0.1)


def test_trtllm_per_tensor_fp8_rows_rerun_with_an_fp8_kv_cache():
    from llmsim.serving.reproduce import row_config

    row = {"mode": "agg", "model_path": "Qwen/Qwen3-32B", "system": "h100_sxm",
           "gemm_quant_mode": "fp8", "tp_size": 1, "batch_size": 64, "isl": 4096,
           "osl": 256, "backend": "trtllm", "backend_version": "1.0.0rc3"}
    assert row_config(row)["model"]["kv_dtype"] == "fp8"
    assert row_config({**row, "gemm_quant_mode": "fp8_block"})["model"]["kv_dtype"] == "bf16"
    assert row_config({**row, "backend": "vllm"})["model"]["kv_dtype"] == "bf16"


def test_packaged_profiles_resolve():
    for name in ("vllm", "sglang", "trtllm"):
        eng = resolve_engine(name)
        assert eng.profile.request_overhead_s >= 0
    assert resolve_engine("vllm@9.9.9").version == "9.9.9"


def test_inflight_admits_whole_prompts_beside_decodes():
    """TensorRT-LLM style: a prompt is never split; one over the budget is refused."""
    cfg = base_config(scheduler={"name": "inflight", "max_num_batched_tokens": 300},
                      workload={"num_requests": 40, "prompt": "uniform:50,400",
                                "output": "fixed:5", "seed": 2})
    r = simulate(cfg, step_model=FixedStepModel(0.05, 0.01))
    req = r.requests
    assert (req[req.status == "rejected"].input_tokens > 300).all()
    assert (req[req.status == "finished"].input_tokens <= 300).all()


def test_prefill_first_without_mixing_stalls_decodes():
    """SGLang without --enable-mixed-chunk: a prefill step holds the decodes back, so the
    worst ITL is at least a prefill step; with mixing the decodes advance in it."""
    sm = FixedStepModel(0.05, 0.01, 1e-4, 1e-7)
    wl = {"rate": 20.0, "num_requests": 60, "prompt": "fixed:400", "output": "fixed:20",
          "seed": 1}
    stall = simulate(base_config(scheduler={"name": "prefill-first", "mix_decodes": False},
                                 workload=wl), step_model=sm).requests
    mixed = simulate(base_config(scheduler={"name": "prefill-first", "mix_decodes": True},
                                 workload=wl), step_model=sm).requests
    assert stall.itl_max_s.max() > mixed.itl_max_s.max()


def test_chunk_size_needs_prefill_first():
    with pytest.raises(LLMSimError, match="prefill-first"):
        simulate(base_config(scheduler={"name": "chunked", "chunk_size_tokens": 512}),
                 step_model=FixedStepModel(0.05, 0.01))


def test_estimate_engine_adds_the_fixed_costs():
    from llmsim.estimates.static_batch import estimate

    base = estimate("llama-3.1-8b", "h100-sxm", prompt=128, output=64)
    eng = estimate("llama-3.1-8b", "h100-sxm", prompt=128, output=64, engine="vllm")
    prof = resolve_engine("vllm").profile
    assert eng.ttft_s == pytest.approx(base.ttft_s * prof.prefill_step_factor
                                       + prof.request_overhead_s + prof.step_overhead_s)
    assert eng.tpot_s == pytest.approx(base.tpot_s + prof.step_overhead_s)
    assert eng.as_dict()["engine"]["name"] == "vllm" and "engine" not in base.as_dict()


def test_a_release_entry_wins_over_its_engine(tmp_path):
    """``NAME@VERSION`` reads that release's entry where the file has one, else NAME's."""
    from llmsim.engines.profile import load_profile

    path = tmp_path / "profiles.yaml"
    path.write_text("engines:\n"
                    "  vllm: {request_overhead_s: 0.09, fitted_on: base}\n"
                    "  vllm@0.18.0: {request_overhead_s: 0.02, fitted_on: release}\n")
    assert load_profile("vllm", "0.18.0", path=path).request_overhead_s == 0.02
    assert load_profile("vllm", "0.12.0", path=path).fitted_on == "base"
    assert load_profile("vllm", path=path).request_overhead_s == 0.09
