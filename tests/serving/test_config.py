"""SimulationConfig: YAML files, shorthands, unknown keys, the Python API's inputs."""

from __future__ import annotations

import pytest
from serving_helpers import base_config
from stepmodels import FixedStepModel

from llmsim.errors import ConfigError, SpecError
from llmsim.serving import SimulationConfig, load_config, simulate


def test_yaml_and_shorthands(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: llama-3.1-8b\nhardware: h100-sxm\nscheduler: continuous\n"
                 "workload: {rate: 2, num_requests: 10}\nslo: {ttft_s: 500 ms}\n")
    c = load_config(p)
    assert isinstance(c, SimulationConfig)
    assert c.model.name == "llama-3.1-8b" and c.scheduler.name == "continuous"
    assert c.slo.ttft_s == pytest.approx(0.5) and c.slo.tpot_s == pytest.approx(0.1)


def test_unknown_keys_did_you_mean():
    with pytest.raises(SpecError, match="did you mean 'rate_scale'"):
        load_config({"model": "x", "hardware": "h100-sxm", "workload": {"rate_scal": 2}})
    with pytest.raises(SpecError, match="unknown key 'sheduler'"):
        load_config({"model": "x", "hardware": "h100-sxm", "sheduler": {}})


def test_hardware_required_and_missing_file():
    with pytest.raises(SpecError, match="hardware"):
        load_config({"model": "x"})
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/sim.yaml")


def test_simulate_accepts_dict_config_and_path(tmp_path, fixed_model):
    import yaml

    d = base_config(workload={"num_requests": 20})
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d))
    a = simulate(d, step_model=fixed_model).requests
    b = simulate(str(p), step_model=fixed_model).requests
    c = simulate(load_config(d), step_model=fixed_model).requests
    assert a.equals(b) and a.equals(c)


def test_custom_step_model_needs_kv_capacity():
    with pytest.raises(ConfigError, match="kv_capacity_tokens"):
        simulate({"model": "x", "hardware": "h100-sxm",
                  "workload": {"rate": 1, "num_requests": 2}}, step_model=FixedStepModel())


def test_chunked_budget_must_cover_max_num_seqs(fixed_model):
    with pytest.raises(ConfigError, match="max_num_seqs"):
        simulate(base_config(scheduler={"max_num_batched_tokens": 64, "max_num_seqs": 128}),
                 step_model=fixed_model)
