"""What one more decoding request adds to a decode step: measured against simulated, per engine
release and model (issue 10).

    python benchmarks/decode_slope.py [--data CSV] [--json FILE]

For every aggregated deployment of ``../shared/data/e2e/aiconfigurator_silicon/
silicon_h100_sxm.csv`` (engine, release, model, precision, parallel plan, ISL / OSL) measured at
three concurrencies or more, a least-squares line ``TPOT = a + b * n`` over its rows, where
``n`` is the mean number of requests decoding (Little's law,
:func:`llmsim.serving.reproduce.decode_occupancy`): ``b`` is the time one more decoding request
adds to a step. Rows that contradict their own deployment
(:func:`llmsim.serving.reproduce.inconsistent_rows`) are left out. Printed per engine, release
and model: the groups, the median measured ``b`` (us), the smallest ``TPOT / n`` over the rows
(no step took less per decoding request: a host-side floor shows as the same minimum across
plans) and, with ``--json`` (the per-row records ``benchmarks/serving_accuracy.py --json``
writes), the same line through the simulated TPOTs at the measured ``n`` and the ratio of the
two medians (above 1: the real engine's per-request cost grows faster than llmsim's kernels
and profile).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "e2e" / "aiconfigurator_silicon" / "silicon_h100_sxm.csv"


def decode_slopes(frame, simulated_tpot_ms=None):
    """One row per deployment with three concurrencies or more: ``groups`` keys,
    ``b_meas_us``, ``floor_us`` (min TPOT / n) and, given ``simulated_tpot_ms`` (row id ->
    simulated TPOT), ``b_sim_us``."""
    import numpy as np
    import pandas as pd

    from llmsim.serving.reproduce import DEPLOYMENT_KEYS, decode_occupancy

    frame = frame.assign(n_decoding=[decode_occupancy(r) for r in frame.to_dict("records")])
    keys = [*DEPLOYMENT_KEYS, "backend_version"]
    out = []
    for key, g in frame.groupby(keys, dropna=False):
        if g.batch_size.nunique() < 3:
            continue
        rec = dict(zip(keys, key, strict=True))
        rec["rows"] = len(g)
        rec["b_meas_us"] = np.polyfit(g.n_decoding, g.silicon_tpot_ms, 1)[0] * 1e3
        rec["floor_us"] = float((g.silicon_tpot_ms / g.n_decoding).min()) * 1e3
        if simulated_tpot_ms is not None:
            sim = g.id.map(simulated_tpot_ms)
            ok = sim.notna()
            rec["b_sim_us"] = (np.polyfit(g.n_decoding[ok], sim[ok], 1)[0] * 1e3
                               if ok.sum() >= 3 else float("nan"))
        out.append(rec)
    return pd.DataFrame(out)


def _simulated(path: str) -> dict[str, float]:
    """Row id -> simulated TPOT (ms) from serving_accuracy.py's ``--json`` records."""
    try:
        recs = json.loads(Path(path).read_text())
        return {r["id"]: r["meas_tpot"] * (1 + r["tpot_err"]) * 1e3 for r in recs
                if r.get("tpot_err") is not None}
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"{path} is not the --json output of serving_accuracy.py "
                         f"({type(e).__name__}: {e})") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--json", help="per-row records of serving_accuracy.py --json")
    args = ap.parse_args(argv)
    for p in (args.data, args.json):
        if p and not Path(p).is_file():
            print(f"error: file not found: {p}", file=sys.stderr)
            return 2
    try:
        simulated = _simulated(args.json) if args.json else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import pandas as pd

    from llmsim.serving.reproduce import inconsistent_rows

    frame = pd.read_csv(args.data)
    frame = frame[(frame["mode"] == "agg") & (frame.attention_dp_size.fillna(1) <= 1)]
    aside = inconsistent_rows(frame.to_dict("records"))
    frame = frame[~frame.id.isin(aside)]
    s = decode_slopes(frame, simulated)
    s["model"] = s.model_path.str.split("/").str[-1]
    s["release"] = s.backend_version.fillna("-")
    agg = {"groups": ("rows", "size"), "b_meas_us": ("b_meas_us", "median"),
           "floor_us": ("floor_us", "min")}
    if args.json:
        agg["b_sim_us"] = ("b_sim_us", "median")
    table = s.groupby(["backend", "release", "model"]).agg(**agg)
    if args.json:
        table["meas/sim"] = table.b_meas_us / table.b_sim_us
    pd.set_option("display.width", 200)
    print(f"TPOT = a + b * n (n: requests decoding, Little's law) per deployment measured at "
          f">= 3 concurrencies ({len(s)} deployments, {len(frame)} aggregated rows, "
          f"{len(aside)} set aside); b and the floor min(TPOT / n) in us per decoding request"
          + ("; b_sim: the same line through the simulated TPOTs" if args.json else ""))
    print(table.round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
