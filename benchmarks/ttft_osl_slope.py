"""How the measured mean TTFT grows with the output length, per deployment (issue 10).

    python benchmarks/ttft_osl_slope.py [--data CSV]

For every aggregated deployment of ``../shared/data/e2e/aiconfigurator_silicon/
silicon_h100_sxm.csv`` measured at one concurrency ``c`` and prompt length with three output
lengths or more, a least-squares line ``TTFT = a + b * D`` over its rows, where ``D = (osl - 1)
* TPOT`` is one request's decode time. Printed: the median of ``b * c`` and of ``a`` per engine,
model and concurrency (measurements only, nothing simulated).

What ``b * c`` says: in a closed loop of ``c`` clients whose requests all fit the engine's
batch, a new request never waits for another to finish, so the TTFT does not grow with ``D``
(``b * c`` near 0). With one batch slot fewer than clients, each request waits for the next
completion, ``D / c`` on average when completions are evenly spread, so ``b * c`` near 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "e2e" / "aiconfigurator_silicon" / "silicon_h100_sxm.csv"
KEYS = ["backend", "model_path", "backend_version", "tp_size", "isl", "batch_size"]


def slopes(frame):
    """One row per deployment group of three output lengths or more: ``n``, ``a_ms``,
    ``b_times_c``."""
    import numpy as np
    import pandas as pd

    frame = frame.assign(decode_ms=(frame.osl - 1) * frame.silicon_tpot_ms)
    out = []
    for key, g in frame.groupby(KEYS, dropna=False):
        if g.osl.nunique() < 3:
            continue
        b, a = np.polyfit(g.decode_ms, g.silicon_ttft_ms, 1)
        out.append((*key, len(g), a, b * key[-1]))
    return pd.DataFrame(out, columns=[*KEYS, "n", "a_ms", "b_times_c"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"error: measured data not found: {args.data}", file=sys.stderr)
        return 2
    import pandas as pd

    frame = pd.read_csv(args.data)
    frame = frame[(frame["mode"] == "agg") & (frame.attention_dp_size.fillna(1) <= 1)]
    s = slopes(frame)
    s["model"] = s.model_path.str.split("/").str[-1]
    s["c"] = s.batch_size.astype(int)
    pd.set_option("display.width", 200)
    print(f"TTFT = a + b * (osl - 1) * TPOT per deployment ({len(s)} groups of >= 3 output "
          f"lengths from {len(frame)} aggregated rows); median b * c (near 1: each request "
          "waits for one completion; near 0: none):")
    print(s.pivot_table(index=["backend", "model"], columns="c", values="b_times_c",
                        aggfunc="median").round(2).to_string())
    print("\nmedian a (ms):")
    print(s.pivot_table(index=["backend", "model"], columns="c", values="a_ms",
                        aggfunc="median").round(0).to_string())
    print("\ngroups per cell:")
    print(s.pivot_table(index=["backend", "model"], columns="c", values="n",
                        aggfunc="count").fillna(0).astype(int).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
