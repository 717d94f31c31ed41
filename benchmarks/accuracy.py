"""Accuracy of the cost model against measured data: median and p90 absolute % error.

    python benchmarks/accuracy.py            # full run over ../shared/data (a few minutes)
    python benchmarks/accuracy.py --smoke    # small evenly spaced subsample, < 2 min (CI)
    python benchmarks/accuracy.py --out accuracy.json
    python benchmarks/accuracy.py --no-estimators   # the profile tables only (seconds)

Per op family and hardware (and per data set, marked ``fit`` = in-sample for the shipped
profile or ``held-out`` = never fitted on), and end to end against Splitwise (Llama-2-70B
TTFT and TPOT on DGX-A100 / DGX-H100, always out-of-sample), for the calibrated default profile
and the uncalibrated datasheet roofline (``Profile.empty()``). The e2e block also shows the
calibrated profile plus a per-step framework overhead fitted on the documented split (batch 1,
prompt 512, output 128) and scored on the other rows.

Then the estimators (``llmsim.calibration.validation``): per op family, part and table the
median error of ``calibrated``, ``table`` and ``learned`` in sample and leave-one-GPU-out (the
estimator built without the part's data: the profile's median rule, the nearest-scaled
transfer rule, a learned model trained on the other parts; ``table`` without the part is the
calibrated transfer), and the coverage of the intervals at their nominal level on held-out
parts: kernels (pools built without the part) and Splitwise end to end (the part priced by the
transfer profile, its factors and engine term from the other part only).

Without ../shared/data (a fresh clone) it runs on the golden subsets in tests/golden.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from llmsim.calibration import accuracy as acc
from llmsim.calibration import e2e, reference, splitwise
from llmsim.calibration import residuals as rs
from llmsim.calibration import validation as va
from llmsim.calibration.sources import data_root, has_data_root
from llmsim.costmodel.profile import Profile
from llmsim.io import write_json

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
SMOKE_ROWS = 200
CAL, RAW, OVH = "calibrated", "uncalibrated", "calibrated+split_overhead"
FAMILY_LABEL = {"gemm": "gemm", "gemm_fp8": "gemm fp8", "moe": "moe", "moe_fp8": "moe fp8",
                "attention_prefill": "attention prefill",
                "attention_decode": "attention decode", "elementwise": "elementwise",
                "comm_intra": "collectives intra-node", "comm_inter": "collectives inter-node",
                "comm_custom": "custom all-reduce"}
FAMILY_ORDER = list(FAMILY_LABEL)


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def load(args) -> tuple[list[reference.DataSet], pd.DataFrame, str, Path | None]:
    if not args.golden and has_data_root(args.data):
        root = data_root(args.data)
        return reference.load_sets(root), splitwise.load(root), str(root), root
    sets = acc.sets_from_golden(GOLDEN / "calib_kernels.csv")
    return sets, pd.read_csv(GOLDEN / "calib_splitwise.csv"), "tests/golden (subsets)", None


# the estimator columns: (label, estimator, mode)
EST_COLUMNS = (("cal in", "calibrated", va.IN_SAMPLE), ("cal logo", "calibrated", va.TRANSFER),
               ("cal logo ns", "calibrated-nearest-scaled", va.TRANSFER),
               ("table in", "table", va.IN_SAMPLE), ("learned in", "learned", va.IN_SAMPLE),
               ("learned logo", "learned", va.TRANSFER))
LEVELS = (0.5, 0.8, 0.9)


def _med(r: va.Residuals | None) -> float:
    return float(np.median(r.ape())) if r is not None and r.n else math.nan


def estimator_residuals(sets, root, smoke: bool, base: Profile) -> list[va.Residuals]:
    vsets = va.validation_sets(sets, root, max_rows=SMOKE_ROWS if smoke else va.MAX_ROWS)
    res = va.analytic_residuals(vsets) + va.calibrated_residuals(vsets, base)
    res += [va.Residuals("calibrated-nearest-scaled", r.mode, r.hardware, r.family, r.set,
                         r.role, r.log_ratio)
            for r in va.calibrated_residuals(vsets, base, "nearest-scaled")
            if r.mode == va.TRANSFER]
    res += va.table_residuals(vsets, base)
    res += va.learned_residuals(vsets, base, quick=smoke,
                                max_rows_per_part=2000 if smoke else 15_000)
    return res


def logo_table(res: list[va.Residuals]) -> tuple[list[dict], list[dict]]:
    """Per (family, part, table) and per family (median over its cases) median abs % error."""
    by = {(r.estimator, r.mode, r.family, r.hardware, r.set): r for r in res}
    keys = sorted({(r.family, r.hardware, r.set, r.role) for r in res
                   if r.estimator == "calibrated"},
                  key=lambda k: (FAMILY_ORDER.index(k[0]), k[1], k[3] != "fit", k[2]))
    rows = []
    for fam, hw, name, role in keys:
        row = {"family": fam, "hardware": hw, "set": name, "role": role}
        for label, est, mode in EST_COLUMNS:
            row[label] = _med(by.get((est, mode, fam, hw, name)))
        rows.append(row)
    summary = []
    for role in ("fit", "other-stack"):
        for fam in [f for f in FAMILY_ORDER if any(r["family"] == f for r in rows)]:
            sub = [r for r in rows if r["family"] == fam and r["role"] == role]
            if not sub:
                continue
            row = {"family": fam, "role": role, "cases": len(sub)}
            for label, _, _ in EST_COLUMNS:
                vals = [r[label] for r in sub if not math.isnan(r[label])]
                row[label] = float(np.median(vals)) if vals else math.nan
            summary.append(row)
    return rows, summary


def coverage_tables(res, split_table, base, smoke: bool) -> dict[str, object]:
    kern = pd.concat([rs.kernel_coverage(res, "calibrated", lvl) for lvl in LEVELS]
                     + [rs.kernel_coverage(res, "learned", lvl) for lvl in LEVELS],
                     ignore_index=True)
    engine = {"calibrated": rs.engine_residuals(split_table, base)}
    e2e_rows = []
    for engine_term in (True, False):
        for r in rs.e2e_logo_coverage(split_table, base, res, engine, level=0.8,
                                      engine_term=engine_term, draws=100 if smoke else 200):
            e2e_rows.append({**r, "engine": engine_term})
    return {"kernels": kern, "e2e": e2e_rows}


def print_estimators(rows, summary, cov) -> None:
    labels = [c[0] for c in EST_COLUMNS]
    print()
    print("estimators per op family: median abs % error; in = in sample (table: a random 20% of "
          "each fit table interpolated from the rest), logo = the part left out of every fit "
          "(cal: the profile's median rule, ns: nearest-scaled rule; table without the part = "
          "cal logo)")
    head = f"{'family':<24} {'hardware':<14} {'data set':<34} {'role':<11}" + "".join(
        f" {x:>12}" for x in labels)
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{FAMILY_LABEL[r['family']]:<24} {r['hardware']:<14} {r['set'][:34]:<34} "
              f"{r['role']:<11}" + "".join(f" {_fmt(r[x]):>12}" for x in labels))
    print()
    print("per family, median over its part x table cases: fit = the tables the profile, the "
          "kernel table and the learned model hold; other-stack = the same kernels measured "
          "under another stack or cache format")
    head = f"{'family':<24} {'role':<11} {'cases':>5}" + "".join(f" {x:>12}" for x in labels)
    print(head)
    print("-" * len(head))
    for r in summary:
        print(f"{FAMILY_LABEL[r['family']]:<24} {r['role']:<11} {r['cases']:>5}" +
              "".join(f" {_fmt(r[x]):>12}" for x in labels))
    kern = cov["kernels"]
    print()
    print("interval coverage, kernels, leave-one-GPU-out (each case's pools built without its "
          "part): share of the held-out part's rows inside the interval")
    for est in ("calibrated", "learned"):
        sub = kern[kern["estimator"] == est]
        if len(sub) == 0:
            continue
        parts = []
        for lvl in LEVELS:
            s = sub[sub["level"] == lvl]["coverage"]
            within = int((abs(s - lvl) <= 0.1).sum())
            parts.append(f"nominal {lvl:.1f}: mean {s.mean():.3f}, median {s.median():.3f}, "
                         f"{within}/{len(s)} within 10 points")
        print(f"  {est:<11} " + "; ".join(parts))
    at = kern[(kern["level"] == 0.8) & (kern["estimator"] == "calibrated")]
    print("  calibrated at 0.8 per case: " + ", ".join(
        f"{r.family}/{r.hardware.split('-')[0]}/{r.set.split(' ')[0]} {r.coverage:.2f}"
        for r in at.itertuples()))
    print()
    print("interval coverage, Splitwise end to end, leave-one-GPU-out at nominal 0.8 (the part "
          "priced by the transfer profile; factors and engine term from the other part)")
    for r in cov["e2e"]:
        term = "kernels + engine term" if r["engine"] else "kernels only       "
        print(f"  {r['hardware']:<14} {term}  n {r['n']:>3}  TTFT {r['ttft']:.2f}  "
              f"TPOT {r['tpot']:.2f}  (median width TTFT {r['ttft_width_pct']:.0f}%, "
              f"TPOT {r['tpot_width_pct']:.0f}% of the point value)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help=f"at most {SMOKE_ROWS} rows per set")
    ap.add_argument("--out", help="write the numbers as JSON (atomically)")
    ap.add_argument("--data", default=None, help="measured data folder (default ../shared/data)")
    ap.add_argument("--golden", action="store_true", help="use tests/golden even if data exists")
    ap.add_argument("--profile", default=None, help="profile YAML (default: the shipped one)")
    ap.add_argument("--no-estimators", action="store_true",
                    help="skip the estimator / interval tables (the profile tables only)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sets, split_table, origin, root = load(args)
    if args.smoke:
        sets = [acc.thin(s, SMOKE_ROWS) for s in sets]
    profiles = {CAL: Profile.load(args.profile), RAW: Profile.empty()}

    kernel_rows = [acc.set_errors(s, profiles) for s in sets]
    kernel_rows.sort(key=lambda r: (FAMILY_ORDER.index(r.family), r.hardware, r.role != "fit",
                                    r.name))
    e2e_rows, overhead, preds = acc.e2e_errors(split_table, profiles, OVH)

    print(f"llmsim accuracy ({'smoke' if args.smoke else 'full'} run, data: {origin})")
    print("absolute % error |predicted / measured - 1|; fit = in-sample for the shipped profile, "
          "held-out = never fitted on")
    head = (f"{'family':<24} {'hardware':<14} {'data set':<34} {'role':<8} {'n':>6} "
            f"{'uncal med':>9} {'uncal p90':>9} {'cal med':>8} {'cal p90':>8}")
    print(head)
    print("-" * len(head))
    for r in kernel_rows:
        u, c = r.errors[RAW], r.errors[CAL]
        print(f"{FAMILY_LABEL[r.family]:<24} {r.hardware:<14} {r.name[:34]:<34} {r.role:<8} "
              f"{r.n:>6} {_fmt(u['median_ape_pct']):>9} {_fmt(u['p90_ape_pct']):>9} "
              f"{_fmt(c['median_ape_pct']):>8} {_fmt(c['p90_ape_pct']):>8}")
    print()
    print("end to end vs Splitwise (Llama-2-70B TP 2/4/8, BLOOM-176B TP 8; out-of-sample; rows "
          "llmsim says do not fit are excluded)")
    head2 = (f"{'metric':<6} {'model':<12} {'hardware':<14} {'n':>4} {'uncal med':>9} "
             f"{'uncal p90':>9} "
             f"{'cal med':>8} {'cal p90':>8} {'+ovh n':>6} {'+ovh med':>8} {'+ovh p90':>8}")
    print(head2)
    print("-" * len(head2))
    for r in e2e_rows:
        u, c, o = r.errors[RAW], r.errors[CAL], r.errors[OVH]
        print(f"{r.metric.upper():<6} {r.model:<12} {r.hardware:<14} {r.n:>4} "
              f"{_fmt(u['median_ape_pct']):>9} "
              f"{_fmt(u['p90_ape_pct']):>9} {_fmt(c['median_ape_pct']):>8} "
              f"{_fmt(c['p90_ape_pct']):>8} {o['n']:>6} {_fmt(o['median_ape_pct']):>8} "
              f"{_fmt(o['p90_ape_pct']):>8}")
    ovh = ", ".join(f"{hw} {v * 1e3:.1f} ms" for hw, v in sorted(overhead.items()))
    print(f"+ovh: per-step overhead fitted on the split (batch 1, prompt 512, output 128): {ovh};"
          " scored on the other rows only")
    centre = preds[e2e.split_mask(preds) & preds["fits"].to_numpy(bool)]
    gaps = [f"{r.model} {r.hardware} tp{r.tp} {(r.tpot_s - r.pred_tpot_s) * 1e3:.1f}"
            for r in centre.sort_values(["model", "hardware", "tp"]).itertuples()]
    print("measured - calibrated TPOT at the split rows, ms: " + ", ".join(gaps))
    est_out: dict[str, object] = {}
    if not args.no_estimators:
        res = estimator_residuals(sets, root, args.smoke, profiles[CAL])
        rows, summary = logo_table(res)
        cov = coverage_tables(res, split_table, profiles[CAL], args.smoke)
        print_estimators(rows, summary, cov)
        est_out = {"logo": rows, "logo_by_family": summary,
                   "coverage_kernels": cov["kernels"].to_dict(orient="records"),
                   "coverage_e2e": cov["e2e"]}
    elapsed = time.perf_counter() - t0
    print(f"done in {elapsed:.1f} s")
    if args.out:
        write_json(args.out, {
            "generated_by": "benchmarks/accuracy.py" + (" --smoke" if args.smoke else ""),
            "data": origin, "profile": profiles[CAL].origin,
            "kernels": [r.as_dict() for r in kernel_rows],
            "e2e": [r.as_dict() for r in e2e_rows],
            "e2e_split": {"rows": "batch 1, prompt 512, output 128",
                          "step_overhead_s": overhead},
            **est_out,
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
