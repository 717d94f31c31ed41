"""``llmsim offload solve|evaluate`` end to end (in-process): JSON keys and values, tables, and
one-line errors with exit code 2."""

from __future__ import annotations

import pytest

POLICY_KEYS = {"gpu_batch_size", "num_gpu_batches", "w_gpu_frac", "w_cpu_frac",
               "cache_gpu_frac", "cache_cpu_frac", "act_gpu_frac", "act_cpu_frac"}


def test_solve_json_end_to_end(cli):
    res = cli("offload", "solve", "--model", "facebook/opt-30b", "--prompt-len", "512",
              "--gen-len", "32", "--gpu-mem", "16", "--cpu-mem", "200", "--nvme-mem", "1500",
              "--hardware", "t4", "--host", "gcp-t4-flexgen", "--format", "json")
    assert res.code == 0, res.err
    data = res.json()
    for key in ("feasible", "throughput_tokens_per_s", "policy", "peak_gpu_bytes",
                "peak_cpu_bytes", "peak_disk_bytes"):
        assert key in data
    assert set(data["policy"]) >= POLICY_KEYS
    assert data["feasible"] is True
    assert data["throughput_tokens_per_s"] > 0
    # GiB flags (as FlexGen's): the GPU limit is alpha_g x 16 GiB
    assert data["limit_bytes"]["gpu"] == pytest.approx(0.9 * 16 * 2**30)
    assert data["peak_gpu_bytes"] <= data["limit_bytes"]["gpu"] * (1 + 1e-6)
    assert data["peak_cpu_bytes"] <= data["limit_bytes"]["cpu"] * (1 + 1e-6)
    assert data["peak_disk_bytes"] <= data["limit_bytes"]["disk"] * (1 + 1e-6)
    assert data["stages"]["decode"]["bound"] in ("ctog", "gtoc", "dtoc", "ctod", "compute")
    assert set(data["peak_bytes"]) == {"prefill", "decode"}


def test_issue_example_mixtral_defaults_to_the_flexgen_t4_box(cli):
    res = cli("offload", "solve", "--model", "mistralai/Mixtral-8x7B-Instruct-v0.1",
              "--prompt-len", "512", "--gen-len", "32", "--gpu-mem", "16", "--cpu-mem", "200",
              "--nvme-mem", "1500", "--format", "json")
    assert res.code == 0, res.err
    data = res.json()
    assert data["hardware"] == "t4" and data["host"] == "gcp-t4-flexgen"
    assert data["feasible"] and data["throughput_tokens_per_s"] > 0


def test_evaluate_json_and_table(cli):
    args = ("offload", "evaluate", "--model", "opt-175b", "--gpu-batch-size", "32",
            "--num-gpu-batches", "8", "--percent", "0", "50", "0", "0", "0", "100",
            "--cpu-cache-compute", "--gpu-mem", "16", "--cpu-mem", "200", "--nvme-mem", "1500")
    res = cli(*args, "--format", "json")
    assert res.code == 0, res.err
    data = res.json()
    p = data["policy"]
    assert (p["gpu_batch_size"], p["num_gpu_batches"]) == (32, 8)
    assert p["w_cpu_frac"] == pytest.approx(0.5) and p["w_disk_frac"] == pytest.approx(0.5)
    assert p["cache_disk_frac"] == pytest.approx(1.0) and p["cpu_cache_compute"] is True
    assert data["block_size"] == 256
    assert data["peak_disk_bytes"] > 0.5 * data["weight_bytes"]
    table = cli(*args)
    assert table.code == 0
    assert "placement" in table.out and "peak memory" in table.out


def test_evaluate_infeasible_policy_reports_reason(cli):
    res = cli("offload", "evaluate", "--model", "opt-30b", "--gpu-batch-size", "4",
              "--format", "json")
    assert res.code == 0
    data = res.json()
    assert data["feasible"] is False
    assert "gpu peak" in data["reason"]


def test_compression_flags_reach_the_policy(cli):
    res = cli("offload", "evaluate", "--model", "opt-6.7b", "--gpu-batch-size", "8",
              "--compress-w", "--compress-cache", "--format", "json")
    assert res.code == 0, res.err
    p = res.json()["policy"]
    assert p["compress_weight"] is True and p["compress_cache"] is True


@pytest.mark.parametrize("argv, needle", [
    (("solve", "--model", "opt-175b", "--cpu-mem", "10", "--nvme-mem", "100"),
     "disk tier is short by"),
    (("solve", "--model", "opt-30b", "--gpu-mem", "-1"), "--gpu-mem must be > 0"),
    (("solve", "--model", "opt-30b", "--cpu-mem", "0"), "--cpu-mem must be > 0"),
    (("evaluate", "--model", "opt-30b", "--gpu-batch-size", "4", "--percent", "60", "50", "0",
      "100", "0", "100"), "<= 100%"),
    (("evaluate", "--model", "opt-30b", "--gpu-batch-size", "0"), "gpu_batch_size"),
    (("evaluate", "--model", "opt-30b"), "--gpu-batch-size"),
    (("solve", "--model", "no-such-model"), "unknown model"),
])
def test_bad_input_exits_2_with_one_line(cli, argv, needle):
    res = cli("offload", *argv)
    assert res.code == 2
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert needle in lines[0]


def test_runtime_pinning_and_host_efficiency_reach_the_json(cli):
    args = ("offload", "evaluate", "--model", "opt-30b", "--gpu-batch-size", "48",
            "--num-gpu-batches", "3", "--percent", "20", "80", "0", "100", "0", "100",
            "--format", "json")
    flex = cli(*args)
    assert flex.code == 0, flex.err
    data = flex.json()
    assert data["runtime"] == "flexgen" and data["policy"]["pin_weight"] is True
    eff = data["system"]["host_efficiency"]
    assert eff["from"] == "gcp-t4-flexgen" and 0 < eff["pageable_eff"] < 1
    fused = cli(*args, "--runtime", "fused", "--no-pin-weight", "--h2d-bw", "12")
    assert fused.code == 0, fused.err
    other = fused.json()
    assert other["runtime"] == "fused" and other["policy"]["pin_weight"] is False
    assert other["system"]["host_efficiency"]["h2d_eff"] == 1.0  # a given rate is achieved
    assert other["system"]["h2d_bytes_per_s"] == pytest.approx(12e9)


def test_solve_rejects_slack_above_one_but_evaluate_allows_flexgen_style(cli):
    res = cli("offload", "solve", "--model", "opt-6.7b", "--alpha-g", "2")
    assert res.code == 2 and "--alpha-g must be in (0, 1]" in res.err
    ok = cli("offload", "evaluate", "--model", "opt-30b", "--gpu-batch-size", "48",
             "--num-gpu-batches", "3", "--percent", "20", "80", "0", "100", "0", "100",
             "--cpu-cache-compute", "--alpha-g", "1.2", "--alpha-c", "1.2", "--format", "json")
    assert ok.code == 0, ok.err
