"""The estimator flags on the CLI (estimate, op, simulate, offload), the source-design alias
``--estimator ml --model x.pkl``, ``llmsim train`` and ``op --cases --features``."""

from __future__ import annotations

import pandas as pd
import pytest

pytest.importorskip("sklearn")


def _gemm_rows(path):
    rows = []
    for hw, util, peak in (("h100-sxm", 0.6, 989e12), ("a100-sxm-80gb", 0.5, 312e12)):
        for m in (1, 4, 16, 64, 256, 1024, 4096):
            for n, k in ((4096, 4096), (14336, 4096), (4096, 14336), (1024, 4096)):
                rows.append({"kind": "gemm", "hardware": hw, "dtype": "bf16", "m": m, "n": n,
                             "k": k, "measured_time_s": 2 * m * n * k / (util * peak) + 3e-6})
    pd.DataFrame(rows * 3).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    from llmsim.calibration.training import train_from

    d = tmp_path_factory.mktemp("train")
    out = d / "m.joblib"
    train_from([str(_gemm_rows(d / "gemm.csv"))], out, quick=True)
    return out


def test_train_command_writes_a_model_that_estimate_and_op_load(cli, tmp_path):
    src = _gemm_rows(tmp_path / "gemm.csv")
    out = tmp_path / "model.joblib"
    res = cli("train", "--measurements", str(src), "--out", str(out), "--quick", "-f", "json")
    assert res.code == 0, res.err
    assert out.is_file() and res.json()["kinds"][0]["kind"] == "gemm"
    est = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--estimator", "learned",
              "--estimator-model", str(out), "-f", "json").json()
    assert est["estimator"] == "learned"
    assert "learned" in est["op_sources"]["prefill"]
    op = cli("op", "--kind", "gemm", "-H", "h100-sxm", "--m", "64", "--n", "4096", "--k",
             "4096", "--estimator", "ml", "--model", str(out), "-f", "json").json()
    assert op["source"] == "learned"
    cal = cli("op", "--kind", "gemm", "-H", "h100-sxm", "--m", "64", "--n", "4096", "--k",
              "4096", "-f", "json").json()
    assert "source" not in cal and cal["time_s"] != op["time_s"]


def test_source_design_alias_and_ml_model(cli, model_file):
    a = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--estimator", "ml",
            "--ml-model", str(model_file), "-f", "json")
    assert a.code == 0, a.err and a.json()["estimator"] == "learned"
    # --model x.joblib under the learned estimator is the model file; the LLM is then missing
    b = cli("estimate", "-H", "h100-sxm", "--estimator", "ml", "--model", str(model_file))
    assert b.code == 2 and "give the LLM too" in b.err and len(b.err.splitlines()) == 1
    c = cli("estimate", "-m", str(model_file), "-H", "h100-sxm")
    assert c.code == 2 and "not an LLM" in c.err
    # --estimator-model alone implies the estimator from the file's kind
    d = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--estimator-model",
            str(model_file), "-f", "json")
    assert d.code == 0 and d.json()["estimator"] == "learned"


def test_unknown_estimator_is_one_line_with_did_you_mean(cli):
    for argv in (("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm"),
                 ("op", "--kind", "gemm", "-H", "h100-sxm", "--m", "8", "--n", "8", "--k", "8"),
                 ("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "-n", "5"),
                 ("offload", "solve", "--model", "opt-6.7b"),
                 ("moe-offload", "simulate", "-m", "mixtral-8x7b")):
        res = cli(*argv, "--estimator", "tabel")
        assert res.code == 2, argv
        assert res.err.strip() == "error: unknown estimator 'tabel'. Did you mean 'table'?"
    res = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--estimator", "learned")
    assert res.code == 2 and "--estimator-model" in res.err


def test_table_estimator_reports_where_op_times_came_from(cli):
    res = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--estimator", "table",
              "-f", "json")
    d = res.json()
    assert d["estimator"] == "table"
    assert sum(d["op_sources"]["decode"].values()) == pytest.approx(1.0)
    assert d["op_sources"]["prefill"]["table"] > 0.5
    table = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--estimator", "table")
    assert "op time from" in table.out and "table" in table.out
    plain = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "-f", "json").json()
    assert "op_sources" not in plain and plain["estimator"] == "calibrated"


def test_simulate_and_offload_take_the_estimator(cli):
    base = ("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "-n", "30", "--rate", "5",
            "-f", "json")
    cal = cli(*base).json()
    ana = cli(*base, "--estimator", "analytic").json()
    assert ana["ttft_s"]["mean"] < cal["ttft_s"]["mean"]  # datasheet peaks are faster
    off = cli("offload", "solve", "--model", "opt-6.7b", "--estimator", "analytic",
              "-f", "json")
    assert off.code == 0, off.err
    # moe-offload: the step model behind the non-expert GPU work takes the estimator
    moe = ("moe-offload", "simulate", "-m", "mixtral-8x7b", "-C", "0", "-f", "json")
    cal, ana = cli(*moe).json(), cli(*moe, "--estimator", "analytic").json()
    assert ana["prefill_s"] < cal["prefill_s"] and ana["decode_s_per_token"] < \
        cal["decode_s_per_token"]
    res = cli(*moe, "--estimator", "learned")
    assert res.code == 2 and "--estimator-model" in res.err


def test_moe_offload_costs_build_their_step_model_with_the_estimator():
    from llmsim.costmodel import Precision
    from llmsim.expert_cache import load_moe_model, make_platform
    from llmsim.expert_cache.costs import OffloadCosts

    spec = load_moe_model("mixtral-8x7b")
    platform = make_platform("rtx-4090", None, 1.0)
    precision = Precision.resolve(spec.weight_dtype, supported=platform.hardware.supported_dtypes)
    costs = OffloadCosts(spec, platform, precision, estimator="analytic")
    assert costs.step_model.deployment.estimator == "analytic"
    assert OffloadCosts(spec, platform, precision).step_model.deployment.estimator == \
        "calibrated"


def test_op_features_line_up_with_the_measurements(cli, tmp_path):
    src = tmp_path / "ops.csv"
    src.write_text("kind,hardware,dtype,m,n,k,batch,context_len,num_heads,num_kv_heads,"
                   "head_dim,message_bytes,num_gpus,measured_time_s\n"
                   "gemm,h100-sxm,bf16,4096,4096,4096,,,,,,,,0.000172\n"
                   "attention-decode,h100,bf16,,,,32,4096,32,8,128,,,0.000061\n"
                   "all-reduce,h100-sxm,bf16,,,,,,,,,16777216,8,0.000083\n")
    out = tmp_path / "features.csv"
    res = cli("op", "--cases", str(src), "--features", "--out", str(out))
    assert res.code == 0, res.err
    f = pd.read_csv(out)
    assert len(f) == 3 and list(f["measured_time_s"]) == [0.000172, 0.000061, 0.000083]
    assert f.loc[0, "log_m"] == 12 and f.loc[1, "log_context_len"] == 12
    assert f.loc[0, "sol_s"] > 0 and pd.isna(f.loc[2, "sol_s"])  # collectives: no features
    bad = cli("op", "--features")
    assert bad.code == 2 and "--cases" in bad.err


RUNS = ("model,hardware,tp,mode,batch,concurrency,input_tokens,output_tokens,ttft_s,tpot_s\n"
        "llama-3.1-8b,h100-sxm,1,static,8,,1024,256,0.095,0.0081\n"
        "llama-3.1-8b,h100-sxm,1,static,16,,512,128,0.11,0.0085\n"
        "llama-3.1-8b,h100-sxm,1,static,1,,2048,128,0.13,0.0069\n"
        "llama-3.1-70b,h100-sxm,4,closed_loop,,32,2048,512,0.61,0.034\n")


def test_estimate_intervals_on_by_default_with_level_and_off_switch(cli):
    base = ("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "-b", "8")
    d = cli(*base, "-f", "json").json()
    assert d["interval_level"] == 0.8
    for key in ("ttft_s", "tpot_s", "e2e_s", "output_tokens_per_s"):
        lo, hi = d["intervals"][key]
        assert 0 < lo < hi
    wide, narrow = d["intervals"]["ttft_s"], cli(*base, "--interval-level", "0.5", "-f",
                                                  "json").json()["intervals"]["ttft_s"]
    assert wide[0] <= narrow[0] and narrow[1] <= wide[1]
    off = cli(*base, "--no-intervals", "-f", "json").json()
    assert "intervals" not in off and off["ttft_s"] == d["ttft_s"]
    ttft = next(line for line in cli(*base).out.splitlines() if "TTFT" in line)
    from llmsim.report.estimate import timed

    class R:  # the JSON's figures, rendered as the table renders them
        ttft_s, intervals = d["ttft_s"], d["intervals"]

    assert timed(R, "ttft_s") in ttft and "ms [" in ttft  # e.g. "81.815 ms [87.7, 181]"


def test_validate_reads_runs_and_op_timings_and_plots(cli, tmp_path):
    runs = tmp_path / "runs.csv"
    runs.write_text(RUNS)
    res = cli("validate", "--from", str(runs), "--intervals", "--plot", str(tmp_path / "p"),
              "-f", "json")
    assert res.code == 0, res.err
    d = res.json()
    assert d["skipped_rows"] == 1 and len(d["rows"]) == 3
    err = {e["figure"]: e for e in d["errors"]}
    assert set(err) == {"ttft_s", "tpot_s"}
    assert 0.0 <= err["tpot_s"]["interval_coverage"] <= 1.0
    assert -1.0 <= err["tpot_s"]["pearson_r"] <= 1.0
    names = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert names == sorted(f"{f}_{k}.png" for f in ("ttft_s", "tpot_s")
                           for k in ("scatter", "error_hist", "error_by_row"))
    ops = _gemm_rows(tmp_path / "gemm.csv")
    v = cli("validate", "--from", str(ops), "--plot", str(tmp_path / "q"), "-f", "json")
    assert v.code == 0, v.err
    assert {"pearson_r", "median_signed_pct"} <= set(v.json()["errors"][0])
    assert (tmp_path / "q" / "gemm_scatter.png").stat().st_size > 1000
    cal = cli("calibrate", "--from", str(ops), "--out", str(tmp_path / "x.yaml"))
    assert cal.code == 2 and "pick one with --hardware" in cal.err  # two parts in the file


def test_estimate_request_file_plots_and_interval_coverage(cli, tmp_path):
    req = tmp_path / "req.csv"
    req.write_text("input_tokens,output_tokens,ttft_s,tpot_s\n512,128,0.09,0.021\n"
                   "1024,256,0.16,0.022\n2048,64,0.31,0.024\n")
    res = cli("estimate", "--cases", str(req), "-m", "llama-2-70b", "-H", "a100-sxm-80gb",
              "--tp", "4", "--intervals", "--plot", str(tmp_path / "plots"), "-f", "json")
    assert res.code == 0, res.err
    d = res.json()
    assert {"pred_ttft_s_lo", "pred_ttft_s_hi"} <= set(d["rows"][0])
    assert "interval_coverage" in d["error_stats"]["ttft_s"]
    assert (tmp_path / "plots" / "ttft_s_error_hist.png").is_file()
    bad = cli("estimate", "-m", "llama-2-70b", "-H", "a100-sxm-80gb", "--plot", "x")
    assert bad.code == 2 and "--cases" in bad.err


def test_simulate_intervals_from_factor_draws(cli):
    base = ("simulate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "-n", "20", "--rate", "5",
            "-f", "json")
    plain = cli(*base).json()
    assert "interval" not in plain["ttft_s"] and "intervals" not in plain  # off by default
    d = cli(*base, "--interval-draws", "5").json()
    assert d["interval_draws"] == 5 and d["interval_level"] == 0.8
    assert d["ttft_s"]["mean"] == plain["ttft_s"]["mean"]  # the point run is unchanged
    for block in ("ttft_s", "tpot_s", "e2e_s"):
        lo, hi = d[block]["interval"]
        assert 0 < lo <= hi and d[block]["intervals"]["p90"][0] <= d[block]["intervals"]["p90"][1]
    assert d["intervals"]["output_tokens_per_s"][0] > 0
    assert d["interval_basis"]["engine"] == "not included"
    few = cli(*base, "--interval-draws", "2")
    assert few.code == 2 and "at least 5" in few.err


def test_the_schema_examples_in_calibration_md_parse(tmp_path):
    import re
    from pathlib import Path

    from llmsim.calibration.importers import load_source
    from llmsim.calibration.runs import read_runs

    text = (Path(__file__).resolve().parents[1] / "docs" / "calibration.md").read_text()
    blocks = re.findall(r"```csv\n(.*?)```", text, flags=re.S)
    ops = next(b for b in blocks if b.startswith("kind,"))
    runs = next(b for b in blocks if b.startswith("model,"))
    (tmp_path / "ops.csv").write_text(ops)
    (tmp_path / "runs.csv").write_text(runs)
    assert len(load_source(str(tmp_path / "ops.csv"))) == ops.count("\n") - 1
    assert len(read_runs(str(tmp_path / "runs.csv"))) == runs.count("\n") - 1
