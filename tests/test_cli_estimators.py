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
                 ("offload", "solve", "--model", "opt-6.7b")):
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
