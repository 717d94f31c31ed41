"""Fit host efficiencies to published offloaded-generation throughput (FlexLLMGen on a T4).

The only measured offloading data llmsim has is FlexLLMGen's published table (OPT-6.7B / 30B /
175B on one T4 with 208 GB DRAM and a 1.5 TB SSD, prompt 512, 32 generated tokens, with and
without 4-bit compression; ``tests/golden/flexgen_throughput.csv``). Six points, each at a
known policy. What is fitted on them are *efficiencies of the FlexGen runtime on that machine*
(the ``host:`` section of the profile entry ``gcp-t4-flexgen``), a few at most, chosen because
the schedule leaves them binding somewhere:

- ``pageable_eff``: staging pageable host buffers (the CPU KV cache; the CPU weights of the
  OPT-175B runs) for a copy to the GPU -- binding in the compressed OPT-30B/175B runs;
- ``cpu_memory_eff``: the CPU's DRAM bandwidth in FlexGen's fp32 CPU attention -- OPT-30B;
- ``disk_read_eff``: the SSD's read rate -- OPT-175B on disk.

Objective: ``scipy.optimize.least_squares`` over ``x = log(eff)`` (bounded to
``[log 0.01, log 1]``: a runtime cannot beat its datasheet), start just inside the
datasheet (``x = log 0.999``), residuals ``log(predicted) - log(published)`` of the throughput at
the published policy (``solver.evaluate``: the offload model itself, so a fitted profile
reproduces what it was fitted to). Values are rounded to 4 significant figures and errors are
those of the rounded values.

Honest error: leave-one-out -- fit on five points, predict the sixth, for each point. A
parameter that no point of a fold makes binding keeps its datasheet value in that fold (zero
gradient: the solver does not move it); that is what the model predicts without data.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from llmsim.costmodel.profile import (
    NEUTRAL_HOST,
    HostEfficiency,
    Profile,
    ProfileEntry,
    ProfileFile,
    ResolvedHost,
)
from llmsim.errors import DataError
from llmsim.placement.policy import OffloadPolicy
from llmsim.placement.run import OffloadRun
from llmsim.placement.solver import evaluate_run
from llmsim.placement.system import build_system

log = logging.getLogger(__name__)

FLEXGEN_HOST = "gcp-t4-flexgen"
FLEXGEN_GPU = "t4"
FITTED_PARAMS = ("pageable_eff", "cpu_memory_eff", "disk_read_eff")
SOURCE = ("FMInference/FlexLLMGen@004ffef8 README 'Performance Results' and "
          "benchmark/batch_size_table.md (FlexLLMGen rows; policies from "
          "benchmark/flexllmgen/bench_suite.py; Apache-2.0)")
# bench_suite.py runs the OPT-175B suites with --pin-weight 0 (tests/golden/
# FLEXGEN_ATTRIBUTION.md): their CPU weights are pageable.
_PAGEABLE_WEIGHTS_MODELS = {"opt-175b"}
_MIN_EFF = 0.01
_START = math.log(0.999)


def round_sig(x: float, digits: int = 4) -> float:
    """``x`` to ``digits`` significant figures."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - int(math.floor(math.log10(abs(x)))))


@dataclass(frozen=True)
class FlexGenCase:
    """One published FlexLLMGen throughput at its published policy."""

    system: str  # "flexllmgen" or "flexllmgen-compression"
    model: str
    prompt_len: int
    gen_len: int
    measured_tokens_per_s: float
    policy: OffloadPolicy
    lowest_tier: str

    @property
    def name(self) -> str:
        return f"{self.system}/{self.model}"


def load_flexgen_cases(path: str | Path) -> list[FlexGenCase]:
    """The FlexLLMGen rows of a ``flexgen_throughput.csv`` (other runtimes' rows are skipped:
    llmsim does not model their schedules)."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror})") from None
    flag = {"true": True, "false": False}
    cases = []
    for r in rows:
        if not r.get("system", "").startswith("flexllmgen"):
            continue
        try:
            policy = OffloadPolicy.from_percent(
                int(r["gpu_batch_size"]), int(r["num_gpu_batches"]),
                [float(v) for v in r["percent"].split()],
                compress_weight=flag[r["compress_weight"]],
                compress_cache=flag[r["compress_cache"]],
                cpu_cache_compute=flag[r["cpu_cache_compute"]],
                pin_weight=r["model"] not in _PAGEABLE_WEIGHTS_MODELS)
            cases.append(FlexGenCase(r["system"], r["model"], int(r["prompt_len"]),
                                     int(r["gen_len"]), float(r["throughput_tokens_per_s"]),
                                     policy, r["lowest_tier"]))
        except (KeyError, ValueError) as exc:
            raise DataError(f"{p}: bad FlexLLMGen row {r!r} ({exc})") from None
    if not cases:
        raise DataError(f"{p}: no FlexLLMGen rows")
    return cases


class CasePricer:
    """Prices the cases under any host efficiencies: one :class:`OffloadRun` per case (GPU times
    memoised), re-priced on a system that differs only in ``host_eff``."""

    def __init__(self, cases: Sequence[FlexGenCase], profile: Profile | None = None,
                 hardware: str = FLEXGEN_GPU, host: str = FLEXGEN_HOST):
        self.cases = list(cases)
        self.profile = profile if profile is not None else Profile.load()
        self._base = build_system(hardware, host, host_efficiency=ResolvedHost.neutral())
        self._workloads: dict[tuple[str, int, int], OffloadRun] = {}

    def workload(self, case: FlexGenCase, host_eff: ResolvedHost) -> OffloadRun:
        key = (case.model, case.prompt_len, case.gen_len)
        wl = self._workloads.get(key)
        if wl is None:
            from llmsim.catalog import get_model

            wl = OffloadRun(get_model(case.model), self._base, case.prompt_len, case.gen_len,
                          profile=self.profile)
            self._workloads[key] = wl
        return wl.with_system(dataclasses.replace(self._base, host_eff=host_eff))

    def throughput(self, host_eff: ResolvedHost, cases: Iterable[FlexGenCase] | None = None
                   ) -> np.ndarray:
        """Predicted tokens/s of ``cases`` (default: all) at their published policies."""
        chosen = self.cases if cases is None else list(cases)
        return np.array([evaluate_run(self.workload(c, host_eff), c.policy)
                         .throughput_tokens_per_s for c in chosen])


def host_efficiency(values: dict[str, float]) -> ResolvedHost:
    """A host efficiency set: ``values`` over the datasheet (neutral) for the rest."""
    return ResolvedHost((FLEXGEN_HOST,), **values)


def fit_host(pricer: CasePricer, cases: Sequence[FlexGenCase],
             params: Sequence[str] = FITTED_PARAMS) -> dict[str, float]:
    """Least-squares fit of ``params`` on log throughput of ``cases`` (module docstring);
    returns the rounded values."""
    unknown = [p for p in params if p not in NEUTRAL_HOST or p == "cpu_launch_s"]
    if unknown:
        raise DataError(f"cannot fit host parameter(s) {unknown}; choose from "
                        f"{[k for k in NEUTRAL_HOST if k.endswith('_eff')]}")
    measured = np.log([c.measured_tokens_per_s for c in cases])

    def residuals(x: np.ndarray) -> np.ndarray:
        eff = host_efficiency(dict(zip(params, np.exp(x), strict=True)))
        return np.log(pricer.throughput(eff, cases)) - measured

    lower = np.full(len(params), math.log(_MIN_EFF))
    # start just inside the datasheet bound (the trust-region solver stalls on the bound)
    res = least_squares(residuals, np.full(len(params), _START),
                        bounds=(lower, np.zeros(len(params))), method="trf", diff_step=1e-3)
    # a parameter that binds at no point of ``cases`` has a zero Jacobian column: no data,
    # so it keeps its datasheet value
    identified = np.abs(res.jac).sum(axis=0) > 0
    values = {p: (round_sig(float(v)) if ok else 1.0)
              for p, v, ok in zip(params, np.exp(res.x), identified, strict=True)}
    log.info("host fit on %d points: %s (cost %.3g)", len(cases), values, res.cost)
    return values


@dataclass(frozen=True)
class HostFitReport:
    """Fitted values, in-sample and leave-one-out predictions of every case."""

    params: tuple[str, ...]
    values: dict[str, float]
    cases: tuple[FlexGenCase, ...]
    datasheet_tokens_per_s: tuple[float, ...]
    in_sample_tokens_per_s: tuple[float, ...]
    loo_tokens_per_s: tuple[float, ...]
    loo_values: tuple[dict[str, float], ...]

    @staticmethod
    def _err(pred: Sequence[float], cases: Sequence[FlexGenCase]) -> list[float]:
        return [100.0 * (p / c.measured_tokens_per_s - 1.0) for p, c in zip(pred, cases,
                                                                              strict=True)]

    def errors_pct(self, which: str) -> list[float]:
        """Signed % errors per case: ``datasheet``, ``in_sample`` or ``loo``."""
        pred = {"datasheet": self.datasheet_tokens_per_s, "in_sample": self.in_sample_tokens_per_s,
                "loo": self.loo_tokens_per_s}[which]
        return self._err(pred, self.cases)

    def mean_abs_pct(self, which: str) -> float:
        errs = self.errors_pct(which)
        return sum(abs(e) for e in errs) / len(errs)

    def provenance(self) -> dict[str, Any]:
        """The ``fit:`` block of the host entry."""
        def per_case(which: str) -> dict[str, float]:
            return {c.name: round(e, 1) + 0.0 for c, e in zip(self.cases, self.errors_pct(which),
                                                              strict=True)}

        return {
            "what": ("efficiencies of the FlexLLMGen runtime on this machine (T4 + this host), "
                     "fitted on the same published table benchmarks/offload_accuracy.py compares "
                     "with; leave-one-out is the honest error"),
            "sources": [SOURCE],
            "points": [c.name for c in self.cases],
            "n": len(self.cases),
            "params": list(self.params),
            "method": ("scipy least_squares on log throughput at the published policies, "
                       "x = log(eff) in [log 0.01, 0] from log 0.999; a parameter binding at no "
                       "point of a fold keeps its datasheet value 1"),
            "in_sample_error_pct": per_case("in_sample"),
            "loo_error_pct": per_case("loo"),
            "mean_abs_in_sample_pct": round(self.mean_abs_pct("in_sample"), 1),
            "mean_abs_loo_pct": round(self.mean_abs_pct("loo"), 1),
            "mean_abs_datasheet_pct": round(self.mean_abs_pct("datasheet"), 1),
            "in_sample": True,
        }


def fit_and_validate(cases: Sequence[FlexGenCase], profile: Profile | None = None,
                     params: Sequence[str] = FITTED_PARAMS) -> HostFitReport:
    """Fit on all cases, then leave each one out in turn (fit on the rest, predict it)."""
    pricer = CasePricer(cases, profile)
    neutral = host_efficiency({})
    values = fit_host(pricer, cases, params)
    loo_pred, loo_vals = [], []
    for i, held in enumerate(cases):
        rest = [c for j, c in enumerate(cases) if j != i]
        fold = fit_host(pricer, rest, params)
        loo_vals.append(fold)
        loo_pred.append(float(pricer.throughput(host_efficiency(fold), [held])[0]))
    return HostFitReport(
        params=tuple(params), values=values, cases=tuple(cases),
        datasheet_tokens_per_s=tuple(float(v) for v in pricer.throughput(neutral)),
        in_sample_tokens_per_s=tuple(float(v) for v in
                                     pricer.throughput(host_efficiency(values))),
        loo_tokens_per_s=tuple(loo_pred), loo_values=tuple(loo_vals))


# ---------------------------------------------------------------------------- profile file
HOST_NOTE = (" Host entry gcp-t4-flexgen (host:): efficiencies of the FlexLLMGen runtime on that "
             "machine, fitted on its published throughput (scripts/fit_host_profile.py; "
             "leave-one-out error in its fit:); every other host resolves to its datasheet "
             "rates.")
HOST_GENERATED_BY = "scripts/fit_host_profile.py (llmsim.placement.host_fit.fit_and_validate)"


def host_entry(report: HostFitReport) -> ProfileEntry:
    """The profile entry of the fitted host: its ``host:`` values and the fit's provenance."""
    return ProfileEntry(host=HostEfficiency(**report.values), fit={"host": report.provenance()})


def with_host_entry(profile: ProfileFile, report: HostFitReport) -> ProfileFile:
    """``profile`` with the fitted host entry (replacing any previous one, placed last) and its
    note, generator and source recorded once (idempotent: re-running gives the same file)."""
    entries = {k: v for k, v in profile.entries.items() if k != FLEXGEN_HOST}
    entries[FLEXGEN_HOST] = host_entry(report)
    description = profile.description.split(HOST_NOTE)[0] + HOST_NOTE
    generated_by = profile.generated_by.split("; " + HOST_GENERATED_BY)[0]
    generated_by += "; " + HOST_GENERATED_BY
    sources = [s for s in profile.sources if s != SOURCE] + [SOURCE]
    return profile.model_copy(update={"entries": entries, "description": description,
                                      "generated_by": generated_by, "sources": sources})


def fit_profile_host(profile: ProfileFile, golden: str | Path
                     ) -> tuple[ProfileFile, HostFitReport]:
    """Fit the host entry on the FlexLLMGen table at ``golden``, pricing the GPU side with
    ``profile``'s kernel entries; returns ``profile`` with the entry merged, and the report.
    (``scripts/fit_profile.py`` and ``scripts/fit_host_profile.py`` both call this.)"""
    cases = load_flexgen_cases(golden)
    gpu_only = profile.model_copy(update={"entries": {
        k: v for k, v in profile.entries.items() if k != FLEXGEN_HOST}})
    report = fit_and_validate(cases, Profile(gpu_only, "fit"))
    return with_host_entry(profile, report), report


def report_lines(report: HostFitReport) -> list[str]:
    """The fit as text lines (fitted values; per point: published, and the % errors with the
    datasheet host, in-sample and leave-one-out)."""
    lines = [f"host {FLEXGEN_HOST}: " + ", ".join(f"{k} {v:g}" for k, v in report.values.items()),
             f"{'point':<34} {'published':>9} {'datasheet':>10} {'in-sample':>10} {'LOO':>8}"
             "   (% error of tokens/s)"]
    for c, d, i, o in zip(report.cases, report.errors_pct("datasheet"),
                          report.errors_pct("in_sample"), report.errors_pct("loo"), strict=True):
        lines.append(f"{c.name:<34} {c.measured_tokens_per_s:>9.2f} {d:>+10.1f} {i:>+10.1f} "
                     f"{o:>+8.1f}")
    lines.append(f"{'mean |error|':<34} {'':>9} {report.mean_abs_pct('datasheet'):>10.1f} "
                 f"{report.mean_abs_pct('in_sample'):>10.1f} {report.mean_abs_pct('loo'):>8.1f}")
    return lines
