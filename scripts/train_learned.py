"""Train the learned estimator's model file from measured kernels (its default recipe).

    python scripts/train_learned.py --out model.joblib [--data ../shared/data] [--from SPEC]...

Default training rows: every part's fit tables of ``llmsim.calibration.validation`` (the
AIConfigurator vLLM tables of A100-SXM and H100-SXM, Vidur's A40 GEMMs and the residual
``add`` kernels of A100, H100, A40), the rows ``scripts/fit_residuals.py`` validates the recipe
on; ``--from`` adds (or, with ``--only``, replaces them by) any source spec of
``llmsim.calibration.importers.load_source`` (``aiconfigurator:DIR?framework=trtllm``, an
op-timing file, ...). Use it with ``Deployment.resolve(..., estimator="learned",
estimator_model="model.joblib")``. Needs scikit-learn (``pip install 'llmsim[learned]'``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from llmsim.calibration import reference
from llmsim.calibration import validation as va
from llmsim.calibration.importers import load_source
from llmsim.calibration.sources import data_root
from llmsim.costmodel.estimators import learned


def default_rows(root: Path) -> pd.DataFrame:
    vsets = va.validation_sets(reference.load_sets(root), None)
    return pd.concat([v.rows for v in vsets if v.role == "fit" and v.family in va.FAMILY_KIND],
                     ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="model file to write (joblib)")
    ap.add_argument("--data", default=None, help="measured data folder (default ../shared/data)")
    ap.add_argument("--from", dest="sources", action="append", default=[],
                    help="more measurements: a source spec (repeatable)")
    ap.add_argument("--only", action="store_true", help="train on the --from rows only")
    ap.add_argument("--max-rows-per-part", type=int, default=15_000)
    ap.add_argument("--quick", action="store_true", help="small models (tests, smoke runs)")
    args = ap.parse_args(argv)
    frames = [] if args.only else [default_rows(data_root(args.data))]
    frames += [load_source(s) for s in args.sources]
    if not frames:
        ap.error("--only needs at least one --from")
    model = learned.train(pd.concat(frames, ignore_index=True), args.out,
                          max_rows_per_part=args.max_rows_per_part, quick=args.quick,
                          origin=", ".join(args.sources) or "default recipe")
    for kind, info in model.info["kinds"].items():
        print(f"{kind:<18} {info['n']:>7} rows  parts {', '.join(info['parts'])}")
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
