"""Host calibration of the offload model against FlexLLMGen's published throughput: the fitter,
the shipped ``gcp-t4-flexgen`` entry (exactly the script's output), the leave-one-out error,
and the FlexGen runtime structure the fit rests on (``placement/runtime.py``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from llmsim.calibration.default_profile import to_yaml
from llmsim.catalog._base import validate_spec
from llmsim.costmodel.profile import Profile, ProfileFile
from llmsim.errors import DataError
from llmsim.placement import OffloadPolicy, evaluate, runtime
from llmsim.placement import host_fit as hf
from llmsim.placement.policy import FLEXGEN_4BIT

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "flexgen_throughput.csv"
DEFAULT_YAML = REPO / "src" / "llmsim" / "data" / "profiles" / "default.yaml"
T4 = {"hardware": "t4", "host": "gcp-t4-flexgen"}

# |error| tolerance per published point, in % of tokens/s: the leave-one-out error measured at
# this commit (scripts/fit_host_profile.py; docs/offload.md) rounded up to the next 5 points.
# LOO is the honest error: fit on the other five points, predict this one. A point whose
# parameters no other point constrains (opt-30b: CPU attention) or that no host parameter
# touches (the all-on-GPU OPT-6.7B runs) keeps its datasheet error. Not tuned to pass: a model
# change that moves these must re-measure and say so.
LOO_TOLERANCE_PCT = {
    "flexllmgen/opt-6.7b": 5,             # measured LOO -3.5
    "flexllmgen/opt-30b": 45,             # +43.0 (cpu_memory_eff unconstrained without it)
    "flexllmgen/opt-175b": 5,             # -4.6
    "flexllmgen-compression/opt-6.7b": 50,  # +47.0 (GPU only: no host parameter applies)
    "flexllmgen-compression/opt-30b": 5,  # -3.5
    "flexllmgen-compression/opt-175b": 10,  # +6.1
}
MEAN_LOO_TOLERANCE_PCT = 20  # measured 18.0


@pytest.fixture(scope="module")
def shipped_text() -> str:
    return DEFAULT_YAML.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def refit(shipped_text):
    """The host stage of scripts/fit_profile.py re-run on the shipped profile."""
    shipped = validate_spec(ProfileFile, yaml.safe_load(shipped_text), "default.yaml")
    return hf.fit_profile_host(shipped, GOLDEN)  # type: ignore[arg-type]


def test_cases_load_with_the_published_policies():
    cases = hf.load_flexgen_cases(GOLDEN)
    assert [c.name for c in cases] == list(LOO_TOLERANCE_PCT)
    for c in cases:  # bench_suite.py runs OPT-175B with --pin-weight 0
        assert c.policy.pin_weight == (c.model != "opt-175b")
        assert c.policy.block_size in (2, 144, 256, 72, 512)


def test_bad_case_files_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        hf.load_flexgen_cases(tmp_path / "missing.csv")
    only_others = tmp_path / "t.csv"
    only_others.write_text("system,model\nhf-accelerate,opt-30b\n", encoding="utf-8")
    with pytest.raises(DataError, match="no FlexLLMGen rows"):
        hf.load_flexgen_cases(only_others)


def test_shipped_profile_is_exactly_the_scripts_output(refit, shipped_text):
    merged, report = refit
    assert to_yaml(merged) == shipped_text
    entry = Profile.load().data.entries[hf.FLEXGEN_HOST]
    assert entry.host.model_dump(exclude_none=True) == report.values
    fit = entry.fit["host"]
    assert fit["n"] == 6 and fit["params"] == list(hf.FITTED_PARAMS) and fit["in_sample"]
    assert fit["mean_abs_loo_pct"] == round(report.mean_abs_pct("loo"), 1)


def test_leave_one_out_error_within_measured_tolerance(refit):
    _, report = refit
    for case, err in zip(report.cases, report.errors_pct("loo"), strict=True):
        assert abs(err) <= LOO_TOLERANCE_PCT[case.name], (case.name, err)
    assert report.mean_abs_pct("loo") <= MEAN_LOO_TOLERANCE_PCT
    # calibration helps out of sample on average, and never needs more than its 3 parameters
    assert report.mean_abs_pct("loo") < report.mean_abs_pct("datasheet")
    assert len(report.params) < len(report.cases)


def test_shipped_profile_predicts_each_point_within_tolerance():
    """What a user gets (default profile, public API) at the published policies."""
    for case in hf.load_flexgen_cases(GOLDEN):
        res = evaluate(case.model, case.policy, case.prompt_len, case.gen_len, **T4)
        err = 100.0 * (res.throughput_tokens_per_s / case.measured_tokens_per_s - 1.0)
        assert abs(err) <= LOO_TOLERANCE_PCT[case.name], (case.name, err)
        assert res.system.host_eff.names == (hf.FLEXGEN_HOST,)


def test_fit_recovers_known_efficiencies():
    """Published numbers replaced by the model's own predictions at known efficiencies: the
    fitter finds them again (up to the 4-significant-figure rounding)."""
    cases = hf.load_flexgen_cases(GOLDEN)
    pricer = hf.CasePricer(cases)
    truth = {"pageable_eff": 0.3, "cpu_memory_eff": 0.6, "disk_read_eff": 0.8}
    pred = pricer.throughput(hf.host_efficiency(truth))
    synthetic = [dataclasses.replace(c, measured_tokens_per_s=float(p))
                 for c, p in zip(cases, pred, strict=True)]
    got = hf.fit_host(pricer, synthetic)
    for key, value in truth.items():
        assert got[key] == pytest.approx(value, rel=1e-3), key
    # a parameter no point makes binding keeps its datasheet value
    gpu_only = [c for c in synthetic if c.lowest_tier == "gpu"]
    assert hf.fit_host(pricer, gpu_only) == dict.fromkeys(hf.FITTED_PARAMS, 1.0)


def test_flexgen_runtime_pass_structure():
    """FlexLLMGen's (de)quantisation and CPU attention byte counts (runtime.py derivation)."""
    dq = runtime.pass_bytes(runtime.dequantize_passes(FLEXGEN_4BIT, 2.0))
    assert dq == pytest.approx(13.0 + 4.0 / 64.0)  # 6 passes vs 2.5625 fused
    assert len(runtime.dequantize_passes(FLEXGEN_4BIT, 2.0)) == 6
    q = runtime.pass_bytes(runtime.quantize_passes(FLEXGEN_4BIT, 2.0))
    assert 25.5 < q < 26.0 and len(runtime.quantize_passes(FLEXGEN_4BIT)) == 12
    assert runtime.pass_bytes(runtime.FUSED.dequantize_passes(FLEXGEN_4BIT, 2.0)) == \
        pytest.approx(FLEXGEN_4BIT.bytes_per_element + 2.0)
    assert runtime.cpu_attention_bytes_per_kv_value(2.0, None) == 18.0
    assert runtime.get_runtime("FlexGen") is runtime.FLEXGEN
    with pytest.raises(Exception, match="unknown offload runtime"):
        runtime.get_runtime("vllm")


def test_pageable_buffers_are_staged_serially():
    """A pageable CPU cache (FlexGen) or pageable CPU weights (--pin-weight 0) are staged on the
    main thread before the layer's streams: time = staging + max(streams)."""
    base = OffloadPolicy.from_percent(16, 4, (0, 100, 0, 100, 100, 0))
    flex = evaluate("opt-6.7b", base, 512, 32, **T4)
    fused = evaluate("opt-6.7b", base, 512, 32, runtime="fused", **T4)
    assert flex.decode.streams_s["staging"] > 0 and fused.decode.streams_s["staging"] == 0
    for layer in flex.decode.layers:
        v = layer["streams_s"]
        concurrent = max(x for k, x in v.items() if k != "staging")
        assert layer["time_s"] == pytest.approx(v["staging"] + concurrent)
    pageable = evaluate("opt-6.7b", dataclasses.replace(base, pin_weight=False), 512, 32, **T4)
    assert pageable.prefill.streams_s["staging"] > flex.prefill.streams_s["staging"] == 0
    assert pageable.throughput_tokens_per_s < flex.throughput_tokens_per_s
    assert "pageable-weights" in pageable.policy.describe()
