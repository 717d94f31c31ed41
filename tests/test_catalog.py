"""Catalog: specs load and validate, names resolve with did-you-mean, units parse."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from llmsim import units
from llmsim.catalog import (
    get_cluster,
    get_hardware,
    get_host,
    get_model,
    list_clusters,
    list_hardware,
    list_hosts,
)
from llmsim.catalog._base import validate_spec
from llmsim.catalog.hardware import HardwareSpec
from llmsim.dtypes import DType
from llmsim.errors import ConfigError, SpecError, UnknownNameError

REQUIRED_HARDWARE = [
    "a100-sxm-40gb", "a100-sxm-80gb", "a100-pcie-80gb", "h100-sxm", "h100-pcie", "h200-sxm",
    "b200-sxm", "gb200", "l40s", "l4", "a10", "a40", "t4", "rtx-3090", "rtx-4090",
    "rtx-pro-6000", "mi300x", "mi325x", "tpu-v5e", "tpu-v5p", "tpu-v6e", "gaudi2", "gaudi3",
]


@pytest.mark.parametrize("name", REQUIRED_HARDWARE)
def test_required_hardware_present_with_sources(name):
    hw = get_hardware(name)
    assert hw.name == name
    assert len(hw.source) > 10
    assert hw.memory_bytes > 1e9 and hw.memory_bandwidth_bytes_per_s > 1e11
    assert any(d in hw.peak_flops_per_s for d in (DType.BF16, DType.FP16))


def test_h100_datasheet_values_in_si():
    hw = get_hardware("h100-sxm")
    assert hw.memory_bytes == 80 * 2**30
    assert hw.memory_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert hw.peak_flops(DType.BF16) == pytest.approx(989e12)
    assert hw.peak_flops(DType.FP8) == pytest.approx(1979e12)
    assert hw.scale_up.bandwidth_bytes_per_s == pytest.approx(450e9)


def test_dtype_without_hardware_support_is_a_clear_error():
    with pytest.raises(ConfigError, match="a100-sxm-80gb has no fp8 compute"):
        get_hardware("a100-sxm-80gb").peak_flops(DType.FP8)


def test_aliases_and_case_insensitive_lookup():
    assert get_hardware("H100").name == "h100-sxm"
    assert get_hardware("A100-80GB").name == "a100-sxm-80gb"


def test_unknown_names_get_did_you_mean():
    with pytest.raises(UnknownNameError, match="Did you mean 'h100-sxm'"):
        get_hardware("h100-sxn")
    with pytest.raises(UnknownNameError, match="llama-2-7b"):
        get_model("llama-2-7")


def test_spec_typo_is_rejected_with_a_suggestion():
    data = {"name": "x", "vendor": "v", "family": "f", "memory_bytess": "1 GB",
            "memory_bandwidth_bytes_per_s": "1 TB/s", "peak_flops_per_s": {"bf16": "1 TFLOPS"},
            "host_link": {"kind": "pcie", "bandwidth_bytes_per_s": "32 GB/s"}, "source": "test"}
    with pytest.raises(SpecError, match="did you mean 'memory_bytes'"):
        validate_spec(HardwareSpec, data, "x.yaml")


def test_units_parse_and_reject():
    assert units.parse_bytes("80 GiB") == 80 * 2**30
    assert units.parse_bytes("80 GB") == 80e9
    assert units.parse_bandwidth("400 Gbps") == 50e9
    assert units.parse_flops("989 TFLOPS") == 989e12
    assert units.parse_time("5 us") == pytest.approx(5e-6)
    with pytest.raises(SpecError, match="unknown unit"):
        units.parse_bytes("3 parsecs")


def test_every_spec_file_loads():
    assert len(list_hardware()) >= len(REQUIRED_HARDWARE)
    assert {h.name for h in list_hosts()} >= {"gcp-t4-flexgen"}
    assert {c.name for c in list_clusters()} >= {"nv_like", "pcie_like", "dgx-a100", "dgx-h100",
                                                  "8x-rtx4090-pcie"}


def test_cluster_resolution():
    dgx = get_cluster("dgx-h100")
    assert dgx.hardware.name == "h100-sxm" and dgx.gpus_per_node == 8
    assert dgx.intra_node.bandwidth_bytes_per_s == pytest.approx(450e9)
    templ = get_cluster("nv_like", "b200-sxm", num_gpus=16)
    assert templ.num_nodes == 2 and templ.hardware.name == "b200-sxm"
    pcie = get_cluster("pcie_like", "l40s", num_gpus=4)
    assert pcie.intra_node.topology.value == "shared"
    box = get_cluster("8x-rtx4090-pcie")
    assert box.hardware.name == "rtx-4090" and box.intra_node.kind.value == "pcie"
    with pytest.raises(SpecError, match="template"):
        get_cluster("nv_like")


def test_host_specs():
    host = get_host("gcp-t4-flexgen")
    assert host.cpu_memory_bytes == pytest.approx(208e9, rel=0.08)
    assert host.disk_read_bandwidth_bytes_per_s > 1e8


def test_local_config_json_path(tmp_path):
    shipped = resources.files("llmsim.data").joinpath("models/llama-2-7b.json")
    cfg = json.loads(shipped.read_text())
    cfg["num_hidden_layers"] = 4
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    model = get_model(str(tmp_path))
    assert model.num_layers == 4 and model.family == "llama"


def test_unsupported_family_and_bad_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(SpecError, match="not supported"):
        get_model(str(tmp_path / "config.json"))
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(SpecError, match="invalid JSON"):
        get_model(str(tmp_path / "bad.json"))


def test_missing_config_paths_and_unknown_hf_ids(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        get_model(str(tmp_path / "nope.json"))
    with pytest.raises(UnknownNameError, match="Did you mean"):
        get_model("meta-llama/Llama-2-7b-hg")
    shipped = resources.files("llmsim.data").joinpath("models/llama-2-7b.json")
    cfg = json.loads(shipped.read_text())
    cfg.pop("_name_or_path", None)
    (tmp_path / "my-model.json").write_text(json.dumps(cfg))
    assert get_model(str(tmp_path / "my-model.json")).name == "my-model"


@pytest.mark.parametrize("hf_id, alias", [
    ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"),
    ("meta-llama/Llama-2-7b-chat-hf", "llama-2-7b"),
    ("mistralai/Mistral-7B-Instruct-v0.1", "mistral-7b"),
])
def test_instruct_and_chat_variants_resolve_to_their_base(hf_id, alias):
    assert get_model(hf_id).name == alias


def test_a_tuned_variant_of_another_version_is_not_guessed():
    from llmsim.errors import UnknownNameError

    with pytest.raises(UnknownNameError):
        get_model("mistralai/Mistral-7B-Instruct-v0.2")  # v0.2 changed rope theta and context
