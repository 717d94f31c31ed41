"""``llmsim simulate`` end to end: JSON summary keys, output folder, config files, bad input
(exit code 2 and one line)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from llmsim.cli.app import app

REQUIRED = ("num_requests", "num_completed", "num_rejected", "duration_s", "requests_per_s",
            "output_tokens_per_s", "goodput_requests_per_s")
LATENCIES = ("ttft_s", "tpot_s", "itl_s", "e2e_s")
BASE = ["simulate", "--model", "llama-3.1-8b", "--hardware", "h100-sxm"]


def run(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def run_main(args: list[str]) -> subprocess.CompletedProcess:
    """Through the console entry point (exit code 2 + one line for user errors)."""
    return subprocess.run([sys.executable, "-c", "from llmsim.cli.app import main; main()",
                           *args], capture_output=True, text=True, timeout=120)


def test_json_summary_has_the_required_keys(azure_sample):
    res = run([*BASE, "--trace", azure_sample, "--num-requests", "300", "--format", "json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    for key in REQUIRED:
        assert isinstance(s[key], (int, float)), key
    for key in LATENCIES:
        assert set(s[key]) >= {"mean", "p50", "p90", "p95", "p99"}
        assert s[key]["p50"] <= s[key]["p99"]
    assert s["num_requests"] == 300 and s["num_completed"] + s["num_rejected"] == 300


def test_out_dir_files_complete(tmp_path, azure_sample):
    out = tmp_path / "run"
    res = run([*BASE, "--trace", azure_sample, "--num-requests", "200", "--scheduler",
               "continuous", "--out", str(out), "--chrome-trace", "--requests-format",
               "parquet"])
    assert res.exit_code == 0, res.output
    assert "TTFT" in res.output and "goodput" in res.output
    for name in ("summary.json", "requests.parquet", "timeseries.csv", "latency_cdf.png",
                 "timeseries.png", "trace.json", "config.yaml"):
        assert (out / name).stat().st_size > 0, name
    req = pd.read_parquet(out / "requests.parquet")
    assert len(req) == 200 and {"ttft_s", "tpot_s", "e2e_s", "itl_max_s"} <= set(req.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_requests"] == 200
    ts = pd.read_csv(out / "timeseries.csv")
    assert {"time_s", "waiting", "running", "kv_usage_frac", "output_tokens_per_s"} <= set(
        ts.columns)
    trace = json.loads((out / "trace.json").read_text())
    assert any(e.get("ph") == "X" for e in trace["traceEvents"])


def test_synthetic_workload_flags():
    res = run([*BASE, "--arrival", "gamma", "--rate", "4", "--cv", "2", "--num-requests",
               "200", "--prompt-dist", "lognormal:mean=500,cv=1", "--output-dist",
               "uniform:10,100", "--seed", "3", "--scheduler", "chunked", "--format", "json",
               "--slo-ttft", "0.5", "--slo-tpot", "0.05"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["workload"]["arrival"].startswith("gamma")
    assert s["slo"] == {"ttft_s": 0.5, "tpot_s": 0.05}


def test_config_file_and_flag_override(tmp_path, azure_sample):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(f"""
model: llama-3.1-8b
hardware: {{name: h100-sxm}}
parallelism: {{tp: 1, replicas: 2, router: least-outstanding}}
scheduler: {{name: continuous, max_num_seqs: 64}}
workload: {{trace: {azure_sample}, num_requests: 150}}
""")
    res = run(["simulate", "--config", str(cfg), "--scheduler", "chunked", "--format", "json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["scheduler"] == "chunked" and s["replicas"] == 2 and s["max_num_seqs"] == 64
    assert s["num_gpus"] == 2


@pytest.mark.parametrize("args,needle", [
    (["--scheduler", "chunkd", "--rate", "1"], "Did you mean 'chunked'"),
    (["--router", "round-robbin", "--rate", "1", "--replicas", "2"], "round-robin"),
    (["--arrival", "poison", "--rate", "1"], "poisson"),
    (["--prompt-dist", "lognormal:mean=-5", "--rate", "1"], "mean must be > 0"),
])
def test_bad_names_exit_2_with_one_line(args, needle):
    p = run_main([*BASE, *args, "--num-requests", "5"])
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], p.stderr


def test_bad_trace_exit_2_names_file_line_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("input_tokens,output_tokens\n100,20\n50,-4\n")
    p = run_main([*BASE, "--trace", str(bad)])
    assert p.returncode == 2
    assert "bad.csv: line 3, column 'output_tokens': negative" in p.stderr
    missing = tmp_path / "m.csv"
    missing.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46,3\n")
    p = run_main([*BASE, "--trace", str(missing), "--trace-format", "azure"])
    assert p.returncode == 2 and "missing column(s) 'GeneratedTokens'" in p.stderr


def test_model_that_does_not_fit_fails_before_the_run():
    p = run_main(["simulate", "--model", "llama-3.1-405b", "--hardware", "h100-sxm",
                  "--rate", "1", "--num-requests", "5"])
    assert p.returncode == 2
    assert "weights need" in p.stderr and "try" in p.stderr


def test_requests_too_long_are_rejected_and_counted(tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("input_tokens,output_tokens,arrival_time_s\n100,10,0\n"
                     "130000,5000,0.1\n200,10,0.2\n")
    res = run([*BASE, "--trace", str(trace), "--format", "json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["num_completed"] == 2 and s["num_rejected"] == 1
    assert s["rejected_by_reason"]["context_length"] == 1
    p = run_main([*BASE, "--trace", str(trace), "--max-model-len", "140000"])
    assert p.returncode == 2 and "exceeds the model's context" in p.stderr
    # a KV cache of ~52k tokens (30% of the memory): the 60k-token request cannot fit
    trace.write_text("input_tokens,output_tokens,arrival_time_s\n100,10,0\n"
                     "60000,100,0.1\n")
    res = run([*BASE, "--trace", str(trace), "--memory-utilization", "0.3", "--format",
               "json"])
    s = json.loads(res.output)
    assert s["rejected_by_reason"]["kv_capacity"] == 1 and s["num_completed"] == 1
    assert s["kv_capacity_tokens_per_replica"] < 60000


def test_config_unknown_key_did_you_mean(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: llama-3.1-8b\nhardware: h100-sxm\nscheduler: {max_num_seq: 4}\n")
    p = run_main(["simulate", "--config", str(cfg), "--rate", "1"])
    assert p.returncode == 2
    assert "did you mean 'max_num_seqs'" in p.stderr


SCENARIO = """
name: tiny-dense-on-h100
hardware: h100-sxm
num_gpus: 2
model:
  hidden_size: 2048
  vocab_size: 32000
  max_position_embeddings: 8192
  layers:
    - name: dense
      repeat: 4
      blocks:
        - {type: attention, num_heads: 16, num_kv_heads: 4, head_dim: 128}
        - {type: ffn, intermediate_size: 8192}
parallel: {tp: 2}
"""


def test_scenario_file(tmp_path):
    p = tmp_path / "scenario.yaml"
    p.write_text(SCENARIO)
    res = run(["simulate", "--scenario", str(p), "--rate", "5", "--num-requests", "50",
               "--format", "json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output)
    assert s["model"] == "tiny-dense-on-h100" and s["tp"] == 2 and s["num_completed"] == 50


@pytest.mark.parametrize("extra,needle", [
    (["--think-time", "1"], "closed-loop clients only"),
    (["--shared-prefix", "5000", "--prompt-dist", "1000"], "not shorter than any prompt"),
])
def test_flags_that_would_be_ignored_are_errors(cli, extra, needle):
    res = cli("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--num-requests", "20",
              "--rate", "2", *extra)
    assert res.code == 2 and needle in res.err and len(res.err.strip().splitlines()) == 1


def test_csv_format_prints_the_request_table_and_rate_overrides_trace_times(cli, tmp_path):
    res = cli("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--num-requests", "20",
              "--rate", "2", "--format", "csv")
    assert res.code == 0 and res.out.startswith("request_id,") and len(res.out.splitlines()) == 21
    js = cli("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--trace", "azure-conv",
             "--rate", "3", "--num-requests", "50", "--format", "json").json()
    assert js["workload"]["arrival"].startswith("poisson 3")
    blocker = tmp_path / "f"
    blocker.write_text("x")
    out = cli("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--num-requests", "5",
              "--rate", "2", "--out", str(blocker))
    assert out.code == 2 and "is a file" in out.err
