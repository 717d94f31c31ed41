"""Accelerator, host and link specs: datasheet values only, each with a ``source``.

Measured efficiencies and overheads do not belong here; they live in calibration profiles
(``llmsim.costmodel.profile``), keyed by hardware name (principle 4).
"""

from __future__ import annotations

from enum import Enum

from pydantic import Field, field_validator

from llmsim.catalog._base import Bytes, BytesPerS, FlopsPerS, Seconds, Spec
from llmsim.dtypes import DType
from llmsim.errors import ConfigError


class LinkKind(str, Enum):
    """Physical kind of a link (used for defaults and rendering only)."""

    NVLINK = "nvlink"
    XGMI = "xgmi"
    PCIE = "pcie"
    ICI = "ici"
    ETHERNET = "ethernet"
    INFINIBAND = "infiniband"
    ROCE = "roce"
    NONE = "none"


class LinkTopology(str, Enum):
    """How the GPUs of one link domain reach each other.

    ``switch``: every GPU reaches every other at its full per-GPU bandwidth (NVSwitch, NVL72,
    a non-blocking IB fabric). ``shared``: GPUs share an upstream (a PCIe switch / root complex);
    concurrent transfers split the shared bandwidth. ``mesh``: a direct link to every peer of
    the node (AMD XGMI, Gaudi's scale-up ports); the bandwidth given is the GPU's aggregate over
    all peer links, one pair gets ``1 / (gpus_per_node - 1)`` of it. ``ring``/``torus``:
    neighbour links (TPU ICI).
    """

    SWITCH = "switch"
    SHARED = "shared"
    MESH = "mesh"
    RING = "ring"
    TORUS = "torus"


class LinkSpec(Spec):
    """One communication link class, per GPU, one direction."""

    kind: LinkKind
    bandwidth_bytes_per_s: BytesPerS = Field(gt=0, description="per GPU, unidirectional")
    latency_s: Seconds = Field(default=0.0, ge=0, description="per-message base latency")
    topology: LinkTopology = LinkTopology.SWITCH
    source: str = ""


class HardwareSpec(Spec):
    """One accelerator (GPU/TPU/HPU) as its datasheet gives it (dense, no sparsity)."""

    name: str
    aliases: tuple[str, ...] = ()
    vendor: str
    family: str = Field(description="architecture generation, e.g. ampere, hopper, cdna3")
    memory_bytes: Bytes = Field(gt=0)
    memory_bandwidth_bytes_per_s: BytesPerS = Field(gt=0)
    peak_flops_per_s: dict[DType, FlopsPerS] = Field(description="dense peak per dtype")
    num_compute_units: int | None = Field(default=None, gt=0, description="SMs / CUs / cores")
    scale_up: LinkSpec | None = Field(default=None, description="NVLink / XGMI / ICI; None: PCIe")
    host_link: LinkSpec = Field(description="link to host memory (PCIe), per GPU, one direction")
    default_gpus_per_node: int = Field(default=8, gt=0)
    tdp_w: float | None = Field(default=None, gt=0)
    source: str = Field(min_length=3)
    notes: str = ""

    @field_validator("peak_flops_per_s")
    @classmethod
    def _needs_a_16_bit_peak(cls, v: dict[DType, float]) -> dict[DType, float]:
        if not v:
            raise ValueError("peak_flops_per_s needs at least one dtype")
        return v

    @property
    def supported_dtypes(self) -> set[DType]:
        return set(self.peak_flops_per_s)

    def peak_flops(self, dtype: DType) -> float:
        """Dense peak FLOP/s for ``dtype``; formats without a peak of their own raise.

        tf32 falls back to fp32 math and vice versa is not assumed; int4 runs at int8 peak only
        where the part lists int4 (weight-only int4 is priced at the activation format).
        """
        if dtype in self.peak_flops_per_s:
            return self.peak_flops_per_s[dtype]
        have = ", ".join(d.value for d in self.peak_flops_per_s)
        raise ConfigError(
            f"{self.name} has no {dtype.value} compute (it supports {have}); pick one with "
            f"--dtype or --act-dtype (e.g. --act-dtype bf16 runs {dtype.value} weights "
            "weight-only)"
        )

    @property
    def scale_up_link(self) -> LinkSpec:
        """The intra-node GPU-to-GPU link: scale-up fabric, else the PCIe host link (shared)."""
        if self.scale_up is not None:
            return self.scale_up
        return self.host_link.model_copy(update={"topology": LinkTopology.SHARED})


class HostSpec(Spec):
    """The host side used for offloading: CPU, DRAM, the host<->device link and local disk."""

    name: str
    aliases: tuple[str, ...] = ()
    cpu: str = Field(description="CPU model (informational)")
    cpu_memory_bytes: Bytes = Field(gt=0)
    cpu_memory_bandwidth_bytes_per_s: BytesPerS = Field(gt=0)
    cpu_peak_flops_per_s: dict[DType, FlopsPerS]
    h2d_bandwidth_bytes_per_s: BytesPerS = Field(gt=0, description="host -> device")
    d2h_bandwidth_bytes_per_s: BytesPerS = Field(gt=0, description="device -> host")
    disk_bytes: Bytes = Field(gt=0)
    disk_read_bandwidth_bytes_per_s: BytesPerS = Field(gt=0)
    disk_write_bandwidth_bytes_per_s: BytesPerS = Field(gt=0)
    source: str = Field(min_length=3)
    notes: str = ""

    def cpu_peak_flops(self, dtype: DType) -> float:
        """CPU peak for ``dtype``; falls back to fp32 (CPUs without native bf16 upcast)."""
        return self.cpu_peak_flops_per_s.get(dtype, self.cpu_peak_flops_per_s[DType.FP32])
