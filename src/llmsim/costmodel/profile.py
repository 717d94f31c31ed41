"""Calibration profiles: measured efficiencies and fixed costs, kept apart from datasheets.

A profile maps hardware names (then architecture families, then ``generic``) to per-op-family
efficiency curves. The shipped ``data/profiles/default.yaml`` is produced by
``scripts/fit_profile.py`` from measured kernels in ``../shared/data``; never edit it by hand
(docs/calibration.md lists what was fitted on which table and the measured error).

Efficiency model of a kernel with FLOPs ``F`` and bytes ``B`` on a part with peak ``P`` and
memory bandwidth ``W`` (a roofline with shape-dependent efficiencies and a fixed cost)::

    time  = launch_s + max(F / (P * eta_c), B / (W * eta_m))
    eta_c = compute_eff * s(m, m_half) * s(n, n_half) * s(k, k_half)
    eta_m = memory_eff * s(m * n, mn_half)
    s(x, h) = x / (x + h)            (1 when h == 0 or x == 0: the factor is skipped)

where m, n, k are the op's GEMM-like dimensions (tokens or query rows, output width or keys per
sequence, reduction width; ``kernels.py`` defines them per op). The saturating compute factors
capture small-tile under-use and wave quantisation on average (Williams et al., "Roofline",
CACM 2009, with the small-problem correction GenZ and LLMCompass use); the memory factor is a
parallelism ramp: a kernel with few independent output rows x columns (a GEMV with a narrow
output, decode attention over few sequences x heads) cannot keep enough loads in flight to reach
the sustained bandwidth (``mn_half``: the m*n at which it reaches half of ``memory_eff``).

Collectives (``collectives.py``): ``time = base_latency_s + steps * latency_s + algo_bytes /
(link_bandwidth * bw_eff)``; ``base_latency_s`` is the fixed cost of launching one collective
(NCCL kernel launch and protocol set-up) and ``latency_s`` the per-step hop latency.
``comm_intra`` / ``comm_inter`` are NCCL's; ``comm_custom`` is the serving engines' own
intra-node all-reduce (vLLM's and SGLang's custom all-reduce, TensorRT-LLM's one-/two-shot
kernels), same formula and fields, resolved only where an entry sets it.

Host section (``host:`` of an entry keyed by a *host* name, e.g. ``gcp-t4-flexgen``; formulas in
``host.py``): the achieved fractions of a host's datasheet rates -- PCIe host->device and
device->host from pinned buffers, the extra factor when the host buffer is pageable (staged through
pinned memory), disk read and write, CPU compute and DRAM bandwidth -- and the fixed cost of one
CPU op. A host resolves host entry -> ``generic`` -> neutral (:meth:`Profile.for_host`).

Every parameter left unset falls back to the family entry, then ``generic``, then the neutral
value (efficiency 1, no fixed cost, no ramp): :meth:`Profile.empty` is the datasheet roofline,
for GPUs and hosts alike.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import Field

from llmsim import checks
from llmsim.catalog import files
from llmsim.catalog._base import Spec, validate_spec
from llmsim.catalog.hardware import HardwareSpec, HostSpec
from llmsim.dtypes import DType
from llmsim.errors import SpecError


class KernelEfficiency(Spec):
    """Efficiency curve of one op family (all fields optional: missing ones fall back)."""

    compute_eff: float | None = Field(default=None, gt=0, le=1.5)
    memory_eff: float | None = Field(default=None, gt=0, le=1.5)
    launch_s: float | None = Field(default=None, ge=0)
    m_half: float | None = Field(default=None, ge=0)
    n_half: float | None = Field(default=None, ge=0)
    k_half: float | None = Field(default=None, ge=0)
    mn_half: float | None = Field(default=None, ge=0,
                                  description="m*n at which the memory efficiency is halved")


class CommEfficiency(Spec):
    """Collective efficiency on one link class."""

    bw_eff: float | None = Field(default=None, gt=0, le=1.5)
    latency_s: float | None = Field(default=None, ge=0, description="per algorithm step")
    base_latency_s: float | None = Field(default=None, ge=0,
                                         description="fixed cost of one collective")


class HostEfficiency(Spec):
    """Achieved fractions of one host's datasheet rates (all optional: missing ones fall back).

    ``h2d_eff`` / ``d2h_eff``: PCIe copies between device memory and *pinned* host memory;
    ``pageable_eff``: the further fraction of that rate reached when the host buffer is pageable
    (the runtime stages it through a pinned buffer); ``disk_read_eff`` / ``disk_write_eff``: the
    local disk; ``cpu_compute_eff`` / ``cpu_memory_eff``: the CPU roofline's peak FLOP/s and DRAM
    bandwidth; ``cpu_launch_s``: fixed cost of one CPU op.
    """

    h2d_eff: float | None = Field(default=None, gt=0, le=1.5)
    d2h_eff: float | None = Field(default=None, gt=0, le=1.5)
    pageable_eff: float | None = Field(default=None, gt=0, le=1.5)
    disk_read_eff: float | None = Field(default=None, gt=0, le=1.5)
    disk_write_eff: float | None = Field(default=None, gt=0, le=1.5)
    cpu_compute_eff: float | None = Field(default=None, gt=0, le=1.5)
    cpu_memory_eff: float | None = Field(default=None, gt=0, le=1.5)
    cpu_launch_s: float | None = Field(default=None, ge=0)


class ProfileEntry(Spec):
    """Efficiencies for one hardware (or family, or ``generic``), or one host (``host:``)."""

    gemm: KernelEfficiency = KernelEfficiency()
    moe: KernelEfficiency = KernelEfficiency()
    attention_prefill: KernelEfficiency = KernelEfficiency()
    attention_decode: KernelEfficiency = KernelEfficiency()
    elementwise: KernelEfficiency = KernelEfficiency()
    gemm_fp8: KernelEfficiency = KernelEfficiency()
    moe_fp8: KernelEfficiency = KernelEfficiency()
    comm_intra: CommEfficiency = CommEfficiency()
    comm_inter: CommEfficiency = CommEfficiency()
    # the serving engines' own intra-node all-reduce kernels (collectives.custom_allreduce_time)
    comm_custom: CommEfficiency = CommEfficiency()
    step_overhead_s: float | None = Field(default=None, ge=0)
    host: HostEfficiency = HostEfficiency()
    fit: dict[str, Any] = Field(default_factory=dict, description="fit provenance and error")


class ProfileFile(Spec):
    version: int = 1
    description: str = ""
    generated_by: str = ""
    sources: list[str] = Field(default_factory=list)
    entries: dict[str, ProfileEntry]


# Fallbacks when neither the hardware, its family nor ``generic`` sets a value: a pure roofline
# at datasheet peaks (efficiency 1, no fixed costs). Only ``--efficiency`` or a profile changes it.
NEUTRAL_KERNEL = dict(compute_eff=1.0, memory_eff=1.0, launch_s=0.0, m_half=0.0, n_half=0.0,
                       k_half=0.0, mn_half=0.0)
# ``latency_s`` None: the link's datasheet per-step latency applies (see collectives._link_time)
NEUTRAL_COMM: dict[str, float | None] = dict(bw_eff=1.0, latency_s=None, base_latency_s=0.0)
# A host with no entry: its datasheet rates (every fraction 1, no fixed cost).
NEUTRAL_HOST = dict(h2d_eff=1.0, d2h_eff=1.0, pageable_eff=1.0, disk_read_eff=1.0,
                    disk_write_eff=1.0, cpu_compute_eff=1.0, cpu_memory_eff=1.0,
                    cpu_launch_s=0.0)
#: the 8-bit-float variant of a family (W8A8 GEMMs and grouped experts in fp8: measured far
#: below the fp8 peak where bf16 runs near its own, docs/calibration.md) -> its base family. A
#: variant parameter no entry sets falls back to the base family's resolved value, so a profile
#: without them prices fp8 with the bf16 curve at the fp8 peak.
FP8_FAMILIES = {"gemm_fp8": "gemm", "moe_fp8": "moe"}
KERNEL_FAMILIES = ("gemm", "moe", "attention_prefill", "attention_decode", "elementwise",
                   *FP8_FAMILIES)
COMM_FAMILIES = ("comm_intra", "comm_inter")
#: the engines' custom all-reduce: resolved only where some entry of the chain sets it
CUSTOM_COMM_FAMILY = "comm_custom"


def kernel_family(family: str, compute: DType) -> str:
    """The profile family that prices a ``family`` kernel whose math runs in ``compute``
    (``gemm`` in fp8 -> ``gemm_fp8``; every other pair keeps its family)."""
    variant = f"{family}_fp8"
    return variant if compute == DType.FP8 and variant in FP8_FAMILIES else family


class ResolvedKernel:
    """A fully specified efficiency curve (no None fields), with the fast evaluation."""

    __slots__ = ("compute_eff", "memory_eff", "launch_s", "m_half", "n_half", "k_half",
                 "mn_half")

    def __init__(self, compute_eff: float, memory_eff: float, launch_s: float, m_half: float,
                 n_half: float, k_half: float, mn_half: float = 0.0):
        self.compute_eff = compute_eff
        self.memory_eff = memory_eff
        self.launch_s = launch_s
        self.m_half = m_half
        self.n_half = n_half
        self.k_half = k_half
        self.mn_half = mn_half

    def compute_efficiency(self, m: float = 0.0, n: float = 0.0, k: float = 0.0,
                           causal: bool = False):
        """eta_c for an op of dims (m, n, k); a 0 dim skips its factor. Works on numpy arrays.

        ``causal``: FLOPs grow as causal pairs ``m (n + 1) / 2`` (m = n = tokens per sequence),
        so ``F / (s(m) s(n))`` carries ``(1 + 1/n)`` and a term ``m_half n_half / n`` that falls
        as the tokens grow. Past ``c = sqrt(m_half n_half / (m_half + n_half + 1))`` tokens the
        time rises; a shorter prompt runs as if padded to ``c`` (the same time as ``c``): the
        efficiency of the padded dims times real / padded pairs.
        """
        pad = 1.0
        if causal and self.m_half and self.n_half:
            floor = (self.m_half * self.n_half / (self.m_half + self.n_half + 1.0)) ** 0.5
            fm, fn = _floored(m, floor), _floored(n, floor)
            pad = _ratio(fm * (fn + 1.0), m * (n + 1.0))
            m, n = fm, fn
        eff = self.compute_eff / pad
        if self.m_half and m is not None:
            eff = eff * _saturate(m, self.m_half)
        if self.n_half and n is not None:
            eff = eff * _saturate(n, self.n_half)
        if self.k_half and k is not None:
            eff = eff * _saturate(k, self.k_half)
        return eff

    def memory_efficiency(self, m: float = 0.0, n: float = 0.0, rho=0.0, unit=1.0):
        """eta_m = memory_eff * s(m*n, mn_half); a 0 dim skips the ramp. Works on arrays.

        ``rho`` > 0 floors the dims at their break-even points ``m >= unit * rho * sqrt(h)``,
        ``n >= sqrt(h) / rho`` (``h = mn_half``; ``rho`` and ``unit`` come from the op's byte
        formula, see ``kernels.py``): below them the bytes a dim adds are fewer than the ramp
        saves, so a larger problem would be faster; the ramp stops there, the time never falls
        as a dimension grows (a smaller problem runs as if padded to the floor's parallelism).
        """
        if not self.mn_half or m is None or n is None:
            return self.memory_eff
        if not (isinstance(rho, (int, float)) and rho == 0):
            root = self.mn_half ** 0.5
            m = _floored(m, unit * rho * root)
            n = _floored(n, root / rho)
        if isinstance(m, (int, float)) and isinstance(n, (int, float)):
            return self.memory_eff * _saturate(m * n, self.mn_half)
        return self.memory_eff * _saturate(np.asarray(m) * np.asarray(n), self.mn_half)

    def as_dict(self) -> dict[str, float]:
        return {s: getattr(self, s) for s in self.__slots__}


def _floored(x, floor):
    """``max(x, floor)`` for a dimension that the op has (0 stays 0: no factor)."""
    if isinstance(x, (int, float)) and isinstance(floor, (int, float)):
        return (x if x > floor else floor) if x > 0 else x
    x = np.asarray(x, dtype=float)
    return np.where(x > 0, np.maximum(x, floor), x)


def _ratio(num, den):
    """``num / den``, and 1 where ``den == 0`` (an op without those dims)."""
    if isinstance(den, (int, float)) and isinstance(num, (int, float)):
        return num / den if den > 0 else 1.0
    den = np.asarray(den, dtype=float)
    return np.where(den > 0, np.asarray(num, dtype=float) / np.where(den > 0, den, 1.0), 1.0)


def _saturate(x, half: float):
    """``x / (x + half)``, and 1 where ``x == 0`` (a dimension the op does not have)."""
    if isinstance(x, (int, float)):
        return x / (x + half) if x > 0 else 1.0
    x = np.asarray(x, dtype=float)
    out = np.where(x > 0, x / np.maximum(x + half, 1e-300), 1.0)
    return float(out) if out.ndim == 0 else out


class ResolvedComm:
    """Collective efficiency after fallback; ``latency_s`` None means "use the link's own"."""

    __slots__ = ("bw_eff", "latency_s", "base_latency_s")

    def __init__(self, bw_eff: float, latency_s: float | None, base_latency_s: float = 0.0):
        self.bw_eff = bw_eff
        self.latency_s = latency_s
        self.base_latency_s = base_latency_s


class ResolvedHost:
    """Host efficiencies after fallback (host entry > ``generic`` > neutral); no None fields."""

    __slots__ = tuple(NEUTRAL_HOST) + ("names",)

    def __init__(self, names: tuple[str, ...] = (), **values: float):
        unknown = set(values) - set(NEUTRAL_HOST)
        if unknown:
            raise SpecError(f"unknown host efficiency field(s) {sorted(unknown)}")
        self.names = tuple(names)
        for key, neutral in NEUTRAL_HOST.items():
            setattr(self, key, float(values.get(key, neutral)))

    @classmethod
    def neutral(cls) -> ResolvedHost:
        """The datasheet (or measured) rates as they are: every fraction 1, no fixed cost."""
        return cls()

    def replace(self, **values: float) -> ResolvedHost:
        """A copy with some fields changed (e.g. 1.0 where a rate was given explicitly)."""
        return ResolvedHost(self.names, **{**self.as_dict(), **values})

    def as_dict(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in NEUTRAL_HOST}

    def describe(self) -> str:
        return " > ".join(self.names) if self.names else "host datasheet"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResolvedHost) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(tuple(self.as_dict().values()))

    def __repr__(self) -> str:
        vals = ", ".join(f"{k}={v:g}" for k, v in self.as_dict().items())
        return f"ResolvedHost({self.describe()}: {vals})"


def _resolved_comm(chain: list[ProfileEntry], family: str) -> ResolvedComm:
    """A collective family's fields, each from the first entry of the chain that sets it (else
    the neutral value)."""
    return ResolvedComm(**{key: next((getattr(getattr(e, family), key) for e in chain
                                      if getattr(getattr(e, family), key) is not None), neutral)
                           for key, neutral in NEUTRAL_COMM.items()})


class HardwareProfile:
    """The efficiencies that apply to one hardware, after fallback (hardware > family > generic).

    ``efficiency`` (GenZ's ``system_eff``): when given, every kernel runs at that flat fraction of
    its datasheet peaks with no fixed costs, and collectives at that fraction of link bandwidth.
    """

    def __init__(self, chain: list[ProfileEntry], names: list[str], efficiency: float | None):
        efficiency = checks.efficiency(efficiency)
        self.names = names
        self.efficiency = efficiency
        self._kernels: dict[str, ResolvedKernel] = {}
        self._comm: dict[str, ResolvedComm] = {}
        for family in KERNEL_FAMILIES:
            if efficiency is not None:
                vals = dict(NEUTRAL_KERNEL, compute_eff=efficiency, memory_eff=efficiency)
            else:
                base = FP8_FAMILIES.get(family)
                fallback = self._kernels[base].as_dict() if base else NEUTRAL_KERNEL
                vals = {}
                for key, neutral in fallback.items():
                    vals[key] = next(
                        (getattr(getattr(e, family), key) for e in chain
                         if getattr(getattr(e, family), key) is not None),
                        neutral,
                    )
            self._kernels[family] = ResolvedKernel(**vals)
        for family in COMM_FAMILIES:
            self._comm[family] = (
                ResolvedComm(bw_eff=efficiency, latency_s=None, base_latency_s=0.0)
                if efficiency is not None else _resolved_comm(chain, family))
        self._custom: ResolvedComm | None = None
        if efficiency is None and any(
                v is not None for e in chain
                for v in getattr(e, CUSTOM_COMM_FAMILY).model_dump().values()):
            self._custom = _resolved_comm(chain, CUSTOM_COMM_FAMILY)
        if efficiency is not None:
            self.step_overhead_s = 0.0
        else:
            self.step_overhead_s = next(
                (e.step_overhead_s for e in chain if e.step_overhead_s is not None), 0.0
            )

    def kernel(self, family: str) -> ResolvedKernel:
        return self._kernels[family]

    def comm(self, inter_node: bool) -> ResolvedComm:
        return self._comm["comm_inter" if inter_node else "comm_intra"]

    def custom_allreduce(self) -> ResolvedComm | None:
        """The engines' custom all-reduce curve (``comm_custom``), or None where no entry of
        the chain has one (or with a flat ``efficiency``): all-reduces then price as NCCL's."""
        return self._custom

    def describe(self) -> str:
        if self.efficiency is not None:
            return f"flat efficiency {self.efficiency:g}"
        return " > ".join(self.names) if self.names else "datasheet roofline"


class Profile:
    """A calibration profile file: entries keyed by hardware name, family or ``generic``."""

    def __init__(self, data: ProfileFile, origin: str):
        self.data = data
        self.origin = origin

    @classmethod
    def load(cls, path: str | Path | None = None) -> Profile:
        """Load a profile file; ``None`` loads the shipped default."""
        if path is None:
            return _default_profile()
        if not isinstance(path, (str, Path)):
            raise SpecError(f"a profile is a YAML file path, got {type(path).__name__} "
                            f"{path!r}")
        p = Path(path)
        raw = files.read_mapping(p, what="calibration profile")
        return cls(validate_spec(ProfileFile, raw, str(p)), str(p))  # type: ignore[arg-type]

    @classmethod
    def empty(cls) -> Profile:
        """No calibration: datasheet roofline."""
        return cls(ProfileFile(entries={}), "none")

    def for_hardware(self, hw: HardwareSpec, efficiency: float | None = None) -> HardwareProfile:
        keys = [hw.name, hw.family, "generic"]
        chain, names = [], []
        for key in keys:
            entry = self.data.entries.get(key)
            if entry is not None:
                chain.append(entry)
                names.append(key)
        return HardwareProfile(chain, names, efficiency)

    def for_host(self, host: HostSpec | str, efficiency: float | None = None) -> ResolvedHost:
        """The host efficiencies that apply to ``host``: its entry, then ``generic``, then
        neutral (per field). ``efficiency`` (``--efficiency``): every fraction is that flat
        value and fixed costs are 0, as for the GPU."""
        efficiency = checks.efficiency(efficiency)
        if efficiency is not None:
            # every rate at the flat fraction; pageable buffers reach the pinned rate
            flat = {k: (float(efficiency) if k.endswith("_eff") else 0.0) for k in NEUTRAL_HOST}
            flat["pageable_eff"] = 1.0
            return ResolvedHost((f"flat efficiency {efficiency:g}",), **flat)
        name = host if isinstance(host, str) else host.name
        chain, names = [], []
        for key in (name, "generic"):
            entry = self.data.entries.get(key)
            if entry is not None and entry.host.model_dump(exclude_none=True):
                chain.append(entry.host)
                names.append(key)
        values = {}
        for key in NEUTRAL_HOST:
            found = next((getattr(h, key) for h in chain if getattr(h, key) is not None), None)
            if found is not None:
                values[key] = found
        return ResolvedHost(tuple(names), **values)


@lru_cache(maxsize=1)
def _default_profile() -> Profile:
    ref = resources.files("llmsim.data").joinpath("profiles/default.yaml")
    if not ref.is_file():
        return Profile.empty()
    raw = yaml.safe_load(ref.read_text(encoding="utf-8"))
    return Profile(validate_spec(ProfileFile, raw, "profiles/default.yaml"),  # type: ignore[arg-type]
                   "default")
