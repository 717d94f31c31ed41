"""``--hardware PATH.yaml``: llmsim's own hardware format and the layer-template simulator's,
imported by one adapter, with one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsim.catalog import get_hardware
from llmsim.errors import SpecError

REPO = Path(__file__).resolve().parents[1]


def test_source_format_adapter_converts_units():
    hw = get_hardware(str(REPO / "examples" / "playbooks" / "h800.yaml"))
    assert hw.name == "h800-sxm"
    assert hw.memory_bytes == 80e9 and hw.memory_bandwidth_bytes_per_s == 3350e9
    assert hw.peak_flops("bf16") == 989e12
    assert hw.scale_up.bandwidth_bytes_per_s == 200e9


def test_llmsim_format_file(tmp_path):
    src = (REPO / "src" / "llmsim" / "data" / "hardware" / "h100-sxm.yaml").read_text()
    path = tmp_path / "mine.yaml"
    path.write_text(src.replace("name: h100-sxm", "name: my-h100"))
    assert get_hardware(str(path)).name == "my-h100"


@pytest.mark.parametrize("text,match", [
    ("name: x\npeak_tflops: 10\nmemory_bandwidth_gbps: 1\nhbm_gb: 1\nfoo: 1\n", "unknown key"),
    ("name: x\npeak_tflops: -1\nmemory_bandwidth_gbps: 1\nhbm_gb: 1\n", "positive number"),
    ("name: x\npeak_tflops: 10\nhbm_gb: 1\n", "missing memory_bandwidth_gbps"),
])
def test_bad_files_fail_in_one_line(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=match) as err:
        get_hardware(str(path))
    assert "\n" not in str(err.value)
    with pytest.raises(SpecError, match="not found"):
        get_hardware(str(tmp_path / "missing.yaml"))


def test_cli_estimate_takes_a_hardware_file(cli):
    res = cli("estimate", "-m", "llama-3.1-8b", "--hardware",
              str(REPO / "examples" / "playbooks" / "h800.yaml"), "--format", "json")
    assert res.code == 0, res.err
    assert res.json()["hardware"] == "h800-sxm"
