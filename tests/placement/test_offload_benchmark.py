"""The FlexLLMGen accuracy benchmark runs from a fresh clone (committed golden copy) and its
report is complete; the golden copy carries the 15 published numbers with attribution."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "flexgen_throughput.csv"


def test_golden_copy_has_the_15_published_numbers():
    with GOLDEN.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 15
    assert {r["model"] for r in rows} == {"opt-6.7b", "opt-30b", "opt-175b"}
    flex = {(r["system"], r["model"]): r for r in rows if r["system"].startswith("flexllmgen")}
    assert len(flex) == 6
    for r in flex.values():  # the published policies multiply out to the effective batch
        assert int(r["gpu_batch_size"]) * int(r["num_gpu_batches"]) == \
            int(r["effective_batch_size"])
    assert float(flex[("flexllmgen", "opt-175b")]["throughput_tokens_per_s"]) == 0.69
    note = (GOLDEN.parent / "FLEXGEN_ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "004ffef82b46e8dc8685c55d0cdda650bdaf1269" in note and "Apache-2.0" in note


def test_benchmark_smoke_writes_a_complete_report(tmp_path):
    out = tmp_path / "acc.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "offload_accuracy.py"),
                           "--smoke", "--out", str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "mean |error|" in proc.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert len(report["cases"]) == 6
    for case in report["cases"]:
        for cal in ("datasheet", "in_sample", "loo"):
            assert case[f"eval_{cal}_tokens_per_s"] > 0
            assert math.isfinite(case[f"eval_{cal}_error_pct"])
            assert case[f"solve_{cal}_tokens_per_s"] is not None
            assert case[f"solve_{cal}_tokens_per_s"] > 0
    means = report["mean_abs_error_pct"]
    assert set(means) == {f"{k}_{c}" for k in ("eval", "solve")
                          for c in ("datasheet", "in_sample", "loo")}
    # the shipped host entry is what the fit produces today (the profile is the script output)
    assert report["shipped_matches_refit"] is True
