"""An offloading policy: batching, placement fractions per tier, compression, CPU attention.

FlexGen (Sheng et al., "FlexGen: High-Throughput Generative Inference of Large Language Models
with a Single GPU", ICML 2023, section 4) describes a policy by

- the block: ``num_gpu_batches`` GPU batches of ``gpu_batch_size`` sequences each, processed
  together layer by layer (block size ``bls = gpu_batch_size x num_gpu_batches``);
- the fraction of the weights (w), KV cache (c) and activations (h) kept on the GPU and on the
  CPU; the disk holds the rest (``w_disk_frac = 1 - w_gpu_frac - w_cpu_frac`` etc.);
- ``compress_weight`` / ``compress_cache``: 4-bit group-wise quantization of weights / KV cache
  (section 5; FlexGen uses groups of 64 along one dimension, min and scale per group in fp16);
- ``cpu_cache_compute``: decode attention over CPU- (and disk-) resident KV runs on the CPU
  instead of moving that cache to the GPU (section 4.2, "CPU delegation");
- ``overlap``: weight / cache / activation I/O of the next step overlaps the current compute
  (FlexGen's default); without it a layer takes the sum of its streams instead of their maximum;
- ``pin_weight``: CPU-resident weights sit in pinned host memory (FlexGen's ``--pin-weight``,
  default on; its OPT-175B benchmark runs turn it off), so they copy at the pinned rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum

from llmsim.errors import ConfigError

_FRAC_TOL = 1e-9


class MoEExpertTraffic(str, Enum):
    """Which routed-expert weights move to the GPU per layer.

    ``all``: every expert (a large block touches every expert; the Mixtral case).
    ``expected``: the expected distinct experts the block's tokens touch,
    ``E * (1 - (1 - k/E)^tokens)`` (``costmodel.kernels.expected_experts_touched``).
    """

    ALL = "all"
    EXPECTED = "expected"


@dataclass(frozen=True)
class GroupQuantization:
    """Group-wise integer quantization as FlexGen compresses weights and KV cache.

    Each group of ``group_size`` values stores ``bits``-bit codes plus ``scale_bytes_per_group``
    bytes of metadata (FlexGen: an fp16 minimum and an fp16 scale, 4 bytes). Stored bytes per
    value = ``bits / 8 + scale_bytes_per_group / group_size`` (0.5625 for FlexGen's 4-bit g64).

    llmsim's ``DType.INT4`` is AWQ/GPTQ-shaped (group 128, one 2-byte scale); FlexGen's format
    differs, hence this small spec here.
    """

    bits: int = 4
    group_size: int = 64
    scale_bytes_per_group: float = 4.0

    def __post_init__(self) -> None:
        if self.bits <= 0 or self.group_size <= 0 or self.scale_bytes_per_group < 0:
            raise ConfigError(f"invalid group quantization {self}")

    @property
    def bytes_per_element(self) -> float:
        return self.bits / 8.0 + self.scale_bytes_per_group / self.group_size


FLEXGEN_4BIT = GroupQuantization()


@dataclass(frozen=True)
class OffloadPolicy:
    """One FlexGen policy (see module docstring). Fractions are in [0, 1]."""

    gpu_batch_size: int
    num_gpu_batches: int = 1
    w_gpu_frac: float = 1.0
    w_cpu_frac: float = 0.0
    cache_gpu_frac: float = 1.0
    cache_cpu_frac: float = 0.0
    act_gpu_frac: float = 1.0
    act_cpu_frac: float = 0.0
    compress_weight: bool = False
    compress_cache: bool = False
    cpu_cache_compute: bool = False
    overlap: bool = True
    pin_weight: bool = True

    def __post_init__(self) -> None:
        for name, flag, what in (("gpu_batch_size", "--gpu-batch-size", "sequences per GPU batch"),
                                 ("num_gpu_batches", "--num-gpu-batches", "GPU batches per block")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{flag} must be an integer >= 1 ({what}), got {value!r}")
            if value > 2**31:
                raise ConfigError(f"{flag} {value} is more {what} than any GPU runs (at most "
                                  "2**31)")
        for name in ("w_gpu_frac", "w_cpu_frac", "cache_gpu_frac", "cache_cpu_frac",
                     "act_gpu_frac", "act_cpu_frac"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                    not math.isfinite(value) or not -_FRAC_TOL <= value <= 1 + _FRAC_TOL:
                raise ConfigError(f"{name} must be a fraction in [0, 1], got {value!r}")
        for what, gpu, cpu in (("weights", self.w_gpu_frac, self.w_cpu_frac),
                               ("cache", self.cache_gpu_frac, self.cache_cpu_frac),
                               ("activations", self.act_gpu_frac, self.act_cpu_frac)):
            if gpu + cpu > 1 + 1e-6:
                raise ConfigError(
                    f"{what}: GPU {gpu:.4g} + CPU {cpu:.4g} fractions exceed 1 "
                    f"({100 * (gpu + cpu):.4g}%); the disk takes the rest, so they must sum "
                    "to <= 100%"
                )

    # ------------------------------------------------------------------ derived
    @property
    def block_size(self) -> int:
        """Sequences processed together: ``gpu_batch_size x num_gpu_batches``."""
        return self.gpu_batch_size * self.num_gpu_batches

    @property
    def w_disk_frac(self) -> float:
        return max(0.0, 1.0 - self.w_gpu_frac - self.w_cpu_frac)

    @property
    def cache_disk_frac(self) -> float:
        return max(0.0, 1.0 - self.cache_gpu_frac - self.cache_cpu_frac)

    @property
    def act_disk_frac(self) -> float:
        return max(0.0, 1.0 - self.act_gpu_frac - self.act_cpu_frac)

    @property
    def fractions(self) -> tuple[float, float, float, float, float, float]:
        """``(wg, wc, cg, cc, hg, hc)``: the LP's six decision variables."""
        return (self.w_gpu_frac, self.w_cpu_frac, self.cache_gpu_frac, self.cache_cpu_frac,
                self.act_gpu_frac, self.act_cpu_frac)

    @property
    def percent(self) -> tuple[float, ...]:
        """FlexGen's ``--percent wg wc cg cc hg hc`` (0..100)."""
        return tuple(100.0 * f for f in self.fractions)

    @classmethod
    def from_percent(cls, gpu_batch_size: int, num_gpu_batches: int,
                     percent: tuple[float, ...] | list[float], **flags: bool) -> OffloadPolicy:
        """Build from FlexGen's six percentages ``wg wc cg cc hg hc`` (each 0..100)."""
        if isinstance(percent, (str, bytes)) or not hasattr(percent, "__len__"):
            raise ConfigError(f"--percent takes 6 numbers (wg wc cg cc hg hc), got {percent!r}")
        values = tuple(percent)
        if len(values) != 6:
            raise ConfigError(
                f"--percent takes 6 numbers (wg wc cg cc hg hc), got {len(values)}")
        for name, v in zip(("wg", "wc", "cg", "cc", "hg", "hc"), values, strict=True):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or not 0 <= v <= 100:
                raise ConfigError(f"--percent {name} must be a number in 0..100, got {v!r}")
        f = [v / 100.0 for v in values]
        return cls(gpu_batch_size, num_gpu_batches, *f, **flags)

    def with_fractions(self, fractions: tuple[float, ...] | list[float]) -> OffloadPolicy:
        """The same batching and flags with new ``(wg, wc, cg, cc, hg, hc)`` (clipped to the
        simplex: solver round-off can leave -1e-12 or a pair summing to 1 + 1e-12)."""
        vals = [min(1.0, max(0.0, float(v))) for v in fractions]
        for i in (0, 2, 4):
            excess = vals[i] + vals[i + 1] - 1.0
            if excess > 0:
                vals[i + 1] = max(0.0, vals[i + 1] - excess)
        return OffloadPolicy(self.gpu_batch_size, self.num_gpu_batches, *vals,
                             compress_weight=self.compress_weight,
                             compress_cache=self.compress_cache,
                             cpu_cache_compute=self.cpu_cache_compute, overlap=self.overlap,
                             pin_weight=self.pin_weight)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self)
        out["block_size"] = self.block_size
        out["w_disk_frac"] = self.w_disk_frac
        out["cache_disk_frac"] = self.cache_disk_frac
        out["act_disk_frac"] = self.act_disk_frac
        out["percent"] = [round(p, 4) for p in self.percent]
        return out

    def describe(self) -> str:
        p = " ".join(f"{v:.4g}" for v in self.percent)
        flags = [name for name in ("compress_weight", "compress_cache", "cpu_cache_compute")
                 if getattr(self, name)]
        if not self.overlap:
            flags.append("no-overlap")
        if not self.pin_weight:
            flags.append("pageable-weights")
        extra = f" [{', '.join(flags)}]" if flags else ""
        return (f"gbs {self.gpu_batch_size} x {self.num_gpu_batches} batches "
                f"(block {self.block_size}), percent {p}{extra}")
