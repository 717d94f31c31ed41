"""``llmsim offload solve|evaluate`` end to end (in-process): JSON keys and values, tables, and
one-line errors with exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

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
    # errors name the flag, not the Python parameter
    (("evaluate", "--model", "opt-30b", "--gpu-batch-size", "0"),
     "--gpu-batch-size must be an integer >= 1 (sequences per GPU batch), got 0"),
    (("evaluate", "--model", "opt-30b", "--gpu-batch-size", "4", "--num-gpu-batches", "0"),
     "--num-gpu-batches must be an integer >= 1"),
    (("evaluate", "--model", "opt-30b", "--gpu-batch-size", "4", "--prompt-len", "0"),
     "--prompt-len must be an integer >= 1 (prompt tokens per sequence), got 0"),
    (("solve", "--model", "opt-30b", "--gen-len", "0"), "--gen-len must be an integer >= 1"),
    (("solve", "--model", "opt-30b", "--gpu-batch-size", "0"),
     "--gpu-batch-size must be an integer >= 1, got 0"),
    (("solve", "--model", "opt-30b", "--num-gpu-batches", "-2"),
     "--num-gpu-batches must be an integer >= 1, got -2"),
    (("solve", "--model", "opt-30b", "--prompt-len", "2048"), "exceeds opt-30b's context"),
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


# --------------------------------------------------------------- acceptance-review fixes
EVALUATE_175B = ("offload", "evaluate", "--model", "opt-175b", "--gpu-batch-size", "32",
                 "--num-gpu-batches", "8", "--percent", "0", "50", "0", "0", "0", "100",
                 "--cpu-cache-compute")


def test_tables_readable_at_80_columns(cli, monkeypatch, tmp_path):
    monkeypatch.setenv("COLUMNS", "80")
    res = cli(*EVALUATE_175B)
    assert res.code == 0, res.err
    assert "…" not in res.out
    assert all(len(line) <= 80 for line in res.out.splitlines())
    # the per-stage values are whole: one row per stream, one column per stage
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]]
            for line in res.out.splitlines() if line.count("│") == 4}
    assert re.fullmatch(r"1,8\d\d s", rows["time"][0]) and rows["bound"] == ["compute", "dtoc"]
    assert set(rows) >= {"ctog (CPU->GPU)", "gtoc (GPU->CPU)", "dtoc (disk->CPU)",
                         "ctod (CPU->disk)", "compute", "staging (pageable)"}
    out = tmp_path / "t.txt"
    assert cli(*EVALUATE_175B, "--out", str(out)).code == 0
    text = out.read_text()
    assert "…" not in text and rows["time"][0] in text


def test_llmsim_moe_config_loads_through_the_moe_offload_loader(cli):
    args = ("offload", "solve", "--gpu-batch-size", "8", "--num-gpu-batches", "2",
            "--format", "json")
    own = cli(*args, "--model", str(REPO / "examples" / "moe-4096x10.json"))
    assert own.code == 0, own.err
    hf = cli(*args, "--model", str(REPO / "examples" / "moe-4096x10-hf-config.json"))
    assert hf.code == 0, hf.err
    a, b = own.json(), hf.json()
    assert a["model"] == "moe-4096x10" and a["feasible"]
    assert a["weight_bytes"] == b["weight_bytes"]
    assert a["throughput_tokens_per_s"] == pytest.approx(b["throughput_tokens_per_s"])


def test_docs_quote_the_real_infeasible_message(cli):
    """docs/offload.md shows this command's error; it must be what the command prints."""
    res = cli("offload", "solve", "--model", "opt-175b", "--cpu-mem", "10", "--nvme-mem", "100")
    assert res.code == 2
    doc = (REPO / "docs" / "offload.md").read_text()
    block = doc.split("$ llmsim offload solve --model opt-175b --cpu-mem 10 --nvme-mem 100\n")[1]
    quoted = " ".join(block.split("```")[0].split())
    assert quoted == " ".join(res.err.split())
