"""Host-side costs: an operation on the host CPU, and a copy over a host link or to/from disk.

The one implementation both offloading models use (``llmsim.placement`` for FlexGen-style
placement, ``llmsim.expert_cache`` for expert caches); DESIGN.md principle 1. Rates are datasheet
values (``HostSpec``, ``HardwareSpec.host_link``) or measured peaks (``executor.measure``); the
achieved fractions come from the host section of a calibration profile
(``profile.HostEfficiency``, resolved by :meth:`Profile.for_host`) or from the caller.

CPU roofline (Williams, Waterman, Patterson, "Roofline", CACM 52(4), 2009), with the
small-GEMM correction the MoE executor measures::

    time = launch_s + max(F / (P_cpu * eta_c * s(m)), B / (W_dram * eta_m))
    s(m) = m / (m + m_half)          (1 when m_half == 0 or m == 0)

``P_cpu`` is the CPU's peak FLOP/s for the op's compute format, ``W_dram`` the DRAM bandwidth,
``eta_c`` / ``eta_m`` the achieved fractions, ``m`` the GEMM's rows (tokens) and ``m_half`` the
row count at which the CPU reaches half its peak.

Transfer over a host link (PCIe host<->device) or to/from a disk::

    time = bytes / (bandwidth * eff) + latency_s       (0 for an empty copy)

``bandwidth`` is per direction; ``eff`` the achieved fraction of it; ``latency_s`` the fixed
cost of one copy. The LP of the offload solver prices byte *expressions* (numpy vectors affine
in the placement fractions): those take no latency and are only scaled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmsim.errors import ConfigError


def _positive_rate(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")


def cpu_op_time_s(flops: float, nbytes: float, peak_flops_per_s: float,
                  memory_bandwidth_bytes_per_s: float, *, compute_eff: float = 1.0,
                  memory_eff: float = 1.0, launch_s: float = 0.0, m: float = 0.0,
                  m_half: float = 0.0) -> float:
    """Roofline time of one op on the host CPU (see the module docstring for the formula).

    ``compute_eff`` / ``memory_eff``: achieved fractions of ``peak_flops_per_s`` /
    ``memory_bandwidth_bytes_per_s`` (1.0 = the datasheet or measured peak); ``launch_s``: the
    fixed cost of one call; ``m`` / ``m_half``: the small-GEMM saturation (``m_half = 0``: a
    pure roofline, the default for catalog hosts).
    """
    _positive_rate("CPU peak FLOP/s x efficiency", peak_flops_per_s * compute_eff)
    _positive_rate("CPU memory bandwidth x efficiency", memory_bandwidth_bytes_per_s * memory_eff)
    peak = peak_flops_per_s * compute_eff
    if m_half and m > 0:
        peak *= m / (m + m_half)
    return launch_s + max(flops / peak, nbytes / (memory_bandwidth_bytes_per_s * memory_eff))


def transfer_time_s(nbytes: Any, bandwidth_bytes_per_s: float, eff: float = 1.0,
                    latency_s: float = 0.0) -> Any:
    """Time of one copy over a host link or to/from a disk: ``bytes / (bw * eff) + latency``.

    ``nbytes`` may be a number (a copy: 0 when empty, else the latency is added) or a numpy
    array (an affine byte expression of the offload LP, which takes no latency: it is scaled).
    """
    _positive_rate("transfer bandwidth x efficiency", bandwidth_bytes_per_s * eff)
    rate = bandwidth_bytes_per_s * eff
    if isinstance(nbytes, np.ndarray):
        if latency_s:
            raise ConfigError("a byte expression (LP) cannot carry a per-copy latency")
        return nbytes / rate
    if nbytes <= 0:
        return 0.0
    return latency_s + nbytes / rate
