"""llmsim search over disaggregated (xPyD) and heterogeneous layouts, and over engines: the
bounds never prune the estimate's best (best == brute force), rows say how they were priced,
disaggregated layouts are ranked on their own, engines reach both stages."""

from __future__ import annotations

import json

import pytest

from llmsim.search import run_search
from llmsim.search.disagg import STATIC_STAGE, StaticPoints, confirm_disagg_serving
from llmsim.search.evaluate import SERVING_STAGE
from llmsim.search.space import SearchSpace, disagg_layouts, layouts


def space(disagg: str = "only", **over) -> dict:
    """8B on H100 and A100 (heterogeneous pairs), up to 6 GPUs: every prune kind happens."""
    return {
        "model": "llama-3.1-8b",
        "workload": {"prompt": "lognormal:mean=1024,cv=1", "output": "lognormal:mean=192,cv=1",
                     "rate": 24, "num_requests": 120, "seed": 1},
        "slo": "ttft_p99=150ms,tpot_p99=9ms",
        "space": {"gpus": ["h100-sxm", "a100-sxm-80gb"], "tp": [1, 2], "pp": [1],
                  "max_num_seqs": [16, 128], "max_num_batched_tokens": [2048, 8192],
                  "weight_dtype": ["bf16"], "kv_dtype": ["bf16"], "max_gpus": 6,
                  "disagg": disagg, "disagg_workers": [1, 2, 3], **over},
        "search": {"intervals": False, "tolerance": 0.1},
    }


def with_prune(cfg: dict, prune: bool) -> dict:
    return {**cfg, "search": {**cfg["search"], "prune": prune}}


@pytest.fixture(scope="module")
def pruned():
    return run_search(with_prune(space(), True), workers=1)


@pytest.fixture(scope="module")
def brute():
    return run_search(with_prune(space(), False), workers=1)


def test_disagg_best_equals_brute_force(pruned, brute):
    assert brute.best is not None and brute.best["kind"] == "disaggregated"
    assert pruned.best["layout"] == brute.best["layout"]
    assert pruned.best["objective"] == pytest.approx(brute.best["objective"], rel=1e-12)
    # the pruned search did prune, by every kind of bound (else the test proves nothing)
    reasons = [c["reason"] for c in pruned.candidates]
    assert any("lower bound of the typical request" in r for r in reasons)
    assert any("capacity bound" in r for r in reasons)
    assert any("not estimated" in r for r in reasons)
    assert pruned.counts["disaggregated_estimated"] < brute.counts["disaggregated_estimated"]


def test_disagg_bounds_never_exceed_the_estimate(pruned, brute):
    by_layout = {c["layout"]: c for c in brute.candidates}
    for c in pruned.candidates:  # nothing pruned by a bound meets the SLO in the brute force
        if "bound" in c["reason"] or "not estimated" in c["reason"]:
            b = by_layout[c["layout"]]
            assert b["status"] != "ok" or b["objective"] <= pruned.best["objective"], c
    checked = 0
    for b in brute.candidates:
        if b["status"] != "ok":
            continue
        assert b["goodput_rps_per_replica"] <= b["ub_rps_per_replica"] * (1 + 1e-12)
        # the latency bounds are the static estimate's (the gate before the simulation)
        static = next(r for r in brute.plans if r["plan_key"] == b["plan_key"])["static"]
        assert static["slo_values"]["ttft_p99"] >= b["ttft_p99_lower_bound_s"]
        assert static["slo_values"]["tpot_p99"] >= b["tpot_p99_lower_bound_s"]
        assert static["goodput_rps"] <= b["ub_rps_per_replica"] * (1 + 1e-12)
        checked += 1
    assert checked >= 5


def test_rows_say_how_they_were_priced_and_heterogeneous_pools(brute):
    rows = [c for c in brute.candidates if c["kind"] == "disaggregated"]
    # the static estimate's rejects stay static; what it accepts is serving-confirmed
    assert rows and {c["stage"] for c in rows} == {STATIC_STAGE, SERVING_STAGE}
    assert all(c["stage"] == SERVING_STAGE for c in rows if c["status"] == "ok")
    assert all(c["simulations"] >= 1 for c in rows if c["stage"] == SERVING_STAGE)
    het = [c for c in rows if c["heterogeneous"]]
    assert het and all(c["prefill_gpu"] != c["decode_gpu"] for c in het)
    assert any(c["stage"] == SERVING_STAGE for c in het)  # a heterogeneous layout simulated
    ok = [c for c in rows if c["status"] == "ok"]
    assert ok and all(c.get("slo_basis") is None for c in ok)  # simulated distributions
    assert all(c["num_gpus"] == c["prefill_workers"] * c["prefill_tp"]
               + c["decode_workers"] * c["decode_tp"] for c in rows)
    d = brute.as_dict()
    assert d["settings"]["searched_kinds"] == ["disaggregated"] and d["pareto"]
    json.dumps(d, allow_nan=True)


def test_static_point_matches_estimate_disagg():
    from llmsim.disagg import PoolSpec, estimate_disagg

    p = {"gpu": "h100-sxm", "tp": 1, "pp": 1, "ep": 1, "weight_dtype": "bf16",
         "kv_dtype": "bf16", "max_num_seqs": 128, "max_num_batched_tokens": 8192}
    task = {"layout": {"prefill": p, "decode": {**p, "gpu": "a100-sxm-80gb"},
                       "prefill_workers": 1, "decode_workers": 2},
            "formats": {"estimator": "calibrated"}, "model": "llama-3.1-8b",
            "prompt": 1000, "output": 200}
    got = StaticPoints(task).at(16)
    want = estimate_disagg("llama-3.1-8b", None,
                           PoolSpec(workers=1, tp=1, max_num_batched_tokens=8192,
                                    hardware="h100-sxm", max_num_seqs=128),
                           PoolSpec(workers=2, tp=1, max_num_batched_tokens=8192,
                                    hardware="a100-sxm-80gb", max_num_seqs=128),
                           prompt=1000, output=200, concurrency=16, weight_dtype="bf16",
                           kv_dtype="bf16")
    assert got.requests_per_s == pytest.approx(want.requests_per_s, rel=1e-12)
    assert got.decode_hardware == "a100-sxm-80gb"
    row = {"status": "ok", "stage": STATIC_STAGE}
    assert confirm_disagg_serving(task, row) is row  # confirmation off: the static row


def test_confirmed_row_equals_a_direct_simulation(pruned):
    """The best xPyD row's figures are those of ``simulate()`` of the same layout, written by
    hand as inline pool specs, at the requested load; the static figures ride along."""
    from llmsim import simulate
    from llmsim.search.config import load_search_config
    from llmsim.search.slo import check, parse_slo

    best = pruned.best
    assert best["stage"] == SERVING_STAGE and best["group"] == "serving"
    sc = load_search_config(space())
    cfg = sc.base_simulation()
    cfg["model"].update(weight_dtype="bf16", kv_dtype="bf16")
    cfg["hardware"].update(name=best["prefill_gpu"])
    cfg["workload"]["rate"] = 24.0
    res = next(r for r in pruned.plans if r["plan_key"] == best["plan_key"])
    pools = {}
    for role in ("prefill", "decode"):
        plan = res["layout"][role]
        pools[f"{role}_pool"] = (f"workers={best[role + '_workers']},tp={best[role + '_tp']},"
                                 f"ep={best[role + '_ep']},max_num_seqs={plan['max_num_seqs']},"
                                 f"max_num_batched_tokens={plan['max_num_batched_tokens']},"
                                 f"hardware={best[role + '_gpu']}")
    cfg["disagg"] = {**pools, "kv_link": "rdma", "kv_layerwise": True}
    s = simulate(cfg).summary()
    assert best["ttft_p99_s"] == pytest.approx(s["ttft_s"]["p99"], rel=1e-12)
    assert best["tpot_p99_s"] == pytest.approx(s["tpot_s"]["p99"], rel=1e-12)
    assert best["tokens_per_s_per_user"] == pytest.approx(1 / s["tpot_s"]["mean"], rel=1e-12)
    assert check(s, parse_slo("ttft_p99=150ms,tpot_p99=9ms"))[0]
    assert best["goodput_rps_per_replica"] >= 24 * (1 - 1e-9)
    assert best["goodput_rps_per_gpu"] == pytest.approx(
        best["goodput_rps_per_replica"] / best["num_gpus"])
    assert res["static"]["goodput_rps"] > 0  # the static estimate's figures are kept


def test_static_only_is_still_available():
    cfg = space()
    cfg["search"] = {**cfg["search"], "disagg_serving": False}
    res = run_search(cfg, workers=1)
    rows = [c for c in res.candidates if c["kind"] == "disaggregated"]
    assert rows and all(c["stage"] == STATIC_STAGE for c in rows)
    assert res.best["group"] == "static" and res.counts["disaggregated_simulations"] == 0
    assert res.best["slo_basis"].startswith("xPyD static estimate")


def test_refused_layout_keeps_its_static_row(monkeypatch):
    from llmsim.errors import ConfigError
    from llmsim.search import evaluate

    def refuse(*a, **k):
        raise ConfigError("not simulated here")

    monkeypatch.setattr(evaluate, "_run", refuse)
    row = {"status": "ok", "stage": STATIC_STAGE, "num_gpus": 2, "goodput_rps": 1.0}
    task = {"serving": True, "mode": "rate", "load": 1.0, "targets": [], "replica_options": [1],
            "ub_rps": 2.0, "tolerance": 0.1}
    out = confirm_disagg_serving(task, row)
    assert out["stage"] == STATIC_STAGE and out["goodput_rps"] == 1.0
    assert "refused the layout: not simulated here" in out["serving_refused"]


def test_auto_ranks_confirmed_xpyd_with_aggregated_and_static_on_their_own():
    cfg = space("auto", max_num_seqs=[128], max_num_batched_tokens=[2048], tp=[1])
    cfg["slo"] = "ttft_p99=400ms,tpot_p99=25ms"
    joint = run_search(with_prune(cfg, False), workers=1)
    serving = [c for c in joint.candidates if c["status"] == "ok" and c["group"] == "serving"]
    assert {c["kind"] for c in serving} == {"aggregated", "disaggregated"}
    assert [c["rank"] for c in serving] == list(range(1, len(serving) + 1))
    assert joint.best_disaggregated is None
    objs = [c["objective"] for c in serving]
    assert objs == sorted(objs, reverse=True)
    cfg["search"] = {**cfg["search"], "disagg_serving": False}
    res = run_search(cfg, workers=1)
    assert res.best is not None and res.best["stage"] == "serving simulation"
    bd = res.best_disaggregated
    assert bd is not None and bd["stage"] == STATIC_STAGE and bd["rank"] == 1
    assert "ranked on its own" in bd["reason"]
    assert all(r["group"] == res.best["group"] for r in res.runners_up)
    assert res.settings["searched_kinds"] == ["aggregated", "disaggregated"]
    off = run_search({**cfg, "space": {**cfg["space"], "disagg": "off"}}, workers=1)
    assert off.best["layout"] == res.best["layout"]
    assert off.counts.get("disaggregated_layouts") == 0


def test_disagg_space_enumeration_and_modes():
    s = SearchSpace(gpus=["h100-sxm", "mi300x"], tp=[1, 2], max_num_seqs=[64, 256],
                    max_num_batched_tokens=[2048, 8192], weight_dtype=["fp8"],
                    kv_dtype=["fp8"], max_gpus=4, disagg_workers=[1, 2])
    lays = disagg_layouts(s)
    assert lays and all(lay.num_gpus <= 4 for lay in lays)
    assert {lay.decode.max_num_seqs for lay in lays} == {256}
    assert {lay.prefill.max_num_batched_tokens for lay in lays} == {2048, 8192}
    assert any(lay.heterogeneous for lay in lays) and all(lay.prefill.pp == 1 for lay in lays)
    assert len({lay.key for lay in lays}) == len(lays)
    assert not disagg_layouts(s.model_copy(update={"disagg": "off"}))
    assert not layouts(s.model_copy(update={"disagg": "only"})) and layouts(s)


def test_engine_reaches_the_bounds_and_the_serving_config():
    from llmsim.engines import resolve_engine
    from llmsim.search.config import load_search_config
    from llmsim.search.evaluate import layout_config
    from llmsim.search.run import engine_terms

    cfg = space("off", engine=["sglang", "vllm"], tp=[1], max_num_seqs=[128],
                max_num_batched_tokens=[8192], gpus=["h100-sxm"], max_gpus=2)
    res = run_search({**cfg, "search": {**cfg["search"], "prune": False}}, workers=1)
    rows = {c["layout"]: c for c in res.candidates}
    key = "h100-sxm/tp1/pp1/ep1/w-bf16/kv-bf16/seqs128/tok8192/{}/x1"
    neutral = run_search(space("off", tp=[1], max_num_seqs=[128],
                               max_num_batched_tokens=[8192], gpus=["h100-sxm"], max_gpus=2),
                         workers=1)
    base = {c["layout"]: c for c in neutral.candidates}[
        "h100-sxm/tp1/pp1/ep1/w-bf16/kv-bf16/seqs128/tok8192/x1"]
    for eng in ("sglang", "vllm"):
        row = rows[key.format(eng)]
        assert row["engine"] == eng
        prof = resolve_engine(eng).profile
        # TTFT bound: at least the request overhead above the engine-neutral bound's share
        assert row["ttft_p99_lower_bound_s"] >= prof.request_overhead_s
        assert row["ttft_p99_lower_bound_s"] == pytest.approx(
            min(1, prof.mixed_step_factor) * base["ttft_p99_lower_bound_s"]
            + prof.request_overhead_s + prof.step_overhead_s)
        if row["status"] == "ok":  # the simulated TTFT includes the engine's overhead
            assert row["ttft_p99_s"] >= row["ttft_p99_lower_bound_s"]
    terms = engine_terms(load_search_config(space("off", engine=["trtllm", "vllm"])))
    assert terms["trtllm"].block_size == 32 and terms["vllm"].block_size == 16
    plan = {"gpu": "h100-sxm", "tp": 1, "pp": 1, "ep": 1, "weight_dtype": "bf16",
            "kv_dtype": "bf16", "max_num_seqs": 128, "max_num_batched_tokens": 8192,
            "engine": "sglang"}
    sc = load_search_config(cfg)
    sim = layout_config({"plan": plan, "base": sc.base_simulation(), "mode": "rate"}, 1, 2.0)
    assert sim.engine.name == "sglang" and "name" not in sim.scheduler.model_fields_set


def test_cli_disagg_and_engine_flags(cli, tmp_path):
    res = cli("search", "--model", "llama-3.1-8b", "--prompt-dist", "lognormal:mean=1024,cv=1",
              "--output-dist", "lognormal:mean=192,cv=1", "--rate", "24", "--num-requests",
              "120", "--slo", "ttft_p99=150ms,tpot_p99=9ms", "--gpus", "h100-sxm,a100-sxm-80gb",
              "--tp", "1,2", "--max-num-seqs", "128", "--max-num-batched-tokens", "8192",
              "--weight-dtype", "bf16", "--kv-dtype", "bf16", "--max-gpus", "4",
              "--disagg", "only", "--disagg-workers", "1,2", "--no-intervals", "--workers",
              "1", "--format", "json")
    assert res.code == 0, res.err
    d = json.loads(res.out)
    assert d["best"]["kind"] == "disaggregated" and d["best"]["stage"] == SERVING_STAGE
    for argv, needle in ((("--disagg", "sometimes"), "auto, off, only"),
                         (("--engine", "vlm"), "vllm")):
        bad = cli("search", "--model", "llama-3.1-8b", "--rate", "1", "--slo", "ttft_p99=1s",
                  *argv)
        assert bad.code == 2 and needle in bad.err, bad.err
        assert len(bad.err.strip().splitlines()) == 1


def test_disagg_per_dollar_prices_each_pool_at_its_gpu():
    from llmsim.search.prices import load_prices

    cfg = space()
    cfg["search"] = {**cfg["search"], "objective": "goodput_per_dollar"}
    res = run_search(cfg, workers=1)
    prices = load_prices(None)["prices"]
    for row in [c for c in res.candidates if c["status"] == "ok"][:5]:
        usd = (row["prefill_workers"] * row["prefill_tp"] * prices[row["prefill_gpu"]]
               + row["decode_workers"] * row["decode_tp"] * prices[row["decode_gpu"]])
        assert row["usd_per_hour"] == pytest.approx(usd)
        assert row["objective"] == pytest.approx(row["goodput_rps_per_replica"] * 3600 / usd)


def test_ray_backend_same_disagg_answer(pruned):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'llmsim[ray]')")
    res = run_search(with_prune(space(), True), backend="ray", workers=2)
    assert res.best["layout"] == pruned.best["layout"]
    assert res.best["objective"] == pytest.approx(pruned.best["objective"], rel=1e-12)
