"""Attention-FFN disaggregation (costmodel/afd.py, disagg/afd.py, simulate --afd): the pipeline
formula against a brute-force schedule and hand values, the activation bytes per micro-batch,
monotonic behaviours, the seam's contracts and one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmsim.costmodel import Deployment, build_step_model
from llmsim.costmodel.afd import AFDStepTimeModel, pipeline_time_s, side_models
from llmsim.costmodel.afd_spec import AFDSpec, parse_afd
from llmsim.costmodel.expert_routing import expected_groups_hit
from llmsim.costmodel.shapes import BatchShape
from llmsim.disagg.afd import evaluate_afd, search_afd
from llmsim.errors import ConfigError


def _brute_force(stages: tuple[float, ...], layers: int, m: int) -> float:
    """Makespan of ``m`` identical micro-batches each visiting the stages in order ``layers``
    times, each stage one FIFO resource (micro-batches served in arrival order)."""
    free = [0.0] * len(stages)
    ready = [0.0] * m
    for _ in range(layers):
        for k, t in enumerate(stages):
            for j in sorted(range(m), key=lambda j: ready[j]):
                start = max(ready[j], free[k])
                ready[j] = free[k] = start + t
    return max(ready)


@pytest.mark.parametrize("stages", [(1.0, 0.2, 1.5, 0.2), (3.0, 0.1, 1.0, 0.1),
                                    (0.5, 0.5, 0.5, 0.5), (1.0, 2.0, 0.3, 2.0)])
@pytest.mark.parametrize("m", [1, 2, 3, 5])
@pytest.mark.parametrize("layers", [1, 4, 9])
def test_pipeline_formula_is_the_schedule_for_identical_layers(stages, m, layers):
    assert pipeline_time_s([stages] * layers, m) == pytest.approx(
        _brute_force(stages, layers, m), rel=1e-12)


def test_pipeline_hand_values():
    # a=1, s=.2, f=1.5, r=.2: R = 2.9, t = 1.5; m = 3 (m t = 4.5 >= R): R + (m L - 1) t
    assert pipeline_time_s([(1.0, 0.2, 1.5, 0.2)] * 4, 3) == pytest.approx(2.9 + 11 * 1.5)
    # m = 2 (m t = 3.0 >= 2.9): 2.9 + 7 x 1.5
    assert pipeline_time_s([(1.0, 0.2, 1.5, 0.2)] * 4, 2) == pytest.approx(2.9 + 7 * 1.5)
    # m = 1: the serial sum, also for different layers
    mixed = [(1.0, 0.2, 1.5, 0.2), (0.3, 0.1, 2.0, 0.1), (0.7, 0.0, 0.0, 0.0)]
    assert pipeline_time_s(mixed, 1) == pytest.approx(sum(map(sum, mixed)))


def _dense(spec: str, **kw) -> AFDStepTimeModel:
    sm = build_step_model(Deployment.resolve("llama-3.1-8b", "h100-sxm", afd=spec, **kw))
    assert isinstance(sm, AFDStepTimeModel)
    return sm


def test_activation_bytes_per_micro_batch_dense():
    # 24 sequences, 2 attention instances, 3 micro-batches: 4 tokens per instance per
    # micro-batch; 8 tokens per micro-batch over 4 FFN instances: 2 received each; BF16
    sm = _dense("attention=2,ffn=4,microbatches=3")
    step = sm.breakdown(BatchShape.decode(24, 1000.0))
    hidden = 4096
    assert step.microbatches == 3
    assert step.layers[0].transfer_bytes == 4 * hidden * 2
    # one FFN instance: the receive side (8 / 1 tokens) is the larger
    one = _dense("attention=2,ffn=1,microbatches=3").breakdown(BatchShape.decode(24, 1000.0))
    assert one.layers[0].transfer_bytes == 8 * hidden * 2


def test_moe_fanout_is_the_instances_a_token_reaches():
    sm = build_step_model(Deployment.resolve("qwen3-30b-a3b", "h100-sxm",
                                             afd="attention=1,ffn=8,microbatches=1"))
    step = sm.breakdown(BatchShape.decode(16, 512.0))
    moe = sm.deployment.model.moe
    fan = expected_groups_hit(moe.num_experts, moe.top_k, 8)
    # attention sends 16 tokens, each FFN instance receives 16 / 8 x fanout: send side larger
    assert step.layers[0].transfer_bytes == pytest.approx(16 * moe.hidden_size * 2 * fan)
    assert 1 < fan < moe.top_k


def test_one_micro_batch_is_the_serial_sum():
    sm = _dense("attention=1,ffn=2,microbatches=1")
    step = sm.breakdown(BatchShape.decode(8, 2048.0))
    serial = sum(sum(layer.stages) * layer.repeat for layer in step.layers)
    assert step.layers_s == pytest.approx(serial)
    assert step.time_s == pytest.approx(serial + step.head_s + step.overhead_s)


def test_seam_contracts():
    sm = build_step_model(Deployment.resolve("deepseek-v3", "h100-sxm", dtype="fp8",
                                             afd="attention=2,ffn=16,microbatches=2"))
    for shape in (BatchShape.decode(32, 4096.0), BatchShape.prefill(2, 512),
                  BatchShape.prefill(1, 100) + BatchShape.decode(7, 300.0)):
        assert sm.price(shape).time_s == pytest.approx(sm.step_time(shape), rel=1e-12)
    ctx = np.array([1.0, 100.0, 5000.0, 60000.0])
    for n in (1, 5, 64):
        expect = [sm.step_time(BatchShape.decode(n, float(c))) for c in ctx]
        np.testing.assert_allclose(sm.decode_step_times(n, ctx), expect, rtol=1e-12)
    assert sm.decode_stage_times(5, ctx).shape == (1, 4)


def test_faster_link_never_slower():
    shape = BatchShape.decode(64, 2048.0)
    times = [_dense(f"attention=2,ffn=4,microbatches=2,link=rdma:{bw}Gbps").step_time(shape)
             for bw in (25, 100, 400, 1600)]
    assert all(b <= a for a, b in zip(times, times[1:], strict=False))
    assert times[0] > times[-1]
    nv = _dense("attention=2,ffn=4,microbatches=2,link=nvlink").step_time(shape)
    eth = _dense("attention=2,ffn=4,microbatches=2,link=ethernet").step_time(shape)
    assert nv <= eth


def test_more_ffn_instances_never_slower_ffn_stage():
    def ffn_stage(n: int) -> float:
        sm = build_step_model(Deployment.resolve("deepseek-v3", "h100-sxm", dtype="fp8",
                                                 afd=f"attention=2,ffn={n},microbatches=2"))
        return sm.breakdown(BatchShape.decode(64, 4096.0)).layers[1].ffn_s

    stages = [ffn_stage(n) for n in (8, 16, 32, 64)]
    assert all(b <= a for a, b in zip(stages, stages[1:], strict=False))


def test_side_models_split_the_weights():
    from llmsim.catalog import get_model

    model = get_model("deepseek-v3")
    attn, ffn = side_models(model)
    embed_head = model.embedding_params + model.lm_head_params + model.final_norm_params
    layers = lambda m: sum(t.num_params() * t.repeat for t in m.layers)  # noqa: E731
    assert layers(attn) + layers(ffn) == model.num_params - embed_head
    assert all(t.moe is None for t in attn.layers)
    assert all(t.attention is None for t in ffn.layers)


def test_parse_and_errors():
    spec = parse_afd("attention=2,ffn=4,microbatches=3,link=rdma:200Gbps,skew=0.5")
    assert spec == AFDSpec(2, 4, 3, "rdma", 25e9, 0.5, 0)
    for bad, message in (("attention=2", "needs ffn"), ("attention=2,ffn=x", "whole number"),
                         ("attention=0,ffn=1", "attention"), ("a=1,ffn=2", "KEY=VALUE"),
                         ("attention=1,ffn=1,link=carrier-pigeon", "link")):
        with pytest.raises(ConfigError, match=message):
            parse_afd(bad)
    with pytest.raises(ConfigError, match="sets its own layout"):
        Deployment.resolve("deepseek-v3", "h100-sxm", ep=8, dp=8, afd="attention=1,ffn=8")
    with pytest.raises(ConfigError, match="does not divide"):
        build_step_model(Deployment.resolve("deepseek-v3", "h100-sxm",
                                            afd="attention=1,ffn=7"))


def test_playbook_result_and_search():
    res = evaluate_afd("deepseek-v3", "h100-sxm", batch=8, seq=4096, attention=2, ffn=16,
                       microbatches=2, dtype="fp8")
    assert res.num_gpus == 18 and res.fits
    assert res.decode_tokens_per_s == pytest.approx(16 / res.tpot_s)
    assert res.bottleneck_stage in ("attention", "a_to_f", "ffn", "f_to_a")
    assert [layer["name"] for layer in res.layers] == ["dense", "moe"]
    search = search_afd("deepseek-v3", "h100-sxm", batch=8, seq=4096, tpot_target_s=0.05,
                        dtype="fp8", max_attention=4, max_ffn=32, max_microbatches=2)
    best = search.best
    assert best is not None and best.fits and best.tpot_s <= 0.05
    ok = [c for c in search.candidates if c.fits and c.tpot_s <= 0.05]
    assert best.decode_tokens_per_s_per_gpu == pytest.approx(
        max(c.decode_tokens_per_s_per_gpu for c in ok))
    # FFN weights of DeepSeek-V3 (FP8) need 16 H100s: fewer do not fit
    assert not any(c.fits for c in search.candidates if c.ffn_instances < 16)
    none = search_afd("deepseek-v3", "h100-sxm", batch=8, seq=4096, tpot_target_s=1e-4,
                      dtype="fp8", max_attention=1, max_ffn=16, max_microbatches=1)
    assert none.best is None


def test_afd_simulate_cli(cli):
    res = cli("afd", "simulate", "src/llmsim/data/scenarios/deepseek-v3/deepseek_v3_h800.yaml",
              "--batch", "8", "--seq", "4096", "--attention-instances", "2", "--format", "json")
    assert res.code == 0, res.err
    data = res.json()
    assert data["ffn_instances"] == 16 and data["num_gpus"] == 18
    assert len(data["layers"]) == 2
    found = cli("afd", "simulate", "-m", "deepseek-v3", "-H", "h100-sxm", "--dtype", "fp8",
                "--tpot-target", "50ms", "--max-attention", "2", "--max-ffn", "16",
                "--max-microbatches", "2", "--format", "json")
    assert found.code == 0, found.err
    best = found.json()["best"]
    assert best["attention_instances"] <= 2 and best["ffn_instances"] == 16
    assert best["microbatches"] <= 2 and best["tpot_s"] <= 0.05
    csv = cli("afd", "simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--format", "csv")
    assert csv.code == 0 and csv.out.splitlines()[0].startswith("name,")
    for args, message in ((("-m", "llama-3.1-8b"), "--model and --hardware"),
                          (("-m", "llama-3.1-8b", "-H", "h100-sxm", "--link", "smoke"), "link"),
                          (("-m", "llama-3.1-8b", "-H", "h100-sxm", "--tpot-target", "fast"),
                           "tpot")):
        bad = cli("afd", "simulate", *args)
        assert bad.code == 2 and bad.err.count("\n") == 1 and message in bad.err, bad.err


def test_simulate_with_afd(cli):
    args = ("simulate", "-m", "deepseek-v3", "-H", "h100-sxm", "--dtype", "fp8",
            "--num-requests", "40", "--rate", "4", "--input-len", "512", "--output-len", "32",
            "--format", "json")
    res = cli(*args, "--afd", "attention=2,ffn=16,microbatches=2")
    assert res.code == 0, res.err
    data = res.json()
    assert data["num_completed"] == 40 and data["num_gpus"] == 18
    assert 0 < data["tpot_s"]["p50"] <= data["tpot_s"]["p99"]
    # the AFD unit's decode step prices the TPOT: a batch of at most 40 sequences
    sm = build_step_model(Deployment.resolve("deepseek-v3", "h100-sxm", dtype="fp8",
                                             afd="attention=2,ffn=16,microbatches=2"))
    assert data["tpot_s"]["p50"] >= sm.step_time(BatchShape.decode(1, 512.0))
    bad = cli(*args, "--afd", "attention=2")
    assert bad.code == 2 and "needs ffn" in bad.err and bad.err.count("\n") == 1


def test_simulate_afd_kv_capacity_is_the_attention_instances():
    from llmsim.costmodel.afd import side_deployments
    from llmsim.memory import analyze_memory
    from llmsim.memory.afd import afd_kv_capacity_tokens

    dep = Deployment.resolve("deepseek-v3", "h100-sxm", dtype="fp8",
                             afd="attention=3,ffn=16,microbatches=2")
    tokens, info = afd_kv_capacity_tokens(dep, 0.9, 3 * 1024, 3 * 64)
    a = side_deployments(dep)[0]
    one = analyze_memory(a.model, a.cluster, a.plan, a.precision, max_tokens=1024,
                         max_logits=64, memory_utilization=0.9).max_kv_tokens
    assert tokens == 3 * one and info["max_kv_tokens"] == tokens
    assert math.isclose(info["kv_bytes_per_token_per_gpu"], 61 * 576)  # MLA latent, FP8


def test_simulate_yaml_key():
    from llmsim.serving.config import deployment_of, load_config

    base = {"model": {"name": "llama-3.1-8b"}, "hardware": {"name": "h100-sxm"},
            "workload": {"num_requests": 4}}
    for afd in ("attention=2,ffn=3,microbatches=2", {"attention": 2, "ffn": 3,
                                                     "microbatches": 2}):
        cfg = load_config({**base, "parallelism": {"afd": afd}})
        dep = deployment_of(cfg)
        assert dep.afd == AFDSpec(2, 3, 2)
        assert dep.cluster.num_gpus >= 5
    assert "afd" not in load_config(base).model_dump()["parallelism"]  # unset: not written
    with pytest.raises(Exception, match="needs ffn"):
        load_config({**base, "parallelism": {"afd": "attention=2"}})
