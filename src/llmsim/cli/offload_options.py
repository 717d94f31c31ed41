"""The options of ``llmsim offload solve|evaluate``: the machine (GPU, host, capacities in GiB,
bandwidths in GB/s, usable shares), FlexGen's compression and how the run is priced, each set
declared once (``llmsim.cli.option_groups``) and taken by both commands."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

import typer

from llmsim import units
from llmsim.cli.estimator_options import EstimatorModelOpt, EstimatorOpt
from llmsim.cli.options import ProfileOpt


class OutFormat(str, Enum):
    table = "table"
    json = "json"


class RuntimeName(str, Enum):
    flexgen = "flexgen"
    fused = "fused"


class MoEExperts(str, Enum):
    all = "all"
    expected = "expected"


ModelArg = Annotated[str | None, typer.Option(
    "--model", "-m", help="Catalog alias, HF id, or a config.json path.")]
PromptOpt = Annotated[int, typer.Option("--input-len", help="Prompt tokens per sequence.")]
GenOpt = Annotated[int, typer.Option("--output-len", help="Generated tokens per sequence.")]
HardwareArg = Annotated[str | None, typer.Option(
    "--hardware", "-H", help="GPU (default t4, the FlexGen paper's GPU).")]
HostArg = Annotated[str | None, typer.Option(
    "--host", help="Host spec: CPU, DRAM, PCIe, disk (default: gcp-t4-flexgen for a T4, "
                   "else a generic server of the GPU's PCIe generation).")]
GpuMemOpt = Annotated[float | None, typer.Option(
    "--gpu-mem", help="GPU memory, GiB (default: the GPU's capacity).")]
CpuMemOpt = Annotated[float | None, typer.Option(
    "--cpu-mem", help="CPU DRAM for offloading, GiB (default: the host's).")]
NvmeMemOpt = Annotated[float | None, typer.Option(
    "--nvme-mem", help="Disk space for offloading, GiB (0: no disk tier; default: the host's).")]
H2dOpt = Annotated[float | None, typer.Option("--h2d-bw", help="CPU->GPU bandwidth, GB/s.")]
D2hOpt = Annotated[float | None, typer.Option("--d2h-bw", help="GPU->CPU bandwidth, GB/s.")]
DiskReadOpt = Annotated[float | None, typer.Option(
    "--disk-read-bw", help="Disk read bandwidth, GB/s.")]
DiskWriteOpt = Annotated[float | None, typer.Option(
    "--disk-write-bw", help="Disk write bandwidth, GB/s.")]
CpuBwOpt = Annotated[float | None, typer.Option(
    "--cpu-mem-bw", help="CPU DRAM bandwidth for CPU attention, GB/s.")]
CpuFlopsOpt = Annotated[float | None, typer.Option(
    "--cpu-tflops", help="CPU compute for CPU attention, TFLOPS.")]
# the alpha defaults are llmsim.placement.system's DEFAULT_ALPHA_G / _C / _N (None here: that
# module imports the solver's scipy, too heavy for the CLI's start; tests/fuzz checks the help)
AlphaG = Annotated[float | None, typer.Option(
    "--alpha-g", help="Usable share of GPU memory (default 0.9).")]
AlphaC = Annotated[float | None, typer.Option(
    "--alpha-c", help="Usable share of CPU memory (default 0.95).")]
AlphaN = Annotated[float | None, typer.Option(
    "--alpha-n", help="Usable share of the disk (default 0.95).")]
CompressW = Annotated[bool, typer.Option(
    "--compress-w", "--compress-weight", help="4-bit group-wise weights (FlexGen, group 64).")]
CompressC = Annotated[bool, typer.Option(
    "--compress-cache", help="4-bit group-wise KV cache (FlexGen, group 64).")]
OffloadWeightDtype = Annotated[str | None, typer.Option(
    "--weight-dtype", help="Weight format: int4 is --compress-w; 16-bit (bf16 / fp16): none.")]
OffloadKvDtype = Annotated[str | None, typer.Option(
    "--kv-dtype", help="KV-cache format: int4 is --compress-cache; 16-bit (bf16 / fp16): none.")]

#: the formats FlexGen's runtime holds weights and KV in: 16-bit, or 4-bit group-wise
_OFFLOAD_FORMATS = {"bf16": False, "fp16": False, "int4": True}
NoOverlap = Annotated[bool, typer.Option(
    "--no-overlap", help="Do not overlap I/O with compute (a layer takes the sum of streams).")]
PinWeight = Annotated[bool, typer.Option(
    "--pin-weight/--no-pin-weight",
    help="CPU weights in pinned host memory (FlexGen's --pin-weight; off: pageable, staged "
         "before each copy).")]
MoEOpt = Annotated[MoEExperts, typer.Option(
    "--moe-experts", help="MoE weights moved per layer: all experts, or the expected distinct "
                          "experts the block's tokens touch.")]
EffOpt = Annotated[float | None, typer.Option(
    "--efficiency", help="Flat efficiency of every GPU and host peak (replaces the profile).")]
FmtOpt = Annotated[OutFormat, typer.Option("--format", "-f", help="Output format.")]
RuntimeOpt = Annotated[RuntimeName, typer.Option(
    "--runtime", help="Implementation priced: flexgen (FlexLLMGen's PyTorch runtime: unfused "
                      "attention, pass-wise 4-bit (de)quantisation, fp32 CPU attention, pageable "
                      "CPU cache) or fused (fused kernels, pinned cache).")]


def _gb_per_s(value: float | None) -> float | None:
    return None if value is None else value * units.GB


def _gib(value: float | None) -> float | None:
    return None if value is None else units.gib_to_bytes(value)


@dataclass(frozen=True)
class MachineOptions:
    """The machine: the GPU and host (catalog names) and overrides of their capacities (GiB),
    bandwidths (GB/s) and CPU compute (TFLOPS); the usable share of each tier."""

    gpu_mem: GpuMemOpt = None
    cpu_mem: CpuMemOpt = None
    nvme_mem: NvmeMemOpt = None
    hardware: HardwareArg = None
    host: HostArg = None
    h2d_bw: H2dOpt = None
    d2h_bw: D2hOpt = None
    disk_read_bw: DiskReadOpt = None
    disk_write_bw: DiskWriteOpt = None
    cpu_mem_bw: CpuBwOpt = None
    cpu_tflops: CpuFlopsOpt = None
    alpha_g: AlphaG = None
    alpha_c: AlphaC = None
    alpha_n: AlphaN = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``llmsim.placement.solve`` / ``evaluate``, in SI units (an
        alpha not given is left out: the placement model's default applies)."""
        alphas = {k: v for k, v in (("alpha_g", self.alpha_g), ("alpha_c", self.alpha_c),
                                    ("alpha_n", self.alpha_n)) if v is not None}
        return {
            "hardware": self.hardware, "host": self.host,
            "gpu_mem_bytes": _gib(self.gpu_mem), "cpu_mem_bytes": _gib(self.cpu_mem),
            "disk_mem_bytes": _gib(self.nvme_mem),
            "h2d_bytes_per_s": _gb_per_s(self.h2d_bw), "d2h_bytes_per_s": _gb_per_s(self.d2h_bw),
            "disk_read_bytes_per_s": _gb_per_s(self.disk_read_bw),
            "disk_write_bytes_per_s": _gb_per_s(self.disk_write_bw),
            "cpu_mem_bandwidth_bytes_per_s": _gb_per_s(self.cpu_mem_bw),
            "cpu_flops_per_s": None if self.cpu_tflops is None else self.cpu_tflops * 1e12,
            **alphas,
        }


def _compressed(value: str | None, flag: str) -> bool:
    """Whether ``flag``'s format is FlexGen's 4-bit group-wise one (None: not given)."""
    from llmsim.errors import UnknownNameError

    if value is None:
        return False
    key = value.strip().lower()
    if key not in _OFFLOAD_FORMATS:
        raise UnknownNameError(f"{flag} format (offload prices 16-bit or FlexGen's 4-bit "
                               "group-wise int4)", value, sorted(_OFFLOAD_FORMATS))
    return _OFFLOAD_FORMATS[key]


@dataclass(frozen=True)
class CompressionOptions:
    """FlexGen's 4-bit group-wise compression of the weights and of the KV cache, by its own
    flags (``--compress-w`` / ``--compress-cache``) or by the format names every command
    takes (``--weight-dtype int4`` / ``--kv-dtype int4``)."""

    compress_w: CompressW = False
    compress_cache: CompressC = False
    weight_dtype: OffloadWeightDtype = None
    kv_dtype: OffloadKvDtype = None

    @property
    def weights(self) -> bool:
        """Weights compressed to 4 bits."""
        return self.compress_w or _compressed(self.weight_dtype, "--weight-dtype")

    @property
    def cache(self) -> bool:
        """KV cache compressed to 4 bits."""
        return self.compress_cache or _compressed(self.kv_dtype, "--kv-dtype")


@dataclass(frozen=True)
class PricingOptions:
    """How a policy is priced: the MoE weights moved, the runtime, the calibration."""

    moe_experts: MoEOpt = MoEExperts.all
    runtime: RuntimeOpt = RuntimeName.flexgen
    profile: ProfileOpt = None
    efficiency: EffOpt = None
    estimator: EstimatorOpt = None
    estimator_model: EstimatorModelOpt = None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``llmsim.placement.solve`` / ``evaluate``."""
        from llmsim.cli.estimator_options import resolve_estimator

        name, data = resolve_estimator(self.estimator, self.estimator_model)
        return {"moe_experts": self.moe_experts.value, "runtime": self.runtime.value,
                "profile": self.profile, "efficiency": self.efficiency,
                **({"estimator": name, "estimator_model": data} if name else {})}


MACHINE, COMPRESSION, PRICING = MachineOptions(), CompressionOptions(), PricingOptions()
