"""Fit the default calibration profile from ../shared/data and write it into the package.

    python scripts/fit_profile.py [--data ../shared/data] [--out PROFILE.yaml]

Reruns the whole fit (a minute or less on a laptop) and writes the YAML atomically. The shipped
``src/llmsim/data/profiles/default.yaml`` must be exactly what this script writes; the in-sample
error of every fit is printed and recorded in each entry's ``fit:`` block.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from llmsim.calibration import splitwise
from llmsim.calibration.accuracy import golden_frame
from llmsim.calibration.default_profile import fit_default, to_yaml
from llmsim.calibration.sources import data_root
from llmsim.errors import LLMSimError
from llmsim.io import write_text

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "llmsim" / "data" / "profiles" / "default.yaml"
# rows per data set copied into tests/golden (evenly spaced over measured time)
GOLDEN_FIT_ROWS, GOLDEN_HELD_OUT_ROWS = 60, 30


def print_ablation(sets) -> None:
    """In-sample error of each kernel family with and without the memory ramp ``mn_half``."""
    from llmsim.calibration import build, fit
    from llmsim.calibration.reference import combined, fit_sets

    print("\nablation: in-sample median / p90 % error without and with mn_half")
    for hw in build.FITTED_HARDWARE:
        for family in ("gemm", "moe", "attention_prefill", "attention_decode"):
            data = combined(fit_sets(sets, hw, family))
            if len(data) == 0:
                continue
            off = fit.fit_kernel_family(data, hw, family, free=fit.KERNEL_PARAMS[:6])
            on = fit.fit_kernel_family(data, hw, family, free=fit.KERNEL_PARAMS)
            used = "mn_half" in fit.FREE[family]
            print(f"{hw:<15} {family:<18} without {off.median_ape_pct:5.1f} / "
                  f"{off.p90_ape_pct:5.1f}   with {on.median_ape_pct:5.1f} / "
                  f"{on.p90_ape_pct:5.1f}   shipped: {'with' if used else 'without'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="measured data folder (default ../shared/data)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="profile YAML to write")
    ap.add_argument("--golden-out", default=None,
                    help="also write the golden subsets (calib_kernels.csv, "
                         "calib_splitwise.csv) into this folder")
    ap.add_argument("--ablation", action="store_true",
                    help="also print each kernel fit's in-sample error without the memory ramp "
                         "(mn_half) and write nothing else differently")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        root = data_root(args.data)
        t0 = time.perf_counter()
        profile, results, sets = fit_default(root)
    except LLMSimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'hardware':<15} {'family':<18} {'n':>7} {'median %':>9} {'p90 %':>7}  (in-sample)")
    for r in results:
        print(f"{r.hardware:<15} {r.family:<18} {r.n:>7} {r.median_ape_pct:>9.1f} "
              f"{r.p90_ape_pct:>7.1f}")
    if args.ablation:
        print_ablation(sets)
    write_text(args.out, to_yaml(profile))
    if args.golden_out:
        gold = Path(args.golden_out)
        kernels = golden_frame(sets, GOLDEN_FIT_ROWS, GOLDEN_HELD_OUT_ROWS)
        write_text(gold / "calib_kernels.csv", kernels.to_csv(index=False, float_format="%.6g"))
        write_text(gold / "calib_splitwise.csv",
                   splitwise.load(root).to_csv(index=False, float_format="%.6g"))
        print(f"wrote {gold}/calib_kernels.csv ({len(kernels)} rows), calib_splitwise.csv")
    print(f"wrote {args.out} ({len(profile.entries)} entries) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
