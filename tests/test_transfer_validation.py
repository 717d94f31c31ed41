"""The rule for a GPU without data (profile_without: the shipped median rule and the
nearest-scaled rule) and the validation residuals / pools behind the intervals, on the golden
subsets (no ../shared needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmsim.calibration import residuals as rs
from llmsim.calibration import transfer
from llmsim.calibration import validation as va
from llmsim.calibration.accuracy import sets_from_golden
from llmsim.catalog import get_hardware, list_hardware
from llmsim.costmodel.estimators import learned as lm
from llmsim.costmodel.estimators.intervals import ResidualData
from llmsim.costmodel.profile import FP8_FAMILIES, KERNEL_FAMILIES, Profile
from llmsim.errors import UnknownNameError

REPO = Path(__file__).resolve().parents[1]

BASE = Profile.load()


def _kernels(profile: Profile, hw: str) -> dict:
    hp = profile.for_hardware(get_hardware(hw))
    return {f: hp.kernel(f).as_dict() for f in KERNEL_FAMILIES}


def test_without_an_unfitted_part_changes_nothing():
    p = transfer.profile_without(BASE, "b200-sxm")
    for hw in list_hardware():
        assert _kernels(p, hw) == _kernels(BASE, hw), hw


def test_median_rule_is_what_an_unseen_part_gets():
    p = transfer.profile_without(BASE, "h100-sxm")
    hp = p.for_hardware(get_hardware("h100-sxm"))
    assert hp.names == ["generic"]  # no hopper part left: the median of A100 and A40
    a100, a40 = (BASE.data.entries[h].gemm.compute_eff for h in ("a100-sxm-80gb", "a40"))
    assert hp.kernel("gemm").compute_eff == pytest.approx(np.median([a100, a40]), rel=1e-3)
    # attention was fitted on A100 only among the rest: a copy of it
    assert _kernels(p, "h100-sxm")["attention_decode"] == \
        _kernels(BASE, "a100-sxm-80gb")["attention_decode"]
    # the fitted parts keep their own curves; fp8 was fitted on H100 alone, so without it
    # every part's fp8 variants fall back to its own bf16 curve (at the fp8 peak)
    left, base = _kernels(p, "a100-sxm-80gb"), _kernels(BASE, "a100-sxm-80gb")
    for fam, bf16 in FP8_FAMILIES.items():
        assert left.pop(fam) == base[bf16]
        assert base.pop(fam) == _kernels(BASE, "h100-sxm")[fam]  # from generic (H100's)
    assert left == base


def test_nearest_scaled_rule_copies_and_rescales_the_halves():
    p = transfer.profile_without(BASE, "h100-sxm", "nearest-scaled")
    got = _kernels(p, "h100-sxm")["gemm"]
    src = _kernels(BASE, "a100-sxm-80gb")["gemm"]
    h, a = get_hardware("h100-sxm"), get_hardware("a100-sxm-80gb")
    assert transfer.donor(h, ["a100-sxm-80gb", "a40"]) == "a100-sxm-80gb"
    assert got["compute_eff"] == src["compute_eff"] and got["launch_s"] == src["launch_s"]
    sm = h.num_compute_units / a.num_compute_units
    assert got["m_half"] == pytest.approx(src["m_half"] * sm, rel=1e-3)
    bw = h.memory_bandwidth_bytes_per_s / a.memory_bandwidth_bytes_per_s
    assert got["mn_half"] == pytest.approx(src["mn_half"] * bw, rel=1e-3)
    with pytest.raises(UnknownNameError, match="transfer rule"):
        transfer.profile_without(BASE, "h100-sxm", "closest")


@pytest.fixture(scope="module")
def golden_residuals():
    sets = sets_from_golden(REPO / "tests" / "golden" / "calib_kernels.csv")
    vsets = va.validation_sets(sets, None)
    res = va.analytic_residuals(vsets) + va.calibrated_residuals(vsets, BASE)
    res += va.table_residuals(vsets, BASE)
    return vsets, res


def test_validation_residuals_cover_every_estimator_and_mode(golden_residuals):
    vsets, res = golden_residuals
    assert {v.role for v in vsets} == {"fit", va.OTHER}
    assert not any(v.name == "vidur flash-attn" and v.family == "attention_prefill"
                   for v in vsets)  # documented exclusion
    got = {(r.estimator, r.mode) for r in res}
    assert got == {(e, m) for e in ("analytic", "calibrated", "table")
                   for m in (va.IN_SAMPLE, va.TRANSFER)}
    cal = {(r.mode, r.hardware, r.family, r.set): r for r in res if r.estimator == "calibrated"}
    key = ("h100-sxm", "attention_decode", "aic-vllm kv bf16")
    inside, held = cal[(va.IN_SAMPLE, *key)], cal[(va.TRANSFER, *key)]
    # leaving H100 out of the fit makes its own decode table much worse (A100's curve)
    assert np.median(held.ape()) > 2 * np.median(inside.ape())


def test_pools_and_nested_coverage(golden_residuals):
    _, res = golden_residuals
    data = rs.residual_file(res, {})
    cal = data["estimators"]["calibrated"]
    assert set(cal["own"]) >= {"a100-sxm-80gb", "h100-sxm"}
    assert cal["transfer"]["gemm"]["sigma"] > 0 and cal["transfer"]["gemm"]["mu"] == 0
    assert data["estimators"]["analytic"]["transfer"]["attention_decode"]["mu"] > 0.5
    without = rs.residual_file(res, {}, exclude="h100-sxm")
    assert "h100-sxm" not in without["estimators"]["calibrated"]["own"]
    assert all("h100" not in c for c in
               without["estimators"]["calibrated"]["transfer"]["gemm"]["cases"])
    pool = ResidualData(without, "x").pool("calibrated", "h100-sxm", "gemm")
    assert pool.basis.startswith("calibrated transfer")
    cov = rs.kernel_coverage(res, "calibrated", 0.8, k=2000)
    assert len(cov) >= 6 and cov["coverage"].between(0, 1).all()


def test_learned_validation_and_feature_export():
    sets = sets_from_golden(REPO / "tests" / "golden" / "calib_kernels.csv")
    vsets = [v for v in va.validation_sets(sets, None) if v.family in ("gemm", "elementwise")]
    res = va.learned_residuals(vsets, BASE, quick=True, max_rows_per_part=500)
    assert {r.mode for r in res} == {va.IN_SAMPLE, va.TRANSFER}
    rows = pd.concat([v.rows for v in vsets], ignore_index=True)
    feats = lm.feature_table(rows)
    assert len(feats) == len(rows) and np.isfinite(feats["sol_s"]).all()
    assert np.isfinite(feats.loc[rows["kind"] == "gemm", "log_m"]).all()
