"""Predicted vs published FlexLLMGen throughput: OPT-6.7B / 30B / 175B on one T4 with CPU/disk
offload (prompt 512, 32 generated tokens).

Published numbers: ``tests/golden/flexgen_throughput.csv`` (copied from
FMInference/FlexLLMGen@004ffef8, Apache-2.0; see tests/golden/FLEXGEN_ATTRIBUTION.md), the six
FlexLLMGen rows (other runtimes' schedules are not modelled). Machine: ``--hardware t4 --host
gcp-t4-flexgen`` and the shipped calibration profile for the GPU (kernels, incl. the T4's
power-capped compute). Three host calibrations:

- ``datasheet``: the host's datasheet rates (neutral host efficiencies);
- ``in-sample``: the shipped profile's ``gcp-t4-flexgen`` host entry -- fitted on these same six
  numbers (``scripts/fit_host_profile.py``), so this column is NOT a validation;
- ``LOO``: leave-one-out -- for each row, the host efficiencies re-fitted on the other five
  (``llmsim.placement.host_fit.fit_and_validate``) predict it. The honest error.

Two predictions for each: (a) ``evaluate`` at the published policy (GPU batch size, number of GPU
batches, placement percentages, compression, CPU attention, pinned weights from the repo's
``benchmark/flexllmgen/bench_suite.py``); (b) ``solve``: llmsim's own best policy for the same
machine, model, compression and weight-pinning flags.

    .venv/bin/python benchmarks/offload_accuracy.py [--smoke] [--out F.json]

``--smoke`` uses a smaller solver grid (CI; under 30 s).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

from llmsim.costmodel.profile import Profile, ResolvedHost
from llmsim.errors import LLMSimError
from llmsim.io import write_json
from llmsim.placement import build_system, evaluate, solve
from llmsim.placement.host_fit import (
    FLEXGEN_GPU,
    FLEXGEN_HOST,
    FlexGenCase,
    fit_and_validate,
    host_efficiency,
    load_flexgen_cases,
)
from llmsim.report.warnings import CollapsedWarnings

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "flexgen_throughput.csv"
SHARED = REPO.parent / "shared" / "data" / "offload" / "flexllmgen"
MACHINE = {"hardware": FLEXGEN_GPU, "host": FLEXGEN_HOST}
SMOKE_GRID = {"gpu_batch_sizes": (1, 2, 4, 8, 16, 32, 48, 64, 96, 128),
              "num_gpu_batches": (1, 2, 3, 4, 8, 16)}
CALIBRATIONS = ("datasheet", "in_sample", "loo")
HEAD = {"datasheet": "datasheet", "in_sample": "in-sample", "loo": "LOO"}


def load_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def check_against_shared(rows: list[dict[str, str]]) -> str:
    """Cross-check the copied numbers with ../shared when it is there."""
    readme = SHARED / "README_performance_results.md"
    if not readme.is_file():
        return "../shared not found: using the committed copy only"
    text = readme.read_text(encoding="utf-8")
    names = {"hf-accelerate": "Hugging Face Accelerate",
             "deepspeed-zero-inference": "DeepSpeed ZeRO-Inference", "petals": "Petals",
             "flexllmgen": "FlexLLMGen", "flexllmgen-compression": "FlexLLMGen with Compression"}
    order = ("opt-6.7b", "opt-30b", "opt-175b")
    published: dict[tuple[str, str], float] = {}
    for key, label in names.items():
        match = re.search(r"^\|\s*" + re.escape(label) + r"\s*\|(.+)$", text, re.M)
        if not match:
            raise SystemExit(f"row {label!r} not found in {readme}")
        cells = [c for c in match.group(1).split("|") if c.strip()]
        for model, cell in zip(order, cells, strict=True):
            published[(key, model)] = float(re.sub(r"[*]", "", cell).split()[0])
    for r in rows:
        want = published[(r["system"], r["model"])]
        if not math.isclose(float(r["throughput_tokens_per_s"]), want):
            raise SystemExit(f"golden copy disagrees with ../shared for {r['system']} "
                             f"{r['model']}: {r['throughput_tokens_per_s']} vs {want}")
    return f"golden copy matches {readme.relative_to(REPO.parent)} ({len(rows)} numbers)"


def _err(pred: float | None, meas: float) -> float | None:
    return None if pred is None else 100.0 * (pred - meas) / meas


def _solve(case: FlexGenCase, host_eff: ResolvedHost, grid: dict[str, Any]) -> dict[str, Any]:
    system = build_system(**MACHINE, host_efficiency=host_eff)
    try:
        so = solve(case.model, case.prompt_len, case.gen_len, system=system,
                   compress_weight=case.policy.compress_weight,
                   compress_cache=case.policy.compress_cache,
                   pin_weight=case.policy.pin_weight, **grid)
    except LLMSimError as exc:
        return {"tokens_per_s": None, "block": None, "policy": f"error: {exc}"}
    return {"tokens_per_s": so.throughput_tokens_per_s, "block": so.policy.block_size,
            "policy": so.policy.describe(), "bound": f"{so.prefill.bound}/{so.decode.bound}"}


def run(smoke: bool) -> dict[str, Any]:
    cases = load_flexgen_cases(GOLDEN)
    profile = Profile.load()
    shipped = profile.for_host(FLEXGEN_HOST)
    report = fit_and_validate(cases, profile)
    refit_matches = report.values == {k: getattr(shipped, k) for k in report.params}
    grid = SMOKE_GRID if smoke else {}
    out = []
    for i, case in enumerate(cases):
        meas = case.measured_tokens_per_s
        ev = evaluate(case.model, case.policy, case.prompt_len, case.gen_len, **MACHINE)
        preds = {"datasheet": report.datasheet_tokens_per_s[i],
                 "in_sample": ev.throughput_tokens_per_s, "loo": report.loo_tokens_per_s[i]}
        effs = {"datasheet": host_efficiency({}), "in_sample": shipped,
                "loo": host_efficiency(report.loo_values[i])}
        rec: dict[str, Any] = {
            "system": case.system, "model": case.model, "published_tokens_per_s": meas,
            "published_block": case.policy.block_size, "tier": case.lowest_tier,
            "published_policy": case.policy.describe(), "eval_fits": ev.feasible,
            "eval_reason": ev.reason, "eval_bound": f"{ev.prefill.bound}/{ev.decode.bound}",
            "eval_prefill_s": ev.prefill_time_s, "eval_decode_step_s": ev.decode_step_time_s,
            "loo_host_efficiency": report.loo_values[i],
        }
        for cal in CALIBRATIONS:
            rec[f"eval_{cal}_tokens_per_s"] = preds[cal]
            rec[f"eval_{cal}_error_pct"] = _err(preds[cal], meas)
            so = _solve(case, effs[cal], grid)
            rec[f"solve_{cal}_tokens_per_s"] = so["tokens_per_s"]
            rec[f"solve_{cal}_error_pct"] = _err(so["tokens_per_s"], meas)
            rec[f"solve_{cal}_block"] = so["block"]
            rec[f"solve_{cal}_policy"] = so["policy"]
        out.append(rec)

    def mape(key: str) -> float | None:
        vals = [abs(c[key]) for c in out if c.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    return {
        "what": "llmsim offload vs published FlexLLMGen throughput (OPT on one T4, s=512, n=32)",
        "machine": MACHINE, "smoke": smoke, "golden": str(GOLDEN.relative_to(REPO)),
        "host_efficiency_shipped": {k: getattr(shipped, k) for k in report.params},
        "host_efficiency_refit": report.values, "shipped_matches_refit": refit_matches,
        "cases": out,
        "mean_abs_error_pct": {f"{kind}_{cal}": mape(f"{kind}_{cal}_error_pct")
                               for kind in ("eval", "solve") for cal in CALIBRATIONS},
    }


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render(report: dict[str, Any]) -> str:
    cases = report["cases"]
    lines = ["(a) at the published policy", ""]
    head = ["system", "model", "tier", "published"]
    for cal in CALIBRATIONS:
        head += [HEAD[cal], "err"]
    head += ["fits", "bound (in-sample)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cases:
        cells = [c["system"], c["model"], f"{c['published_block']} on {c['tier']}",
                 f"{c['published_tokens_per_s']:.2f}"]
        for cal in CALIBRATIONS:
            cells += [_cell(c[f"eval_{cal}_tokens_per_s"], ".2f"),
                      _cell(c[f"eval_{cal}_error_pct"], "+.0f") + "%"]
        cells += ["yes" if c["eval_fits"] else "no", c["eval_bound"]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "(b) llmsim's best policy (solve), same compression and weight-pinning flags", ""]
    head = ["system", "model", "published"]
    for cal in CALIBRATIONS:
        head += [HEAD[cal], "err", "block"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cases:
        cells = [c["system"], c["model"], f"{c['published_tokens_per_s']:.2f}"]
        for cal in CALIBRATIONS:
            err = c[f"solve_{cal}_error_pct"]
            cells += [_cell(c[f"solve_{cal}_tokens_per_s"], ".2f"),
                      "-" if err is None else f"{err:+.0f}%", _cell(c[f"solve_{cal}_block"], "d")]
        lines.append("| " + " | ".join(cells) + " |")
    m = report["mean_abs_error_pct"]
    lines += [""]
    for kind, label in (("eval", "(a) evaluate"), ("solve", "(b) solve")):
        parts = [f"{HEAD[cal]} {_cell(m[f'{kind}_{cal}'], '.0f')}%" for cal in CALIBRATIONS]
        lines.append(f"mean |error| {label}: " + ", ".join(parts))
    eff = ", ".join(f"{k} {v:g}" for k, v in report["host_efficiency_shipped"].items())
    same = "equal to" if report["shipped_matches_refit"] else "DIFFERENT from"
    lines.append(f"shipped host efficiencies ({FLEXGEN_HOST}): {eff} ({same} a re-fit now)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="smaller solver grid (CI, < 30 s)")
    ap.add_argument("--out", help="write the report as JSON")
    args = ap.parse_args(argv)
    CollapsedWarnings.install()  # the solver's repeated warnings: once each, with a count
    t0 = time.perf_counter()
    note = check_against_shared(load_rows(GOLDEN))
    report = run(args.smoke)
    report["elapsed_s"] = time.perf_counter() - t0
    report["shared_check"] = note
    print(render(report))
    print(f"{note}; {report['elapsed_s']:.1f} s")
    if args.out:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
