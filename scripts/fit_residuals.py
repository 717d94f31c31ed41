"""Write the residual file behind llmsim's intervals (src/llmsim/data/estimators/residuals.json).

    python scripts/fit_residuals.py [--data ../shared/data] [--out PATH] [--quick]

From the measured data in ``../shared/data`` only (``llmsim.calibration.validation``): for each
estimator (analytic, calibrated, table, learned) its residuals ``log(measured / predicted)`` on
the validation tables, in sample and leave-one-GPU-out, and on Splitwise's end-to-end runs;
then the per-family pools of ``llmsim.calibration.residuals``. The learned estimator is
trained here with its default recipe (``learned.train``, at most 15,000 rows per part and
kind; the same recipe as scripts/train_learned.py). Deterministic (fixed seeds). A few minutes
on two cores; ``--quick`` trains small learned models (development only).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from llmsim.calibration import reference, splitwise
from llmsim.calibration import residuals as rs
from llmsim.calibration import validation as va
from llmsim.calibration.sources import AICONFIGURATOR, SPLITWISE, VIDUR, data_root
from llmsim.costmodel.estimators import learned as lm
from llmsim.costmodel.estimators.intervals import RESIDUALS_FILE
from llmsim.costmodel.profile import Profile

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "llmsim" / "data" / "estimators" / RESIDUALS_FILE


def training_rows(vsets: list[va.ValidationSet]) -> pd.DataFrame:
    """The learned estimator's default training rows: every part's fit tables."""
    return pd.concat([v.rows for v in vsets if v.role == "fit" and v.family in va.FAMILY_KIND],
                     ignore_index=True)


def all_residuals(root: Path, quick: bool = False, log=print) -> tuple[list, dict, list]:
    """Validation residuals of every estimator, the Splitwise engine residuals, the sets."""
    t0 = time.perf_counter()
    vsets = va.validation_sets(reference.load_sets(root), root)
    base = Profile.load()
    res = va.analytic_residuals(vsets) + va.calibrated_residuals(vsets, base)
    log(f"analytic + calibrated residuals ({time.perf_counter() - t0:.0f} s)")
    res += va.table_residuals(vsets, base)
    log(f"table residuals ({time.perf_counter() - t0:.0f} s)")
    res += va.learned_residuals(vsets, base, quick=quick)
    log(f"learned residuals ({time.perf_counter() - t0:.0f} s)")
    table = splitwise.load(root)
    engine = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "learned.joblib"
        lm.train(training_rows(vsets), model, quick=quick, origin="validation fit tables")
        for est, kw in (("calibrated", {}), ("table", {}),
                        ("learned", {"estimator_model": str(model)})):
            engine[est] = rs.engine_residuals(table, base, est, **kw)
        # the datasheet roofline's kernel pools carry its bias (mu); its end-to-end residuals
        # would count that bias twice, so its engine term is the calibrated one (the framework
        # time beyond fitted kernels)
        engine["analytic"] = engine["calibrated"]
    log(f"end-to-end residuals ({time.perf_counter() - t0:.0f} s)")
    return res, engine, vsets


def sources() -> list[str]:
    return [AICONFIGURATOR.cite("aic-core/src/aiconfigurator_core/systems/data/"
                                "{a100_sxm,h100_sxm}/{gemm,moe,attention}/{vllm,trtllm}/*, "
                                "comm/nccl/*"),
            VIDUR.cite("data/profiling/compute/*/*/mlp.csv, data/profiling/network/*_dgx/*"),
            SPLITWISE.cite("data/perf_model.csv")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="measured data folder (default ../shared/data)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--quick", action="store_true", help="small learned models (development)")
    args = ap.parse_args(argv)
    res, engine, _ = all_residuals(data_root(args.data), args.quick)
    data = rs.residual_file(res, engine, sources=sources(),
                            generated_by="scripts/fit_residuals.py" +
                            (" --quick" if args.quick else ""))
    out = Path(args.out)
    out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"{out}: {out.stat().st_size / 1e3:.0f} kB")
    for est, block in data["estimators"].items():
        fams = ", ".join(f"{f} {v['sigma']:.3f}" for f, v in block["transfer"].items())
        print(f"{est}: transfer sigma_b {fams}; own {sorted(block['own'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
