"""Cost model: op FLOPs/bytes by hand, roofline behaviour, collectives, parallel plans, and the
StepTimeModel fast path agreeing with its full breakdown."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.catalog import ParallelSpec, get_cluster, get_hardware, get_model
from llmsim.costmodel import (
    BatchShape,
    Deployment,
    OpKind,
    Precision,
    Profile,
    build_step_model,
    kernels,
)
from llmsim.costmodel.collectives import collective_time
from llmsim.costmodel.profile import CommEfficiency, HardwareProfile, ProfileEntry
from llmsim.dtypes import DType
from llmsim.errors import ConfigError

H100 = get_hardware("h100-sxm")
RAW = Profile.empty().for_hardware(H100)


def test_gemm_flops_bytes_and_roofline():
    op = kernels.gemm(4096, 8192, 4096, H100, RAW)
    assert op.flops == 2 * 4096 * 8192 * 4096
    assert op.bytes_read == 2 * (4096 * 4096 + 4096 * 8192)
    assert op.bytes_written == 2 * 4096 * 8192
    assert op.time_s == pytest.approx(op.flops / 989e12)
    assert op.bound.value == "compute"
    small = kernels.gemm(1, 8192, 4096, H100, RAW)
    assert small.bound.value == "memory"
    assert small.time_s == pytest.approx(small.bytes / 3.35e12)


def test_int4_weights_read_fewer_bytes_but_compute_at_activation_peak():
    bf16 = kernels.gemm(1, 4096, 4096, H100, RAW, DType.BF16, DType.BF16)
    int4 = kernels.gemm(1, 4096, 4096, H100, RAW, DType.INT4, DType.BF16)
    weights_bf16 = 4096 * 4096 * 2
    weights_int4 = 4096 * 4096 * (0.5 + 2 / 128)
    assert bf16.bytes_read - int4.bytes_read == pytest.approx(weights_bf16 - weights_int4)
    big = kernels.gemm(8192, 4096, 4096, H100, RAW, DType.INT4, DType.BF16)
    assert big.compute_s == pytest.approx(big.flops / 989e12)


def test_fp8_compute_runs_at_fp8_peak():
    op = kernels.gemm(8192, 8192, 8192, H100, RAW, DType.FP8, DType.FP8)
    assert op.compute_s == pytest.approx(op.flops / 1979e12)


def test_expected_experts_touched():
    assert kernels.expected_experts_touched(8, 2, 1) == pytest.approx(2.0)
    assert kernels.expected_experts_touched(8, 2, 10_000) == pytest.approx(8.0)
    assert 2 < kernels.expected_experts_touched(64, 4, 4) < 16
    # balanced (evenly dealt, as measured tables): min(E, tokens x k), per element
    assert kernels.expected_experts_touched(64, 4, 4, True) == pytest.approx(16.0)
    both = kernels.expected_experts_touched(64, 4, np.array([4.0, 100.0]),
                                            np.array([False, True]))
    assert both[0] == pytest.approx(kernels.expected_experts_touched(64, 4, 4))
    assert both[1] == pytest.approx(64.0)


def test_moe_decode_reads_only_touched_experts():
    one = kernels.moe_experts(1, 4096, 14336, 8, 2, H100, RAW)
    many = kernels.moe_experts(4096, 4096, 14336, 8, 2, H100, RAW)
    per_expert = 3 * 4096 * 14336 * 2
    assert one.shape["touched"] == pytest.approx(2.0)
    assert many.shape["touched"] == pytest.approx(8.0)
    assert one.bytes_read == pytest.approx(2 * per_expert, rel=0.01)
    assert many.bytes_read > 8 * per_expert
    assert many.flops == pytest.approx(2 * 4096 * 2 * 3 * 4096 * 14336)


def test_attention_decode_is_memory_bound_and_linear_in_context():
    kv_bpt = 2 * 8 * 128 * 2  # GQA-8, head 128, bf16, per layer
    a = kernels.attention_decode(16, 16 * 1000, 32, kv_bpt, 128, 128, H100, RAW)
    b = kernels.attention_decode(16, 16 * 2000, 32, kv_bpt, 128, 128, H100, RAW)
    assert a.bound.value == "memory"
    assert a.flops == 2 * 16 * 1000 * 32 * 256
    assert b.time_s > 1.9 * a.time_s


def test_ring_all_reduce_matches_closed_form():
    cl = get_cluster(hardware="h100-sxm", num_gpus=8)
    prof = Profile.empty().for_hardware(cl.hardware)
    size = 64e6
    n = 8
    expect = 2 * (n - 1) / n * size / 450e9 + 2 * (n - 1) * cl.intra_node.latency_s
    assert collective_time(OpKind.ALL_REDUCE, size, n, cl, prof) == pytest.approx(expect)
    multi = get_cluster(hardware="h100-sxm", num_gpus=16)
    assert collective_time(OpKind.ALL_REDUCE, size, 16, multi, prof) > expect


def test_pcie_box_collectives_slower_than_nvlink():
    nv = get_cluster("dgx-a100")
    pcie = get_cluster("pcie_like", "a100-pcie-80gb", num_gpus=8)
    p_nv = Profile.empty().for_hardware(nv.hardware)
    p_pc = Profile.empty().for_hardware(pcie.hardware)
    assert (collective_time(OpKind.ALL_REDUCE, 32e6, 8, pcie, p_pc)
            > 5 * collective_time(OpKind.ALL_REDUCE, 32e6, 8, nv, p_nv))


SHAPES = [
    BatchShape.prefill(4, 512),
    BatchShape.decode(64, 1500),
    BatchShape.prefill(1, 256, past=1024) + BatchShape.decode(31, 900),
]


def analytic(model, cluster, plan=ParallelSpec(), **kwargs):
    """The analytic estimator of a deployment, through the one factory."""
    return build_step_model(Deployment(model, cluster, plan, **kwargs))


@pytest.mark.parametrize("name,plan", [
    ("llama-3.1-8b", ParallelSpec()),
    ("llama-2-70b", ParallelSpec(tp=4)),
    ("llama-2-70b", ParallelSpec(tp=2, pp=2)),
    ("mixtral-8x7b", ParallelSpec(tp=2, ep=2)),
    ("deepseek-v2-lite", ParallelSpec(tp=2, dp=2, ep=4)),
    ("mistral-7b", ParallelSpec()),
    ("gpt-j-6b", ParallelSpec(tp=2)),
])
def test_fast_path_equals_breakdown(name, plan):
    model = get_model(name)
    cl = get_cluster(hardware="h100-sxm", num_gpus=plan.num_gpus)
    sm = analytic(model, cl, plan)
    for shape in SHAPES:
        cost = sm.price(shape)
        assert cost.time_s == pytest.approx(sm.step_time(shape), rel=1e-9)
        assert cost.stage_time_s == pytest.approx(sm.stage_time(shape), rel=1e-9)
    ctx = np.array([100.0, 1000.0, 5000.0])
    vec = sm.decode_step_times(8, ctx)
    for c, t in zip(ctx, vec, strict=True):
        assert t == pytest.approx(sm.step_time(BatchShape.decode(8, c)), rel=1e-9)


def test_tensor_parallel_speeds_up_and_adds_all_reduces():
    model = get_model("llama-2-70b")
    shape = BatchShape.prefill(2, 1024)
    t1 = analytic(model, get_cluster(hardware="h100-sxm", num_gpus=8),
                               ParallelSpec(tp=2)).price(shape)
    t2 = analytic(model, get_cluster(hardware="h100-sxm", num_gpus=8),
                               ParallelSpec(tp=8)).price(shape)
    assert t2.time_s < t1.time_s
    names = {o.name for layer in t2.layers for o in layer.ops}
    assert {"attn_all_reduce", "mlp_all_reduce"} <= names


def test_pipeline_latency_and_stage_time():
    model = get_model("llama-2-70b")
    cl = get_cluster(hardware="h100-sxm", num_gpus=8)
    sm = analytic(model, cl, ParallelSpec(tp=2, pp=4))
    shape = BatchShape.decode(16, 1000)
    assert sm.stage_time(shape) < sm.step_time(shape) < 4.5 * sm.stage_time(shape)
    assert [sum(c for _, c in st) for st in ParallelSpec(pp=3).stage_layers(model)] == [27, 27, 26]


def test_efficiency_override_scales_time():
    model = get_model("llama-3.1-8b")
    cl = get_cluster(hardware="h100-sxm", num_gpus=1)
    shape = BatchShape.prefill(8, 2048)
    full = analytic(model, cl, efficiency=1.0).step_time(shape)
    half = analytic(model, cl, efficiency=0.5).step_time(shape)
    assert half == pytest.approx(2 * full, rel=1e-6)


def test_mla_decode_is_absorbed_and_caches_the_latent():
    model = get_model("deepseek-v2-lite")
    sm = analytic(model, get_cluster(hardware="h100-sxm", num_gpus=1))
    attn = model.attention
    assert sm.layout.attention_dims(attn, decode=True) == (512 + 64, 512)
    assert sm.layout.kv_bytes_per_token(attn) == (512 + 64) * 2


def test_gqa_kv_heads_replicated_when_tp_exceeds_them():
    model = get_model("llama-3.1-70b")  # 8 KV heads
    cl = get_cluster(hardware="h100-sxm", num_gpus=16)
    sm = analytic(model, cl, ParallelSpec(tp=16))
    assert sm.layout.kv_heads(model.attention) == 1.0


@pytest.mark.parametrize("plan,match", [
    (ParallelSpec(tp=3), "does not divide"),
    (ParallelSpec(pp=100), "exceeds"),
])
def test_bad_plans_raise_with_a_fix(plan, match):
    with pytest.raises(ConfigError, match=match):
        plan.validate_for(get_model("llama-2-7b"))


def test_ep_rules():
    with pytest.raises(ConfigError, match="no MoE"):
        ParallelSpec(tp=2, ep=2).validate_for(get_model("llama-2-7b"))


def test_plan_larger_than_cluster_is_rejected():
    with pytest.raises(ConfigError, match="raise --num-gpus"):
        analytic(get_model("llama-2-7b"), get_cluster(hardware="h100-sxm",
                                                                   num_gpus=2),
                              ParallelSpec(tp=4))


def test_precision_defaults():
    p = Precision.resolve(DType.BF16, dtype="fp8")
    assert (p.weight, p.activation, p.kv) == (DType.FP8, DType.FP8, DType.FP8)
    p = Precision.resolve(DType.BF16, weight="int4")
    assert (p.weight, p.activation, p.kv) == (DType.INT4, DType.BF16, DType.BF16)


@pytest.mark.parametrize("model, hardware, flags", [
    ("llama-2-7b", "t4", {"dtype": "int4"}),        # W4A16 on a part without bf16
    ("llama-2-7b", "t4", {"dtype": "int8"}),
    ("llama-2-7b", "t4", {"weight_dtype": "fp8"}),  # no fp8 math: fp8 weights weight-only
    ("opt-6.7b", "t4", {"dtype": "int4"}),
    ("llama-2-7b", "tpu-v5e", {"dtype": "fp16"}),   # no fp16 math: bf16 activations
    ("mixtral-8x7b", "t4", {"dtype": "int4", "tp": 4}),
])
def test_weight_only_formats_run_on_parts_without_bf16_or_fp8(model, hardware, flags):
    from llmsim.estimates.static_batch import estimate

    res = estimate(model, hardware, batch=1, prompt=128, output=8,
                   num_gpus=flags.get("tp", 1), **flags)
    assert res.tpot_s > 0
    supported = get_cluster(hardware=hardware, num_gpus=1).hardware.supported_dtypes
    act = DType.parse(res.precision.split()[1].removeprefix("A:"))
    assert act in supported


def test_activations_narrower_than_weights_are_rejected():
    with pytest.raises(ConfigError, match=r"fp8 with wider fp16 weights.*--dtype fp8"):
        Precision.resolve(DType.FP16, activation="fp8")
    # 16-bit compute over fp32 weights (autocast) is allowed
    assert Precision.resolve(DType.FP32, activation="bf16").activation == DType.BF16


def test_mesh_fabric_gives_small_groups_a_share_of_the_aggregate():
    cl = get_cluster(hardware="mi300x", num_gpus=8)
    prof = Profile.empty().for_hardware(cl.hardware)
    size = 256e6
    lat = cl.intra_node.latency_s
    two = collective_time(OpKind.ALL_REDUCE, size, 2, cl, prof)
    eight = collective_time(OpKind.ALL_REDUCE, size, 8, cl, prof)
    assert two == pytest.approx(2 * lat + size / (448e9 / 7))  # one peer link: 64 GB/s
    assert eight == pytest.approx(14 * lat + 2 * 7 / 8 * size / 448e9)
    assert two > 3 * eight  # 2 GPUs move S over one 64 GB/s link; 8 move 1.75 S over 448


def test_sliding_window_pairs_match_brute_force():
    from llmsim.costmodel.layers import window_pairs

    for chunk, past, w in [(5000, 0, 4096), (8192, 0, 4096), (100, 4000, 4096), (512, 9000, 4096),
                           (300, 10, 4096), (4096, 4096, 4096)]:
        brute = sum(min(w, i) for i in range(past + 1, past + chunk + 1))
        assert window_pairs(chunk, past, w) == pytest.approx(brute)
    # never above full causal attention
    assert window_pairs(8192, 0, 4096) < BatchShape.chunk_pairs(8192, 0)


def test_ep_that_does_not_divide_is_a_config_error():
    with pytest.raises(ConfigError, match="ep 4 must divide tp x dp = 2"):
        ParallelSpec(tp=2, ep=4).validate_for(get_model("mixtral-8x7b"))


def _custom_profile(hardware: str) -> HardwareProfile:
    """NCCL's curve of the empty profile plus a custom all-reduce with a 3 us fixed cost."""
    entry = ProfileEntry(comm_custom=CommEfficiency(bw_eff=0.5, latency_s=1e-7,
                                                    base_latency_s=3e-6))
    return HardwareProfile([entry], [hardware], None)


def test_engines_custom_all_reduce_prices_small_intra_node_messages():
    """Serving engines' own all-reduce: a fixed 3 us + its ring-accounted bytes at half the
    link; auto takes the faster of it and NCCL's ring, nccl and custom force one."""
    cl = get_cluster(hardware="h100-sxm", num_gpus=8)
    prof = _custom_profile("h100-sxm")
    lat = cl.intra_node.latency_s
    small, big, n = 64e3, 512e6, 8
    ring = {s: 2 * (n - 1) * lat + 2 * (n - 1) / n * s / 450e9 for s in (small, big)}
    custom = {s: 3e-6 + 2 * (n - 1) * 1e-7 + 2 * (n - 1) / n * s / (450e9 * 0.5)
              for s in (small, big)}
    assert custom[small] < ring[small] and ring[big] < custom[big]
    for s in (small, big):
        assert collective_time(OpKind.ALL_REDUCE, s, n, cl, prof, library="nccl") == \
            pytest.approx(ring[s])
        assert collective_time(OpKind.ALL_REDUCE, s, n, cl, prof, library="custom") == \
            pytest.approx(custom[s])
        assert collective_time(OpKind.ALL_REDUCE, s, n, cl, prof) == \
            pytest.approx(min(ring[s], custom[s]))
    # other collectives, groups past a node and profiles without the curve stay NCCL's
    nccl = Profile.empty().for_hardware(cl.hardware)
    assert prof.custom_allreduce() is not None and nccl.custom_allreduce() is None
    assert collective_time(OpKind.ALL_GATHER, small, n, cl, prof) == pytest.approx(
        collective_time(OpKind.ALL_GATHER, small, n, cl, nccl))
    multi = get_cluster(hardware="h100-sxm", num_gpus=16)
    assert collective_time(OpKind.ALL_REDUCE, small, 16, multi, prof) > ring[small]
    assert collective_time(OpKind.ALL_REDUCE, small, n, cl, nccl) == pytest.approx(ring[small])
    with pytest.raises(ConfigError, match="not one of auto, nccl, custom"):
        collective_time(OpKind.ALL_REDUCE, small, n, cl, prof, library="mpi")


def test_custom_all_reduce_skips_pcie_and_flat_efficiency():
    """vLLM's custom all-reduce needs fully connected GPUs: a shared PCIe fabric of 8 keeps
    NCCL's price; a flat --efficiency is a roofline with no fitted curves at all."""
    pcie = get_cluster("pcie_like", "a100-pcie-80gb", num_gpus=8)
    prof = _custom_profile("a100-pcie-80gb")
    assert collective_time(OpKind.ALL_REDUCE, 64e3, 8, pcie, prof) == pytest.approx(
        collective_time(OpKind.ALL_REDUCE, 64e3, 8, pcie, prof, library="nccl"))
    flat = HardwareProfile([ProfileEntry(comm_custom=CommEfficiency(base_latency_s=1e-6))],
                           ["h100-sxm"], 0.5)
    assert flat.custom_allreduce() is None


def test_shipped_profile_speeds_up_tensor_parallel_decode_by_the_custom_all_reduce():
    """The shipped H100 entry has a fitted comm_custom curve; a TP-8 decode all-reduce (16
    tokens x 4096 x 2 bytes) takes less than half of NCCL's time (measured: 6-8 us vs 19 us)."""
    cl = get_cluster(hardware="h100-sxm", num_gpus=8)
    prof = Profile.load().for_hardware(cl.hardware)
    size = 16 * 4096 * 2
    auto = collective_time(OpKind.ALL_REDUCE, size, 8, cl, prof)
    nccl = collective_time(OpKind.ALL_REDUCE, size, 8, cl, prof, library="nccl")
    assert auto < nccl / 2
