"""Speculative decoding / MTP: the acceptance model against hand-derived expectations, the
verification step's shape, estimate and simulate (issue 15, part 1)."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.catalog import get_model
from llmsim.costmodel import BatchShape, Deployment, build_step_model
from llmsim.costmodel.speculative import (
    Speculation,
    expected_tokens_per_step,
    mtp_draft_spec,
    parse_acceptance,
    speculative_step_model,
)
from llmsim.errors import ConfigError, LLMSimError
from llmsim.estimates.static_batch import estimate
from llmsim.serving.config import SimulationConfig
from llmsim.serving.run import simulate


# ----------------------------------------------------------------------------- acceptance
@pytest.mark.parametrize("a", [0.0, 0.3, 0.6, 0.85, 0.99])
@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_expected_tokens_iid_closed_form(a, k):
    assert expected_tokens_per_step([a] * k) == pytest.approx((1 - a ** (k + 1)) / (1 - a))


def test_expected_tokens_edges_and_curve():
    assert expected_tokens_per_step([0.0] * 5) == 1.0
    assert expected_tokens_per_step([1.0] * 5) == 6.0
    # per-position curve by hand: 1 + .9 + .9*.5 + .9*.5*.2
    assert expected_tokens_per_step([0.9, 0.5, 0.2]) == pytest.approx(1 + .9 + .45 + .09)


def test_sampled_tokens_within_one_and_k_plus_one_and_mean():
    spec = Speculation.build("ngram", 4, 0.7)
    tokens = spec.sample_tokens(np.random.default_rng(0), 200_000)
    assert tokens.min() == 1 and tokens.max() == 5
    assert tokens.mean() == pytest.approx(spec.expected_tokens_per_step, rel=5e-3)
    curve = Speculation.build("ngram", 3, "0.9,0.5,0.2")
    t = curve.sample_tokens(np.random.default_rng(1), 200_000)
    assert t.max() <= 4 and t.mean() == pytest.approx(2.44, rel=5e-3)


def test_sample_steps_bounds():
    spec = Speculation.build("ngram", 3, 0.8)
    need = np.array([0, 1, 5, 100, 1000])
    steps = spec.sample_steps(need, np.random.default_rng(2))
    assert steps[0] == 0 and steps[1] == 1
    assert np.all(steps * (spec.num_tokens + 1) >= need) and np.all(steps <= need)
    zero = Speculation.build("ngram", 3, 0.0).sample_steps(need, np.random.default_rng(2))
    assert np.array_equal(zero, need)  # nothing accepted: one token per step


def test_parse_acceptance_errors():
    assert parse_acceptance("0.5", 3) == (0.5, 0.5, 0.5)
    for bad in ("1.5", "x", "0.5,0.4", ""):
        with pytest.raises(ConfigError):
            parse_acceptance(bad, 3)
    with pytest.raises(ConfigError, match="draft-model"):
        Speculation.build("draft", 3, 0.5)
    with pytest.raises(ConfigError, match="unknown --spec-method"):
        Speculation.build("medusa", 3, 0.5)


# ----------------------------------------------------------------------------- the step
@pytest.fixture(scope="module")
def llama8b():
    return build_step_model(Deployment.resolve("llama-3.1-8b", "h100-sxm"))


def test_verify_shape_is_k_plus_one_tokens_over_the_context(llama8b):
    spec = Speculation.build("ngram", 3, 0.7)
    sm = speculative_step_model(llama8b, spec)
    v = sm.verify_shape(BatchShape.decode(8, 1000.0))
    assert v.decode_seqs == 0 and v.prefill_seqs == 8 and v.prefill_tokens == 8 * 4
    assert v.prefill_attn_pairs == 8 * BatchShape.chunk_pairs(4, 999)
    assert v.prefill_ctx_tokens == 8 * (999 + 4) and v.num_logits == 32
    mixed = BatchShape.prefill(1, 256) + BatchShape.decode(8, 1000.0)
    assert sm.verify_shape(mixed).prefill_tokens == 256 + 32
    for s in (BatchShape.decode(8, 1000.0), mixed, BatchShape.prefill(2, 100)):
        assert sm.price(s).time_s == pytest.approx(sm.step_time(s), rel=1e-9)
    ctx = np.array([10.0, 500.0, 4000.0])
    assert np.allclose(sm.decode_step_times(8, ctx),
                       [sm.step_time(BatchShape.decode(8, c)) for c in ctx])


def test_draft_cost_is_k_draft_decode_steps(llama8b):
    target = build_step_model(Deployment.resolve("llama-3.1-70b", "h100-sxm", tp=4))
    spec = Speculation.build("draft", 4, 0.7, "llama-3.1-8b")
    sm = speculative_step_model(target, spec)
    s = BatchShape.decode(4, 2000.0)
    draft = sum(sm.draft.step_time(BatchShape.decode(4, 2000.0 + j)) for j in range(4))
    assert sm.draft_s(s) == pytest.approx(draft)
    assert sm.step_time(s) == pytest.approx(target.step_time(sm.verify_shape(s)) + draft)
    assert speculative_step_model(target, Speculation.build("ngram", 4, 0.7)).draft_s(s) == 0


def test_mtp_from_the_model_config():
    v3 = get_model("deepseek-v3")
    assert v3.mtp_layers == 1  # num_nextn_predict_layers
    mtp = mtp_draft_spec(v3)
    # one MoE decoder layer + eh_proj (2h x h): the checkpoint's model.layers.61 (~11.6B)
    assert mtp.num_layers == 1 and mtp.is_moe
    assert 11.0e9 < mtp.layers[0].num_params() < 12.0e9
    with pytest.raises(ConfigError, match="no MTP layers"):
        mtp_draft_spec(get_model("llama-3.1-8b"))


# ----------------------------------------------------------------------------- estimate
def test_estimate_tpot_is_itl_over_tokens_per_step():
    spec = Speculation.build("ngram", 3, 0.8)
    r = estimate("llama-3.1-8b", "h100-sxm", batch=4, prompt=512, output=257, speculative=spec)
    sp = r.speculative
    assert r.tpot_s == pytest.approx(sp["itl_s"] / spec.expected_tokens_per_step)
    assert sp["speedup"] > 1.5  # memory-bound decode: 3 drafts at 0.8 nearly free
    assert r.e2e_s == pytest.approx(r.ttft_s + 256 * r.tpot_s)


@pytest.mark.parametrize("method,draft", [("ngram", None), ("draft", "llama-3.1-8b")])
def test_no_speedup_at_zero_acceptance(method, draft):
    spec = Speculation.build(method, 2, 0.0, draft)
    r = estimate("llama-3.1-70b", "h100-sxm", tp=4, batch=8, prompt=512, output=128,
                 speculative=spec)
    assert r.speculative["speedup"] <= 1.0  # only the overhead: verify + draft >= a decode


def test_mtp_zero_acceptance_overhead_deepseek():
    spec = Speculation.build("mtp", 1, 0.0)
    r = estimate("deepseek-v3", "h200-sxm", tp=8, batch=1, prompt=1024, output=128,
                 speculative=spec)
    assert r.speculative["speedup"] < 1.0
    assert r.speculative["draft_weight_bytes_per_device"] > 0
    fast = estimate("deepseek-v3", "h200-sxm", tp=8, batch=1, prompt=1024, output=128,
                    speculative=Speculation.build("mtp", 1, 0.9))
    assert 1.4 < fast.speculative["speedup"] < 1.9  # never more than k + 1 = 2


# ----------------------------------------------------------------------------- simulate
def _sim(rate, spec=None, n=200, seed=0):
    dec = {} if spec is None else {"decoding": spec}
    cfg = SimulationConfig(model="llama-3.1-8b", hardware="h100-sxm",
                           workload={"rate": rate, "num_requests": n, "prompt": "512",
                                     "output": "128", "seed": seed},
                           scheduler={"max_num_seqs": 128}, **dec)
    return simulate(cfg).summary()


NGRAM = {"spec_method": "ngram", "spec_tokens": 4, "spec_acceptance": 0.5}


def test_simulate_speculation_helps_at_low_load_and_hurts_near_saturation():
    low, low_spec = _sim(0.5), _sim(0.5, NGRAM)
    assert low_spec["tpot_s"]["p50"] < 0.8 * low["tpot_s"]["p50"]
    high, high_spec = _sim(60.0), _sim(60.0, NGRAM)
    assert high_spec["tpot_s"]["p50"] > high["tpot_s"]["p50"]


def test_simulate_tokens_per_step_and_determinism():
    a = _sim(2.0, NGRAM)
    sp = a["speculative"]
    assert 1.0 <= sp["tokens_per_step"] <= 5.0
    assert sp["tokens_per_step"] == pytest.approx(sp["expected_tokens_per_step"], rel=0.05)
    b = _sim(2.0, NGRAM)
    assert {k: v for k, v in a.items() if "wall" not in k} == \
        {k: v for k, v in b.items() if "wall" not in k}
    # output tokens counted are the emitted ones, not the steps
    plain = _sim(2.0)
    assert a["output_tokens_per_s"] == pytest.approx(plain["output_tokens_per_s"], rel=0.02)


def test_simulate_zero_acceptance_equals_plain_steps_count():
    zero = _sim(1.0, {**NGRAM, "spec_acceptance": 0.0})
    plain = _sim(1.0)
    assert zero["speculative"]["tokens_per_step"] == 1.0
    assert zero["tpot_s"]["p50"] >= plain["tpot_s"]["p50"]


def test_config_dump_leaves_default_decoding_out():
    cfg = SimulationConfig(model="llama-3.1-8b", hardware="h100-sxm")
    assert "decoding" not in cfg.model_dump()
    spec = SimulationConfig(model="llama-3.1-8b", hardware="h100-sxm", decoding=NGRAM)
    assert spec.model_dump()["decoding"]["spec_method"] == "ngram"
    with pytest.raises(LLMSimError, match="need --spec-method"):
        SimulationConfig(model="llama-3.1-8b", hardware="h100-sxm",
                         decoding={"spec_tokens": 3})


@pytest.mark.parametrize("args,msg", [
    (["--spec-tokens", "3"], "need --spec-method"),
    (["--spec-method", "draft", "--spec-acceptance", "0.7"], "needs --draft-model"),
    (["--spec-method", "mtp", "--spec-acceptance", "0.7"], "no MTP layers"),
    (["--spec-method", "ngram"], "needs --spec-acceptance"),
])
def test_cli_errors(cli, args, msg):
    for cmd in (["estimate"], ["simulate", "-n", "5", "--rate", "1"]):
        res = cli(*cmd, "-m", "llama-3.1-8b", "--hardware", "h100-sxm", *args)
        assert res.code == 2, res.err
        assert msg in res.err and len(res.err.strip().splitlines()) == 1
