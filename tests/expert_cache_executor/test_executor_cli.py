"""``llmsim executor run|check|presets`` end to end on the CPU, and the no-torch error."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from llmsim.errors import ConfigError

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="needs PyTorch (pip install 'llmsim[executor]')")


@needs_torch
def test_run_json_end_to_end(cli, tmp_path):
    trace = tmp_path / "routing.jsonl"
    res = cli("executor", "run", "--config", "tiny", "--device", "cpu", "--repeats", "2",
              "--decode-steps", "3", "--routing-trace-out", str(trace), "--format", "json")
    assert res.code == 0, res.err
    d = res.json()
    assert d["device"] == "cpu" and d["dtype"] == "fp32" and d["routing"] == "router"
    assert d["kv_len"] == 16 + 3 and len(d["generated"]) == 4
    assert d["prefill_s"] > 0 and d["decode_s_per_token"] > 0 and d["tokens_per_s"] > 0
    assert d["hits"] + d["misses"] > 0 and 0 <= d["hit_rate"] <= 1
    assert len(d["prefill_layer_s"]) == len(d["decode_layer_s"]) == 2
    # the recorded routing replays in the simulator with identical hit accounting
    sim = cli("moe-offload", "simulate", "--model", "tiny", "--routing", str(trace),
              "--cache-capacity", "3", "--prefetch", "2", "--format", "json")
    assert sim.code == 0, sim.err
    assert sim.json()["hit_rate"] == pytest.approx(d["hit_rate"])


@needs_torch
def test_run_table_and_presets(cli):
    res = cli("executor", "run", "--config", "tiny", "--device", "cpu", "--repeats", "1",
              "--decode-steps", "2", "--miss", "cpu", "--routing", "zipf:1.0")
    assert res.code == 0, res.err
    assert "decode per token" in res.out and "per layer" in res.out
    presets = cli("executor", "presets", "--format", "json").json()["presets"]
    big = next(p for p in presets if p["name"] == "gpu-default")
    assert (big["hidden_size"], big["num_layers"], big["num_experts"], big["top_k"],
            big["capacity"], big["prefetch_accuracy"], big["prompt_tokens"],
            big["decode_steps"]) == (4096, 10, 64, 4, 8, 0.8, 256, 10)


@needs_torch
def test_check_on_the_tiny_preset(cli):
    res = cli("executor", "check", "--config", "tiny", "--device", "cpu", "--quick",
              "--repeats", "2", "--threads", "1", "--format", "json")
    assert res.code == 0, res.err
    d = res.json()
    for part in ("measured", "predicted", "error_frac"):
        assert set(d[part]) >= {"prefill_s", "decode_s_per_token", "hit_rate"}
    for key in ("prefill_s", "decode_s_per_token"):
        assert d["measured"][key] > 0 and d["predicted"][key] > 0
        err = d["error_frac"][key]
        assert err == pytest.approx((d["predicted"][key] - d["measured"][key])
                                    / d["measured"][key])
    # replaying the executor's own routing reproduces its hit rate exactly
    assert d["predicted_replay"]["hit_rate"] == pytest.approx(d["measured"]["hit_rate"])
    assert d["machine"]["matmul_flops_per_s"] > 0
    table = cli("executor", "check", "--config", "tiny", "--device", "cpu", "--quick",
                "--repeats", "1", "--threads", "1", "--routing", "uniform")
    assert table.code == 0, table.err
    assert "closed loop" in table.out and "decode / token" in table.out


@needs_torch
def test_bad_input_exits_2(cli):
    res = cli("executor", "run", "--config", "tiny", "--device", "tpu")
    assert res.code == 2 and "unknown device" in res.err
    res = cli("executor", "run", "--config", "nope", "--device", "cpu")
    assert res.code == 2 and res.err.count("\n") == 1
    res = cli("executor", "run", "--config", "tiny", "--device", "cpu", "--policy", "mru")
    assert res.code == 2 and "cache policy" in res.err
    res = cli("executor", "run", "--config", "tiny", "--device", "cpu", "--cache-capacity", "99")
    assert res.code == 2 and "exceeds" in res.err


def test_without_torch_one_line_and_exit_2():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from llmsim.cli.app import main\n"
            "main(['executor', 'run', '--device', 'cpu'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "make install-torch" in proc.stderr
    # and importing the package does not import torch
    code = ("import sys, llmsim.expert_cache_executor, llmsim.expert_cache, "
            "llmsim.cli.executor_cmd; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_torch
def test_measure_machine_quick(tiny):
    import torch

    from llmsim.expert_cache import Platform
    from llmsim.expert_cache_executor.measure import measure_machine

    m = measure_machine(tiny.model, "cpu", torch.float32, quick=True, max_tokens=16)
    assert m.matmul_flops_per_s > 1e8 and m.memory_bandwidth_bytes_per_s > 1e8
    assert m.h2d_bandwidth_bytes_per_s > 1e8 and 0 < m.gemm_memory_eff <= 1.2
    assert all(v >= 0 for v in m.launch_s.values())
    hw, host = m.hardware_spec(), m.host_spec()
    assert hw.memory_bandwidth_bytes_per_s == m.memory_bandwidth_bytes_per_s
    assert host.h2d_bandwidth_bytes_per_s == m.h2d_bandwidth_bytes_per_s
    platform = m.platform()
    assert isinstance(platform, Platform)
    assert not platform.async_copy and not platform.concurrent_host
    prof = m.profile().for_hardware(hw)
    assert prof.kernel("gemm").launch_s == m.launch_s["gemm"]
    json.dumps(m.as_dict())


# --------------------------------------------------------------- acceptance-review fixes
@pytest.fixture
def no_measuring(monkeypatch):
    """Fail the test if the slow part (measurement, executor build) is reached."""
    if importlib.util.find_spec("torch") is None:
        return

    def boom(*args, **kwargs):
        raise AssertionError("reached the slow part before rejecting the flags")

    import llmsim.expert_cache_executor.closed_loop as check
    import llmsim.expert_cache_executor.runner as runner

    monkeypatch.setattr(check, "measure_machine", boom)
    monkeypatch.setattr(check, "build_executor", boom)
    monkeypatch.setattr(runner, "build_executor", boom)


@pytest.mark.parametrize("command", ["run", "check"])
@pytest.mark.parametrize("seed", ["-1", "99999999999999999999"])
def test_seed_out_of_range_rejected_up_front(cli, no_measuring, command, seed):
    res = cli("executor", command, "--config", "tiny", "--device", "cpu", "--seed", seed)
    assert res.code == 2
    assert res.err == f"error: --seed must be an integer in 0..2**63-1, got {seed}\n"


@needs_torch
def test_seed_checked_in_the_python_api(no_measuring, tiny):
    from llmsim.expert_cache_executor import run_benchmark, run_check

    bad = tiny.offload.model_construct(**{**tiny.offload.model_dump(), "seed": -1})
    for call in (run_benchmark, run_check):
        with pytest.raises(ConfigError, match="--seed must be an integer in 0..2"):
            call("tiny", bad, device="cpu")


@pytest.mark.parametrize("args, message", [
    (["check", "--sim-routing", "bogus"], "--sim-routing: unknown routing distribution 'bogus'"),
    (["check", "--routing", "zipf:1", "--sim-routing", "uniform"],
     "--sim-routing applies only with --routing router"),
    (["check", "--routing", "trace:missing.jsonl"], "routing trace 'missing.jsonl' not found"),
    (["run", "--routing", "zipf"], "zipf exponent"),
    (["check", "--miss", "disk"], "--miss must be fetch or cpu"),
    (["check", "--policy", "mru"], "cache policy"),
])
def test_cheap_flags_rejected_before_measuring(cli, no_measuring, args, message):
    res = cli("executor", *args, "--config", "tiny", "--device", "cpu")
    assert res.code == 2, res.out
    assert message in res.err and res.err.count("\n") == 1


@needs_torch
def test_context_checked_before_measuring(cli, no_measuring):
    for command in ("run", "check"):
        res = cli("executor", command, "--config", "tiny", "--device", "cpu", "--prompt", "5000")
        assert res.code == 2
        assert "exceeds moe-tiny's context of 4096" in res.err


@pytest.mark.parametrize("command", ["run", "check"])
def test_csv_is_not_offered_and_rejected_up_front(cli, no_measuring, command):
    helptext = cli("executor", command, "--help").out
    assert "[table|json]" in helptext.replace(" ", "") or "table|json" in helptext
    assert "csv" not in helptext
    res = cli("executor", command, "--config", "tiny", "--device", "cpu", "--format", "csv")
    assert res.code == 2 and "'csv' is not one of" in res.err


def test_presets_csv_and_narrow_table(cli, monkeypatch):
    csv = cli("executor", "presets", "--format", "csv")
    assert csv.code == 0
    lines = csv.out.splitlines()
    assert lines[0].startswith("name,") and {line.split(",")[0] for line in lines[1:]} == {
        "gpu-default", "cpu-small", "tiny"}
    monkeypatch.setenv("COLUMNS", "80")
    table = cli("executor", "presets")
    assert "gpu-default" in table.out and "…" not in table.out
    assert all(len(line) <= 80 for line in table.out.splitlines())


@needs_torch
def test_zero_decode_steps_reports_null_not_zero(cli):
    args = ("executor", "run", "--config", "tiny", "--device", "cpu", "--repeats", "1",
            "--decode-steps", "0")
    res = cli(*args, "--format", "json")
    assert res.code == 0, res.err
    d = res.json()
    for key in ("decode_s_per_token", "decode_s_per_token_median", "tokens_per_s",
                "decode_hit_rate"):
        assert d[key] is None, key
    assert d["prefill_s"] > 0 and d["decode_steps"] == 0
    table = cli(*args)
    assert table.code == 0, table.err
    assert "n/a (0 decode steps)" in table.out and "decode n/a" in table.out


@needs_torch
def test_routing_trace_prefix_in_the_executor(cli, tmp_path):
    trace = tmp_path / "r.jsonl"
    first = cli("executor", "run", "--config", "tiny", "--device", "cpu", "--repeats", "1",
                "--decode-steps", "2", "--routing-trace-out", str(trace), "--format", "json")
    assert first.code == 0, first.err
    again = cli("executor", "run", "--config", "tiny", "--device", "cpu", "--repeats", "1",
                "--routing", f"trace:{trace}", "--format", "json")
    assert again.code == 0, again.err
    d = again.json()
    assert d["decode_steps"] == 2 and d["hit_rate"] == first.json()["hit_rate"]


@needs_torch
def test_profile_dir_that_cannot_be_made_fails_before_the_run(cli, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    res = cli("executor", "run", "--config", "tiny", "--device", "cpu", "--repeats", "1",
              "--profile-dir", str(blocker / "sub"))
    assert res.code == 2 and res.err.startswith("error: cannot create the --profile-dir folder")
    assert res.err.count("\n") == 1
