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


def test_serving_accuracy_groups_by_tp(capsys):
    """``--by-tp`` adds one group per engine, model and TP size to each table."""
    mod = _load("benchmarks/serving_accuracy.py")
    recs = [{"engine": "trtllm", "model": "qwen3-32b", "tp": tp, "c": 16, "ttft_err": e,
             "tpot_err": e, "e2e_err": e} for tp, e in ((1, 0.1), (8, -0.2), (8, -0.4))]
    assert mod._group(recs[1], "tp") == "trtllm / qwen3-32b tp8"
    mod.report(recs, "", "t", by_tp=True)
    out = capsys.readouterr().out
    assert "trtllm / qwen3-32b tp1                 1     10.0%    +10.0%" in out
    assert "trtllm / qwen3-32b tp8                 2     30.0%    -30.0%" in out
    mod.report(recs, "", "t")
    assert " tp8 " not in capsys.readouterr().out


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


def test_decode_slope_recovers_a_per_request_cost():
    """Synthetic closed loops whose TPOT is 2 ms + 100 us per decoding request: the fitted
    slope is 100 us, the floor min(TPOT / n) is at the largest batch, and a simulated TPOT
    half as steep reads as a measured / simulated ratio of 2."""
    import pandas as pd

    rows, sim = [], {}
    for i, c in enumerate((8, 16, 32, 64)):
        ttft_ms, osl = 50.0, 256
        # solve n = c D / (TTFT + D) with D = (osl - 1) * (2 + 0.1 n) by fixed point
        n = float(c)
        for _ in range(200):
            tpot = 2.0 + 0.1 * n
            d = (osl - 1) * tpot
            n = c * d / (ttft_ms + d)
        rows.append({"id": f"r{i}", "backend": "vllm", "backend_version": "1", "model_path": "a/m",
                     "system": "h100_sxm", "precision": None, "gemm_quant_mode": None,
                     "moe_quant_mode": None, "tp_size": 1, "pp_size": 1,
                     "attention_dp_size": None, "moe_tp_size": None, "moe_ep_size": None,
                     "isl": 1024, "osl": osl, "batch_size": c, "silicon_ttft_ms": ttft_ms,
                     "silicon_tpot_ms": 2.0 + 0.1 * n})
        sim[f"r{i}"] = 2.0 + 0.05 * n
    got = _load("benchmarks/decode_slope.py").decode_slopes(pd.DataFrame(rows), sim)
    assert len(got) == 1
    rec = got.iloc[0]
    assert abs(rec.b_meas_us - 100.0) < 0.5 and abs(rec.b_sim_us - 50.0) < 0.5
    floor = min(r["silicon_tpot_ms"] / (r["silicon_tpot_ms"] - 2.0) * 100.0 for r in rows)
    assert abs(rec.floor_us - floor) < 1e-6 * floor


def test_golden_outputs_drop_wall_clock_fields_in_json_lines(tmp_path):
    """A search's results.jsonl carries each plan's wall_s and search.json its task timing:
    neither may make a golden check fail on a rerun."""
    import json

    golden = _load("scripts/golden.py")
    lines = tmp_path / "results.jsonl"
    lines.write_text(json.dumps({"plan": "a", "wall_s": 1.5}) + "\n"
                     + json.dumps({"plan": "b", "wall_s": 2.5}) + "\n")
    assert golden._read_output(lines) == [{"plan": "a"}, {"plan": "b"}]
    doc = tmp_path / "search.json"
    doc.write_text(json.dumps({"counts": {"n": 2}, "timing": {"task_s": {"x": 3.0}}}))
    assert golden._read_output(doc) == {"counts": {"n": 2}}


def test_decode_slope_refuses_bad_inputs_in_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    mod = _load("benchmarks/decode_slope.py")
    assert mod.main(["--json", str(tmp_path / "missing.json")]) == 2
    assert mod.main(["--data", str(tmp_path / "missing.csv")]) == 2
    data = tmp_path / "rows.csv"
    data.write_text("id\n")
    assert mod.main(["--data", str(data), "--json", str(bad)]) == 2
