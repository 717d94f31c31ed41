"""``llmsim moe-offload simulate`` end to end."""

from __future__ import annotations

import pytest


def test_simulate_json_keys_and_flags(cli):
    res = cli("moe-offload", "simulate", "--model", "mixtral-8x7b", "--hardware", "h100-sxm",
              "--host", "generic-pcie5-ddr5", "--cache-capacity", "4", "--prefetch", "2",
              "--prefetch-accuracy", "0.9", "--policy", "lfu", "--routing", "zipf:1.2",
              "--miss", "cpu", "--prompt", "32", "--decode-steps", "4", "--seed", "3",
              "--timeline", "--format", "json")
    assert res.code == 0, res.err
    d = res.json()
    for key in ("prefill_s", "decode_s_per_token", "tokens_per_s", "hit_rate", "pcie_bytes",
                "gpu_expert_s", "cpu_expert_s", "stall_s", "per_layer", "timeline"):
        assert key in d
    assert (d["capacity"], d["prefetch"], d["policy"], d["miss"], d["seed"]) == \
        (4, 2, "lfu", "cpu", 3)
    assert d["prompt_tokens"] == 32 and d["decode_steps"] == 4
    assert len(d["timeline"]) == 32 * 5 and d["cpu_expert_s"] > 0


def test_simulate_table_auto_capacity_and_csv(cli):
    res = cli("moe-offload", "simulate", "-m", "qwen3-30b-a3b", "-H", "rtx-4090",
              "--decode-steps", "2", "--prompt", "16")
    assert res.code == 0, res.err
    assert "decode per token" in res.out and "prefill per layer" in res.out
    csv = cli("moe-offload", "simulate", "-m", "gpu-default", "-C", "8", "--prompt", "8",
              "--decode-steps", "1", "--format", "csv")
    assert csv.out.splitlines()[0].startswith("step,layer,moe,start_s")


@pytest.mark.parametrize("args, message", [
    (["--model", "llama-3.1-8b"], "dense"),
    (["--model", "gpu-default", "--cache-capacity", "lots"], "--cache-capacity"),
    (["--model", "gpu-default", "--cache-capacity", "65"], "exceeds"),
    (["--model", "gpu-default", "--policy", "fifo"], "cache policy"),
    (["--model", "gpu-default", "--miss", "disk"], "--miss"),
    (["--model", "gpu-default", "--routing", "zipf"], "zipf exponent"),
    (["--model", "gpu-default", "--routing", "missing.jsonl"], "not found"),
    (["--model", "mixtral-8x7b", "--cache-capacity", "8"], "--cache-capacity"),
    (["--model", "deepseek-v3", "--dtype", "bf16"], "does not fit"),
])
def test_bad_input_one_line_exit_2(cli, args, message):
    res = cli("moe-offload", "simulate", *args)
    assert res.code == 2, res.out
    assert message in res.err and res.err.count("\n") == 1
