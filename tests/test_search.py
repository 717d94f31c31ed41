"""llmsim search: pruning is exact (best == brute force), backends agree, resume, bad input."""

from __future__ import annotations

import json

import pytest

from llmsim.errors import ConfigError
from llmsim.search import run_search
from llmsim.search.analytic import _per_unit_lower_bound
from llmsim.search.slo import parse_slo
from llmsim.search.space import SearchSpace, layouts


def small(prune: bool = True, **search) -> dict:
    """A small space where every prune kind happens: 8B on two GPU types."""
    return {
        "model": "llama-3.1-8b",
        "workload": {"prompt": "lognormal:mean=1024,cv=1", "output": "lognormal:mean=192,cv=1",
                     "rate": 24, "num_requests": 120, "seed": 1},
        "slo": "ttft_p99=400ms,tpot_p99=25ms",
        "space": {"gpus": ["h100-sxm", "a100-sxm-80gb"], "tp": [1, 2], "pp": [1, 2],
                  "max_num_seqs": [16, 128], "max_num_batched_tokens": [2048],
                  "weight_dtype": ["bf16"], "kv_dtype": ["bf16"], "max_gpus": 4},
        "search": {"prune": prune, "intervals": False, "tolerance": 0.1, **search},
    }


@pytest.fixture(scope="module")
def pruned():
    return run_search(small(True), workers=1)


@pytest.fixture(scope="module")
def brute():
    return run_search(small(False), workers=1)


def test_best_equals_brute_force(pruned, brute):
    assert brute.best is not None
    assert pruned.best["layout"] == brute.best["layout"]
    assert pruned.best["objective"] == pytest.approx(brute.best["objective"], rel=1e-12)
    # the pruned search did prune (else the test proves nothing)
    assert pruned.counts["plans_simulated"] < brute.counts["plans_simulated"]
    assert pruned.counts.get("slo_missed", 0) > 0 and pruned.counts.get("dominated", 0) > 0


def test_pruning_never_removes_a_layout_that_meets_the_slo(pruned, brute):
    brute_status = {c["layout"]: c for c in brute.candidates}
    for c in pruned.candidates:
        b = brute_status[c["layout"]]
        if c["status"] == "slo_missed" and "bound" in c["reason"]:
            assert b["status"] != "ok", c["layout"]
        if c["status"] == "dominated" and "not simulated" in c["reason"]:
            assert b["status"] != "ok" or b["objective"] <= pruned.best["objective"]
    # every plan the brute force simulated stayed below its analytic upper bound
    for r in brute.plans:
        assert r["goodput_rps_per_replica"] <= r["ub_rps_per_replica"] * (1 + 1e-12)


def test_result_shapes(pruned, tmp_path):
    from llmsim.report.search import write_search_dir

    d = pruned.as_dict()
    assert set(d) >= {"best", "candidates", "pareto", "counts", "timing"}
    assert len(d["candidates"]) == d["counts"]["layouts"]
    assert all(c["reason"] for c in d["candidates"][1:])  # every loser says why
    assert d["pareto"] and all(p["output_tokens_per_s_per_gpu"] > 0 for p in d["pareto"])
    paths = write_search_dir(pruned, tmp_path / "out")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_resume_simulates_nothing_twice(tmp_path):
    path = tmp_path / "results.jsonl"
    first = run_search(small(True), workers=1, results_path=path)
    lines = path.read_text().splitlines()
    assert len(lines) == (first.counts["plans_simulated"]
                          + first.counts["disaggregated_estimated"])
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])  # an interrupted last line
    again = run_search(small(True), workers=1, results_path=path, resume=True)
    assert again.best["layout"] == first.best["layout"]
    rows = [json.loads(x) for x in path.read_text().splitlines()[:-1] if x.startswith("{")]
    assert {r["plan_key"] for r in rows} <= {r["plan_key"] for r in first.plans} | {
        json.loads(x)["plan_key"] for x in lines}


def test_two_local_workers_same_answer(pruned):
    two = run_search(small(True), workers=2)
    assert two.best["layout"] == pruned.best["layout"]
    assert two.best["objective"] == pytest.approx(pruned.best["objective"], rel=1e-12)


def test_ray_backend_same_answer(pruned):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'llmsim[ray]')")
    res = run_search(small(True), backend="ray", workers=2)
    assert res.best["layout"] == pruned.best["layout"]


def test_lower_bound_of_per_unit_cost():
    cost = lambda n: 5.0 + 0.1 * n  # noqa: E731  nondecreasing, cost/n decreasing
    lb = _per_unit_lower_bound(cost, 1000)
    assert lb <= min(cost(n) / n for n in range(1, 1001))
    assert lb >= 0.8 * min(cost(n) / n for n in range(1, 1001))


def test_slo_and_space_errors():
    assert [t.name for t in parse_slo("ttft_p99=1s,tpot_p99=50ms")] == ["ttft_p99", "tpot_p99"]
    assert parse_slo({"tpot_mean": "20ms"})[0].limit_s == pytest.approx(0.02)
    for bad in ("ttft=1s", "ttft_p99", "latency_p99=1s", "ttft_p99=-1"):
        with pytest.raises(ConfigError):
            parse_slo(bad)
    space = SearchSpace(gpus=["h100-sxm"], tp=[8], pp=[1], max_gpus=16)
    lay = layouts(space)
    assert {x.replicas for x in lay} == {1, 2} and all(x.plan.tp == 8 for x in lay)


def test_cli_one_line_errors(cli):
    res = cli("search", "--model", "llama-3.1-8b", "--slo", "ttft_p99=1s", "--prompt-dist",
              "512")
    assert res.code == 2 and "--rate" in res.err and len(res.err.strip().splitlines()) == 1
    res = cli("search", "--model", "llama-3.1-8b", "--rate", "1", "--slo", "ttft_p9=1s")
    assert res.code == 2 and "ttft_p9" in res.err
    res = cli("search", "--model", "llama-3.1-8b", "--rate", "1", "--slo", "ttft_p99=1s",
              "--gpus", "h100-sxmm")
    assert res.code == 2 and "h100-sxm" in res.err


def test_monotone_stat_matches_numpy():
    import numpy as np

    from llmsim.search.analytic import monotone_stat, stat_of

    rng = np.random.default_rng(0)
    xs = rng.integers(1, 5000, 301)
    fn = lambda x: np.sqrt(np.asarray(x, dtype=float)) + 0.001 * np.asarray(x)  # noqa: E731
    for stat in ("mean", "p50", "p90", "p99", "max"):
        assert monotone_stat(fn, xs, stat) == pytest.approx(stat_of(fn(xs), stat), rel=1e-12)


def test_goodput_per_dollar_prunes_and_ranks_by_price(tmp_path):
    prices = tmp_path / "prices.yaml"
    prices.write_text("prices_per_gpu_hour: {h100-sxm: 100.0, a100-sxm-80gb: 0.01}\n")
    cfg = small(True, objective="goodput_per_dollar", prices=str(prices))
    res = run_search(cfg, workers=1)
    assert res.best["gpu"] == "a100-sxm-80gb"  # a 10,000x cheaper part wins per dollar
    assert res.best["objective"] == pytest.approx(
        res.best["goodput_rps_per_gpu"] * 3600 / 0.01)
    assert res.counts["plans_pruned_by_bound"] > 0
