"""fp8 GEMM and expert kernels have their own efficiency curves (``gemm_fp8`` / ``moe_fp8``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmsim.calibration import build
from llmsim.calibration import predict as pr
from llmsim.calibration.measurements import validate
from llmsim.catalog import get_hardware
from llmsim.costmodel import kernels
from llmsim.costmodel.profile import (
    HardwareProfile,
    Profile,
    ProfileEntry,
    kernel_family,
)
from llmsim.dtypes import DType

H100 = get_hardware("h100-sxm")


def test_kernel_family_picks_the_fp8_variant_only_for_fp8_math():
    assert kernel_family("gemm", DType.FP8) == "gemm_fp8"
    assert kernel_family("moe", DType.FP8) == "moe_fp8"
    for dt in (DType.BF16, DType.FP16, DType.INT8, DType.FP4):
        assert kernel_family("gemm", dt) == "gemm"
    assert kernel_family("attention_decode", DType.FP8) == "attention_decode"


def test_an_unset_fp8_variant_is_the_base_curve():
    entry = ProfileEntry(gemm={"compute_eff": 0.5, "memory_eff": 0.6, "m_half": 10.0},
                         moe={"compute_eff": 0.3}, gemm_fp8={"compute_eff": 0.25})
    hp = HardwareProfile([entry], ["x"], None)
    fp8, bf16 = hp.kernel("gemm_fp8").as_dict(), hp.kernel("gemm").as_dict()
    assert fp8["compute_eff"] == 0.25
    assert {k: v for k, v in fp8.items() if k != "compute_eff"} == \
        {k: v for k, v in bf16.items() if k != "compute_eff"}
    assert hp.kernel("moe_fp8").as_dict() == hp.kernel("moe").as_dict()
    flat = HardwareProfile([entry], ["x"], 0.4)
    assert flat.kernel("gemm_fp8").compute_eff == 0.4


def test_fp8_gemm_is_priced_by_its_own_curve():
    """A W8A8 GEMM uses ``gemm_fp8``; weight-only fp8 (16-bit math) keeps ``gemm``."""
    entry = ProfileEntry(gemm={"compute_eff": 1.0}, gemm_fp8={"compute_eff": 0.5})
    hp = HardwareProfile([entry], ["h100-sxm"], None)
    big = 8192
    t8 = kernels.gemm(big, big, big, H100, hp, DType.FP8, DType.FP8).compute_s
    t16 = kernels.gemm(big, big, big, H100, hp, DType.BF16, DType.BF16).compute_s
    peak = H100.peak_flops(DType.FP8) / H100.peak_flops(DType.BF16)
    assert t16 / t8 == pytest.approx(peak * 0.5, rel=1e-6)
    w8a16 = kernels.gemm(big, big, big, H100, hp, DType.FP8, DType.BF16).compute_s
    assert w8a16 == pytest.approx(t16, rel=1e-6)


def test_shipped_profile_no_longer_prices_fp8_at_twice_bf16():
    """The measured H100 tables (vLLM and TensorRT-LLM, ../shared/data/kernels) run a large
    fp8 GEMM 1.2-1.9x faster than bf16, not the 2x of the datasheet peaks."""
    hp = Profile.load().for_hardware(H100)
    for n, k in ((4096, 4096), (51200, 5120)):
        t8 = kernels.gemm(4096, n, k, H100, hp, DType.FP8, DType.FP8).time_s
        t16 = kernels.gemm(4096, n, k, H100, hp, DType.BF16, DType.BF16).time_s
        assert 1.0 < t16 / t8 < 1.9, (n, k, t16 / t8)


def test_user_calibration_fits_fp8_rows_into_the_fp8_variant():
    """``llmsim calibrate`` rows of fp8 GEMMs fit ``gemm_fp8``, bf16 rows ``gemm``."""
    rng = np.random.default_rng(0)
    truth = {"gemm": dict(compute_eff=0.8, memory_eff=0.8, launch_s=3e-6),
             "gemm_fp8": dict(compute_eff=0.5, memory_eff=0.7, launch_s=5e-6)}
    hp = HardwareProfile([ProfileEntry(**truth)], ["h100-sxm"], None)
    frames = []
    for dtype in ("bf16", "fp8"):
        m, n, k = (rng.choice([64, 256, 1024, 4096], 120) for _ in range(3))
        rows = pd.DataFrame({"kind": "gemm", "hardware": "h100-sxm", "dtype": dtype,
                             "m": m, "n": n, "k": k, "source": "synthetic"})
        rows["measured_time_s"] = 1.0
        rows = validate(rows)
        rows["measured_time_s"] = pr.predict(rows, _Single(hp))
        frames.append(rows)
    table = pd.concat(frames, ignore_index=True)
    assert list(pr.families(table)[[0, -1]]) == ["gemm", "gemm_fp8"]
    entry, results = build.fit_table(table, "h100-sxm")
    assert {r.family for r in results} == {"gemm", "gemm_fp8"}
    for fam, want in truth.items():
        assert entry[fam]["compute_eff"] == pytest.approx(want["compute_eff"], rel=0.05), fam


class _Single(Profile):
    """A profile that resolves every part to one prepared :class:`HardwareProfile`."""

    def __init__(self, hp: HardwareProfile):
        super().__init__(Profile.empty().data, "test")
        self._hp = hp

    def for_hardware(self, hw, efficiency=None):
        return self._hp


@pytest.mark.parametrize("bad", ["compute_eff: 2.0", "launch_s: -1", "m_halff: 3"])
def test_a_bad_fp8_curve_in_a_profile_is_one_error_line(cli, tmp_path, bad):
    prof = tmp_path / "p.yaml"
    prof.write_text(f"entries:\n  h100-sxm:\n    gemm_fp8:\n      {bad}\n")
    res = cli("estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--dtype", "fp8",
              "--profile", str(prof))
    assert res.code == 2 and "Traceback" not in res.err
    assert len(res.err.strip().splitlines()) == 1 and "gemm_fp8" in res.err, res.err


def test_user_all_reduce_rows_tagged_custom_fit_comm_custom():
    """``llmsim calibrate`` rows of an engine's own all-reduce (``op=custom``) fit
    ``comm_custom``; untagged all-reduce rows fit NCCL's ``comm_intra``."""
    truth = {"comm_intra": dict(bw_eff=0.6, latency_s=7e-7, base_latency_s=6e-6),
             "comm_custom": dict(bw_eff=0.45, latency_s=1e-7, base_latency_s=3e-6)}
    hp = HardwareProfile([ProfileEntry(**truth)], ["h100-sxm"], None)
    sizes = [2.0 ** e for e in range(8, 24)]
    frames = []
    for op in ("nccl", "custom"):
        rows = pd.DataFrame([{"kind": "all-reduce", "hardware": "h100-sxm", "op": op,
                              "message_bytes": s, "num_gpus": g, "source": "synthetic"}
                             for s in sizes for g in (2, 4, 8)])
        rows["measured_time_s"] = 1.0
        rows = validate(rows)
        rows["measured_time_s"] = pr.predict(rows, _Single(hp))
        frames.append(rows)
    entry, results = build.fit_table(pd.concat(frames, ignore_index=True), "h100-sxm")
    assert {r.family for r in results} == {"comm_intra", "comm_custom"}
    for fam, want in truth.items():
        assert entry[fam]["base_latency_s"] == pytest.approx(want["base_latency_s"], rel=0.05)
        assert entry[fam]["bw_eff"] == pytest.approx(want["bw_eff"], rel=0.05)
