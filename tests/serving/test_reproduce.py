"""The measured-row reruns' consistency rule (``llmsim.serving.reproduce.inconsistent_rows``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmsim.serving.reproduce import decode_occupancy, inconsistent_rows, load_rows


def _row(rid: str, c: int, ttft_ms: float, tpot_ms: float, tp: int = 2, osl: int = 1024):
    return {"id": rid, "backend": "vllm", "model_path": "m", "system": "h100_sxm",
            "precision": None, "gemm_quant_mode": None, "moe_quant_mode": None,
            "tp_size": tp, "pp_size": 1, "attention_dp_size": 1, "moe_tp_size": tp,
            "moe_ep_size": 1, "isl": 1024, "osl": osl, "batch_size": c,
            "silicon_ttft_ms": ttft_ms, "silicon_tpot_ms": tpot_ms}


def test_decode_occupancy_is_littles_law():
    # D = 1023 * 10 ms = 10.23 s of each 10.23 + 10.23 s in flight: half the clients decode
    assert decode_occupancy(_row("a", 64, 10230.0, 10.0)) == pytest.approx(32.0)


def test_faster_tpot_with_many_more_decoding_requests_is_set_aside():
    rows = [_row("c16", 16, 90.0, 8.0), _row("c64", 64, 170.0, 14.0),
            _row("c512", 512, 24000.0, 5.6)]
    bad = inconsistent_rows(rows)
    assert list(bad) == ["c512"]
    assert "c16" in bad["c512"] and "5.60 ms" in bad["c512"]


def test_consistent_rows_and_other_deployments_are_kept():
    # TPOT rising with occupancy is what decode steps do; a faster row of another plan
    # (tp 8) or a small occupancy step (c32 vs c64, < 4x) is not compared
    rows = [_row("c16", 16, 90.0, 8.0), _row("c64", 64, 170.0, 14.0),
            _row("c512", 512, 24000.0, 20.0), _row("tp8", 512, 2000.0, 4.0, tp=8),
            _row("c32", 32, 160.0, 16.0)]
    assert inconsistent_rows(rows) == {}


SHARED = Path(os.environ.get("LLMSIM_SHARED", Path(__file__).resolve().parents[2].parent
                             / "shared"))
SILICON = SHARED / "data" / "e2e" / "aiconfigurator_silicon" / "silicon_h100_sxm.csv"


@pytest.mark.skipif(not SILICON.is_file(), reason=f"measured serving data absent: {SILICON}")
def test_the_corpus_rows_set_aside_are_vllm_gpt_oss_at_c512():
    rows = load_rows(str(SILICON))
    bad = inconsistent_rows(rows)
    by_id = {str(r["id"]): r for r in rows}
    assert len(bad) == 4
    for rid in bad:
        r = by_id[rid]
        assert (r["backend"], r["model_path"], int(r["batch_size"])) == (
            "vllm", "openai/gpt-oss-120b", 512)
