"""The rule for a GPU without measured data, and the profiles that emulate one (leave-one-GPU-out).

A part with no entry in the profile resolves field by field to its architecture family's entry,
then ``generic`` (``costmodel/profile.py``); those are per-parameter medians of the fitted parts
(:func:`build.derived_entry`). :func:`profile_without` rebuilds the shipped profile as if one
fitted part had no data, so that the error of that rule on the part's own measurements is an
honest out-of-sample error (``benchmarks/accuracy.py``, ``scripts/fit_residuals.py``).

Rules (``rule=``):

- ``median`` (what llmsim ships): the part's entry is dropped and the family / ``generic``
  entries are re-derived from the remaining fitted parts, so it gets the median of its
  architecture's fitted parts, else of all fitted parts;
- ``nearest-scaled`` (research r12, Q2): per op family, copy the curve of the donor nearest in
  ``(log peak, log bandwidth)`` among fitted parts of the same architecture family if any, else
  all; rescale the halves to the target's datasheet, keeping efficiencies and launch costs::

      m_half, n_half  x  SMs_target / SMs_donor          (work needed to fill the machine)
      mn_half         x  bandwidth_target / bandwidth_donor   (bytes in flight, Little's law)

  collectives copy the nearest donor's values unchanged.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from llmsim.calibration import build
from llmsim.calibration.fit import round_sig
from llmsim.catalog import get_hardware
from llmsim.catalog.hardware import HardwareSpec
from llmsim.costmodel.profile import COMM_FAMILIES, KERNEL_FAMILIES, Profile, ProfileFile
from llmsim.dtypes import DType
from llmsim.errors import UnknownNameError

RULES = ("median", "nearest-scaled")


def fitted_parts(profile: Profile) -> list[str]:
    """The hardware entries fitted on measured kernels (``build.FITTED_HARDWARE`` present)."""
    return [h for h in build.FITTED_HARDWARE if h in profile.data.entries]


def _peak(hw: HardwareSpec) -> float:
    for dt in (DType.BF16, DType.FP16, DType.FP32):
        if dt in hw.supported_dtypes:
            return hw.peak_flops(dt)
    return hw.peak_flops(next(iter(hw.supported_dtypes)))


def distance(a: HardwareSpec, b: HardwareSpec) -> float:
    """Datasheet distance ``hypot(log peak ratio, log bandwidth ratio)`` (bf16 dense peak)."""
    return math.hypot(math.log(_peak(a) / _peak(b)),
                      math.log(a.memory_bandwidth_bytes_per_s / b.memory_bandwidth_bytes_per_s))


def donor(target: HardwareSpec, candidates: list[str]) -> str:
    """The nearest candidate by :func:`distance`, same architecture family first."""
    specs = {c: get_hardware(c) for c in candidates}
    same = [c for c, s in specs.items() if s.family == target.family]
    pool = same or list(specs)
    return min(pool, key=lambda c: (distance(target, specs[c]), c))


def scaled_kernel(params: dict[str, float], src: HardwareSpec, dst: HardwareSpec
                  ) -> dict[str, float]:
    """A kernel curve moved from ``src`` to ``dst`` (module docstring)."""
    out = dict(params)
    sm = dst.num_compute_units / src.num_compute_units
    for key in ("m_half", "n_half"):
        if out.get(key):
            out[key] = round_sig(out[key] * sm)
    if out.get("mn_half"):
        bw = dst.memory_bandwidth_bytes_per_s / src.memory_bandwidth_bytes_per_s
        out["mn_half"] = round_sig(out["mn_half"] * bw)
    return out


def transferred_entry(entries: dict[str, dict[str, Any]], target: str) -> dict[str, Any]:
    """The ``nearest-scaled`` entry of ``target`` from fitted ``entries`` (other parts)."""
    dst = get_hardware(target)
    out: dict[str, Any] = {}
    notes = {}
    for family in KERNEL_FAMILIES + COMM_FAMILIES:
        have = [h for h, e in entries.items() if h != target and family in e]
        if not have:
            continue
        src = donor(dst, have)
        params = dict(entries[src][family])
        out[family] = (scaled_kernel(params, get_hardware(src), dst)
                       if family in KERNEL_FAMILIES else params)
        notes[family] = src
    out["fit"] = {"transfer": {"rule": "nearest-scaled", "donors": notes}}
    return out


def profile_without(base: Profile, hardware: str, rule: str = "median") -> Profile:
    """``base`` as if ``hardware`` (a fitted part) had no measured data, under ``rule``."""
    if rule not in RULES:
        raise UnknownNameError("transfer rule", rule, RULES)
    target = get_hardware(hardware).name
    data = base.data.model_dump(mode="json", exclude_none=True)
    entries = data["entries"]
    fitted = {h: copy.deepcopy(entries[h]) for h in fitted_parts(base) if h != target}
    families = {get_hardware(h).family for h in build.FITTED_HARDWARE}
    for key in [*families, "generic", target]:
        entries.pop(key, None)
    if fitted:
        rebuilt = build.assemble(fitted, "", "", []).model_dump(mode="json", exclude_none=True)
        for key, entry in rebuilt["entries"].items():
            if key not in fitted:
                entries[key] = entry
    if rule == "nearest-scaled":
        entries[target] = transferred_entry(fitted, target)
    return Profile(ProfileFile.model_validate(data), f"{base.origin} without {target} ({rule})")
