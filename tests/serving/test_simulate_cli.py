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
    # beyond the trained context when told (vLLM --max-model-len with rope scaling): served
    p = run_main([*BASE, "--trace", str(trace), "--max-model-len", "140000", "--format", "json"])
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["rejected_by_reason"]["context_length"] == 0
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
              "--rate", "2", "--format", "csv", "--requests")  # the summary row without it
    assert res.code == 0 and res.out.startswith("request_id,") and len(res.out.splitlines()) == 21
    js = cli("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--trace", "azure-conv",
             "--rate", "3", "--num-requests", "50", "--format", "json").json()
    assert js["workload"]["arrival"].startswith("poisson 3")
    blocker = tmp_path / "f"
    blocker.write_text("x")
    out = cli("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--num-requests", "5",
              "--rate", "2", "--out", str(blocker))
    assert out.code == 2 and "is a file" in out.err


# ---------------------------------------------------------------- acceptance-review fixes
SIM = ("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--num-requests", "20")


def one_line_error(res, needle: str) -> None:
    assert res.code == 2, (res.out, res.err)
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], res.err


def test_out_folder_that_cannot_be_made_fails_before_the_run(cli, tmp_path, monkeypatch):
    import llmsim.serving.run as simulator

    def must_not_run(*_a, **_k):
        raise AssertionError("the simulation ran before the --out folder was checked")

    monkeypatch.setattr(simulator, "simulate", must_not_run)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    res = cli(*SIM, "--rate", "2", "--out", str(blocker / "sub"))
    one_line_error(res, f"cannot create the --out folder {blocker / 'sub'}: Not a directory")
    one_line_error(cli(*SIM, "--rate", "2", "--out", str(blocker)), "is a file")


def test_out_folder_is_checked_but_not_created_before_the_run(cli, tmp_path, monkeypatch):
    """An interrupted or failed run leaves nothing behind (the bundle is swapped in whole at
    the end: tests/serving/test_bundle.py)."""
    import llmsim.serving.run as simulator

    out = tmp_path / "a" / "b"
    seen = []

    def check_then_fail(*_a, **_k):
        seen.append(out.parent.exists())
        raise SystemExit(0)

    monkeypatch.setattr(simulator, "simulate", check_then_fail)
    cli(*SIM, "--rate", "2", "--out", str(out))
    assert seen == [False]


@pytest.mark.parametrize("seed", ["-1", str(2**63)])
def test_seed_out_of_range_is_a_validation_error(cli, tmp_path, seed):
    one_line_error(cli(*SIM, "--rate", "2", "--seed", seed),
                   "seed must be an integer in 0..2**63-1")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: llama-3.1-8b\nhardware: h100-sxm\n"
                   f"workload: {{rate: 2, seed: {seed}}}\n")
    one_line_error(cli("simulate", "--config", str(cfg)), "seed must be an integer in 0..2**63-1")


def test_replicas_count_against_the_gpus_given(cli, tmp_path):
    res = cli("simulate", "-m", "llama-3.1-8b", "--cluster", "dgx-h100", "--num-gpus", "8",
              "--tp", "4", "--replicas", "4", "--rate", "2", "-n", "10")
    one_line_error(res, "tp 4 x pp 1 x replicas 4 = 16 GPUs; use --replicas 2 or --num-gpus 16")
    ok = cli("simulate", "-m", "llama-3.1-8b", "--cluster", "dgx-h100", "--num-gpus", "8",
             "--tp", "4", "--replicas", "2", "--rate", "2", "-n", "10", "--format", "json")
    assert ok.code == 0, ok.err
    assert ok.json()["num_gpus"] == 8 and ok.json()["replicas"] == 2
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: llama-3.1-8b\nhardware: {cluster: dgx-h100, num_gpus: 8}\n"
                   "parallelism: {tp: 16, replicas: 2}\nworkload: {rate: 2, num_requests: 10}\n")
    res = cli("simulate", "--config", str(cfg))
    one_line_error(res, "tp 16 x pp 1 x replicas 2 = 32 GPUs")
    assert "dp 1" not in res.err


def test_progress_flag_prints_lines_on_a_non_tty_stderr(cli):
    res = cli(*SIM, "--rate", "2", "--progress", "--format", "json")
    assert res.code == 0, res.err
    lines = [ln for ln in res.err.splitlines() if ln.startswith("simulating:")]
    assert len(lines) >= 5 and "20/20 requests done (100%)" in lines[-1], res.err
    quiet = cli(*SIM, "--rate", "2", "--format", "json")
    assert quiet.code == 0 and quiet.err == ""


@pytest.mark.parametrize("extra,needle", [
    (["--trace", "azure-conv", "--prompt-dist", "100"], "--prompt-dist / --output-dist"),
    (["--trace", "azure-conv", "--output-dist", "100"], "its own lengths are replayed"),
    (["--arrival", "batch"], "--rate (workload.rate) is ignored by --arrival batch"),
    (["--cv", "2"], "--cv (workload.cv) applies to gamma arrivals only"),
    (["--batch-window", "0.1"], "--batch-window (scheduler.batch_window_s) applies to the "
                                "dynamic scheduler only, not chunked"),
    (["--scheduler", "continuous", "--swap-space", "2"], "--swap-space"),
    (["--preemption", "recompute", "--swap-space", "2"], "only used with --preemption swap"),
    (["--chrome-trace"], "--chrome-trace (metrics.chrome_trace) writes a file into the --out"),
    (["--save-itls"], "--save-itls (metrics.save_itls) writes a file into the --out-dir folder"),
    (["--micro-batches", "2"], "--micro-batches 2"),
])
def test_more_flags_that_would_be_ignored_are_errors(cli, extra, needle):
    one_line_error(cli(*SIM, "--rate", "2", *extra), needle)


def test_the_same_knobs_in_flags_that_are_used_run(cli):
    for extra in (["--scheduler", "dynamic", "--batch-window", "0.1"],
                  ["--preemption", "swap", "--swap-space", "2"],
                  ["--arrival", "gamma", "--cv", "2"]):
        res = cli(*SIM, "--rate", "2", "--format", "json", *extra)
        assert res.code == 0, (extra, res.err)
    assert cli(*SIM[:-2], "--num-requests", "5", "--arrival", "batch", "--format",
               "json").code == 0


@pytest.mark.parametrize("yaml_text,needle", [
    ("workload: {trace: azure-conv, prompt: 'fixed:100'}", "its own lengths are replayed"),
    ("workload: {arrival: batch, rate: 5}", "ignored by --arrival batch"),
    ("workload: {rate: 2}\nscheduler: {name: continuous, batch_window_s: 100 ms}",
     "dynamic scheduler only, not continuous"),
    ("workload: {rate: 2}\nscheduler: {swap_space_bytes: 8 GiB}", "--preemption swap"),
    ("workload: {rate: 2}\nmetrics: {chrome_trace: true}", "add --out-dir DIR"),
    ("workload: {rate: 2}\nslo: {ttft_s: -1}", "slo.ttft_s: Input should be greater than 0"),
    ("workload: {rate: 2}\nslo: {tpot_s: 0}", "slo.tpot_s: Input should be greater than 0"),
])
def test_config_file_knobs_that_would_be_ignored_are_errors(cli, tmp_path, yaml_text, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: llama-3.1-8b\nhardware: h100-sxm\n{yaml_text}\n")
    one_line_error(cli("simulate", "--config", str(cfg), "--num-requests", "10"), needle)


def test_no_kv_room_suggests_memory_utilization(cli):
    one_line_error(cli(*SIM, "--rate", "2", "--memory-utilization", "0.2"),
                   "raise --memory-utilization (now 0.2)")


def test_blank_trace_cell_message_is_plain(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("input_tokens,output_tokens\n100,20\n,5\n")
    res = cli(*SIM, "--trace", str(trace))
    one_line_error(res, "line 3, column 'input_tokens': missing or empty; every request needs "
                        "a token count")
    assert "np.float64" not in res.err and "nan" not in res.err


def test_save_itls_writes_every_gap(cli, tmp_path):
    out = tmp_path / "run"
    res = cli(*SIM, "--rate", "5", "--output-dist", "uniform:1,40", "--out", str(out),
              "--save-itls", "--no-plots", "--requests-format", "parquet")
    assert res.code == 0, res.err
    itls = pd.read_parquet(out / "itls.parquet")
    req = pd.read_parquet(out / "requests.parquet")
    assert list(itls.columns) == ["request_id", "token_index", "itl_s"]
    assert len(itls) == int((req.output_tokens - 1).sum())
    per_req = itls.groupby("request_id").itl_s
    multi = req[req.output_tokens > 1].set_index("request_id")
    assert per_req.max().to_numpy() == pytest.approx(multi.itl_max_s.to_numpy(), rel=1e-9)
    assert per_req.sum().to_numpy() == pytest.approx((multi.e2e_s - multi.ttft_s).to_numpy(),
                                                     rel=1e-9)
    plain = tmp_path / "plain"
    assert cli(*SIM, "--rate", "5", "--out", str(plain), "--no-plots").code == 0
    assert not (plain / "itls.csv").exists()


def test_written_config_runs_again_from_another_folder(cli, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("input_tokens,output_tokens,arrival_time_s\n"
                                             "100,10,0\n200,20,0.5\n")
    monkeypatch.chdir(tmp_path)
    first = cli("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--trace", "data/t.csv",
                "--out", "run", "--no-plots", "--format", "json")
    assert first.code == 0, first.err
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    again = cli("simulate", "--config", "../run/config.yaml", "--format", "json")
    assert again.code == 0, again.err
    assert again.json()["num_completed"] == first.json()["num_completed"] == 2
