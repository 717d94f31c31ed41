"""Estimators behind the one seam: registry, calibrated / analytic, table (interpolation,
fallback, source tags, fast path = breakdown) and learned (train, load, envelope, errors)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from llmsim.catalog import get_hardware
from llmsim.costmodel import AnalyticStepTimeModel, BatchShape, Deployment, build_step_model
from llmsim.costmodel.estimators import ESTIMATORS, learned, sources, table, work
from llmsim.costmodel.estimators.repriced import FALLBACK, source_shares
from llmsim.costmodel.profile import Profile
from llmsim.errors import ConfigError, DataError, UnknownNameError
from llmsim.estimates import estimate

H100 = get_hardware("h100-sxm")


def _dep(estimator="calibrated", model=None, hw="h100-sxm", **kw):
    return Deployment.resolve("llama-3.1-8b", hw, estimator=estimator, estimator_model=model,
                              **kw)


def test_registry_names_aliases_and_did_you_mean():
    assert set(ESTIMATORS.names()) == {"analytic", "calibrated", "learned", "table"}
    assert ESTIMATORS.canonical("ml") == "learned" and ESTIMATORS.canonical("roofline") == \
        "analytic"
    with pytest.raises(UnknownNameError, match="Did you mean 'table'"):
        _dep("tabel")
    assert _dep("ML", "x.joblib").estimator == "learned"


def test_default_is_the_calibrated_roofline_unchanged():
    sm = build_step_model(_dep())
    assert type(sm) is AnalyticStepTimeModel
    ref = AnalyticStepTimeModel(Deployment.resolve("llama-3.1-8b", "h100-sxm"))
    for shape in (BatchShape.prefill(4, 1000), BatchShape.decode(32, 3000)):
        assert sm.step_time(shape) == ref.step_time(shape)
    assert sm.describe()["estimator"] == "calibrated"
    with pytest.raises(ConfigError, match="takes no --estimator-model"):
        build_step_model(_dep("calibrated", "x.parquet"))


def test_analytic_is_the_datasheet_roofline():
    sm = build_step_model(_dep("analytic"))
    empty = AnalyticStepTimeModel(Deployment.resolve("llama-3.1-8b", "h100-sxm",
                                                     profile=Profile.empty()))
    shape = BatchShape.prefill(2, 512)
    assert sm.step_time(shape) == empty.step_time(shape)
    assert sm.step_time(shape) < build_step_model(_dep()).step_time(shape)
    assert sm.describe()["profile"] == "datasheet roofline"
    with pytest.raises(ConfigError, match="takes no profile"):
        Deployment.resolve("llama-3.1-8b", "h100-sxm", estimator="analytic", profile="x.yaml")


# ----------------------------------------------------------------------------- table
def _gemm_rows(n_sites=((4096, 4096), (4096, 14336), (14336, 4096)), ms=(1, 16, 256, 4096),
               util=0.5, hw="h100-sxm"):
    """Synthetic GEMM rows at a constant fraction ``util`` of the datasheet roofline."""
    rows = []
    spec = get_hardware(hw)
    prec = work.precision_of(spec, "bf16")
    for n, k in n_sites:
        for m in ms:
            sol = float(work.roofline_time(work.work("gemm", {"m": m, "n": n, "k": k}, spec,
                                                     prec), spec))
            rows.append({"kind": "gemm", "hardware": hw, "dtype": "bf16", "m": m, "n": n,
                         "k": k, "measured_time_s": sol / util, "framework": "test"})
    return pd.DataFrame(rows)


def test_table_hits_measured_points_and_holds_util_beyond():
    t = table.KernelTable(H100, _gemm_rows(util=0.5), "synthetic")
    prec = work.precision_of(H100, "bf16")
    case = {"n": 4096.0, "k": 4096.0, "dtype": "bf16", "act_dtype": "bf16"}
    ms = np.array([16.0, 100.0, 8192.0])
    sol = work.roofline_time(work.work("gemm", {"m": ms, "n": 4096, "k": 4096}, H100, prec),
                             H100)
    got, tags = t.times("gemm", case, ms, sol)
    np.testing.assert_allclose(got, sol / 0.5, rtol=1e-9)  # exact, between, beyond: util 0.5
    assert tags == ["table", "table", "table-extrapolated"]
    # between two measured sites (n = 8192 between 4096 and 14336): still util 0.5
    got, tags = t.times("gemm", {**case, "n": 8192.0}, np.array([256.0]), np.array([1e-3]))
    assert got[0] == pytest.approx(2e-3) and tags == ["table"]
    # a format the table does not hold: not covered
    got, tags = t.times("gemm", {**case, "dtype": "fp8", "act_dtype": "fp8"},
                        np.array([16.0]), np.array([1e-3]))
    assert math.isnan(got[0]) and tags == [FALLBACK]


def test_table_interpolates_log_util_between_measured_m():
    rows = _gemm_rows(n_sites=((4096, 4096),), ms=(16, 256), util=0.5)
    rows.loc[rows["m"] == 256, "measured_time_s"] *= 0.5  # util 1.0 at m = 256
    t = table.KernelTable(H100, rows, "synthetic")
    case = {"n": 4096.0, "k": 4096.0, "dtype": "bf16", "act_dtype": "bf16"}
    got, _ = t.times("gemm", case, np.array([64.0]), np.array([1.0]))  # halfway in log2(m)
    assert got[0] == pytest.approx(1.0 / math.sqrt(0.5 * 1.0))


def test_table_estimator_from_a_file(tmp_path):
    path = tmp_path / "ops.csv"
    _gemm_rows(util=0.25).to_csv(path, index=False)
    sm = build_step_model(_dep("table", str(path)))
    cal = build_step_model(_dep())
    shape = BatchShape.prefill(1, 256)
    cost = sm.price(shape)
    assert cost.time_s == pytest.approx(sm.step_time(shape), rel=1e-12)
    gemms = [o for layer in cost.layers for o in layer.ops if o.kind.value == "gemm"]
    assert {o.source for o in gemms} <= {"table", "table-extrapolated", FALLBACK}
    by_name = {o.name: o for o in gemms}
    # q_proj (n = k = 4096) is a measured site; kv_proj (n = 2048) lies below every site: the
    # boundary util (0.25 everywhere here) is held and the roofline scales
    assert by_name["q_proj"].source == "table"
    assert by_name["kv_proj"].source == "table-extrapolated"
    for o in (by_name["q_proj"], by_name["kv_proj"]):
        sol = max(o.flops / H100.peak_flops(work.DType.BF16),
                  o.bytes / H100.memory_bandwidth_bytes_per_s)
        assert o.time_s == pytest.approx(4 * sol, rel=1e-9)
        assert o.time_s == max(o.compute_s, o.memory_s) and o.overhead_s == 0
    attn = [o for layer in cost.layers for o in layer.ops
            if o.kind.value.startswith("attention")]
    assert all(o.source == FALLBACK for o in attn)
    shares = source_shares(cost)
    assert set(shares) <= {"table", "table-extrapolated", FALLBACK}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert sm.step_time(shape) != cal.step_time(shape)
    assert sm.describe()["coverage"]["kinds"]["gemm"]["framework"] == "test"


def test_shipped_table_prices_h100_with_its_curves_and_agrees_fast_path():
    sm = build_step_model(_dep("table"))
    for shape in (BatchShape.prefill(4, 1000), BatchShape.decode(16, 2000),
                  BatchShape.prefill(1, 512) + BatchShape.decode(8, 900)):
        assert sm.price(shape).time_s == pytest.approx(sm.step_time(shape), rel=1e-12)
    ctx = np.array([10.0, 1000.0, 30000.0])
    curve = sm.decode_step_times(16, ctx)
    np.testing.assert_allclose(curve, [sm.step_time(BatchShape.decode(16, c)) for c in ctx],
                               rtol=1e-12)
    shares = source_shares(sm.price(BatchShape.decode(16, 2000)))
    assert shares.get("table", 0) > 0.8
    info = table.load_table(None, "h100-sxm").info
    assert info["gemm"]["framework"] == "vllm" and info["attention-decode"]["rows"] > 1000


def test_table_on_a_gpu_without_data_is_the_calibrated_roofline(caplog):
    with caplog.at_level(logging.WARNING):
        sm = build_step_model(_dep("table", hw="b200-sxm"))
    cal = build_step_model(_dep(hw="b200-sxm"))
    shape = BatchShape.prefill(2, 300)
    assert sm.step_time(shape) == pytest.approx(cal.step_time(shape), rel=1e-12)
    assert source_shares(sm.price(shape)) == {FALLBACK: 1.0}
    assert "no rows for b200-sxm" in caplog.text


def test_source_specs_parse_and_unknown_ones_fail_in_one_line():
    s = sources.parse_source("aiconfigurator:/data/aic?framework=trtllm&version=1.0.0")
    assert (s.kind, s.path, s.options) == ("aiconfigurator", "/data/aic",
                                           {"framework": "trtllm", "version": "1.0.0"})
    assert sources.parse_source("ops.csv").kind == "file"
    assert sources.parse_source(r"C:\data\ops.csv").kind == "file"
    assert sources.parse_source(None).kind == "builtin"
    with pytest.raises(ConfigError, match="unknown option"):
        sources.parse_source("vidur:/x?frame=1")
    with pytest.raises(ConfigError, match="needs a path"):
        sources.parse_source("vidur:")
    with pytest.raises(ConfigError, match="unknown measurement source 'nope'"):
        sources.read_rows("nope:/x")
    with pytest.raises(DataError, match="no such file"):
        build_step_model(_dep("table", "/nonexistent/ops.csv"))


def test_version_key_orders_versions_not_text():
    vs = ["0.5.9", "0.5.10", "1.3.0rc15", "1.0.0", "1.3.0", "0.14.0", "0.22.0"]
    assert sorted(vs, key=sources.version_key) == ["0.5.9", "0.5.10", "0.14.0", "0.22.0",
                                                    "1.0.0", "1.3.0rc15", "1.3.0"]


# ----------------------------------------------------------------------------- learned
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    rows = pd.concat([_gemm_rows(ms=(1, 4, 16, 64, 256, 1024, 4096), util=u, hw=hw)
                      for hw, u in (("h100-sxm", 0.6), ("a100-sxm-80gb", 0.5))],
                     ignore_index=True)
    rows = pd.concat([rows] * 8, ignore_index=True)  # enough rows per kind
    path = tmp_path_factory.mktemp("learned") / "m.joblib"
    learned.train(rows, path, quick=True)
    return path


def test_learned_trains_loads_and_prices(model_file):
    model = learned.LearnedModel.load(model_file)
    assert set(model.kinds) == {"gemm"}
    rows = _gemm_rows(ms=(16, 256), util=0.6)
    pred = model.predict_rows(rows)
    np.testing.assert_allclose(pred, rows["measured_time_s"], rtol=0.15)
    sm = build_step_model(_dep("learned", str(model_file)))
    shape = BatchShape.prefill(1, 256)
    cost = sm.price(shape)
    assert cost.time_s == pytest.approx(sm.step_time(shape), rel=1e-12)
    tags = {o.source for layer in cost.layers for o in layer.ops}
    assert "learned" in tags and FALLBACK in tags  # attention: no model -> calibrated
    assert sm.describe()["coverage"]["kinds"]["gemm"]["n"] > 0


def test_learned_envelope_falls_back_with_one_warning(model_file, caplog):
    learned._WARNED.clear()
    sm = build_step_model(_dep("learned", str(model_file)))
    with caplog.at_level(logging.WARNING):
        cost = sm.price(BatchShape.prefill(64, 4096))  # m = 262144 rows: far outside
        sm.price(BatchShape.prefill(64, 2048))
    gemm = [o for layer in cost.layers for o in layer.ops if o.kind.value == "gemm"]
    assert any(o.source == learned.OUTSIDE for o in gemm)
    assert caplog.text.count("outside its training envelope") == 1


def test_learned_errors_are_one_line(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="needs a model file"):
        build_step_model(_dep("learned"))
    with pytest.raises(DataError, match="no such model file"):
        build_step_model(_dep("learned", str(tmp_path / "missing.joblib")))
    bad = tmp_path / "bad.joblib"
    bad.write_text("not a model")
    with pytest.raises(DataError, match="not a learned-estimator model file"):
        learned.LearnedModel.load(bad)

    def no_sklearn():
        raise ConfigError("the learned estimator needs scikit-learn: pip install "
                          "'llmsim[learned]'")

    monkeypatch.setattr(learned, "sklearn_models", no_sklearn)
    with pytest.raises(ConfigError, match=r"llmsim\[learned\]"):
        learned.train(_gemm_rows(), None)


def test_estimate_takes_the_estimator():
    a = estimate("llama-3.1-8b", "h100-sxm", batch=4, prompt=512, output=64)
    b = estimate("llama-3.1-8b", "h100-sxm", batch=4, prompt=512, output=64, estimator="table")
    assert a.ttft_s != b.ttft_s and b.fits
    ops = b.as_dict(ops=True)["layers"]["decode"][1]["ops"]
    assert all("source" in o for o in ops)
    assert all("source" not in o for o in a.as_dict(ops=True)["layers"]["decode"][1]["ops"])


def test_price_op_under_each_estimator():
    from llmsim.estimates.op import price_op

    gemm = {"m": 4096, "n": 4096, "k": 4096}
    cal = price_op("gemm", "h100-sxm", **gemm)
    raw = price_op("gemm", "h100-sxm", estimator="analytic", **gemm)
    tab = price_op("gemm", "h100-sxm", estimator="table", **gemm)
    assert raw.time_s < cal.time_s and cal.source == "" and tab.source == "table"
    sol = max(raw.flops / H100.peak_flops(work.DType.BF16),
              raw.bytes / H100.memory_bandwidth_bytes_per_s)
    assert raw.time_s == pytest.approx(sol, rel=1e-12)
    # a measured point of the shipped H100 vLLM table (8192^3 bf16 = 1.54 ms, PROVENANCE.md)
    big = price_op("gemm", "h100-sxm", estimator="table", m=8192, n=8192, k=8192)
    assert big.time_s == pytest.approx(1.54e-3, rel=0.02)
    ar = price_op("all-reduce", "h100-sxm", message_bytes=1e7, num_gpus=8, estimator="table")
    assert ar.source == FALLBACK and ar.bound.value == "communication"
    with pytest.raises(ConfigError, match="takes no profile"):
        price_op("gemm", "h100-sxm", estimator="analytic", profile="x.yaml", **gemm)
    moe = {"num_tokens": 16, "hidden_size": 4096, "intermediate_size": 1536,
           "num_experts": 128, "top_k": 8}
    with pytest.raises(ConfigError, match="does not apply to the learned estimator"):
        price_op("moe", "h100-sxm", estimator="learned", routing="balanced", **moe)
    with pytest.raises(UnknownNameError, match="balanced"):
        price_op("moe", "h100-sxm", routing="even", **moe)


def test_the_estimators_keep_the_cost_model_import_light():
    import subprocess
    import sys

    code = ("import sys, llmsim.costmodel as c; c.build_step_model(c.Deployment.resolve("
            "'llama-3.1-8b', 'h100-sxm')); print('pandas' in sys.modules, "
            "'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]
