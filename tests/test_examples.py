"""Every file in examples/ runs as the docs show it (the README and docs point users at them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("simulate*.yaml")), ids=lambda p: p.name)
def test_simulate_configs_run(cli, path):
    res = cli("simulate", "--config", str(path), "--format", "json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert summary["num_completed"] + summary["num_rejected"] == summary["num_requests"] > 0


def test_scenario_file_prices_and_flags_override_its_defaults(cli):
    path = str(EXAMPLES / "scenario-hybrid-moe.yaml")
    base = cli("estimate", "--scenario", path, "--format", "json")
    assert base.code == 0, base.err
    d = base.json()
    assert d["model"] == "hybrid-moe-16b" and d["batch"] == 32 and d["ep"] == 4
    assert [r["name"] for r in d["layers"]["decode"]][1:3] == ["dense", "moe"]
    bigger = cli("estimate", "--scenario", path, "--batch", "64", "--format", "json").json()
    assert bigger["batch"] == 64 and bigger["output_tokens_per_s"] > d["output_tokens_per_s"]


@pytest.mark.parametrize("name", ["moe-4096x10.json", "moe-4096x10-hf-config.json",
                                  "moe-cpu-small.json"])
def test_moe_configs_load_in_moe_offload(cli, name):
    res = cli("moe-offload", "simulate", "-m", str(EXAMPLES / name), "-H", "rtx-4090",
              "--cache-capacity", "4", "--decode-steps", "4", "--format", "json")
    assert res.code == 0, res.err
    assert 0.0 <= res.json()["hit_rate"] <= 1.0
