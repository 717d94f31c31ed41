"""The benchmark scripts run against the current API (CI's smoke run must not be the first to
find out that one is broken). Tiny sizes: this checks that they run, not how fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=240)


def test_sim_speed_runs_both_schedulers(tmp_path):
    out = tmp_path / "speed.json"
    res = _run("benchmarks/sim_speed.py", "--sizes", "200", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "continuous" in res.stdout and "chunked" in res.stdout
    assert out.exists()


def test_sim_speed_child_failure_fails_the_run():
    res = _run("benchmarks/sim_speed.py", "--sizes", "50", "--schedulers", "chunked",
               "--trace", "/nonexistent/trace.csv")
    assert res.returncode != 0
    assert "failed (child exit code" in res.stderr


def test_serving_accuracy_smoke():
    data = ROOT.parent / "shared" / "data" / "e2e" / "aiconfigurator_silicon"
    if not (data / "silicon_h100_sxm.csv").is_file():
        import pytest

        pytest.skip("../shared/data/e2e/aiconfigurator_silicon is absent")
    res = _run("benchmarks/serving_accuracy.py", "--smoke")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "overall" in res.stdout and "TTFT MdAE" in res.stdout


def test_fit_engine_profile_runs(tmp_path):
    """The engine-profile fit end to end on two rows of one engine, one step from each start:
    it writes a profile file the engine models read."""
    data = ROOT.parent / "shared" / "data" / "e2e" / "aiconfigurator_silicon"
    if not (data / "silicon_h100_sxm.csv").is_file():
        import pytest

        pytest.skip("../shared/data/e2e/aiconfigurator_silicon is absent")
    out = tmp_path / "profiles.yaml"
    res = _run("scripts/fit_engine_profile.py", "--engines", "sglang", "--rows-per-group", "2",
               "--iterations", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    from llmsim.engines.profile import load_profile

    bad = _run("scripts/fit_engine_profile.py", "--engines", "tgi", "--out", str(out))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    prof = load_profile("sglang", path=out)
    assert prof.fitted_on.startswith("2 aggregated H100-SXM rows")
    assert prof.prefill_step_factor == 1.0  # one evaluation from each start: theta_0 itself
    assert prof.client_phase_spread in (0.0, 1.0)


def test_expert_offload_load_smoke():
    res = _run("benchmarks/expert_offload_load.py", "--capacities", "2", "--concurrency", "1",
               "2", "-n", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [line.split() for line in res.stdout.splitlines()[2:]]
    assert len(rows) == 2 and all(r[0] == "2" for r in rows)


def test_disagg_accuracy_simulate_smoke():
    import os

    shared = Path(os.environ.get("LLMSIM_SHARED_DATA") or ROOT.parent / "shared" / "data")
    if not (shared / "e2e" / "aiconfigurator_silicon" / "silicon_h100_sxm.csv").is_file():
        import pytest

        pytest.skip("../shared/data/e2e/aiconfigurator_silicon is absent")
    res = _run("benchmarks/disagg_accuracy.py", "--simulate", "--rows", "3",
               "--requests-per-client", "1")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "rows priced: 3, failed: 0" in res.stdout
    assert "median abs error of mean sim TPOT" in res.stdout


def test_search_speed_quick_runs():
    """The analytic-stage benchmark (aggregated and xPyD layouts) runs on the search API."""
    res = _run("benchmarks/search_speed.py", "--quick")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "layouts/s" in res.stdout and "xPyD" in res.stdout


def _load(script: str):
    """A benchmark script as a module (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(script).stem, ROOT / script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ttft_osl_slope_tells_a_slot_short_batch_from_a_full_one():
    """Synthetic closed loops: with one slot short each request waits D / c (b * c = 1);
    with every client in the batch the TTFT does not follow the decode time (b * c = 0)."""
    import pandas as pd

    rows = []
    for model, short in (("a/short", True), ("a/full", False)):
        for c in (8, 16):
            for osl in (128, 256, 512):
                tpot = 5.0 + c / 8
                decode = (osl - 1) * tpot
                rows.append({"backend": "trtllm", "model_path": model, "backend_version": "1",
                             "tp_size": 1, "isl": 1024, "batch_size": c, "osl": osl,
                             "silicon_tpot_ms": tpot,
                             "silicon_ttft_ms": 60.0 + (decode / c if short else 0.0)})
    got = _load("benchmarks/ttft_osl_slope.py").slopes(pd.DataFrame(rows))
    by = got.groupby("model_path").b_times_c
    assert by.min()["a/short"] > 0.99 and by.max()["a/short"] < 1.01
    assert abs(by.max()["a/full"]) < 1e-6
    assert list(got.n) == [3, 3, 3, 3]


def test_serving_accuracy_slots_delta_sets_the_batch_limit():
    mod = _load("benchmarks/serving_accuracy.py")
    row = {"batch_size": 8}
    assert mod.with_slots({"scheduler": {"max_num_seqs": 8}}, row, -1)["scheduler"] == {
        "max_num_seqs": 7}
    assert mod.with_slots({"scheduler": {"max_num_seqs": 8}}, row, 0)["scheduler"] == {
        "max_num_seqs": 8}
    assert mod.with_slots({"scheduler": {}}, {"batch_size": 1}, -3)["scheduler"] == {
        "max_num_seqs": 1}


def test_cohort_phase_reruns_the_quoted_rows():
    data = ROOT.parent / "shared" / "data" / "e2e" / "aiconfigurator_silicon"
    if not (data / "silicon_h100_sxm.csv").is_file():
        import pytest

        pytest.skip("../shared/data/e2e/aiconfigurator_silicon is absent")
    res = _run("benchmarks/cohort_phase.py")
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("Qwen3-32B") == 3 and "out of phase" in res.stdout
    bad = _run("benchmarks/cohort_phase.py", "--ids", "no_such_row")
    assert bad.returncode == 2 and "no_such_row" in bad.stderr
