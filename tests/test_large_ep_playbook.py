"""``llmsim large-ep evaluate`` (estimates/large_ep.py): the same step times as ``estimate`` for
the same model and plan, dispatch bytes from the DeepEP volume formula, monotone in skew, and
the command's outputs and errors."""

from __future__ import annotations

import pytest

from llmsim.catalog.parallel import EPKernel
from llmsim.costmodel import Deployment, build_step_model
from llmsim.costmodel.ep_comm import ep_volumes, token_bytes
from llmsim.costmodel.expert_routing import load_imbalance
from llmsim.costmodel.shapes import BatchShape
from llmsim.estimates.large_ep import evaluate_large_ep
from llmsim.estimates.static_batch import estimate

SCENARIO = "src/llmsim/data/scenarios/deepseek-v3/deepseek_v3_h800.yaml"
KW = {"batch": 2, "seq": 1024, "ep": 16, "dp": 16, "dtype": "fp8"}


def test_matches_estimate_for_the_same_model_and_plan():
    res = evaluate_large_ep("deepseek-v3", "h100-sxm", **KW)
    est = estimate("deepseek-v3", "h100-sxm", batch=2 * 16, prompt=1024, output=2, ep=16,
                   dp=16, dtype="fp8")
    assert res.prefill_s == pytest.approx(est.prefill_s, rel=1e-12)
    sm = build_step_model(Deployment.resolve("deepseek-v3", "h100-sxm", ep=16, dp=16,
                                             dtype="fp8"))
    assert res.decode_s == pytest.approx(sm.step_time(BatchShape.decode(2, 1024.0)), rel=1e-12)
    assert res.prefill_tokens_per_s_per_gpu == pytest.approx(2 * 1024 / res.prefill_s)


def test_dispatch_bytes_are_the_deepep_formula():
    res = evaluate_large_ep("deepseek-v3", "h100-sxm", ep_kernel="normal", expert_skew=0.5,
                            **KW)
    vol = ep_volumes(EPKernel.NORMAL, 256, 8, 16, 8, token_bytes(7168, True))
    imb = load_imbalance(256, 16, 0.5)
    assert res.imbalance == pytest.approx(imb)
    moe = next(r for r in res.layers if r.phase == "prefill" and r.layer == "moe")
    tokens = 2 * 1024  # per rank (tp 1)
    assert moe.dispatch_intra_bytes == pytest.approx(tokens * vol.intra_bytes_per_token * imb)
    assert moe.dispatch_inter_bytes == pytest.approx(tokens * vol.inter_bytes_per_token * imb)
    assert moe.dispatch_bytes == pytest.approx(moe.dispatch_intra_bytes
                                               + moe.dispatch_inter_bytes)
    dense = next(r for r in res.layers if r.layer == "dense")
    assert dense.dispatch_bytes == 0 and dense.imbalance == 1.0


def test_more_skew_never_faster():
    times = [evaluate_large_ep("deepseek-v3", "h100-sxm", expert_skew=s, **KW)
             for s in (0.0, 0.3, 0.8, 1.5)]
    for a, b in zip(times, times[1:], strict=False):
        assert b.prefill_s >= a.prefill_s and b.decode_s >= a.decode_s
        assert b.imbalance >= a.imbalance


def test_scenario_equals_catalog_model_on_the_same_hardware():
    from llmsim.catalog.layer_templates import load_layer_template_scenario

    sc = load_layer_template_scenario(SCENARIO)
    mine = evaluate_large_ep(sc.model, sc.hardware, **KW)
    ref = evaluate_large_ep("deepseek-v3", sc.hardware, **KW)
    assert mine.prefill_s == pytest.approx(ref.prefill_s, rel=1e-12)
    assert mine.decode_s == pytest.approx(ref.decode_s, rel=1e-12)


def test_command(cli):
    base = ("large-ep", "evaluate", SCENARIO, "--batch", "4", "--seq", "8192", "--ep", "32")
    table = cli(*base)
    assert table.code == 0, table.err
    assert "prefill step" in table.out and "per layer" in table.out
    data = cli(*base, "--format", "json").json()
    assert data["ep"] == data["dp"] == 32 and len(data["layers"]) == 4
    csv = cli(*base, "--expert-skew", "0.8", "--format", "csv")
    assert csv.code == 0 and csv.out.splitlines()[0].startswith("phase,layer,")
    for extra, message in ((("--ep", "7"), "ep 7"), (("--ep-kernel", "magic"), "ep_kernel"),
                           (("-m", "deepseek-v3"), "not both")):
        bad = cli(*base, *extra)
        assert bad.code == 2 and bad.err.count("\n") == 1 and message in bad.err, bad.err
