"""One cohort or out of phase: measured rows rerun at both ends of ``client_phase_spread``.

    python benchmarks/cohort_phase.py [--data CSV] [--ids ID ...]

Each row (by default the three that docs/serving.md and ``llmsim.engines.profile`` quote: a
TensorRT-LLM Qwen3-32B fp8 deployment on TP 4, 1024 / 128 tokens at ``c = 32`` and ``c = 8``,
and SGLang's Qwen3-32B on TP 4, 2048 / 256 at ``c = 64``) is rerun as its benchmark ran it
(:mod:`llmsim.serving.reproduce`) with the packaged engine profile three times: as packaged,
with every client starting together (spread 0: one cohort) and with the clients' first
requests spread over one request's duration (spread 1: out of phase). Printed: measured and
predicted mean TTFT and TPOT (ms).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from llmsim.engines.profile import load_profile
from llmsim.serving.reproduce import (
    base_step_model,
    load_rows,
    measured,
    row_config,
    row_version,
    run_row,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "e2e" / "aiconfigurator_silicon" / "silicon_h100_sxm.csv"
IDS = ("qwen_qwen3_32b_qwen_qwen3_32b_h100_sxm_trtllm_agg_1024x128_c32_tp4_epnone_105",
       "qwen_qwen3_32b_qwen_qwen3_32b_h100_sxm_trtllm_agg_1024x128_c8_tp4_epnone_87",
       "qwen_qwen3_32b_qwen_qwen3_32b_h100_sxm_sglang_agg_2048x256_c64_tp4_epnone_40")


def rerun(row: dict, spread: float | None) -> tuple[float, float]:
    """(mean TTFT, mean TPOT) in ms of ``row`` with the packaged profile, its phase spread
    replaced by ``spread`` unless that is None."""
    cfg = row_config(row)
    if spread is not None:
        cfg["engine"]["client_phase_spread"] = spread
    ttft, tpot = run_row(cfg, base_step_model(cfg))
    return ttft * 1e3, tpot * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--ids", nargs="+", default=list(IDS), help="row ids of the CSV")
    args = ap.parse_args(argv)
    if not Path(args.data).is_file():
        print(f"error: measured data not found: {args.data}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    by_id = {str(r["id"]): r for r in load_rows(args.data)}
    missing = [i for i in args.ids if i not in by_id]
    if missing:
        print(f"error: no aggregated row with id {missing[0]!r}", file=sys.stderr)
        return 2
    print(f"{'row':48s} {'measured':>15s} {'packaged':>15s} {'one cohort':>15s} "
          f"{'out of phase':>15s}   (mean TTFT / TPOT, ms)")
    for rid in args.ids:
        row = by_id[rid]
        spread = load_profile(str(row["backend"]), row_version(row)).client_phase_spread
        m_ttft, m_tpot = measured(row)
        cells = [(m_ttft * 1e3, m_tpot * 1e3), rerun(row, None), rerun(row, 0.0),
                 rerun(row, 1.0)]
        name = (f"{row['backend']} {row['model_path'].split('/')[-1]} tp{int(row['tp_size'])} "
                f"{row['isl']}/{row['osl']} c{int(row['batch_size'])} (spread {spread:.3g})")
        print(f"{name:48s} " + " ".join(f"{t:8.0f} /{p:5.1f}" for t, p in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
