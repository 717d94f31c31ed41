"""Measured data in: AIConfigurator version folders and reuse.yaml, TensorRT-LLM quantized
formats, the --from source specs, the end-to-end schema, and the documented examples."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from llmsim.calibration import aiconfigurator as aic
from llmsim.calibration import predict as pr
from llmsim.calibration.importers import load_source
from llmsim.calibration.measurements import MEASURED
from llmsim.calibration.runs import validate_runs
from llmsim.errors import DataError

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LLMSIM_SHARED", REPO.parent / "shared")) / "data"

DOCS = REPO / "docs" / "calibration.md"


def _gemm(path: Path, rows: list[tuple], framework: str = "trtllm", version: str = "1.0.0"):
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"framework": framework, "version": version, "device": "x",
                   "op_name": "gemm", "kernel_source": "k", "gemm_dtype": d, "m": m, "n": n,
                   "k": k, "latency": ms} for d, m, n, k, ms in rows]).to_parquet(
        path / "gemm_perf.parquet")


@pytest.fixture()
def aic_root(tmp_path):
    base = tmp_path / "systems" / "data" / "a100_sxm" / "gemm" / "trtllm"
    _gemm(base / "0.5.9", [("bfloat16", 1, 128, 128, 0.01)], version="0.5.9")
    _gemm(base / "0.5.10", [("bfloat16", 1, 128, 128, 0.02), ("int8_wo", 1, 128, 128, 0.03),
                            ("int4_wo", 1, 128, 128, 0.04), ("sq", 1, 128, 128, 0.05),
                            ("fp8_block", 1, 128, 128, 0.06)], version="0.5.10")
    (base / "0.5.12").mkdir()
    (base / "0.5.12" / "reuse.yaml").write_text(
        "schema_version: 1\nreuse:\n- table: gemm_perf\n  from_version: 0.5.10\n")
    return tmp_path / "systems" / "data"


def test_versions_sort_as_versions_and_reuse_is_followed(aic_root):
    paths = aic.table_paths(aic_root, "a100_sxm", "gemm", "trtllm", "gemm_perf")
    assert [p.parent.name for p in paths] == ["0.5.10", "0.5.9"]  # 0.5.12 reuses 0.5.10
    assert aic.table_paths(aic_root, "a100_sxm", "gemm", "trtllm", "gemm_perf",
                           version="0.5.12")[0].parent.name == "0.5.10"
    g = aic.load_gemm(aic_root, "a100_sxm", "trtllm")
    assert set(g["framework_version"]) == {"0.5.10"}
    # quantized TensorRT-LLM formats map to (weight, activation); none defaults to bf16
    fmt = {(r.dtype, r.act_dtype if isinstance(r.act_dtype, str) else None)
           for r in g.itertuples()}
    assert fmt == {("bf16", None), ("int8", "bf16"), ("int4", "bf16"), ("int8", "int8"),
                   ("fp8", None)}
    assert (g.loc[g["op"] == "fp8_block", "dtype"] == "fp8").all()


def test_load_source_reads_each_layout(aic_root):
    d = load_source(f"aiconfigurator:{aic_root / 'a100_sxm'}?framework=trtllm")
    assert len(d) == 5 and set(d["hardware"]) == {"a100-sxm-80gb"}
    assert d[MEASURED].max() == pytest.approx(0.06e-3)
    old = load_source(f"aiconfigurator:{aic_root}?framework=trtllm&version=0.5.9")
    assert len(old) == 1
    with pytest.raises(DataError, match="no rows"):
        load_source(f"aiconfigurator:{aic_root}")  # no vllm tables in this copy
    with pytest.raises(DataError, match="no Vidur profiling data"):
        load_source(f"vidur:{aic_root}")


@pytest.mark.shared_data
def test_shared_importers_and_the_sglang_version_bug():
    g = aic.load_gemm(SHARED_DATA, "a100_sxm", "sglang")
    assert set(g["framework_version"]) == {"0.5.10"} and len(g) == 35742  # not 0.5.9's 9,240
    t = aic.load_gemm(SHARED_DATA, "a100_sxm", "trtllm")
    assert t["dtype"].notna().all() and (t["act_dtype"] == "bf16").sum() == 12096
    v = load_source(f"vidur:{SHARED_DATA}?hardware=a40")
    assert set(v["kind"]) == {"gemm", "elementwise"} and set(v["framework"]) == {"vidur"}
    lc = load_source(f"llmcompass:{SHARED_DATA}")
    assert set(lc["hardware"]) == {"a100-sxm-80gb"}  # the MI210 file: not in the catalog


@pytest.mark.shared_data
def test_custom_allreduce_tables_load_tagged_and_fit_below_nccl():
    """Each engine's own all-reduce table: bf16 elements -> bytes, vLLM's CUDA-graph rows
    only, tagged op=custom; the fitted comm_custom curve prices them within 25% (median) and
    the TP-8 decode sizes at a third of NCCL's measured time or less."""
    from llmsim.calibration import fit as ft

    d = aic.load_custom_allreduce(SHARED_DATA, "h100_sxm")
    assert set(d["framework"]) == {"vllm", "trtllm"} and set(d["op"]) == {"custom"}
    assert len(d) == 2 * 69 and set(d["num_gpus"]) == {2.0, 4.0, 8.0}
    assert d["message_bytes"].min() == 256  # 128 bf16 elements
    small = d[d["message_bytes"] <= 8 * 2 ** 20]
    r = ft.fit_comm(small, "h100-sxm", "custom")
    assert r.median_ape_pct < 25
    nccl = aic.load_nccl(SHARED_DATA, "h100_sxm")
    pick = (nccl["kind"] == "all-reduce") & (nccl["num_gpus"] == 8) & (
        nccl["message_bytes"] == 65536) & (nccl["dtype"] == "fp16")
    prof = ft.comm_profile("h100-sxm", {}, {}, r.params)
    row = small[(small["num_gpus"] == 8) & (small["message_bytes"] == 65536)].head(1)
    assert pr.comm_time(pr.comm_rows(row), prof)[0] < nccl[pick][MEASURED].min() / 3


def _docs_block(title: str) -> str:
    """The first fenced block after the heading ``title`` in docs/calibration.md."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(title)
    m = re.search(r"```[a-z]*\n(.*?)```", text[start:], re.S)
    assert m, f"no code block after {title!r}"
    return m.group(1)


def test_documented_op_timing_example_parses(tmp_path):
    path = tmp_path / "ops.csv"
    path.write_text(_docs_block("### The op-timing schema"))
    table = load_source(str(path))
    assert set(table["kind"]) >= {"gemm", "attention-decode", "all-reduce"}
    assert (table[MEASURED] > 0).all() and set(table["framework"].dropna()) == {"vllm"}


def test_documented_end_to_end_example_parses():
    runs = validate_runs(pd.read_csv(io.StringIO(_docs_block("### The end-to-end schema"))))
    assert set(runs["mode"]) == {"static", "closed_loop"}
    assert runs["hardware"].tolist()[0] == "h100-sxm"


def test_end_to_end_schema_errors_are_one_line():
    good = {"model": ["llama-3.1-8b"], "hardware": ["h100"], "input_tokens": [512],
            "output_tokens": [128], "ttft_s": [0.05]}
    assert validate_runs(pd.DataFrame(good))["batch"].tolist() == [1]
    with pytest.raises(DataError, match="unknown columns"):
        validate_runs(pd.DataFrame({**good, "ttft_ms": [50]}))
    with pytest.raises(DataError, match="no measured figure"):
        validate_runs(pd.DataFrame({k: v for k, v in good.items() if k != "ttft_s"}))
    with pytest.raises(DataError, match="closed_loop needs concurrency"):
        validate_runs(pd.DataFrame({**good, "mode": ["closed_loop"]}))
    with pytest.raises(DataError, match="must be > 0"):
        validate_runs(pd.DataFrame({**good, "ttft_s": [-1.0]}))
