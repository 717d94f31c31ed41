"""Static-batch estimate: definitions (E2E, throughput), monotonicity, parallel plans, beams,
memory checks, scenario files."""

from __future__ import annotations

import pytest

import llmsim
from llmsim.errors import ConfigError, DoesNotFitError


def test_definitions_hold():
    r = llmsim.estimate("llama-3.1-8b", "h100-sxm", batch=8, prompt=1024, output=128)
    assert r.e2e_s == pytest.approx(r.ttft_s + 127 * r.tpot_s)
    assert r.output_tokens_per_s == pytest.approx(8 * 128 / r.e2e_s)
    assert r.output_tokens_per_s_per_gpu == r.output_tokens_per_s
    assert 0 < r.prefill_mfu <= 1.05 and 0 < r.decode_mbu <= 1.05
    d = r.as_dict()
    for key in ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s", "output_tokens_per_s_per_gpu",
                "weight_bytes_per_device", "kv_bytes_per_device", "peak_bytes_per_device",
                "fits", "layers"):
        assert key in d
    assert {"prefill", "decode"} <= set(d["layers"])


def test_longer_prompts_and_bigger_batches_cost_more():
    a = llmsim.estimate("llama-3.1-8b", "h100-sxm", batch=1, prompt=512, output=64)
    b = llmsim.estimate("llama-3.1-8b", "h100-sxm", batch=1, prompt=4096, output=64)
    c = llmsim.estimate("llama-3.1-8b", "h100-sxm", batch=32, prompt=512, output=64)
    assert b.ttft_s > a.ttft_s and b.tpot_s > a.tpot_s
    assert c.ttft_s > a.ttft_s and c.output_tokens_per_s > 10 * a.output_tokens_per_s


def test_decode_tpot_grows_with_context_and_beam():
    short = llmsim.estimate("llama-2-7b", "a100-sxm-80gb", batch=4, prompt=128, output=1024)
    beam = llmsim.estimate("llama-2-7b", "a100-sxm-80gb", batch=4, prompt=128, output=1024,
                           beam=4)
    assert beam.tpot_s > short.tpot_s
    assert beam.kv_bytes_per_device > short.kv_bytes_per_device


def test_tp_dp_pp_plans():
    tp = llmsim.estimate("llama-2-70b", "h100-sxm", tp=4, batch=16, prompt=512, output=64)
    tp8 = llmsim.estimate("llama-2-70b", "h100-sxm", tp=8, batch=16, prompt=512, output=64)
    assert tp8.ttft_s < tp.ttft_s and tp8.num_gpus == 8
    dp = llmsim.estimate("llama-3.1-8b", "h100-sxm", dp=4, batch=64, prompt=512, output=64)
    one = llmsim.estimate("llama-3.1-8b", "h100-sxm", batch=16, prompt=512, output=64)
    assert dp.output_tokens_per_s == pytest.approx(4 * one.output_tokens_per_s, rel=1e-6)
    pp = llmsim.estimate("llama-2-70b", "h100-sxm", tp=2, pp=2, batch=8, prompt=512, output=32)
    assert pp.num_gpus == 4 and pp.ttft_s > 0


def test_moe_with_expert_and_attention_dp():
    r = llmsim.estimate("deepseek-v3", "h200-sxm", tp=8, batch=32, prompt=1024, output=128)
    ep = llmsim.estimate("deepseek-v3", "h200-sxm", tp=1, dp=8, ep=8, batch=32, prompt=1024,
                         output=128)
    assert r.fits and ep.fits and r.num_gpus == ep.num_gpus == 8
    assert r.precision.startswith("W:fp8 A:fp8")


def test_does_not_fit_raises_or_reports():
    with pytest.raises(DoesNotFitError, match="try --tp"):
        llmsim.estimate("llama-2-70b", "l40s", prompt=512, output=64)
    with pytest.raises(DoesNotFitError, match="try --batch"):
        llmsim.estimate("llama-3.1-8b", "l4", batch=256, prompt=4096, output=1024)
    r = llmsim.estimate("llama-3.1-8b", "l4", batch=256, prompt=4096, output=1024,
                        allow_overflow=True)
    assert not r.fits


def test_bad_values():
    with pytest.raises(ConfigError, match="batch must be"):
        llmsim.estimate("llama-3.1-8b", "h100-sxm", batch=0)
    with pytest.raises(ConfigError, match="exceeds"):
        llmsim.estimate("llama-2-7b", "h100-sxm", prompt=4000, output=200)
    with pytest.raises(ConfigError, match="fp8"):
        llmsim.estimate("llama-3.1-8b", "a100-sxm-80gb", dtype="fp8", act_dtype="fp8")


def test_weight_only_fp8_on_ampere():
    r = llmsim.estimate("llama-3.1-8b", "a100-sxm-80gb", weight_dtype="fp8", act_dtype="bf16")
    bf16 = llmsim.estimate("llama-3.1-8b", "a100-sxm-80gb")
    assert r.tpot_s < bf16.tpot_s
    assert r.weight_bytes_per_device < 0.6 * bf16.weight_bytes_per_device


SCENARIO = """
name: tiny-moe-on-h100
hardware: h100-sxm
num_gpus: 2
model:
  hidden_size: 2048
  vocab_size: 32000
  max_position_embeddings: 8192
  layers:
    - name: dense
      repeat: 2
      blocks:
        - {type: attention, num_heads: 16, num_kv_heads: 4, head_dim: 128}
        - {type: ffn, intermediate_size: 8192}
    - name: moe
      repeat: 10
      blocks:
        - {type: attention, num_heads: 16, num_kv_heads: 4, head_dim: 128}
        - {type: moe, num_experts: 16, top_k: 2, expert_intermediate_size: 1408}
        - {type: comm, collective: all_reduce, group: tp, bytes_per_token: 4096}
parallel: {tp: 2}
defaults: {batch: 4, prompt: 256, output: 32}
"""


def test_scenario_file(tmp_path, cli):
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    res = cli("estimate", "--scenario", str(path), "--format", "json")
    assert res.code == 0, res.err
    data = res.json()
    assert data["batch"] == 4 and data["tp"] == 2 and data["model"] == "tiny-moe-on-h100"
    names = [layer["name"] for layer in data["layers"]["prefill"]]
    assert names[:3] == ["embedding", "dense", "moe"]
    over = cli("estimate", "--scenario", str(path), "--batch", "8", "--format", "json")
    assert over.json()["batch"] == 8
    path.write_text(SCENARIO.replace("num_heads: 16, num_kv", "num_headz: 16, num_kv", 1))
    bad = cli("estimate", "--scenario", str(path))
    assert bad.code == 2 and "num_headz" in bad.err


def test_mfu_is_per_gpu_of_the_replica_not_divided_by_tp_twice():
    one = llmsim.estimate("llama-3.1-70b", "h100-sxm", tp=2, batch=4, prompt=2048, output=16)
    four = llmsim.estimate("llama-3.1-70b", "h100-sxm", tp=8, batch=4, prompt=2048, output=16)
    # FLOPs of the whole replica: ~2 x params per token plus attention, over all its GPUs
    flops = 2 * 70.6e9 * 4 * 2048
    for r, gpus in ((one, 2), (four, 8)):
        assert r.prefill_mfu == pytest.approx(flops / (r.ttft_s * 989e12 * gpus), rel=0.1)


def test_defaults_adapt_to_the_part_as_serving_engines_do(caplog):
    t4 = llmsim.estimate("llama-3.1-8b", "t4", tp=2, prompt=256, output=16)  # no bf16: Turing
    assert t4.precision == "W:fp16 A:fp16 KV:fp16"
    a100 = llmsim.estimate("llama-3.1-8b", "a100-sxm-80gb", dtype="fp8")  # fp8 weight-only
    assert a100.precision.startswith("W:fp8 A:bf16")
    ds = llmsim.estimate("deepseek-v2-lite", "a100-sxm-80gb", weight_dtype="fp8")
    assert ds.precision.startswith("W:fp8 A:bf16")
    assert "no fp8 math" in caplog.text or "no bf16 math" in caplog.text


def test_pipeline_decode_is_a_steady_state_round_and_matches_the_simulator():
    r = llmsim.estimate("llama-2-70b", "a100-sxm-80gb", tp=2, pp=4, num_gpus=8, batch=8,
                        prompt=512, output=128)
    flat = llmsim.estimate("llama-2-70b", "a100-sxm-80gb", tp=2, num_gpus=8, batch=8,
                           prompt=512, output=128)
    # 4 micro-batches of 2 over 4 stages: each round is ~one pass of the whole model over 2
    # sequences per stage, so TPOT stays close to the unpipelined step, not 1.75x it
    assert r.tpot_s < 1.2 * flat.tpot_s
    sim = llmsim.simulate({
        "model": {"name": "llama-2-70b"}, "hardware": {"name": "a100-sxm-80gb", "num_gpus": 8},
        "parallelism": {"tp": 2, "pp": 4},
        "workload": {"arrival": "batch", "num_requests": 8, "prompt": 512, "output": 128}})
    assert sim.summary()["tpot_s"]["mean"] == pytest.approx(r.tpot_s, rel=0.05)
    assert sim.summary()["ttft_s"]["max"] == pytest.approx(r.ttft_s, rel=0.05)


def test_one_output_token_has_no_tpot_and_int4_kv_counts_scales():
    import math

    r = llmsim.estimate("llama-3.1-8b", "h100-sxm", prompt=512, output=1)
    assert math.isnan(r.tpot_s) and r.e2e_s == r.ttft_s
    bf16 = llmsim.estimate("llama-3.1-8b", "h100-sxm", kv_dtype="bf16")
    int4 = llmsim.estimate("llama-3.1-8b", "h100-sxm", kv_dtype="int4")
    ratio = int4.kv_bytes_per_device / bf16.kv_bytes_per_device
    assert ratio == pytest.approx((0.5 + 2 / 128) / 2)
    with pytest.raises(llmsim.LLMSimError, match=r"must be in \(0, 1\]"):
        llmsim.estimate("llama-3.1-8b", "h100-sxm", efficiency=1.2)


def test_micro_batches_are_checked_and_reported():
    shape = {"batch": 32, "prompt": 512, "output": 16}
    with pytest.raises(ConfigError, match="at most --micro-batches 32"):
        llmsim.estimate("llama-2-70b", "a100-sxm-80gb", tp=2, pp=4, micro_batches=64, **shape)
    with pytest.raises(ConfigError, match="give --pp > 1"):
        llmsim.estimate("llama-2-70b", "a100-sxm-80gb", tp=8, micro_batches=4, **shape)
    res = llmsim.estimate("llama-2-70b", "a100-sxm-80gb", tp=2, pp=4, **shape)
    assert res.micro_batches == 4 and res.as_dict()["micro_batches"] == 4


def test_more_gpus_than_the_plan_uses_is_said(caplog):
    r = llmsim.estimate("llama-2-70b", "h100-sxm", num_gpus=16, tp=8, batch=4, prompt=256,
                        output=16)
    assert r.num_gpus == 8
    assert "add --dp 2" in caplog.text


def test_estimate_with_an_options_record_is_estimate():
    """``estimate(...)`` is ``estimate_with(step model, EstimateOptions(...))``: the same
    result from the record, its request checked when built."""
    from llmsim.costmodel import Deployment, build_step_model
    from llmsim.errors import ConfigError
    from llmsim.estimates import DeploymentArgs, EstimateOptions, estimate, estimate_with

    kw = dict(batch=8, prompt=700, output=33, beam=1)
    direct = estimate("llama-3.1-8b", "h100-sxm", tp=2, engine="vllm", **kw)
    sm = DeploymentArgs(tp=2).step_model("llama-3.1-8b", "h100-sxm")
    via = estimate_with(sm, EstimateOptions(**kw), engine="vllm")
    assert via.as_dict(layers=False) == direct.as_dict(layers=False)
    plain = estimate_with(build_step_model(Deployment.resolve("llama-3.1-8b", "h100-sxm")),
                          EstimateOptions(batch=2.0))
    assert plain.batch == 2 and isinstance(plain.batch, int)
    with pytest.raises(ConfigError):
        EstimateOptions(output=0)
    with pytest.raises(ConfigError):
        EstimateOptions(memory_utilization=2.0)
