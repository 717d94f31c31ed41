"""The layer-template scenario adapter (catalog/layer_templates.py): the shipped DeepSeek-V3
files import as the catalog's DeepSeek-V3, paths resolve against the file then the working
directory, and every class of bad file fails with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsim.catalog import get_model
from llmsim.catalog.layer_templates import load_layer_template_scenario
from llmsim.errors import SpecError

SHIPPED = Path(__file__).resolve().parents[1] / "src/llmsim/data/scenarios/deepseek-v3"
H800 = SHIPPED / "deepseek_v3_h800.yaml"

_HW = ("name: toy\npeak_tflops: 100\nmemory_bandwidth_gbps: 1000\nhbm_gb: 40\n"
       "interconnect_gbps: 100\nmax_concurrency: 4\noverlap_efficiency: 0.8\n")
_GQA = ("attn_config: {type: GQA, d_model: 4096, num_attention_heads: 32, head_dim: 128,\n"
        "              num_key_value_heads: 8, v_head_dim: 128}\n"
        "ffn_config: {d_model: 4096, d_ff: 14336, hidden_act: silu}\n")


def _write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    return tmp / "scenario.yaml"


def _scenario(layers: str = "  - {type: ffn_layer, config: dense.yaml, repeat: 32}\n",
              extra: str = "") -> str:
    return f"hardware: hw.yaml\n{extra}layers:\n{layers}"


def test_shipped_deepseek_v3_is_the_catalog_model():
    sc = load_layer_template_scenario(H800)
    ref = get_model("deepseek-v3")
    m = sc.model
    assert m.num_params == ref.num_params
    assert m.num_active_params == ref.num_active_params
    assert m.kv_cache_elements_per_token() == ref.kv_cache_elements_per_token()
    assert [t.repeat for t in m.layers] == [3, 58]
    assert m.weight_dtype == ref.weight_dtype
    for mine, theirs in zip(m.layers, ref.layers, strict=True):
        assert [b.model_dump() for b in mine.blocks] == [b.model_dump() for b in theirs.blocks]
    hw = sc.hardware
    assert hw.name == "h800-sxm"
    assert hw.peak_flops_per_s["bf16"] == 989e12
    assert hw.memory_bandwidth_bytes_per_s == 3350e9
    assert hw.scale_up_link.bandwidth_bytes_per_s == 200e9


def test_model_flag_reads_the_format():
    assert get_model(str(SHIPPED / "deepseek_v3_h100.yaml")).name == "deepseek-v3-h100"


def test_gqa_layer_inline_config_and_hardware(tmp_path):
    path = _write(tmp_path, {"scenario.yaml": (
        "name: toy\nhardware: {name: t, peak_tflops: 10, memory_bandwidth_gbps: 100, "
        "hbm_gb: 8}\nvocab_size: 1000\nlayers:\n  - type: ffn_layer\n    repeat: 2\n"
        "    config:\n" + "".join(f"      {line}\n" for line in _GQA.splitlines()))})
    sc = load_layer_template_scenario(path)
    attn = sc.model.layers[0].attention
    assert (attn.kind, attn.num_kv_heads, sc.model.num_layers) == ("gqa", 8, 2)
    assert sc.hardware.memory_bytes == 8e9
    assert sc.model.vocab_size == 1000


def test_paths_resolve_against_the_file_then_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs/hw.yaml").write_text(_HW)
    (tmp_path / "configs/dense.yaml").write_text(_GQA)
    (tmp_path / "scenarios").mkdir()
    path = tmp_path / "scenarios/s.yaml"  # written relative to the project root, as the source
    path.write_text("hardware: configs/hw.yaml\nlayers:\n"
                    "  - {type: ffn_layer, config: configs/dense.yaml}\n")
    monkeypatch.chdir(tmp_path)
    sc = load_layer_template_scenario(path)
    assert sc.hardware.name == "toy" and sc.model.num_layers == 1


def test_overrides_are_merged(tmp_path):
    path = _write(tmp_path, {"hw.yaml": _HW, "dense.yaml": _GQA, "scenario.yaml": _scenario(
        "  - type: ffn_layer\n    config: dense.yaml\n"
        "    overrides: {ffn_config: {d_ff: 1024}}\n")})
    assert load_layer_template_scenario(path).model.layers[0].blocks[1].intermediate_size == 1024


def test_comm_layer_with_bytes_per_token(tmp_path):
    path = _write(tmp_path, {"hw.yaml": _HW, "dense.yaml": _GQA, "scenario.yaml": _scenario(
        "  - {type: ffn_layer, config: dense.yaml}\n"
        "  - {type: comm_layer, config: {comm_config: {pattern: all_reduce, group: tp, "
        "bytes_per_token: 8192}}}\n")})
    block = load_layer_template_scenario(path).model.layers[1].blocks[0]
    assert (block.collective.value, block.group.value, block.bytes_per_token) == (
        "all-reduce", "tp", 8192)


_BAD = {
    "no layers": (_scenario(layers="  []\n").replace("layers:\n  []", "layers: []"),
                  "non-empty 'layers'"),
    "unknown top key": (_scenario(extra="batch: 8\n"), "unknown key 'batch'"),
    "bad layer type": (_scenario("  - {type: attention_only, config: dense.yaml}\n"),
                       "is not one of ffn_layer"),
    "missing config file": (_scenario("  - {type: ffn_layer, config: nowhere.yaml}\n"),
                            "layer config file 'nowhere.yaml' not found"),
    "missing hardware file": (_scenario().replace("hw.yaml", "gone.yaml"),
                              "hardware file 'gone.yaml' not found"),
    "wrong type": (_scenario("  - {type: ffn_layer, config: dense.yaml, repeat: three}\n"),
                   "repeat must be a whole number"),
    "zero repeat": (_scenario("  - {type: ffn_layer, config: dense.yaml, repeat: 0}\n"),
                    "repeat must be a whole number >= 1"),
    "missing d_model": (_scenario("  - type: ffn_layer\n    config:\n"
                                  "      attn_config: {num_attention_heads: 8}\n"
                                  "      ffn_config: {d_ff: 64}\n"), "attn_config needs d_model"),
    "missing section": (_scenario("  - type: moe_layer\n    config:\n"
                                  "      attn_config: {d_model: 64, num_attention_heads: 8}\n"),
                        "missing moe_config"),
    "top_k above experts": (_scenario(
        "  - type: moe_layer\n    config:\n      attn_config: {d_model: 64, "
        "num_attention_heads: 8}\n      moe_config: {moe_intermediate_size: 32, "
        "num_experts_per_tok: 9, n_routed_experts: 8}\n"), "top_k 9 exceeds num_experts 8"),
    "payload_mb": (_scenario("  - {type: comm_layer, config: {comm_config: "
                             "{pattern: all_to_all, payload_mb: 4}}}\n"),
                   "comm_config needs bytes_per_token (payload_mb"),
    "not yaml": ("hardware: hw.yaml\nlayers: [\n", "scenario.yaml"),
    "not a mapping": ("- just\n- a list\n", "expected a mapping"),
}


@pytest.mark.parametrize("case", sorted(_BAD))
def test_bad_files_fail_in_one_line(tmp_path, case):
    text, message = _BAD[case]
    path = _write(tmp_path, {"hw.yaml": _HW, "dense.yaml": _GQA, "scenario.yaml": text})
    with pytest.raises(SpecError) as info:
        load_layer_template_scenario(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_scenario_and_cli_one_line(tmp_path, cli):
    with pytest.raises(SpecError, match="not found"):
        load_layer_template_scenario(tmp_path / "nope.yaml")
    path = _write(tmp_path, {"hw.yaml": _HW, "dense.yaml": _GQA,
                             "scenario.yaml": _scenario().replace("hw.yaml", "gone.yaml")})
    for command in (("large-ep", "evaluate"), ("afd", "simulate")):
        res = cli(*command, str(path))
        assert res.code == 2, res
        assert res.err.startswith("error: ") and res.err.count("\n") == 1, res.err


def test_shipped_scenarios_by_name(tmp_path, monkeypatch):
    from llmsim.catalog.layer_templates import shipped_scenarios

    monkeypatch.chdir(tmp_path)  # a name, not a path: found in the package data
    assert {"deepseek-v3-h800", "deepseek-v3-h100"} <= set(shipped_scenarios())
    assert load_layer_template_scenario("deepseek-v3-h800").hardware.name == "h800-sxm"
    with pytest.raises(SpecError, match="shipped scenarios: deepseek-v3-h100, deepseek-v3-h800"):
        load_layer_template_scenario("deepseek-v9")
