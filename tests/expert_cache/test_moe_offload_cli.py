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


# --------------------------------------------------------------- acceptance-review fixes
@pytest.mark.parametrize("seed", ["-1", "99999999999999999999", str(2**63)])
def test_seed_out_of_range_is_one_line(cli, seed):
    res = cli("moe-offload", "simulate", "-m", "mixtral-8x7b", "-H", "rtx-4090", "--seed", seed)
    assert res.code == 2, res.out
    assert res.err == f"error: --seed must be an integer in 0..2**63-1, got {seed}\n"


def test_seed_range_in_the_python_api():
    from llmsim.errors import ConfigError
    from llmsim.expert_cache import OffloadConfig, check_seed, resolve_routing
    from llmsim.expert_cache.config import load_moe_model

    assert check_seed(0) == 0 and check_seed(2**63 - 1) == 2**63 - 1
    for bad in (-1, 2**63, True, 1.5):
        with pytest.raises(ConfigError, match=r"--seed must be an integer in 0\.\.2\*\*63-1"):
            check_seed(bad)
    with pytest.raises(ValueError, match="--seed must be"):
        OffloadConfig(seed=-1)
    with pytest.raises(ConfigError, match="--seed must be"):
        OffloadConfig.build(seed=-1)
    with pytest.raises(ConfigError, match="--seed must be"):
        resolve_routing("uniform", load_moe_model("tiny"), 4, 1, -1)


def test_prompt_longer_than_the_context_is_rejected(cli):
    # on an H200 the cache would fit: the context check, not the memory, must reject it
    res = cli("moe-offload", "simulate", "-m", "mixtral-8x7b", "-H", "h200-sxm",
              "--prompt", "60000")
    assert res.code == 2
    assert "prompt + decode steps = 60010 tokens exceeds mixtral-8x7b's context of 32768" \
        in res.err and res.err.count("\n") == 1
    from llmsim.errors import ConfigError
    from llmsim.expert_cache import simulate

    with pytest.raises(ConfigError, match="context"):
        simulate("mixtral-8x7b", "h200-sxm", prompt_tokens=32760, decode_steps=10)


@pytest.mark.parametrize("capacity", [[], ["-C", "1"], ["-C", "auto"]])
def test_prefetch_above_the_expert_count_same_message_with_auto_capacity(cli, capacity):
    res = cli("moe-offload", "simulate", "-m", "mixtral-8x7b", "--prefetch", "100", *capacity)
    assert res.code == 2
    assert res.err == "error: prefetch 100 exceeds the 8 experts per layer\n"


def test_timeline_in_table_form_fits_80_columns(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    args = ("moe-offload", "simulate", "-m", "tiny", "-C", "3", "--prompt", "8",
            "--decode-steps", "2")
    plain = cli(*args)
    res = cli(*args, "--timeline")
    assert plain.code == res.code == 0, res.err
    assert "timeline" not in plain.out and "timeline (step 0 = prefill" in res.out
    rows = [line for line in res.out.splitlines()
            if line.strip() and line.split("│")[0].strip().isdigit()]
    assert len(rows) == 3 * 2  # (prefill + 2 decode steps) x 2 layers
    assert all(len(line) <= 80 for line in res.out.splitlines())
    assert "…" not in res.out


def test_default_host_follows_the_gpu_like_offload(cli):
    from llmsim.catalog import get_hardware
    from llmsim.expert_cache import default_host
    from llmsim.placement import system

    assert system.default_host is default_host  # one rule, not two copies
    expected = {"h100-sxm": "generic-pcie5-ddr5", "a100-sxm-80gb": "generic-pcie4-ddr4",
                "rtx-4090": "workstation-pcie4", "t4": "gcp-t4-flexgen"}
    for gpu, host in expected.items():
        assert default_host(get_hardware(gpu)) == host
        res = cli("moe-offload", "simulate", "-m", "tiny", "-H", gpu, "-C", "2", "--prompt", "4",
                  "--decode-steps", "1", "--format", "json")
        assert res.code == 0, res.err
        assert res.json()["host"] == host
        off = cli("offload", "solve", "--model", "opt-6.7b", "-H", gpu, "--gpu-batch-size", "1",
                  "--num-gpu-batches", "1", "--format", "json")
        assert off.code == 0, off.err
        assert off.json()["host"] == host
    explicit = cli("moe-offload", "simulate", "-m", "tiny", "-H", "h100-sxm", "--host",
                   "workstation-pcie4", "-C", "2", "--prompt", "4", "--decode-steps", "1",
                   "--format", "json")
    assert explicit.json()["host"] == "workstation-pcie4"


def test_routing_trace_prefix(cli, tiny_model_file, write_trace):
    trace = write_trace([{0: [[0], [1], [2]]}, {0: [[1]]}, {0: [[3]]}])
    common = ("moe-offload", "simulate", "-m", str(tiny_model_file), "-C", "2", "-P", "0",
              "--format", "json")
    bare = cli(*common, "--routing", str(trace))
    prefixed = cli(*common, "--routing", f"trace:{trace}")
    assert bare.code == prefixed.code == 0, prefixed.err
    b, p = bare.json(), prefixed.json()
    assert p["prompt_tokens"] == 3 and p["decode_steps"] == 2
    assert (p["hit_rate"], p["prefill_s"]) == (b["hit_rate"], b["prefill_s"])
    missing = cli(*common, "--routing", f"trace:{trace.parent / 'nope.jsonl'}")
    assert missing.code == 2 and "nope.jsonl' not found" in missing.err
    empty = cli(*common, "--routing", "trace:")
    assert empty.code == 2 and "trace:PATH" in empty.err


def test_zero_decode_steps_reports_null_not_zero(cli):
    args = ("moe-offload", "simulate", "-m", "tiny", "-C", "2", "--prompt", "8",
            "--decode-steps", "0")
    res = cli(*args, "--format", "json")
    assert res.code == 0, res.err
    d = res.json()
    for key in ("decode_s_per_token", "tokens_per_s", "decode_hit_rate"):
        assert d[key] is None, key
    assert d["prefill_s"] > 0 and 0 <= d["hit_rate"] <= 1 and d["decode_steps"] == 0
    table = cli(*args)
    assert table.code == 0
    assert "n/a (0 decode steps)" in table.out and "decode n/a" in table.out
    assert "0.0 tokens/s" not in table.out
