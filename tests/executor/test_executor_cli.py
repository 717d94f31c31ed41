"""``llmsim executor run|check|presets`` end to end on the CPU, and the no-torch error."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

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
    assert "pip install 'llmsim[executor]'" in proc.stderr
    # and importing the package does not import torch
    code = ("import sys, llmsim.executor, llmsim.moe_offload, llmsim.cli.executor_cmd; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_torch
def test_measure_machine_quick(tiny):
    import torch

    from llmsim.executor.measure import measure_machine
    from llmsim.moe_offload import Platform

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
