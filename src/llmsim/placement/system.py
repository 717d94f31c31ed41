"""The machine an offloaded run uses: one GPU, its host (CPU, DRAM, PCIe link) and a local disk.

Capacities and rates come from the catalog (``HardwareSpec`` for the GPU, ``HostSpec`` for the
host) unless given explicitly (CLI flags such as ``--gpu-mem 16`` or ``--h2d-bw 12``). The
usable capacity of each tier is its size times a slack factor ``alpha`` (FlexGen's
``alpha_g / alpha_c / alpha_n``): the peak-memory estimate ignores allocator fragmentation, the
CUDA context and the OS, so the LP keeps that share free.

Host-to-device bandwidth is the smaller of the host's and the GPU's PCIe link (both per
direction). Disk reads and writes are separate streams (FlexGen assumes they overlap).

Rates are datasheet values; what a runtime achieves of them is the host section of the
calibration profile (``Profile.for_host``: host entry -> ``generic`` -> neutral), kept apart
(DESIGN.md principle 4) and applied when a time is computed, by the one host cost formula
(``costmodel.host``)::

    copy time  = bytes / (rate * eff)       (+ bytes / (B_h2d * pageable_eff) of serial
                                              staging for a pageable host source)
    CPU op     = cpu_launch_s + max(F / (P_cpu * cpu_compute_eff), B / (W_dram * cpu_memory_eff))

A rate given explicitly (``--h2d-bw``, ``--cpu-tflops``, ...) is taken as an *achieved* rate: its
efficiency is 1 (the pageable factor, a property of the runtime's buffers, still applies).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from llmsim import units
from llmsim.catalog import (
    HardwareSpec,
    HostSpec,
    default_host,  # the one default-host rule (moe-offload too)
    get_hardware,
    get_host,
)
from llmsim.costmodel import host as host_cost
from llmsim.costmodel.profile import Profile, ResolvedHost
from llmsim.dtypes import DType
from llmsim.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_HARDWARE = "t4"
# Slack factors: the share of each tier the placement may fill. GPU 0.9 matches the serving
# engines' gpu_memory_utilization default used elsewhere in llmsim; DRAM leaves 5% to the OS and
# the runtime (FlexLLMGen ran OPT-175B compressed on its 208 GiB box with 190.2 GiB resident by
# this accounting, 91.4%: 0.9 would call a published run impossible); the disk keeps 5% free
# (file-system reserve).
DEFAULT_ALPHA_G = 0.9
DEFAULT_ALPHA_C = 0.95
DEFAULT_ALPHA_N = 0.95


@dataclass(frozen=True)
class OffloadSystem:
    """Resolved capacities (bytes), link rates (bytes/s) and CPU rates of one offload machine,
    and the achieved fractions of those rates (``host_eff``; neutral: the datasheet)."""

    hardware: HardwareSpec
    host: HostSpec
    gpu_mem_bytes: float
    cpu_mem_bytes: float
    disk_mem_bytes: float
    h2d_bytes_per_s: float
    d2h_bytes_per_s: float
    disk_read_bytes_per_s: float
    disk_write_bytes_per_s: float
    cpu_mem_bandwidth_bytes_per_s: float
    cpu_flops_per_s: float
    alpha_g: float = DEFAULT_ALPHA_G
    alpha_c: float = DEFAULT_ALPHA_C
    alpha_n: float = DEFAULT_ALPHA_N
    host_eff: ResolvedHost = ResolvedHost.neutral()

    # ------------------------------------------------------------------ times (costmodel.host)
    def h2d_s(self, nbytes):
        """CPU->GPU DMA of ``nbytes`` (a number or an affine byte expression of the LP)."""
        return host_cost.transfer_time_s(nbytes, self.h2d_bytes_per_s, self.host_eff.h2d_eff)

    def d2h_s(self, nbytes):
        """GPU->CPU DMA (a pageable destination is reached through a pinned relay buffer by
        FlexGen's copy threads, concurrently with the layer)."""
        return host_cost.transfer_time_s(nbytes, self.d2h_bytes_per_s, self.host_eff.d2h_eff)

    def pageable_staging_s(self, nbytes):
        """Staging a pageable host buffer for a CPU->GPU copy (FlexGen's
        ``tensor.pin_memory()``: page-locked allocation + copy) at ``pageable_eff`` of the
        host->device datasheet rate. It runs on the runtime's main thread before the layer's
        copies and compute start, so the cost model adds it to the layer (serial)."""
        return host_cost.transfer_time_s(nbytes, self.h2d_bytes_per_s,
                                         self.host_eff.pageable_eff)

    def disk_read_s(self, nbytes):
        return host_cost.transfer_time_s(nbytes, self.disk_read_bytes_per_s,
                                         self.host_eff.disk_read_eff)

    def disk_write_s(self, nbytes):
        return host_cost.transfer_time_s(nbytes, self.disk_write_bytes_per_s,
                                         self.host_eff.disk_write_eff)

    def cpu_op_s(self, flops: float, nbytes: float) -> float:
        """One op on the host CPU: the calibrated CPU roofline (``costmodel.host``)."""
        e = self.host_eff
        return host_cost.cpu_op_time_s(flops, nbytes, self.cpu_flops_per_s,
                                       self.cpu_mem_bandwidth_bytes_per_s,
                                       compute_eff=e.cpu_compute_eff, memory_eff=e.cpu_memory_eff,
                                       launch_s=e.cpu_launch_s)

    @property
    def gpu_limit_bytes(self) -> float:
        return self.alpha_g * self.gpu_mem_bytes

    @property
    def cpu_limit_bytes(self) -> float:
        return self.alpha_c * self.cpu_mem_bytes

    @property
    def disk_limit_bytes(self) -> float:
        return self.alpha_n * self.disk_mem_bytes

    def limits(self) -> dict[str, float]:
        return {"gpu": self.gpu_limit_bytes, "cpu": self.cpu_limit_bytes,
                "disk": self.disk_limit_bytes}

    def capacities(self) -> dict[str, float]:
        return {"gpu": self.gpu_mem_bytes, "cpu": self.cpu_mem_bytes,
                "disk": self.disk_mem_bytes}

    def alphas(self) -> dict[str, float]:
        return {"gpu": self.alpha_g, "cpu": self.alpha_c, "disk": self.alpha_n}

    def as_dict(self) -> dict[str, object]:
        return {
            "hardware": self.hardware.name, "host": self.host.name,
            "gpu_mem_bytes": self.gpu_mem_bytes, "cpu_mem_bytes": self.cpu_mem_bytes,
            "disk_mem_bytes": self.disk_mem_bytes,
            "h2d_bytes_per_s": self.h2d_bytes_per_s, "d2h_bytes_per_s": self.d2h_bytes_per_s,
            "disk_read_bytes_per_s": self.disk_read_bytes_per_s,
            "disk_write_bytes_per_s": self.disk_write_bytes_per_s,
            "cpu_mem_bandwidth_bytes_per_s": self.cpu_mem_bandwidth_bytes_per_s,
            "cpu_flops_per_s": self.cpu_flops_per_s,
            "alpha_g": self.alpha_g, "alpha_c": self.alpha_c, "alpha_n": self.alpha_n,
            "host_efficiency": {"from": self.host_eff.describe(), **self.host_eff.as_dict()},
        }


def _positive(name: str, value: float | None, unit: str, allow_zero: bool = False) -> None:
    """Reject negative, zero (unless allowed), NaN and infinite sizes and rates."""
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    bad = not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero)
    if bad:
        need = ">= 0" if allow_zero else "> 0"
        shown = {"bytes": units.fmt_bytes, "bytes/s": units.fmt_bandwidth,
                 "flops": units.fmt_flops}[unit](value) if math.isfinite(value) else str(value)
        raise ConfigError(f"{name} must be {need}, got {shown}")


def build_system(hardware: str | HardwareSpec | None = None, host: str | HostSpec | None = None,
                 *, gpu_mem_bytes: float | None = None, cpu_mem_bytes: float | None = None,
                 disk_mem_bytes: float | None = None, h2d_bytes_per_s: float | None = None,
                 d2h_bytes_per_s: float | None = None,
                 disk_read_bytes_per_s: float | None = None,
                 disk_write_bytes_per_s: float | None = None,
                 cpu_mem_bandwidth_bytes_per_s: float | None = None,
                 cpu_flops_per_s: float | None = None,
                 alpha_g: float = DEFAULT_ALPHA_G, alpha_c: float = DEFAULT_ALPHA_C,
                 alpha_n: float = DEFAULT_ALPHA_N,
                 compute_dtype: DType = DType.FP32,
                 profile: Profile | str | None = None, efficiency: float | None = None,
                 host_efficiency: ResolvedHost | None = None,
                 max_alpha: float = 1.0) -> OffloadSystem:
    """Resolve catalog names and explicit overrides into an :class:`OffloadSystem`.

    Sizes must be > 0 (the disk may be 0: no disk tier); rates > 0; ``alpha_*`` in
    (0, ``max_alpha``]: 1 when searching for a policy (no placement may exceed a tier); evaluate
    allows up to 1.5, as FlexGen's cost model evaluates a given policy with alpha 1.2 to tolerate
    its conservative peak-memory estimate.
    ``cpu_flops_per_s`` defaults to the host's peak for ``compute_dtype`` (fp32: FlexGen
    computes CPU attention in fp32).

    Host efficiencies: ``host_efficiency`` as given, else ``profile`` (default: the shipped
    one) resolved for the host (``--efficiency`` flattens them); every explicitly given rate
    gets efficiency 1.
    """
    for name, value, unit in (("--gpu-mem", gpu_mem_bytes, "bytes"),
                              ("--cpu-mem", cpu_mem_bytes, "bytes"),
                              ("--h2d-bw", h2d_bytes_per_s, "bytes/s"),
                              ("--d2h-bw", d2h_bytes_per_s, "bytes/s"),
                              ("--disk-read-bw", disk_read_bytes_per_s, "bytes/s"),
                              ("--disk-write-bw", disk_write_bytes_per_s, "bytes/s"),
                              ("--cpu-mem-bw", cpu_mem_bandwidth_bytes_per_s, "bytes/s"),
                              ("--cpu-tflops", cpu_flops_per_s, "flops")):
        _positive(name, value, unit)
    _positive("--nvme-mem", disk_mem_bytes, "bytes", allow_zero=True)
    for name, value in (("--alpha-g", alpha_g), ("--alpha-c", alpha_c), ("--alpha-n", alpha_n)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or \
                not 0 < value <= max_alpha:
            raise ConfigError(f"{name} must be in (0, {max_alpha:g}] (the share of the tier a "
                              f"placement may fill), got {value!r}")
    hw = get_hardware(DEFAULT_HARDWARE if hardware is None else hardware)
    if gpu_mem_bytes is not None and gpu_mem_bytes > hw.memory_bytes * 1.001:
        log.warning("--gpu-mem %s is more than a %s has (%s)", units.fmt_bytes(gpu_mem_bytes),
                    hw.name, units.fmt_bytes(hw.memory_bytes))
    if host is None:
        host = default_host(hw)
        log.info("no host given: using %s for %s", host, hw.name)
    hs = get_host(host)
    if host_efficiency is None:
        prof = profile if isinstance(profile, Profile) else Profile.load(profile)
        host_efficiency = prof.for_host(hs, efficiency)
    given = {"h2d_eff": h2d_bytes_per_s, "d2h_eff": d2h_bytes_per_s,
             "disk_read_eff": disk_read_bytes_per_s, "disk_write_eff": disk_write_bytes_per_s,
             "cpu_memory_eff": cpu_mem_bandwidth_bytes_per_s, "cpu_compute_eff": cpu_flops_per_s}
    achieved = {key: 1.0 for key, value in given.items() if value is not None}
    if achieved:
        host_efficiency = host_efficiency.replace(**achieved)
    h2d = h2d_bytes_per_s or min(hs.h2d_bandwidth_bytes_per_s, hw.host_link.bandwidth_bytes_per_s)
    d2h = d2h_bytes_per_s or min(hs.d2h_bandwidth_bytes_per_s, hw.host_link.bandwidth_bytes_per_s)
    return OffloadSystem(
        hardware=hw, host=hs,
        gpu_mem_bytes=gpu_mem_bytes if gpu_mem_bytes is not None else hw.memory_bytes,
        cpu_mem_bytes=cpu_mem_bytes if cpu_mem_bytes is not None else hs.cpu_memory_bytes,
        disk_mem_bytes=disk_mem_bytes if disk_mem_bytes is not None else hs.disk_bytes,
        h2d_bytes_per_s=h2d, d2h_bytes_per_s=d2h,
        disk_read_bytes_per_s=disk_read_bytes_per_s or hs.disk_read_bandwidth_bytes_per_s,
        disk_write_bytes_per_s=disk_write_bytes_per_s or hs.disk_write_bandwidth_bytes_per_s,
        cpu_mem_bandwidth_bytes_per_s=(cpu_mem_bandwidth_bytes_per_s
                                       or hs.cpu_memory_bandwidth_bytes_per_s),
        cpu_flops_per_s=cpu_flops_per_s or hs.cpu_peak_flops(compute_dtype),
        alpha_g=float(alpha_g), alpha_c=float(alpha_c), alpha_n=float(alpha_n),
        host_eff=host_efficiency,
    )


def cpu_op_time_s(flops: float, nbytes: float, system: OffloadSystem) -> float:
    """Time of one op on ``system``'s CPU: :meth:`OffloadSystem.cpu_op_s` (the CPU roofline of
    ``costmodel.host`` at the system's rates and host efficiencies)."""
    return system.cpu_op_s(flops, nbytes)
