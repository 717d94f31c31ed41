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


def test_relative_paths_resolve_from_the_config_folder(tmp_path, monkeypatch, fixed_model):
    (tmp_path / "cfg" / "data").mkdir(parents=True)
    (tmp_path / "cfg" / "data" / "t.csv").write_text(
        "input_tokens,output_tokens,arrival_time_s\n100,10,0\n200,20,0.5\n300,5,1\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # data/t.csv does not exist here
    head = "model: fixed\nhardware: h100-sxm\nscheduler: {kv_capacity_tokens: 100000}\n"
    traced = tmp_path / "cfg" / "traced.yaml"
    traced.write_text(head + "workload: {trace: data/t.csv}\n")
    c = load_config(traced)
    assert c.workload.trace == str(tmp_path / "cfg" / "data" / "t.csv")
    assert list(simulate(traced, step_model=fixed_model).requests.input_tokens) == [100, 200, 300]
    synthetic = tmp_path / "cfg" / "synthetic.yaml"
    synthetic.write_text(head + "workload: {rate: 5, num_requests: 50, "
                                "prompt: 'empirical:path=data/t.csv', "
                                "output: {dist: empirical, path: data/t.csv}}\n")
    r = simulate(synthetic, step_model=fixed_model).requests
    assert set(r.input_tokens) <= {100, 200, 300} and set(r.output_tokens) <= {5, 10, 20}
    # packaged samples and absolute paths are used as they are
    builtin = tmp_path / "cfg" / "builtin.yaml"
    builtin.write_text(head + "workload: {trace: azure-conv, num_requests: 5}\n")
    assert load_config(builtin).workload.trace == "azure-conv"
    absolute = tmp_path / "cfg" / "absolute.yaml"
    absolute.write_text(head + f"workload: {{trace: {tmp_path / 'cfg' / 'data' / 't.csv'}}}\n")
    assert load_config(absolute).workload.trace == str(tmp_path / "cfg" / "data" / "t.csv")


def test_seed_slo_and_gpu_count_are_validated_in_the_config():
    with pytest.raises(SpecError, match=r"seed must be an integer in 0..2\*\*63-1, got -1"):
        load_config(base_config(workload={"seed": -1}))
    assert load_config(base_config(workload={"seed": 2**63 - 1})).workload.seed == 2**63 - 1
    for key in ("ttft_s", "tpot_s"):
        with pytest.raises(SpecError, match=f"slo.{key}: Input should be greater than 0"):
            load_config(base_config(slo={key: -1}))
    assert load_config(base_config(slo={"ttft_s": None})).slo.ttft_s is None
    with pytest.raises(SpecError, match="tp 2 x pp 1 x replicas 2 = 4 GPUs; use --replicas 1"):
        load_config({**base_config(parallelism={"tp": 2, "replicas": 2}),
                     "hardware": {"name": "h100-sxm", "num_gpus": 2}})
    with pytest.raises(SpecError, match="= 2 GPUs; use --replicas 4 or drop --num-gpus"):
        load_config({**base_config(parallelism={"tp": 2}),
                     "hardware": {"name": "h100-sxm", "num_gpus": 8}})


def test_defaults_of_knobs_that_apply_only_sometimes(fixed_model):
    """Unset swap space / batch window / lengths mean their defaults where they are used."""
    c = load_config(base_config(workload={"prompt": None, "output": None}))
    assert c.scheduler.swap_space_bytes is None and c.scheduler.batch_window_s is None
    r = simulate(c, step_model=fixed_model).requests
    assert set(r.input_tokens) == {1024} and set(r.output_tokens) == {128}
    one = base_config(scheduler={"name": "dynamic"},
                      workload={"arrival": "batch", "num_requests": 1})
    row = simulate(one, step_model=fixed_model).requests.iloc[0]
    assert row.queueing_delay_s == pytest.approx(0.05)  # the 50 ms default window
