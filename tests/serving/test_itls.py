"""Per-token inter-token latencies (``metrics.save_itls``): every request's gaps, rebuilt from
the decode-step end times and each request's token-stream pieces, agree with what the run
streams into the histogram and the per-request columns -- for every scheduler, preemption by
recompute and by swap, static padding, replicas and closed-loop clients."""

from __future__ import annotations

import pytest
from serving_helpers import base_config
from stepmodels import FixedStepModel

from llmsim.serving import simulate
from llmsim.serving.decoderuns import LinearRun, PiecewiseRun

LENGTHS = {"prompt": "uniform:50,400", "output": "uniform:1,200", "seed": 3}
CASES = {
    "chunked": {},
    "continuous-recompute": {
        "scheduler": {"name": "continuous", "kv_capacity_tokens": 3000},
        "workload": {"rate": 50.0, "num_requests": 300, **LENGTHS}},
    "chunked-swap": {
        "scheduler": {"name": "chunked", "kv_capacity_tokens": 3000, "preemption": "swap",
                      "swap_space_bytes": 1e9},
        "workload": {"rate": 50.0, "num_requests": 300, **LENGTHS}},
    "static": {
        "scheduler": {"name": "static", "kv_capacity_tokens": 20000},
        "workload": {"rate": 20.0, "num_requests": 200, **LENGTHS}},
    "dynamic-replicas": {
        "scheduler": {"name": "dynamic", "kv_capacity_tokens": 20000, "batch_window_s": 0.1},
        "parallelism": {"replicas": 3, "router": "least-outstanding"},
        "workload": {"rate": 20.0, "num_requests": 200, **LENGTHS}},
    "closed-loop-prefix": {
        "scheduler": {"prefix_caching": True},
        "workload": {"concurrency": 8, "num_requests": 100, "shared_prefix_tokens": 64,
                     **LENGTHS}},
}
MODEL = FixedStepModel(prefill_s=0.05, decode_s=0.01, per_token_s=1e-4, per_ctx_s=1e-6)


def run(case: str, closed_form: bool = True):
    cfg = base_config(**CASES[case])
    if "concurrency" in cfg["workload"]:
        del cfg["workload"]["rate"]
    cfg["metrics"] = {"save_itls": True}
    return simulate(cfg, step_model=MODEL, closed_form=closed_form)


@pytest.mark.parametrize("case", list(CASES))
def test_itls_agree_with_histogram_and_request_table(case):
    r = run(case)
    itls, req = r.itls, r.requests
    assert list(itls.columns) == ["request_id", "token_index", "itl_s"]
    done = req[req.status == "finished"].set_index("request_id")
    assert len(done) > 0
    if case in ("continuous-recompute", "chunked-swap"):
        assert r.summary()["num_preemptions"] > 0  # the case exercises preemption
    # one gap per output token after the first, indexed 1..output-1 in order
    counts = itls.groupby("request_id").size()
    want = done.output_tokens - 1
    assert counts.reindex(want.index, fill_value=0).tolist() == want.tolist()
    first = itls.groupby("request_id").token_index
    assert (first.min() == 1).all() and (first.max() == counts).all()
    # the same values as the streamed histogram, the per-request max and E2E - TTFT
    assert len(itls) == r.itl_hist.count
    assert itls.itl_s.sum() == pytest.approx(r.itl_hist.total, rel=1e-9)
    assert (itls.itl_s > 0).all()
    per = itls.groupby("request_id").itl_s
    multi = done[done.output_tokens > 1]
    assert per.max().reindex(multi.index).to_numpy() == pytest.approx(
        multi.itl_max_s.to_numpy(), rel=1e-9)
    assert per.sum().reindex(multi.index).to_numpy() == pytest.approx(
        (multi.e2e_s - multi.ttft_s).to_numpy(), rel=1e-9)


@pytest.mark.parametrize("case", ["continuous-recompute", "chunked-swap", "static"])
def test_closed_form_itls_equal_step_by_step(case):
    a, b = run(case).itls, run(case, closed_form=False).itls
    assert a[["request_id", "token_index"]].equals(b[["request_id", "token_index"]])
    assert a.itl_s.to_numpy() == pytest.approx(b.itl_s.to_numpy(), rel=1e-9)


def test_itls_are_off_by_default_and_the_results_do_not_change():
    cfg = base_config(**CASES["chunked-swap"])
    plain = simulate(cfg, step_model=MODEL)
    assert plain.itls is None
    kept = run("chunked-swap")
    assert plain.requests.equals(kept.requests)


def test_all_rejected_gives_an_empty_table(fixed_model):
    cfg = base_config(scheduler={"kv_capacity_tokens": 1024},
                      workload={"prompt": "fixed:5000"})  # no request fits the KV cache
    cfg["metrics"] = {"save_itls": True}
    r = simulate(cfg, step_model=fixed_model)
    assert r.summary()["num_completed"] == 0 and len(r.itls) == 0


def test_vectorised_run_ends_match_the_scalar_ones():
    lin = LinearRun(0.013, 2.5e-6, 500)
    assert lin.ends(2, 499).tolist() == [lin.end(k) for k in range(2, 500)]
    pw = PiecewiseRun([1, 40, 300], [0.0, 0.5, 4.2], [0.012, 0.013, 0.02], [1e-6, 3e-6, 0.0],
                      700)
    assert pw.ends(1, 700).tolist() == [pw.end(k) for k in range(1, 701)]
