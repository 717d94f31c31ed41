"""Memory analysis: weight bytes and KV bytes per token by hand, TP/EP splits, quantization
scales, what fits and the does-not-fit message."""

from __future__ import annotations

import json

import pytest

from llmsim.catalog import ParallelSpec, get_cluster, get_model
from llmsim.costmodel import Precision
from llmsim.dtypes import DType
from llmsim.errors import DoesNotFitError
from llmsim.memory import analyze_memory, check_weights_fit, weight_bytes_per_device

BF16 = Precision(DType.BF16, DType.BF16, DType.BF16)


def test_llama2_7b_weights_and_kv_by_hand():
    model = get_model("llama-2-7b")
    cl = get_cluster(hardware="h100-sxm", num_gpus=1)
    rep = analyze_memory(model, cl, ParallelSpec(), BF16, kv_tokens=1000)
    assert rep.weight_bytes == pytest.approx(model.num_params * 2)
    # MHA: 2 (K, V) x 32 layers x 32 heads x 128 dims x 2 bytes = 512 KiB per token
    assert rep.kv_bytes_per_token == 2 * 32 * 32 * 128 * 2
    assert rep.kv_bytes == 1000 * rep.kv_bytes_per_token


def test_gqa_and_mla_kv_per_token():
    cl = get_cluster(hardware="h100-sxm", num_gpus=8)
    llama3 = analyze_memory(get_model("llama-3.1-8b"), cl, ParallelSpec(), BF16)
    assert llama3.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2  # 128 KiB
    ds = analyze_memory(get_model("deepseek-v3"), cl, ParallelSpec(tp=8), BF16)
    assert ds.kv_bytes_per_token == 61 * (512 + 64) * 2  # latent + rope key, replicated per rank


def test_tensor_parallel_splits_weights_and_kv():
    model = get_model("llama-2-70b")
    cl = get_cluster(hardware="a100-sxm-80gb", num_gpus=8)
    one = weight_bytes_per_device(model, ParallelSpec(), BF16)
    four = weight_bytes_per_device(model, ParallelSpec(tp=4), BF16)
    assert four == pytest.approx(one / 4, rel=0.01)  # norms replicate, a tiny share
    kv1 = analyze_memory(model, cl, ParallelSpec(tp=1), BF16).kv_bytes_per_token
    kv8 = analyze_memory(model, cl, ParallelSpec(tp=8), BF16).kv_bytes_per_token
    assert kv8 == kv1 / 8


def test_expert_parallel_splits_experts():
    model = get_model("mixtral-8x7b")
    ep1 = weight_bytes_per_device(model, ParallelSpec(tp=4), BF16)
    ep4 = weight_bytes_per_device(model, ParallelSpec(tp=4, ep=4), BF16)
    assert ep4 == pytest.approx(ep1, rel=0.01)  # moe_tp 1 x ep 4 holds the same share as tp 4


def test_int4_counts_group_scales():
    model = get_model("llama-2-7b")
    int4 = Precision(DType.INT4, DType.BF16, DType.BF16)
    w = weight_bytes_per_device(model, ParallelSpec(), int4)
    linear = sum(t.num_params() for t in model.layers) * 1.0 - 0  # upper bound check below
    assert w < model.num_params * 0.5 * 1.2  # ~4.25 bits per linear weight + 16-bit embeddings
    assert w > model.num_params * 0.5  # scales and 16-bit embedding/head make it > 4 bits
    assert linear > 0


def test_max_kv_tokens_and_fit():
    model = get_model("llama-3.1-8b")
    cl = get_cluster(hardware="h100-sxm", num_gpus=1)
    rep = analyze_memory(model, cl, ParallelSpec(), BF16, max_tokens=8192, max_logits=256)
    expect = (80 * 2**30 * 0.9 - 2**30 - rep.weight_bytes - rep.activation_bytes) // (128 * 1024)
    assert rep.max_kv_tokens == int(expect)
    assert rep.fits


def test_does_not_fit_names_the_sizes_and_a_fix():
    model = get_model("llama-2-70b")
    cl = get_cluster(hardware="h100-sxm", num_gpus=1)
    with pytest.raises(DoesNotFitError, match=r"need 128\.\d GiB per GPU .* try --tp 4") as exc:
        check_weights_fit(model, cl, ParallelSpec(), BF16)
    assert exc.value.need_bytes > exc.value.have_bytes


def test_max_batch_does_not_depend_on_the_batch_asked_about():
    from llmsim.memory import max_sequences

    model = get_model("llama-2-70b")
    cl = get_cluster(hardware="h100-sxm", num_gpus=4)
    plan = ParallelSpec(tp=4)
    b = max_sequences(model, cl, plan, BF16, 4096)
    assert b >= 1
    fits = analyze_memory(model, cl, plan, BF16, kv_tokens=b * 4096, max_tokens=b * 4096,
                          max_logits=b)
    over = analyze_memory(model, cl, plan, BF16, kv_tokens=(b + 1) * 4096,
                          max_tokens=(b + 1) * 4096, max_logits=b + 1)
    assert fits.fits and not over.fits
    # with an engine's token budget the activations are fixed and more sequences fit
    assert max_sequences(model, cl, plan, BF16, 4096, max_tokens=8192) > b


def test_memory_cli_max_batch_and_does_not_fit_exit_2(cli):
    args = ("memory", "-m", "llama-2-70b", "-H", "h100-sxm", "--tp", "4", "--seq-len", "4096",
            "--format", "json")
    small = cli(*args, "--batch", "16")
    big = cli(*args, "--batch", "1000")
    assert small.code == 0 and big.code == 2
    n = json.loads(small.out)["max_batch_at_seq_len"]
    assert json.loads(big.out)["max_batch_at_seq_len"] == n
    assert f"try --batch {n}" in big.err and "short by" in big.err
    assert cli("memory", "-m", "llama-2-70b", "-H", "h100-sxm").code == 2
