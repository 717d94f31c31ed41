"""vLLM-benchmark metrics (``--metrics vllm``) and ``llmsim compare --measured``: the names
vLLM's ``vllm bench serve --save-result`` writes, its definitions, and a measured result put
next to the prediction key by key. ``examples/vllm_bench_result.json`` is a hand-written
file in the shape vLLM saves (its keys and value types; the numbers are illustrative)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "examples" / "vllm_bench_result.json"
FLAGS = ("-m", "llama-3.1-8b", "-H", "h100-sxm", "--rate", "4", "--num-requests", "60",
         "--input-len", "512", "--output-len", "64", "--seed", "3")


@pytest.fixture(scope="module")
def report():
    from llmsim.serving.run import simulate

    return simulate({"model": {"name": "llama-3.1-8b"}, "hardware": {"name": "h100-sxm"},
                     "workload": {"rate": 6, "num_requests": 80, "prompt": 700, "output": 40,
                                  "seed": 2},
                     "metrics": {"save_itls": True}})


def test_keys_are_vllms(report):
    from llmsim.serving.vllm_bench import metric_keys, vllm_bench_metrics

    result = vllm_bench_metrics(report, (50, 90, 99, 99.9))
    assert list(result) == metric_keys((50, 90, 99, 99.9))
    for key in ("mean_ttft_ms", "median_tpot_ms", "std_itl_ms", "p99_e2el_ms", "p99.9_ttft_ms",
                "p50_itl_ms", "request_throughput", "output_throughput",
                "total_token_throughput", "request_goodput"):
        assert key in result


def test_definitions_follow_vllm(report):
    from llmsim.serving.vllm_bench import vllm_bench_metrics

    r = vllm_bench_metrics(report, (90,))
    req = report.requests[report.requests["status"] == "finished"]
    assert r["completed"] == len(req)
    assert r["mean_ttft_ms"] == pytest.approx(req["ttft_s"].mean() * 1e3)
    assert r["median_e2el_ms"] == pytest.approx(np.median(req["e2e_s"]) * 1e3)
    assert r["std_ttft_ms"] == pytest.approx(np.std(req["ttft_s"].to_numpy()) * 1e3)  # ddof 0
    tpot = (req["e2e_s"] - req["ttft_s"]) / (req["output_tokens"] - 1)
    assert r["p90_tpot_ms"] == pytest.approx(np.percentile(tpot, 90) * 1e3)
    gaps = report.itls["itl_s"].to_numpy()  # every gap of every request, pooled
    assert r["mean_itl_ms"] == pytest.approx(gaps.mean() * 1e3)
    assert r["total_token_throughput"] == pytest.approx(
        (req["input_tokens"].sum() + req["output_tokens"].sum()) / r["duration"])
    assert r["request_goodput"] <= r["request_throughput"]


def test_itl_from_the_histogram_is_within_a_bin_of_the_exact(report):
    from llmsim.serving.vllm_bench import vllm_bench_metrics

    exact = vllm_bench_metrics(report, (50, 99))
    report_no_gaps = type(report)(report.summary(), {c: report.requests[c].to_numpy()
                                                     for c in report.requests.columns},
                                  report.timeseries, report.itl_hist)
    approx = vllm_bench_metrics(report_no_gaps, (50, 99))
    for key in ("mean_itl_ms", "median_itl_ms", "p99_itl_ms"):
        assert approx[key] == pytest.approx(exact[key], rel=0.01), key
    assert approx["std_itl_ms"] == pytest.approx(exact["std_itl_ms"], rel=0.05)


def test_simulate_metrics_vllm_and_percentiles(cli):
    res = cli("simulate", *FLAGS, "--metrics", "vllm", "--percentiles", "50,90,99",
              "--format", "json")
    assert res.code == 0, res.err
    d = res.json()
    assert {"p50_ttft_ms", "p90_tpot_ms", "p99_itl_ms", "std_e2el_ms"} <= set(d)
    assert "p99.9_ttft_ms" not in d
    bad = cli("simulate", *FLAGS, "--metrics", "vllm", "--percentiles", "0,101")
    assert bad.code == 2 and "--percentiles" in bad.err


def test_compare_puts_the_prediction_next_to_the_measured_values(cli):
    measured = json.loads(FIXTURE.read_text())
    res = cli("compare", "--measured", str(FIXTURE), *FLAGS, "--format", "json")
    assert res.code == 0, res.err
    rows = {r["metric"]: r for r in res.json()["rows"]}
    # every number of the vLLM result with a prediction, at the percentiles the file reports
    for key in ("request_throughput", "output_throughput", "total_token_throughput",
                "mean_ttft_ms", "p50_ttft_ms", "p90_itl_ms", "p99_e2el_ms", "std_tpot_ms"):
        assert rows[key]["measured"] == pytest.approx(measured[key])
    assert "request_goodput" not in rows  # null in the measured file: nothing to compare
    predicted = cli("simulate", *FLAGS, "--metrics", "vllm", "--percentiles", "50,90,99",
                    "--format", "json").json()
    for key, row in rows.items():
        assert row["predicted"] == pytest.approx(predicted[key]), key
        if row["measured"]:
            assert row["error_pct"] == pytest.approx(
                (row["predicted"] / row["measured"] - 1) * 100)
    table = cli("compare", "--measured", str(FIXTURE), *FLAGS)
    assert table.code == 0 and "mean_ttft_ms" in table.out and "error" in table.out


def test_compare_reads_the_old_goodput_spelling_and_rejects_other_files(cli, tmp_path):
    from llmsim.serving.vllm_bench import read_vllm_result

    old = json.loads(FIXTURE.read_text())
    old["request_goodput:"] = old.pop("request_goodput")
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert "request_goodput" in read_vllm_result(str(path))
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    res = cli("compare", "--measured", str(other), *FLAGS)
    assert res.code == 2 and "vLLM benchmark keys" in res.err
    assert cli("compare", "--measured", str(tmp_path / "nope.json"), *FLAGS).code == 2
