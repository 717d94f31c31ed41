"""Fit whole profile entries and assemble a profile file.

- Hardware entries: every family that has ``fit`` data for that hardware (``reference.py``).
- Architecture-family entries (``ampere``, ``hopper``, ... from the hardware YAMLs' ``family:``)
  and ``generic``: the per-parameter median over the fitted hardware entries of that family (all
  of them for ``generic``), so every catalog part resolves to measured values: its own, else its
  architecture's, else the median part's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from statistics import median
from typing import Any

import pandas as pd

from llmsim.calibration import fit as ft
from llmsim.calibration.measurements import COMM_KINDS, FAMILY
from llmsim.calibration.predict import CUSTOM_OP, families, inter_node_mask
from llmsim.calibration.reference import FIT, DataSet, combined, fit_sets
from llmsim.catalog import get_hardware
from llmsim.costmodel.profile import (
    COMM_FAMILIES,
    CUSTOM_COMM_FAMILY,
    KERNEL_FAMILIES,
    HardwareProfile,
    ProfileEntry,
    ProfileFile,
)

log = logging.getLogger(__name__)

FITTED_HARDWARE = ("a100-sxm-80gb", "h100-sxm", "a40")
_KERNEL_FIELDS = ft.KERNEL_PARAMS
_COMM_FIELDS = ft.COMM_PARAMS


# Below this many rows per free parameter, only the scale parameters (efficiencies, launch) are
# fitted and the shape parameters (half-saturation points) come from ``prior`` (user fits).
MIN_ROWS_PER_PARAM = 20
_SCALE_PARAMS = ("compute_eff", "memory_eff", "launch_s")


def fit_hardware(sets: list[DataSet], hardware: str, prior: HardwareProfile | None = None
                 ) -> tuple[dict[str, Any], list[ft.FitResult]]:
    """One hardware entry (as a plain dict) and the fit results behind it. With ``prior``, a
    family with too few rows for its free parameters fits only the scale parameters."""
    entry: dict[str, Any] = {}
    results: list[ft.FitResult] = []
    for family in KERNEL_FAMILIES:
        data = combined(fit_sets(sets, hardware, family))
        if len(data) == 0:
            continue
        log.info("fitting %s %s on %d rows", hardware, family, len(data))
        free, fixed = ft.FREE[family], None
        if prior is not None and len(data) < MIN_ROWS_PER_PARAM * len(free):
            free = tuple(p for p in free if p in _SCALE_PARAMS)
            fixed = {k: v for k, v in prior.kernel(family).as_dict().items() if k not in free}
        r = ft.fit_kernel_family(data, hardware, family, free=free, fixed=fixed)
        if fixed:
            r.notes.append(f"{len(data)} rows: shape parameters kept from the base profile")
        entry[family] = r.params
        results.append(r)
    intra = combined(fit_sets(sets, hardware, "comm_intra"))
    intra_params: dict[str, float] = {}
    if len(intra):
        r = ft.fit_comm(intra, hardware, "intra")
        intra_params = r.params
        entry["comm_intra"] = r.params
        results.append(r)
    inter = combined(fit_sets(sets, hardware, "comm_inter"))
    if len(inter):
        r = ft.fit_comm(inter, hardware, "inter", other=intra_params)
        entry["comm_inter"] = r.params
        results.append(r)
    custom = combined(fit_sets(sets, hardware, "comm_custom"))
    if len(custom):
        r = ft.fit_comm(custom, hardware, "custom")
        entry["comm_custom"] = r.params
        results.append(r)
    entry["fit"] = {r.family: r.provenance() for r in results}
    return entry, results


def fit_table(table: pd.DataFrame, hardware: str, prior: HardwareProfile | None = None
              ) -> tuple[dict[str, Any], list[ft.FitResult]]:
    """Fit one hardware entry from a user's measurement table (every row is a fit row; kernel
    kinds map to their family, collectives to ``comm_intra`` / ``comm_inter`` by span, and
    those tagged ``op=custom`` (an engine's own all-reduce) to ``comm_custom``)."""
    rows = table[table["hardware"].map(lambda h: get_hardware(str(h)).name) == hardware]
    sets = []
    kernel_rows = rows[rows["kind"].isin(list(FAMILY))]
    fams = families(kernel_rows)
    for fam in KERNEL_FAMILIES:
        sub = kernel_rows[fams == fam]
        if len(sub):
            sets.append(DataSet(fam, hardware, fam, FIT, "user measurements", sub))
    comm = rows[rows["kind"].isin(COMM_KINDS)]
    if len(comm):
        inter = inter_node_mask(comm)
        custom = (comm["op"] == CUSTOM_OP).to_numpy()
        for mask, fam in ((~inter & ~custom, "comm_intra"), (inter & ~custom, "comm_inter"),
                          (~inter & custom, "comm_custom")):
            if mask.any():
                sets.append(DataSet(fam, hardware, fam, FIT, "user measurements", comm[mask]))
    return fit_hardware(sets, hardware, prior)


def _median_fields(blocks: Iterable[dict[str, float]], fields: tuple[str, ...]
                   ) -> dict[str, float]:
    blocks = list(blocks)
    out = {}
    for f in fields:
        vals = [b[f] for b in blocks if f in b and b[f] is not None]
        if vals:
            out[f] = ft.round_sig(float(median(vals)))
    return out


def derived_entry(entries: dict[str, dict[str, Any]], members: list[str]) -> dict[str, Any]:
    """Per-parameter median over ``members``' entries (families and collectives alike)."""
    out: dict[str, Any] = {}
    for family in KERNEL_FAMILIES:
        vals = _median_fields((entries[m][family] for m in members if family in entries[m]),
                              _KERNEL_FIELDS)
        if vals:
            out[family] = vals
    for family in (*COMM_FAMILIES, CUSTOM_COMM_FAMILY):
        vals = _median_fields((entries[m][family] for m in members if family in entries[m]),
                              _COMM_FIELDS)
        if vals:
            out[family] = vals
    steps = [entries[m]["step_overhead_s"] for m in members if "step_overhead_s" in entries[m]]
    if steps:
        out["step_overhead_s"] = ft.round_sig(float(median(steps)))
    out["fit"] = {"derived_from": list(members),
                  "method": "per-parameter median of the fitted hardware entries"}
    return out


def assemble(entries: dict[str, dict[str, Any]], description: str, generated_by: str,
             sources: list[str]) -> ProfileFile:
    """Hardware entries + one entry per architecture family present + ``generic``."""
    families: dict[str, list[str]] = {}
    for name in entries:
        families.setdefault(get_hardware(name).family, []).append(name)
    all_entries = dict(entries)
    for fam, members in sorted(families.items()):
        all_entries[fam] = derived_entry(entries, sorted(members))
    all_entries["generic"] = derived_entry(entries, sorted(entries))
    data = {"version": 1, "description": description, "generated_by": generated_by,
            "sources": sources, "entries": all_entries}
    return ProfileFile.model_validate(data)


def validate_entry(entry: dict[str, Any]) -> ProfileEntry:
    return ProfileEntry.model_validate(entry)
