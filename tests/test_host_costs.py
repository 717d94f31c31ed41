"""Host-side costs in one place (``costmodel.host``): the CPU roofline and the copy over a host
link or disk; the host section of a calibration profile and how it resolves; and that both
offloading models (FlexGen-style ``offload``, expert-cache ``moe_offload``) price through it."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.catalog import get_host
from llmsim.catalog._base import validate_spec
from llmsim.costmodel import host
from llmsim.costmodel.profile import (
    NEUTRAL_HOST,
    HostEfficiency,
    Profile,
    ProfileEntry,
    ProfileFile,
    ResolvedHost,
)
from llmsim.dtypes import DType
from llmsim.errors import ConfigError, SpecError
from llmsim.expert_cache.costs import cpu_op_time, link_time
from llmsim.placement import build_system, cpu_op_time_s


def test_cpu_roofline_formula():
    # compute-bound, memory-bound, efficiencies, fixed cost
    assert host.cpu_op_time_s(2e12, 1e9, 1e12, 100e9) == pytest.approx(2.0)
    assert host.cpu_op_time_s(1e9, 1e12, 1e12, 100e9) == pytest.approx(10.0)
    assert host.cpu_op_time_s(1e9, 1e12, 1e12, 100e9, memory_eff=0.5) == pytest.approx(20.0)
    assert host.cpu_op_time_s(2e12, 0.0, 1e12, 100e9, compute_eff=0.25) == pytest.approx(8.0)
    assert host.cpu_op_time_s(0.0, 0.0, 1e12, 100e9, launch_s=3e-6) == pytest.approx(3e-6)
    # small-GEMM saturation: m rows reach m / (m + m_half) of the peak
    assert host.cpu_op_time_s(1e12, 0.0, 1e12, 1e9, m=16, m_half=16) == pytest.approx(2.0)
    assert host.cpu_op_time_s(1e12, 0.0, 1e12, 1e9, m=0, m_half=16) == pytest.approx(1.0)
    with pytest.raises(ConfigError):
        host.cpu_op_time_s(1.0, 1.0, 0.0, 1e9)


def test_transfer_formula_scalars_and_lp_expressions():
    assert host.transfer_time_s(16e9, 16e9) == pytest.approx(1.0)
    assert host.transfer_time_s(16e9, 16e9, eff=0.5, latency_s=1e-5) == pytest.approx(2.0 + 1e-5)
    assert host.transfer_time_s(0.0, 16e9, latency_s=1e-5) == 0.0  # empty copy: no latency
    expr = np.array([1e9, 2e9, 0.0])  # an affine byte expression of the offload LP
    np.testing.assert_allclose(host.transfer_time_s(expr, 1e9, 0.5), [2.0, 4.0, 0.0])
    with pytest.raises(ConfigError, match="latency"):
        host.transfer_time_s(expr, 1e9, latency_s=1e-5)
    with pytest.raises(ConfigError):
        host.transfer_time_s(1.0, 1e9, eff=0.0)


def _profile(**entries: ProfileEntry) -> Profile:
    return Profile(ProfileFile(entries=entries), "test")


def test_host_section_resolves_host_then_generic_then_neutral():
    prof = _profile(**{
        "gcp-t4-flexgen": ProfileEntry(host=HostEfficiency(pageable_eff=0.25)),
        "generic": ProfileEntry(host=HostEfficiency(pageable_eff=0.5, disk_read_eff=0.8)),
    })
    t4 = prof.for_host(get_host("gcp-t4-flexgen"))
    assert t4.pageable_eff == 0.25 and t4.disk_read_eff == 0.8 and t4.h2d_eff == 1.0
    assert t4.names == ("gcp-t4-flexgen", "generic")
    other = prof.for_host("workstation-pcie4")
    assert other.pageable_eff == 0.5 and other.names == ("generic",)
    assert Profile.empty().for_host("gcp-t4-flexgen") == ResolvedHost.neutral()
    assert ResolvedHost.neutral().as_dict() == NEUTRAL_HOST
    flat = prof.for_host("gcp-t4-flexgen", efficiency=0.7)
    assert flat.h2d_eff == flat.cpu_memory_eff == 0.7 and flat.cpu_launch_s == 0.0
    assert flat.pageable_eff == 1.0  # pageable buffers reach the (flat) pinned rate
    with pytest.raises(SpecError):
        ResolvedHost(h2d_efficiency=0.5)
    with pytest.raises(SpecError, match="h2d_eff"):
        validate_spec(ProfileFile, {"entries": {"x": {"host": {"h2d_eff": 2.0}}}}, "x")


def test_shipped_profile_fits_only_the_flexgen_host():
    """Only the FlexGen machine has fitted host efficiencies; every other host (and the
    generic fallback) keeps its datasheet rates (docs/calibration.md, host section)."""
    prof = Profile.load()
    fitted = prof.for_host("gcp-t4-flexgen")
    assert fitted.names == ("gcp-t4-flexgen",)
    assert 0 < fitted.pageable_eff < 1 and 0 < fitted.cpu_memory_eff < 1
    for name in ("generic-pcie3-ddr4", "generic-pcie4-ddr4", "generic-pcie5-ddr5",
                 "workstation-pcie4"):
        assert prof.for_host(name) == ResolvedHost.neutral()
    assert not prof.data.entries["generic"].host.model_dump(exclude_none=True)


def test_offload_prices_the_cpu_and_links_through_costmodel_host():
    sysm = build_system("t4", "gcp-t4-flexgen", host_efficiency=ResolvedHost(
        cpu_compute_eff=0.5, cpu_memory_eff=0.25, cpu_launch_s=1e-6, h2d_eff=0.8,
        pageable_eff=0.2, disk_read_eff=0.9))
    f, b = 1e11, 1e11
    assert cpu_op_time_s(f, b, sysm) == host.cpu_op_time_s(
        f, b, sysm.cpu_flops_per_s, sysm.cpu_mem_bandwidth_bytes_per_s, compute_eff=0.5,
        memory_eff=0.25, launch_s=1e-6)
    assert sysm.h2d_s(1e9) == host.transfer_time_s(1e9, sysm.h2d_bytes_per_s, 0.8)
    assert sysm.pageable_staging_s(1e9) == host.transfer_time_s(1e9, sysm.h2d_bytes_per_s, 0.2)
    assert sysm.disk_read_s(1e9) == host.transfer_time_s(1e9, sysm.disk_read_bytes_per_s, 0.9)
    # FlexGen's CPU attention is fp32: the host's fp32 peak
    assert sysm.cpu_flops_per_s == get_host("gcp-t4-flexgen").cpu_peak_flops(DType.FP32)


def test_explicit_rates_are_achieved_rates():
    """A rate given on the command line replaces datasheet x efficiency: its efficiency is 1."""
    prof = _profile(**{"gcp-t4-flexgen": ProfileEntry(host=HostEfficiency(
        h2d_eff=0.5, cpu_memory_eff=0.5, disk_read_eff=0.5, pageable_eff=0.3))})
    given = build_system("t4", "gcp-t4-flexgen", profile=prof, h2d_bytes_per_s=12e9,
                         cpu_mem_bandwidth_bytes_per_s=60e9)
    assert given.host_eff.h2d_eff == 1.0 and given.host_eff.cpu_memory_eff == 1.0
    assert given.host_eff.disk_read_eff == 0.5 and given.host_eff.pageable_eff == 0.3
    assert given.h2d_s(12e9) == pytest.approx(1.0)
    datasheet = build_system("t4", "gcp-t4-flexgen", profile=Profile.empty())
    assert datasheet.host_eff == ResolvedHost.neutral()
    flat = build_system("t4", "gcp-t4-flexgen", efficiency=0.5)
    assert flat.host_eff.disk_read_eff == 0.5


def test_moe_offload_prices_the_cpu_and_links_through_costmodel_host():
    hs = get_host("workstation-pcie4")
    f, b = 3e10, 2e9
    assert cpu_op_time(f, b, hs, DType.BF16, 0.5, 2e-5, 8, 4) == host.cpu_op_time_s(
        f, b, hs.cpu_peak_flops(DType.BF16), hs.cpu_memory_bandwidth_bytes_per_s,
        compute_eff=0.5, memory_eff=0.5, launch_s=2e-5, m=8, m_half=4)
    assert link_time(1e9, 25e9, 5e-6) == host.transfer_time_s(1e9, 25e9, 1.0, 5e-6)
    assert link_time(0.0, 25e9, 5e-6) == 0.0


def test_moe_offload_keeps_its_own_host_rates():
    """The expert-cache model uses the platform's rates and --cpu-efficiency only: a fitted host
    entry (FlexLLMGen's runtime) never leaks into it, and the executor's measured platform
    stays at efficiency 1 of its measured peaks."""
    from llmsim.catalog import get_model
    from llmsim.costmodel import Precision
    from llmsim.expert_cache.costs import OffloadCosts
    from llmsim.expert_cache.simulate import make_platform

    model = get_model("mixtral-8x7b")
    prec = Precision.resolve(model.weight_dtype)
    fitted = _profile(**{"gcp-t4-flexgen": ProfileEntry(host=HostEfficiency(
        cpu_memory_eff=0.1, cpu_compute_eff=0.1, h2d_eff=0.1))})
    plat = make_platform("rtx-4090", "gcp-t4-flexgen")
    a = OffloadCosts(model, plat, prec, fitted)
    b = OffloadCosts(model, plat, prec, Profile.empty())
    assert a.cpu_expert_s(4) == b.cpu_expert_s(4)
    assert a.h2d_s(1e9) == b.h2d_s(1e9)
    assert plat.cpu_efficiency == 1.0
