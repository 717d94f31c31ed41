"""Large expert parallelism: dispatch / combine volumes against hand-derived formulas, the load
imbalance of skewed routing and EPLB, and monotone behaviour of the step time (more skew never
faster, more redundant experts never slower, a faster link never slower)."""

from __future__ import annotations

from dataclasses import replace
from math import comb

import pytest

from llmsim.catalog.parallel import EPKernel
from llmsim.costmodel import BatchShape, Deployment, build_step_model
from llmsim.costmodel.ep_comm import ep_volumes, token_bytes
from llmsim.costmodel.expert_routing import expected_groups_hit, load_imbalance
from llmsim.errors import ConfigError

H = 7168


def test_expected_groups_hit_is_the_hypergeometric_formula():
    # E = 8 experts in 4 groups of 2, k = 2: P(a group is hit) = 1 - C(6,2)/C(8,2)
    assert expected_groups_hit(8, 2, 4) == pytest.approx(4 * (1 - comb(6, 2) / comb(8, 2)))
    # DeepSeek-V3: 256 experts, top-8 over 4 nodes of 64
    assert expected_groups_hit(256, 8, 4) == pytest.approx(4 * (1 - comb(192, 8) / comb(256, 8)))
    assert expected_groups_hit(256, 8, 1) == 1.0
    # every expert its own group: exactly k groups
    assert expected_groups_hit(16, 4, 16) == pytest.approx(4.0)


def test_token_bytes_fp8_carries_one_float32_scale_per_128():
    assert token_bytes(H, fp8=True) == pytest.approx(H + H / 128 * 4)
    assert token_bytes(H, fp8=False) == 2 * H


def test_low_latency_volumes_send_every_copy():
    b = token_bytes(H, True)
    v = ep_volumes(EPKernel.LOW_LATENCY, 256, 8, 64, 8, b)
    # k copies per token; (g-1)/ep of them to peers in the node, (ep-g)/ep across nodes
    assert v.intra_bytes_per_token == pytest.approx(8 * b * 7 / 64)
    assert v.inter_bytes_per_token == pytest.approx(8 * b * 56 / 64)


def test_normal_volumes_deduplicate_per_node_and_gpu():
    b = token_bytes(H, False)
    ep, g = 32, 8
    nodes = ep // g
    v = ep_volumes(EPKernel.NORMAL, 256, 8, ep, g, b)
    nodes_hit = nodes * (1 - comb(256 - 64, 8) / comb(256, 8))
    ranks_hit = ep * (1 - comb(256 - 8, 8) / comb(256, 8))
    assert v.inter_bytes_per_token == pytest.approx(b * nodes_hit * (nodes - 1) / nodes)
    assert v.intra_bytes_per_token == pytest.approx(b * ranks_hit * (1 - 1 / ep))
    # inside one node nothing crosses the network
    assert ep_volumes(EPKernel.NORMAL, 256, 8, 8, 8, b).inter_bytes_per_token == 0.0
    # deduplication per node: fewer network bytes than one copy per expert (low latency)
    ll = ep_volumes(EPKernel.LOW_LATENCY, 256, 8, ep, g, b)
    assert v.inter_bytes_per_token < 0.5 * ll.inter_bytes_per_token


def test_imbalance_is_one_when_balanced_and_grows_with_skew():
    assert load_imbalance(256, 32, 0.0) == 1.0
    assert load_imbalance(256, 1, 2.0) == 1.0
    skews = [0.0, 0.2, 0.5, 0.8, 1.0, 1.5, 2.0]
    vals = [load_imbalance(256, 32, s) for s in skews]
    assert all(b >= a for a, b in zip(vals, vals[1:], strict=False))
    assert vals[-1] > 5


def test_redundant_experts_never_worsen_the_imbalance():
    for skew in (0.3, 1.0):
        vals = [load_imbalance(256, 32, skew, n) for n in (0, 1, 8, 16, 32, 64)]
        assert all(b <= a for a, b in zip(vals, vals[1:], strict=False))
        assert vals[-1] < vals[0]


def _deployment(**large):
    return Deployment.resolve("deepseek-v3", "h100-sxm", num_gpus=32, dp=32, ep=32, **large)


def _times(dep, shapes):
    sm = build_step_model(dep)
    return [sm.step_time(s) for s in shapes]


SHAPES = [BatchShape.prefill(4, 2048), BatchShape.decode(64, 3000.0)]


@pytest.mark.parametrize("kernel", [None, "normal", "low_latency"])
def test_more_skew_is_never_faster(kernel):
    prev = None
    for skew in (0.0, 0.3, 0.8, 1.2):
        t = _times(_deployment(expert_skew=skew, ep_kernel=kernel), SHAPES)
        if prev is not None:
            assert all(b >= a for a, b in zip(prev, t, strict=True))
        prev = t


def test_more_redundant_experts_are_never_slower():
    prev = None
    for n in (0, 32, 64, 96):
        t = _times(_deployment(expert_skew=0.8, redundant_experts=n, ep_kernel="normal"), SHAPES)
        if prev is not None:
            assert all(b <= a * (1 + 1e-12) for a, b in zip(prev, t, strict=True))
        prev = t


def test_redundant_experts_cost_memory():
    from llmsim.memory import analyze_memory

    base, more = _deployment(), _deployment(redundant_experts=32)
    w0 = analyze_memory(base.model, base.cluster, base.plan, base.precision).weight_bytes
    w1 = analyze_memory(more.model, more.cluster, more.plan, more.precision).weight_bytes
    # one routed expert (gate/up + down at fp8) per rank per MoE layer
    expert = 3 * 7168 * 2048 * 1.0
    assert w1 - w0 == pytest.approx(58 * expert, rel=0.02)


@pytest.mark.parametrize("kernel", [None, "normal", "low_latency"])
def test_a_faster_link_is_never_slower(kernel):
    dep = _deployment(ep_kernel=kernel, expert_skew=0.5)
    fast_inter = dep.cluster.inter_node.model_copy(update={
        "bandwidth_bytes_per_s": dep.cluster.inter_node.bandwidth_bytes_per_s * 4})
    fast = replace(dep, cluster=replace(dep.cluster, inter_node=fast_inter))
    for a, b in zip(_times(dep, SHAPES), _times(fast, SHAPES), strict=True):
        assert b <= a


def test_two_batch_overlap_hides_communication_and_agrees_with_price():
    plain = _deployment(ep_kernel="normal", expert_skew=0.4)
    tbo = _deployment(ep_kernel="normal", expert_skew=0.4, two_batch_overlap=True)
    for shape in SHAPES:
        a, b = build_step_model(plain), build_step_model(tbo)
        assert b.step_time(shape) < a.step_time(shape)
        assert b.price(shape).time_s == pytest.approx(b.step_time(shape), rel=1e-9)


def test_large_ep_flags_need_expert_parallelism():
    with pytest.raises(ConfigError, match="--ep > 1"):
        Deployment.resolve("deepseek-v3", "h100-sxm", num_gpus=8, tp=8, expert_skew=1.0)
    with pytest.raises(ConfigError, match="--dp > 1"):
        Deployment.resolve("deepseek-v3", "h100-sxm", num_gpus=8, tp=8, ep=8,
                           ep_kernel="normal")
    with pytest.raises(ConfigError, match="redundant"):
        Deployment.resolve("deepseek-v3", "h100-sxm", num_gpus=32, dp=32, ep=32,
                           redundant_experts=5)
    with pytest.raises(ConfigError, match="ep_kernel"):
        _deployment(ep_kernel="fast")


def test_cli_expert_skew(cli):
    args = ["estimate", "-m", "deepseek-v3", "-H", "h100-sxm", "--num-gpus", "32", "--dp", "32",
            "--ep", "32", "--batch", "64", "--prompt", "1024", "--output", "16", "--format",
            "json"]
    base = cli(*args).json()
    skew = cli(*args, "--expert-skew", "1", "--ep-kernel", "normal").json()
    assert skew["ttft_s"] != base["ttft_s"]
    bad = cli("estimate", "-m", "llama-3-8b", "-H", "h100-sxm", "--expert-skew", "1")
    assert bad.code == 2 and bad.err.count("\n") == 1 and "--ep > 1" in bad.err
