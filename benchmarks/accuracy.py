"""Accuracy of the cost model against measured data: median and p90 absolute % error.

    python benchmarks/accuracy.py            # full run over ../shared/data (a minute or so)
    python benchmarks/accuracy.py --smoke    # small evenly spaced subsample, < 60 s (CI)
    python benchmarks/accuracy.py --out accuracy.json

Per op family and hardware (and per data set, marked ``fit`` = in-sample for the shipped
profile or ``held-out`` = never fitted on), and end to end against Splitwise (Llama-2-70B
TTFT and TPOT on DGX-A100 / DGX-H100, always out-of-sample), for the calibrated default profile
and the uncalibrated datasheet roofline (``Profile.empty()``). The e2e block also shows the
calibrated profile plus a per-step framework overhead fitted on the documented split (batch 1,
prompt 512, output 128) and scored on the other rows.

Without ../shared/data (a fresh clone) it runs on the golden subsets in tests/golden.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd

from llmsim.calibration import accuracy as acc
from llmsim.calibration import e2e, reference, splitwise
from llmsim.calibration.sources import data_root, has_data_root
from llmsim.costmodel.profile import Profile
from llmsim.io import write_json

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
SMOKE_ROWS = 200
CAL, RAW, OVH = "calibrated", "uncalibrated", "calibrated+split_overhead"
FAMILY_LABEL = {"gemm": "gemm", "moe": "moe", "attention_prefill": "attention prefill",
                "attention_decode": "attention decode", "elementwise": "elementwise",
                "comm_intra": "collectives intra-node", "comm_inter": "collectives inter-node"}
FAMILY_ORDER = list(FAMILY_LABEL)


def _fmt(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def load(args) -> tuple[list[reference.DataSet], pd.DataFrame, str]:
    if not args.golden and has_data_root(args.data):
        root = data_root(args.data)
        return reference.load_sets(root), splitwise.load(root), str(root)
    sets = acc.sets_from_golden(GOLDEN / "calib_kernels.csv")
    return sets, pd.read_csv(GOLDEN / "calib_splitwise.csv"), "tests/golden (subsets)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help=f"at most {SMOKE_ROWS} rows per set")
    ap.add_argument("--out", help="write the numbers as JSON (atomically)")
    ap.add_argument("--data", default=None, help="measured data folder (default ../shared/data)")
    ap.add_argument("--golden", action="store_true", help="use tests/golden even if data exists")
    ap.add_argument("--profile", default=None, help="profile YAML (default: the shipped one)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sets, split_table, origin = load(args)
    if args.smoke:
        sets = [acc.thin(s, SMOKE_ROWS) for s in sets]
    profiles = {CAL: Profile.load(args.profile), RAW: Profile.empty()}

    kernel_rows = [acc.set_errors(s, profiles) for s in sets]
    kernel_rows.sort(key=lambda r: (FAMILY_ORDER.index(r.family), r.hardware, r.role != "fit",
                                    r.name))
    e2e_rows, overhead, preds = acc.e2e_errors(split_table, profiles, OVH)
    elapsed = time.perf_counter() - t0

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
    print(f"done in {elapsed:.1f} s")
    if args.out:
        write_json(args.out, {
            "generated_by": "benchmarks/accuracy.py" + (" --smoke" if args.smoke else ""),
            "data": origin, "profile": profiles[CAL].origin,
            "kernels": [r.as_dict() for r in kernel_rows],
            "e2e": [r.as_dict() for r in e2e_rows],
            "e2e_split": {"rows": "batch 1, prompt 512, output 128",
                          "step_overhead_s": overhead},
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
